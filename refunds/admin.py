"""The refund audit: read-only admin pages for payments and refunds.

Refunds are never edited or deleted (a correction is a new entry), so these pages are
read-only for everyone, superusers included. Staff see them when they are superusers or hold
the "Can view refund" / "Can view payment" permissions. The refund list shows the totals of the
filtered rows per currency and exports those rows (or the selected ones) to CSV, with the
processor's references (the Stripe refund id and PaymentIntent id).

The one thing done here is retrying a failed refund (`refunds.services.refund_retry`): the
"Retry failed refunds as new refunds" action and the button on a failed refund's page. It needs
an active staff account with the "Can add refund" permission (superusers have it), since a retry
moves money; the failed refund stays as it is and the retry is a new refund pointing at it.

A card payment's page also shows its amounts "As Stripe reports it" next to Coachbook's own.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator
from django.views.decorators.http import require_POST

from accounts.models import User
from core.admin import (
    CoachListFilter,
    LargeTableAdminMixin,
    NumberOrTextSearchMixin,
    ReadOnlyAdminMixin,
    admin_link,
    as_id,
    email_column,
    money_column,
)
from core.csv import csv_stream_response, safe_row
from core.errors import DomainError
from core.money import format_amount, format_money
from refunds import gateways, services
from refunds.gateways import ChargeSummary, GatewayRefused, GatewayUnavailable, get_gateway
from refunds.models import Payment, PaymentState, Refund, RefundState
from refunds.selectors import refunded_cents_subquery

logger = logging.getLogger(__name__)


class CoachWithRefundsFilter(CoachListFilter):
    """Refunds by coach, listing only the coaches who have refunds."""

    coach_field = "session__coach_id"

    def coaches(self):
        return User.objects.filter(coached_sessions__refunds__isnull=False).distinct()


class GatewayListFilter(admin.SimpleListFilter):
    """Rows by payment gateway ("manual", "stripe"), offering the gateways Coachbook knows
    (no query, unlike a filter listing the column's distinct values)."""

    title = "gateway"
    parameter_name = "gateway"

    def lookups(self, request, model_admin):
        return [(name, name) for name in sorted(gateways.GATEWAYS)]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(gateway=self.value())


# The fixed columns of the CSV export, in order. `reference` is the gateway's id of the refund
# (Stripe: the refund id, "re_..."), `payment_reference` its id of the payment (Stripe: the
# PaymentIntent id, "pi_..."); `retry_of_id` is the failed refund a retry replaces. New columns
# go at the end, so a spreadsheet built on the earlier ones keeps working.
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
    "payment_reference",
    "retry_of_id",
]


def _utc(value) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


def refund_csv_row(refund: Refund) -> list:
    """One refund's cells; every text cell neutralised against formulas (core.csv)."""
    session = refund.session
    return safe_row(
        [
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
            refund.reference,
            refund.issued_by.email if refund.issued_by else "",
            refund.reason,
            _utc(refund.settled_at),
            refund.failure_reason,
            refund.payment.reference,
            refund.retry_of_id or "",
        ]
    )


def refunds_csv_response(queryset: QuerySet, filename: str) -> StreamingHttpResponse:
    """Stream `queryset`'s refunds as CSV with the fixed CSV_HEADER columns."""
    rows = queryset.select_related("session__coach", "session__student", "issued_by", "payment")

    def lines() -> Iterator[list]:
        yield CSV_HEADER
        for refund in rows.iterator(chunk_size=2000):
            yield refund_csv_row(refund)

    return csv_stream_response(lines(), filename)


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


def refund_link(refund_id: int | None, label: str | None = None) -> str:
    """A link to a refund's admin page by its id (no query), or "-"."""
    if not refund_id:
        return "-"
    url = reverse("admin:refunds_refund_change", args=[refund_id])
    return format_html('<a href="{}">{}</a>', url, label or f"Refund {refund_id}")


def retry_of_refund(refund: Refund) -> Refund | None:
    """The refund that retries `refund`, or None (select_related("retry") saves the query)."""
    try:
        return refund.retry
    except ObjectDoesNotExist:
        return None


@admin.display(description="retry")
def retry_column(self, obj) -> str:
    """Links both ends of a retry: "retry of Refund 3", "retried as Refund 9", or "-"."""
    retry = retry_of_refund(obj)
    if obj.retry_of_id and retry is not None:
        return format_html(
            "retry of {}; retried as {}", refund_link(obj.retry_of_id), refund_link(retry.pk)
        )
    if obj.retry_of_id:
        return format_html("retry of {}", refund_link(obj.retry_of_id))
    if retry is not None:
        return format_html("retried as {}", refund_link(retry.pk))
    return "-"


class RefundInline(ReadOnlyAdminMixin, admin.TabularInline):
    """A session's or a payment's refunds, read-only, with the processor's refund id."""

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
        "gateway",
        "reference_display",
        "failure_reason",
        "retry_display",
        "issued_by",
        "reason",
        "settled_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("issued_by", "retry")

    amount_display = money_column("amount_cents", "amount", sortable=False)
    retry_display = retry_column

    @admin.display(description="reference (Stripe refund id)")
    def reference_display(self, obj):
        return obj.reference or "-"


@admin.register(Refund)
class RefundAdmin(
    LargeTableAdminMixin, NumberOrTextSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    # Money first, so it fits 1280 px without a horizontal scroll (the rest is on the page).
    list_display = [
        "amount_display",
        "kind",
        "state_display",
        "reason_short",
        "created_at",
        "session_link",
        "coach",
        "student",
        "gateway",
        "reference_display",
        "retry_display",
    ]
    list_display_links = ["amount_display"]
    list_filter = ["kind", "state", GatewayListFilter, CoachWithRefundsFilter, "created_at"]
    search_fields = [
        "session__student__email",
        "session__coach__email",
        "=reference",
        "=payment__reference",
    ]
    number_search_field = "session_id"
    search_help_text = (
        "A student's or coach's email, a session number, or a Stripe refund or PaymentIntent id."
    )
    date_hierarchy = "created_at"
    # Joined in get_queryset too, for the change page (its payment and both ends of a retry).
    list_select_related = ["session__coach", "session__student", "issued_by", "payment", "retry"]
    list_per_page = 100
    ordering = ["-created_at", "-id"]
    actions = ["export_csv", "retry_failed"]
    fields = [
        "session_link",
        "coach",
        "student",
        "amount_display",
        "kind",
        "state",
        "failure_reason",
        "retry_of_link",
        "retry_link",
        "issued_by_display",
        "reason",
        "created_at",
        "gateway",
        "reference_display",
        "payment_link",
        "payment_reference",
        "settled_at",
        "settle_attempts",
        "last_attempt_at",
        "idempotency_key",
    ]
    readonly_fields = fields
    change_form_template = "admin/refunds/refund/change_form.html"

    def get_queryset(self, request):
        # The admin's list skips list_select_related once a queryset has joins of its own.
        return super().get_queryset(request).select_related(*self.list_select_related)

    def get_urls(self):
        extra = [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_view),
                name="refunds_refund_export",
            ),
            path(
                "<path:object_id>/retry/",
                self.admin_site.admin_view(require_POST(self.retry_view)),
                name="refunds_refund_retry",
            ),
        ]
        return [*extra, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            response.context_data["refund_totals"] = refund_totals(changelist.queryset)
        return response

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_retry"] = obj is not None and self._can_retry(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

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

    # --- retrying failed refunds ------------------------------------------------------------

    def has_retry_permission(self, request) -> bool:
        """A retry moves money: active staff with "Can add refund" (superusers have it)."""
        user = request.user
        return user.is_active and user.is_staff and user.has_perm("refunds.add_refund")

    def _can_retry(self, request, refund: Refund) -> bool:
        return (
            refund.state == RefundState.FAILED
            and retry_of_refund(refund) is None
            and self.has_retry_permission(request)
        )

    def _retry(self, request, refund: Refund) -> tuple[Refund | None, str]:
        """Retry one refund: (the new refund, "") or (None, why it was not retried)."""
        earlier = retry_of_refund(refund)
        if earlier is not None:
            return None, f"Already retried as refund {earlier.pk}."
        try:
            new = services.refund_retry(refund=refund, issued_by=request.user)
        except DomainError as exc:
            return None, exc.message
        except (GatewayUnavailable, LookupError) as exc:
            logger.warning("retry of refund %s: %s", refund.pk, exc)
            return None, f"The payment gateway could not take it now ({exc})."
        self.log_addition(request, new, f"Retry of failed refund {refund.pk}")
        return new, ""

    @admin.action(description="Retry failed refunds as new refunds", permissions=["retry"])
    def retry_failed(self, request, queryset):
        retried: list[str] = []
        refused: dict[str, list[str]] = {}
        for refund in queryset.select_related("retry").order_by("pk"):
            new, why = self._retry(request, refund)
            if new is None:
                refused.setdefault(why, []).append(str(refund.pk))
            else:
                retried.append(f"refund {refund.pk} as refund {new.pk}")
        if retried:
            self.message_user(
                request,
                f"Retried {len(retried)} failed refund{'s' if len(retried) != 1 else ''} as new "
                f"refunds: {', '.join(retried)}. They go to the payment processor now.",
                messages.SUCCESS,
            )
        for why, ids in refused.items():
            label = "refund" if len(ids) == 1 else "refunds"
            self.message_user(
                request, f"Not retried ({label} {', '.join(ids)}): {why}", messages.WARNING
            )

    def retry_view(self, request: HttpRequest, object_id: str):
        """The "Retry as a new refund" button on a failed refund's page (POST only)."""
        if not self.has_retry_permission(request):
            raise PermissionDenied
        refund_id = as_id(object_id)
        if refund_id is None:
            raise Http404("No such refund.")
        refund = get_object_or_404(Refund.objects.select_related("retry"), pk=refund_id)
        new, why = self._retry(request, refund)
        if new is None:
            self.message_user(request, f"Refund {refund.pk} was not retried: {why}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:refunds_refund_change", args=[refund.pk]))
        self.message_user(
            request,
            f"Refund {refund.pk} retried as refund {new.pk} ({new.get_state_display()}).",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:refunds_refund_change", args=[new.pk]))

    # --- columns ----------------------------------------------------------------------------

    @admin.display(description="session", ordering="session_id")
    def session_link(self, obj):
        return admin_link(obj.session, f"Session {obj.session_id}")

    coach = email_column("session__coach", "coach")
    student = email_column("session__student", "student")
    amount_display = money_column("amount_cents", "amount")
    retry_display = retry_column

    @admin.display(description="reference (Stripe refund id)", ordering="reference")
    def reference_display(self, obj):
        return obj.reference or "-"

    @admin.display(description="state", ordering="state")
    def state_display(self, obj):
        """Pending, Succeeded or Failed; a failed one with the processor's reason under it."""
        if obj.state == RefundState.FAILED and obj.failure_reason:
            return format_html(
                '{}<br><span class="quiet">{}</span>',
                obj.get_state_display(),
                Truncator(obj.failure_reason).chars(60),
            )
        return obj.get_state_display()

    @admin.display(description="issued by", ordering="issued_by__email")
    def issued_by_display(self, obj):
        return obj.issued_by.email if obj.issued_by else "system"

    @admin.display(description="reason")
    def reason_short(self, obj):
        if not obj.reason:
            return "-"
        short = Truncator(obj.reason).chars(40)
        return format_html('<span title="{}">{}</span>', obj.reason, short)

    @admin.display(description="payment")
    def payment_link(self, obj):
        return admin_link(obj.payment, f"Payment {obj.payment_id}")

    @admin.display(description="payment reference (PaymentIntent id)")
    def payment_reference(self, obj):
        return obj.payment.reference or "-"

    @admin.display(description="retry of")
    def retry_of_link(self, obj):
        return refund_link(obj.retry_of_id)

    @admin.display(description="retried as")
    def retry_link(self, obj):
        retry = retry_of_refund(obj)
        if retry is None:
            return "-"
        label = f"Refund {retry.pk} ({retry.get_state_display()})"
        return refund_link(retry.pk, label)


def _export_filename() -> str:
    return f"refunds-{timezone.now():%Y%m%d-%H%M%S}.csv"


# --- payments ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessorAmounts:
    """A payment's amounts as its card processor reports them, or why they are not shown."""

    asked: bool  # the gateway keeps its own record (Stripe); False for manual
    summary: ChargeSummary | None = None
    note: str = ""
    detail: str = ""


def processor_amounts(payment: Payment) -> ProcessorAmounts:
    """Ask the payment's gateway what it holds for `payment` (Stripe: the PaymentIntent's charge).

    Never raises: a gateway that keeps no record (manual), has no charge yet, cannot be reached
    or refuses gives no summary and a note for the page.
    """
    try:
        gateway = get_gateway(payment.gateway)
    except LookupError:
        return ProcessorAmounts(False, note=f"Gateway {payment.gateway!r} is not configured here.")
    summary_of = getattr(gateway, "charge_summary", None)
    if summary_of is None:
        return ProcessorAmounts(
            False,
            note=f"The {payment.gateway} gateway moves no money itself: Coachbook's record is "
            "the only one.",
        )
    name = payment.gateway.capitalize()
    try:
        summary = summary_of(payment)
    except GatewayUnavailable as exc:
        logger.warning("payment %s: %s", payment.pk, exc)
        return ProcessorAmounts(
            True,
            note=f"{name} could not be reached, so its figures are not shown. Coachbook's own "
            "figures are unaffected; reload the page to ask again.",
            detail=str(exc),
        )
    except GatewayRefused as exc:
        return ProcessorAmounts(True, note=f"{name} refused to show this payment: {exc.message}")
    except Exception as exc:  # the page must open whatever the processor's trouble
        logger.exception("payment %s: reading the charge summary failed", payment.pk)
        return ProcessorAmounts(
            True, note=f"{name}'s answer could not be read.", detail=type(exc).__name__
        )
    if summary is None:
        return ProcessorAmounts(
            True, note=f"{name} has no charge for this payment yet: nothing was paid."
        )
    return ProcessorAmounts(True, summary=summary)


@admin.register(Payment)
class PaymentAdmin(LargeTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Money first, as on the refund list, so it fits 1280 px.
    list_display = [
        "amount_display",
        "state",
        "refunded_display",
        "id",
        "created_at",
        "package_link",
        "student",
        "coach",
        "gateway",
        "reference_display",
        "paid_at",
        "attempts",
    ]
    list_filter = ["state", GatewayListFilter, "currency", "created_at"]
    search_fields = ["=reference", "package__student__email", "package__coach__email"]
    search_help_text = "A PaymentIntent id (pi_...), or a student's or coach's email."
    date_hierarchy = "created_at"
    list_select_related = ["package__coach", "package__student"]
    list_per_page = 100
    ordering = ["-created_at", "-id"]
    inlines = [RefundInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "package_link",
                    "coach",
                    "student",
                    "amount_display",
                    "state",
                    "failure_reason",
                    "gateway",
                    "reference_display",
                    "attempts",
                    "created_at",
                    "paid_at",
                    "idempotency_key",
                ]
            },
        ),
        (
            "Paid, refunded and remaining",
            {
                "fields": ["amounts_compared"],
                "description": (
                    "Coachbook's own record next to the card processor's. Coachbook counts "
                    "pending refunds as refunded (they are on their way); failed ones moved "
                    "no money and do not count."
                ),
            },
        ),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]

    def get_queryset(self, request):
        refunded = refunded_cents_subquery(via="payment")
        return (
            super()
            .get_queryset(request)
            .select_related(*self.list_select_related)
            .annotate(refunded_cents=refunded)
        )

    @admin.display(description="package", ordering="package_id")
    def package_link(self, obj):
        return admin_link(obj.package, f"Package {obj.package_id}: {obj.package.title}")

    coach = email_column("package__coach", "coach")
    student = email_column("package__student", "student")
    amount_display = money_column("amount_cents", "amount")
    refunded_display = money_column("refunded_cents", "refunded")

    @admin.display(description="reference (PaymentIntent id)", ordering="reference")
    def reference_display(self, obj):
        return obj.reference or "-"

    @admin.display(description="amounts")
    def amounts_compared(self, obj):
        """Coachbook's paid, refunded and remaining next to the processor's, row by row."""
        paid = obj.amount_cents if obj.state == PaymentState.DONE else 0
        refunded = obj.refunded_cents
        pending = 0
        if refunded:  # pending refunds are counted in it
            pending = obj.refunds.filter(state=RefundState.CREATED).aggregate(
                total=Coalesce(Sum("amount_cents"), 0)
            )["total"]
        ours = [paid, refunded, paid - refunded]
        theirs = processor_amounts(obj)
        summary = theirs.summary
        reported = (
            [summary.paid_cents, summary.refunded_cents, summary.remaining_cents]
            if summary is not None
            else [None, None, None]
        )
        rows = [
            {
                "label": label,
                "ours": format_money(ours[index], obj.currency),
                "theirs": format_money(reported[index], summary.currency) if summary else "-",
                "differs": summary is not None
                and (reported[index] != ours[index] or summary.currency != obj.currency),
            }
            for index, label in enumerate(["Paid", "Refunded", "Remaining"])
        ]
        return render_to_string(
            "admin/refunds/payment/amounts.html",
            {
                "rows": rows,
                "pending": format_money(pending, obj.currency) if pending else "",
                "processor": obj.gateway.capitalize(),
                "theirs": theirs,
                "differs": any(row["differs"] for row in rows),
            },
        )
