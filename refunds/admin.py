"""The refund audit: read-only admin pages for payments and refunds.

Refunds are never edited or deleted (a correction is a new entry), so these pages are
read-only for everyone, superusers included. Staff see them when they are superusers or hold
the "Can view refund" / "Can view payment" permissions. The refund list shows the totals of the
filtered rows per currency and exports those rows (or the selected ones) to CSV.
"""

import csv
from collections.abc import Iterator
from datetime import UTC

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.text import Truncator

from accounts.models import User
from core.admin import (
    CoachListFilter,
    NumberOrTextSearchMixin,
    ReadOnlyAdminMixin,
    admin_link,
    email_column,
    money_column,
)
from core.money import format_amount, format_money
from refunds.models import Payment, Refund, RefundState
from refunds.selectors import refunded_cents_subquery


class CoachWithRefundsFilter(CoachListFilter):
    """Refunds by coach, listing only the coaches who have refunds."""

    coach_field = "session__coach_id"

    def coaches(self):
        return User.objects.filter(coached_sessions__refunds__isnull=False).distinct()


# The fixed columns of the CSV export, in order.
CSV_HEADER = [
    "refund_id",
    "created_at_utc",
    "session_id",
    "package_id",
    "coach_email",
    "student_email",
    "amount",
    "amount_cents",
    "currency",
    "kind",
    "state",
    "gateway",
    "reference",
    "issued_by_email",
    "reason",
    "settled_at_utc",
    "failure_reason",
]


def _utc(value) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


def _safe_text(value: str) -> str:
    """Keep spreadsheets from running free text as a formula (CSV injection)."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def refund_csv_row(refund: Refund) -> list:
    session = refund.session
    return [
        refund.pk,
        _utc(refund.created_at),
        session.pk,
        session.package_id,
        session.coach.email,
        session.student.email,
        format_amount(refund.amount_cents),
        refund.amount_cents,
        refund.currency,
        refund.kind,
        refund.state,
        refund.gateway,
        _safe_text(refund.reference),
        refund.issued_by.email if refund.issued_by else "",
        _safe_text(refund.reason),
        _utc(refund.settled_at),
        _safe_text(refund.failure_reason),
    ]


class _Echo:
    def write(self, value: str) -> str:
        return value


def refunds_csv_response(queryset: QuerySet, filename: str) -> StreamingHttpResponse:
    """Stream `queryset`'s refunds as CSV with the fixed CSV_HEADER columns."""
    rows = queryset.select_related("session__coach", "session__student", "issued_by")
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(CSV_HEADER)
        for refund in rows.iterator(chunk_size=2000):
            yield writer.writerow(refund_csv_row(refund))

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def refund_totals(queryset: QuerySet) -> list[dict]:
    """Per currency: how many refunds, their total, and how much is done, pending and failed."""
    cents = "amount_cents"
    rows = (
        queryset.order_by()
        .values("currency")
        .annotate(
            count=Count("pk"),
            total=Sum(cents),
            done=Coalesce(Sum(cents, filter=Q(state=RefundState.DONE)), 0),
            pending=Coalesce(Sum(cents, filter=Q(state=RefundState.CREATED)), 0),
            failed=Coalesce(Sum(cents, filter=Q(state=RefundState.FAILED)), 0),
        )
        .order_by("currency")
    )
    return [
        {
            "currency": row["currency"],
            "count": row["count"],
            **{
                key: format_money(row[key], row["currency"])
                for key in ("total", "done", "pending", "failed")
            },
        }
        for row in rows
    ]


class RefundInline(ReadOnlyAdminMixin, admin.TabularInline):
    """A session's or a payment's refunds, read-only."""

    model = Refund
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["created_at", "id"]
    fields = [
        "created_at",
        "amount_display",
        "kind",
        "state",
        "issued_by",
        "reason",
        "gateway",
        "reference",
        "settled_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("issued_by")

    amount_display = money_column("amount_cents", "amount", sortable=False)


@admin.register(Refund)
class RefundAdmin(NumberOrTextSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "session_link",
        "coach",
        "student",
        "amount_display",
        "kind",
        "state",
        "issued_by_display",
        "reason_short",
    ]
    list_display_links = ["created_at"]
    list_filter = ["kind", "state", CoachWithRefundsFilter, "created_at"]
    search_fields = ["session__student__email", "session__coach__email"]
    number_search_field = "session_id"
    search_help_text = "A student's or coach's email, or a session number."
    date_hierarchy = "created_at"
    list_select_related = ["session__coach", "session__student", "issued_by"]
    list_per_page = 100
    ordering = ["-created_at", "-id"]
    actions = ["export_csv"]
    fields = [
        "session_link",
        "coach",
        "student",
        "amount_display",
        "kind",
        "state",
        "issued_by_display",
        "reason",
        "created_at",
        "gateway",
        "reference",
        "settled_at",
        "failure_reason",
        "settle_attempts",
        "last_attempt_at",
        "payment_link",
        "idempotency_key",
    ]
    readonly_fields = fields

    def get_urls(self):
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_view),
            name="refunds_refund_export",
        )
        return [export, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            response.context_data["refund_totals"] = refund_totals(changelist.queryset)
        return response

    def export_view(self, request: HttpRequest):
        """The CSV of every refund the current filters and search select (all pages)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            url = reverse("admin:refunds_refund_changelist")
            return HttpResponseRedirect(f"{url}?e=1")
        return refunds_csv_response(changelist.queryset, _export_filename())

    @admin.action(description="Export selected refunds to CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        if not queryset.exists():
            self.message_user(request, "No refunds selected.", messages.WARNING)
            return None
        return refunds_csv_response(queryset, _export_filename())

    @admin.display(description="session", ordering="session_id")
    def session_link(self, obj):
        return admin_link(obj.session, f"Session {obj.session_id}")

    coach = email_column("session__coach", "coach")
    student = email_column("session__student", "student")
    amount_display = money_column("amount_cents", "amount")

    @admin.display(description="issued by", ordering="issued_by__email")
    def issued_by_display(self, obj):
        return obj.issued_by.email if obj.issued_by else "system"

    @admin.display(description="reason")
    def reason_short(self, obj):
        return Truncator(obj.reason).chars(60) or "-"

    @admin.display(description="payment")
    def payment_link(self, obj):
        return admin_link(obj.payment, f"Payment {obj.payment_id}")


def _export_filename() -> str:
    return f"refunds-{timezone.now():%Y%m%d-%H%M%S}.csv"


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "package_link",
        "coach",
        "student",
        "amount_display",
        "refunded_display",
        "state",
        "gateway",
        "reference",
    ]
    list_filter = ["state", "gateway", "currency", "created_at"]
    search_fields = ["package__student__email", "package__coach__email", "reference"]
    date_hierarchy = "created_at"
    list_select_related = ["package__coach", "package__student"]
    list_per_page = 100
    inlines = [RefundInline]
    fields = [
        "package_link",
        "coach",
        "student",
        "amount_display",
        "refunded_display",
        "state",
        "gateway",
        "reference",
        "idempotency_key",
        "created_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        refunded = refunded_cents_subquery(via="payment")
        return super().get_queryset(request).annotate(refunded_cents=refunded)

    @admin.display(description="package", ordering="package_id")
    def package_link(self, obj):
        return admin_link(obj.package, f"Package {obj.package_id}: {obj.package.title}")

    coach = email_column("package__coach", "coach")
    student = email_column("package__student", "student")
    amount_display = money_column("amount_cents", "amount")
    refunded_display = money_column("refunded_cents", "refunded")
