"""The outbox in the admin: every email Coachbook sent or is about to send, read-only.

Lists deliveries newest first with filters by kind, status and date, and search by the
recipient's email (or a delivery's number). A delivery's page shows its facts (the snapshot
its email is built from), its attempts and last error, and the email as it would go now.
Nothing is edited here: the one action, "Send again", puts FAILED deliveries back in the queue
(`notifications.services.delivery_resend`) and needs the "Can send a failed delivery again"
permission (superusers have it); each use is recorded in the admin's history, in the resend's
own transaction, with the error and attempt count the delivery had.
"""

import json

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.text import Truncator

from core.admin import LargeTableAdminMixin, NumberOrTextSearchMixin, ReadOnlyAdminMixin, admin_link
from core.errors import DomainError
from notifications import emails, services
from notifications.models import Delivery, DeliveryStatus


def resend_message(previous: Delivery) -> str:
    """The history entry of a "Send again": what the delivery had been through."""
    error = Truncator(previous.last_error or "no error recorded").chars(500)
    return f"Sent again (was failed after {previous.attempts} attempt(s): {error})"


@admin.register(Delivery)
class DeliveryAdmin(
    LargeTableAdminMixin, NumberOrTextSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    list_display = [
        "id",
        "created_at",
        "kind",
        "status",
        "recipient_email",
        "session_link",
        "attempts",
        "sent_at",
        "error_short",
    ]
    list_filter = [
        "status",
        "kind",
        ("created_at", admin.DateFieldListFilter),
        ("sent_at", admin.DateFieldListFilter),
    ]
    search_fields = ["recipient__email"]
    search_help_text = "A recipient's email, or a delivery's number."
    list_select_related = ["recipient", "session"]
    ordering = ["-created_at", "-id"]
    list_per_page = 100
    show_full_result_count = False
    actions = ["send_again"]
    fields = [
        "kind",
        "status",
        "recipient_display",
        "session_link",
        "event_link",
        "key",
        "subject",
        "created_at",
        "attempts",
        "claim_seq",
        "next_attempt_at",
        "claimed_until",
        "sent_at",
        "resent_at",
        "last_error",
        "facts_display",
        "preview",
    ]
    readonly_fields = fields

    @admin.display(description="Recipient", ordering="recipient__email")
    def recipient_email(self, obj):
        return obj.recipient.email

    @admin.display(description="Recipient")
    def recipient_display(self, obj):
        return admin_link(obj.recipient, f"{obj.recipient.name} <{obj.recipient.email}>")

    @admin.display(description="Session")
    def session_link(self, obj):
        return admin_link(obj.session, f"Session {obj.session_id}" if obj.session_id else None)

    @admin.display(description="Event")
    def event_link(self, obj):
        return admin_link(obj.event)

    @admin.display(description="Last error")
    def error_short(self, obj):
        return Truncator(obj.last_error).chars(80)

    @admin.display(description="Facts")
    def facts_display(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.facts, indent=2, sort_keys=True))

    @admin.display(description="Email (as it would go now)")
    def preview(self, obj):
        try:
            message = emails.delivery_email(delivery=obj).message()
        except Exception as exc:  # the page must open whatever the email's trouble
            return f"Cannot be built: {type(exc).__name__}: {exc}"
        return format_html("<strong>{}</strong><pre>{}</pre>", message.subject, message.body)

    def has_resend_permission(self, request) -> bool:
        user = request.user
        return user.is_active and user.is_staff and user.has_perm("notifications.resend_delivery")

    @admin.action(description="Send again (failed ones)", permissions=["resend"])
    def send_again(self, request, queryset):
        queued = refused = 0

        def record(previous):
            self.log_change(request, previous, resend_message(previous))

        for delivery in queryset.order_by("pk"):
            try:
                services.delivery_resend(delivery=delivery, actor=request.user, record=record)
            except DomainError:
                refused += 1
                continue
            queued += 1
        if queued:
            self.message_user(
                request, f"{queued} email(s) queued to be sent again.", messages.SUCCESS
            )
        if refused:
            self.message_user(
                request,
                f"{refused} left as they are: only a failed email can be sent again "
                f"(status “{DeliveryStatus.FAILED.label}”).",
                messages.WARNING,
            )
