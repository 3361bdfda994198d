"""Admin pages for packages, sessions, proposals and the session event timeline (offerings:
`catalog.admin`).

Everything here is read-only: statuses change only through the services in
`sessions_app.services`, so sessions, packages, proposals and events cannot be added, changed
or deleted in the admin. Every cancellation shows
its refund choice, taken from the cancel event ("Full refund $30.00", "Partial refund $12.50",
"Cancel without refund").
"""

from datetime import datetime

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import (
    Case,
    F,
    IntegerField,
    JSONField,
    OuterRef,
    Subquery,
    Value,
    When,
)
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.models import User
from core.admin import (
    CoachListFilter,
    LargeTableAdminMixin,
    NumberOrTextSearchMixin,
    ReadOnlyAdminMixin,
    admin_link,
    money_column,
    user_label,
)
from core.money import format_money
from refunds.admin import RefundInline
from refunds.models import PaymentState
from refunds.selectors import refunded_cents_for_session, refunded_cents_subquery
from sessions_app.expiry import EXPIRY_SOON
from sessions_app.lifecycle import Action
from sessions_app.models import Package, RescheduleProposal, Session, SessionEvent

REFUND_LABELS = {"full": "Full refund", "partial": "Partial refund"}


def cancellation_text(details: dict | None, currency: str) -> str:
    """The refund choice recorded in a cancel event's details, as a person would say it."""
    if details is None:
        return ""
    choice = details.get("refund")
    if choice == "none":
        return "Cancel without refund"
    if choice in REFUND_LABELS:
        amount = format_money(details.get("refund_amount_cents"), currency)
        return f"{REFUND_LABELS[choice]} {amount}"
    return "Canceled"


def with_cancel_details(queryset, session_ref: str = "pk"):
    """Annotate each session with its cancel event's details (None if never canceled)."""
    cancel_event = (
        SessionEvent.objects.filter(session=OuterRef(session_ref), action=Action.CANCEL)
        .order_by("-created_at", "-id")
        .values("details")[:1]
    )
    return queryset.annotate(cancel_details=Subquery(cancel_event, output_field=JSONField()))


class CoachFilter(CoachListFilter):
    """Rows by coach, listing every user who has a coach profile."""

    def coaches(self):
        return User.objects.filter(coach_profile__isnull=False)


# --- inlines ---------------------------------------------------------------------------------


class SessionEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The session's timeline: who did what, from which status to which, when and why."""

    model = SessionEvent
    extra = 0
    can_delete = False
    verbose_name = "event"
    verbose_name_plural = "timeline"
    ordering = ["created_at", "id"]
    fields = [
        "when",
        "actor_display",
        "action",
        "from_status",
        "to_status",
        "details_display",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor", "session")

    @admin.display(description="when")
    def when(self, obj):
        return local_time(obj.created_at)

    @admin.display(description="who")
    def actor_display(self, obj):
        return user_label(obj.actor) if obj.actor_id else "system"

    @admin.display(description="details")
    def details_display(self, obj):
        return event_details_text(obj)


def local_time(value) -> str:
    """A stored UTC time in the viewer's timezone, with its abbreviation."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z") if value else "-"


def event_details_text(event: SessionEvent) -> str:
    """An event's details for people: money as money, times local, the reason last."""
    details = dict(event.details or {})
    parts = []
    if event.action == Action.CANCEL:
        parts.append(cancellation_text(details, event.session.currency))
        details.pop("refund", None)
        details.pop("refund_amount_cents", None)
    reason = details.pop("reason", "")
    for key, value in details.items():
        if value in ("", None):
            continue
        if key.endswith("_cents") and isinstance(value, int):
            key, value = key.removesuffix("_cents"), format_money(value, event.session.currency)
        elif _is_time_key(key) and isinstance(value, str):
            value = _local_iso(value)
        parts.append(f"{key.replace('_', ' ')}: {value}")
    if reason:
        parts.append(f"reason: {reason}")
    return " · ".join(parts) or "-"


def _is_time_key(key: str) -> bool:
    """Whether a details key holds an ISO time: start, end, proposed_start, previous_start..."""
    return key in ("start", "end") or key.endswith(("_start", "_end"))


def _local_iso(value: str) -> str:
    try:
        return local_time(datetime.fromisoformat(value))
    except ValueError:
        return value


class RescheduleProposalInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RescheduleProposal
    extra = 0
    can_delete = False
    fk_name = "session"
    ordering = ["created_at", "id"]
    fields = ["created_at", "slot", "proposed_by", "status", "expires_at", "decided_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        # A reservation names itself in its coach's timezone: its coach comes in the same query.
        return super().get_queryset(request).select_related("slot__coach", "proposed_by")


class PackageSessionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Session
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["number"]
    fields = ["number", "status", "slot", "price_share_display", "cancellation"]
    readonly_fields = fields

    def get_queryset(self, request):
        return with_cancel_details(super().get_queryset(request).select_related("slot__coach"))

    price_share_display = money_column("price_share_cents", "price share", sortable=False)

    @admin.display(description="cancellation")
    def cancellation(self, obj):
        return cancellation_text(obj.cancel_details, obj.currency) or "-"


# --- model admins ----------------------------------------------------------------------------


class CreditExpiryFilter(admin.SimpleListFilter):
    """Packages by their credits' expiry: expired, expiring within 14 days, later, never."""

    title = "credit expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [
            ("expired", "Expired"),
            ("soon", "Expiring within 14 days"),
            ("later", "Expiring later"),
            ("never", "Never expire"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        choice = self.value()
        if choice == "expired":
            return queryset.filter(expires_at__lte=now)
        if choice == "soon":
            return queryset.filter(expires_at__gt=now, expires_at__lte=now + EXPIRY_SOON)
        if choice == "later":
            return queryset.filter(expires_at__gt=now + EXPIRY_SOON)
        if choice == "never":
            return queryset.filter(expires_at__isnull=True)
        return queryset


@admin.register(Package)
class PackageAdmin(
    LargeTableAdminMixin, NumberOrTextSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    list_display = [
        "id",
        "title",
        "coach",
        "student",
        "session_count",
        "paid_display",
        "refunded_display",
        "remaining_display",
        "purchased_at",
        "expires_at",
    ]
    list_filter = ["currency", CoachFilter, CreditExpiryFilter, "purchased_at"]
    search_fields = ["student__email", "coach__email", "title"]
    search_help_text = "A student's or coach's email, a title, or a package number."
    date_hierarchy = "purchased_at"
    list_select_related = ["coach", "student", "payment"]
    list_per_page = 100
    inlines = [PackageSessionInline]
    fields = [
        "title",
        "offering",
        "coach",
        "student",
        "session_count",
        "duration_minutes",
        "price_display",
        "payment_link",
        "paid_display",
        "refunded_display",
        "remaining_display",
        "purchased_at",
        "expires_at",
        "expiry_changes",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        """Paid, refunded and remaining per package, computed in the same query as the rows."""
        return (
            super()
            .get_queryset(request)
            .annotate(
                paid_cents=Case(
                    When(payment__state=PaymentState.DONE, then=F("payment__amount_cents")),
                    default=Value(0),
                    output_field=IntegerField(),
                ),
                refunded_cents=refunded_cents_subquery(via="payment__package"),
                remaining_cents=F("paid_cents") - F("refunded_cents"),
            )
        )

    price_display = money_column("price_cents", "price")
    paid_display = money_column("paid_cents", "paid")
    refunded_display = money_column("refunded_cents", "refunded")
    remaining_display = money_column("remaining_cents", "remaining")

    @admin.display(description="expiry changes")
    def expiry_changes(self, obj):
        """Who extended the credits, when, from and to (the package's history entries)."""
        entries = (
            LogEntry.objects.filter(
                content_type=ContentType.objects.get_for_model(Package),
                object_id=str(obj.pk),
                change_message__startswith="Credits expiry",
            )
            .select_related("user")
            .order_by("action_time", "pk")
        )
        if not entries:
            return "None" if obj.expires_at else "Never expires"
        return format_html_join(
            "",
            "<div>{}: {}</div>",
            ((local_time(entry.action_time), entry.change_message) for entry in entries),
        )

    @admin.display(description="payment")
    def payment_link(self, obj):
        payment = getattr(obj, "payment", None)
        if payment is None:
            return "-"
        return admin_link(payment, f"Payment {payment.pk} ({payment.get_state_display()})")


@admin.register(Session)
class SessionAdmin(
    LargeTableAdminMixin, NumberOrTextSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    list_display = [
        "id",
        "package_link",
        "number",
        "coach",
        "student",
        "status",
        "slot",
        "price_share_display",
        "cancellation",
        "updated_at",
    ]
    list_filter = ["status", CoachFilter, "currency"]
    search_fields = ["student__email", "coach__email"]
    search_help_text = "A student's or coach's email, or a session number."
    list_select_related = ["coach", "student", "slot__coach", "package"]
    list_per_page = 100
    inlines = [SessionEventInline, RefundInline, RescheduleProposalInline]
    fields = [
        "package_link",
        "number",
        "coach",
        "student",
        "status",
        "slot",
        "price_share_display",
        "refunded_display",
        "cancellation_summary",
        "request_expires_at",
        "sequence",
        "reminder_24h_sent_at",
        "reminder_1h_sent_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return with_cancel_details(super().get_queryset(request))

    @admin.display(description="package", ordering="package_id")
    def package_link(self, obj):
        return admin_link(obj.package, f"Package {obj.package_id}: {obj.package.title}")

    price_share_display = money_column("price_share_cents", "price share")

    @admin.display(description="cancellation")
    def cancellation(self, obj):
        return cancellation_text(obj.cancel_details, obj.currency) or "-"

    @admin.display(description="refunded")
    def refunded_display(self, obj):
        return format_money(refunded_cents_for_session(session=obj), obj.currency)

    @admin.display(description="cancellation")
    def cancellation_summary(self, obj):
        """Who canceled, when, why, and what was refunded, from the cancel event."""
        event = (
            obj.events.filter(action=Action.CANCEL)
            .select_related("actor")
            .order_by("-created_at", "-id")
            .first()
        )
        if event is None:
            return "Not canceled"
        when = local_time(event.created_at)
        parts = [
            cancellation_text(event.details, obj.currency),
            f"by {user_label(event.actor) if event.actor_id else 'system'}",
            f"on {when}",
        ]
        if event.details.get("reason"):
            parts.append(f"reason: {event.details['reason']}")
        return format_html_join(" · ", "{}", ((part,) for part in parts))


@admin.register(RescheduleProposal)
class RescheduleProposalAdmin(
    LargeTableAdminMixin, NumberOrTextSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    list_display = [
        "id",
        "session_link",
        "slot",
        "proposed_by",
        "status",
        "expires_at",
        "created_at",
    ]
    list_filter = ["status", "created_at"]
    search_fields = ["proposed_by__email"]
    number_search_field = "session_id"
    search_help_text = "The proposer's email, or a session number."
    list_select_related = ["slot__coach", "proposed_by"]

    @admin.display(description="session", ordering="session_id")
    def session_link(self, obj):
        return _session_link(obj.session_id)


@admin.register(SessionEvent)
class SessionEventAdmin(
    LargeTableAdminMixin, NumberOrTextSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    list_display = [
        "created_at",
        "session_link",
        "action",
        "actor_display",
        "from_status",
        "to_status",
        "details_display",
    ]
    list_filter = ["action", "to_status", "created_at"]
    search_fields = ["actor__email"]
    number_search_field = "session_id"
    search_help_text = "The actor's email, or a session number."
    date_hierarchy = "created_at"
    list_select_related = ["actor", "session"]
    list_per_page = 100
    ordering = ["-created_at", "-id"]

    @admin.display(description="session", ordering="session_id")
    def session_link(self, obj):
        return _session_link(obj.session_id)

    @admin.display(description="who", ordering="actor__email")
    def actor_display(self, obj):
        return user_label(obj.actor) if obj.actor_id else "system"

    @admin.display(description="details")
    def details_display(self, obj):
        return event_details_text(obj)


def _session_link(session_id: int) -> str:
    url = reverse("admin:sessions_app_session_change", args=[session_id])
    return format_html('<a href="{}">Session {}</a>', url, session_id)
