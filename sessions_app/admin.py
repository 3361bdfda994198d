"""Admin pages for packages, sessions, proposals and the session event timeline (offerings:
`catalog.admin`).

Everything here is read-only: statuses change only through the services in
`sessions_app.services`, so sessions, packages, proposals and events cannot be added, changed
or deleted in the admin. Every cancellation shows
its refund choice, taken from the cancel event ("Full refund $30.00", "Partial refund $12.50",
"Cancel without refund"), and, since issue 15, the rule that applied and what it produced
("Rule applied", "Outcome", from the events' details; `sessions_app.audit`), with a list filter
by rule and the report of late cancellations and no-shows (Sessions → "Late cancellations and
no-shows").
"""

from datetime import datetime

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
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
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

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
from core.csv import csv_stream_response
from core.money import format_money
from policies.rules import Rule
from refunds.admin import RefundInline
from refunds.models import PaymentState
from refunds.selectors import refunded_cents_for_session, refunded_cents_subquery
from sessions_app import audit
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


class RuleFilter(admin.SimpleListFilter):
    """Sessions by the rule an event of theirs applied (a cancel, a no-show mark), read from the
    events' details (a JSON key lookup, on SQLite and PostgreSQL alike). The choices are the
    rules themselves, so the filter costs no query; the events are narrowed by their
    `(action, created_at)` index to the actions that record a rule."""

    title = "rule applied"
    parameter_name = "rule"

    def lookups(self, request, model_admin):
        return Rule.choices

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value not in Rule.values:
            raise IncorrectLookupParameters(f"Unknown rule {value!r}")
        events = SessionEvent.objects.filter(action__in=audit.RULE_ACTIONS, details__rule=value)
        return queryset.filter(pk__in=events.values("session_id"))


class EventRuleFilter(RuleFilter):
    """Events by the rule they recorded."""

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value not in Rule.values:
            raise IncorrectLookupParameters(f"Unknown rule {value!r}")
        return queryset.filter(action__in=audit.RULE_ACTIONS, details__rule=value)


class AuditFilter(admin.SimpleListFilter):
    """Sessions with an event of one of the report's kinds (late cancellation, coach
    cancellation, no-shows), optionally within the report's days (`audit_first`,
    `audit_last`, YYYY-MM-DD in the viewer's timezone): where each report row links to."""

    title = "late cancellations and no-shows"
    parameter_name = "audit"
    date_parameters = ("audit_first", "audit_last")

    def __init__(self, request, params, model, model_admin):
        self.window = {}
        for name in self.date_parameters:
            if name in params:
                value = params.pop(name)
                self.window[name] = value[-1] if isinstance(value, list) else value
        super().__init__(request, params, model, model_admin)

    def expected_parameters(self):
        return [self.parameter_name, *self.date_parameters]

    def lookups(self, request, model_admin):
        return [(category.key, category.label) for category in audit.CATEGORIES]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        category = {c.key: c for c in audit.CATEGORIES}.get(value)
        if category is None:
            raise IncorrectLookupParameters(f"Unknown kind {value!r}")
        events = SessionEvent.objects.filter(category.condition, action__in=audit.REPORT_ACTIONS)
        if self.window:
            try:
                chosen = audit.report_range(
                    first=self.window.get("audit_first"), last=self.window.get("audit_last")
                )
            except audit.ReportRangeInvalid as exc:
                raise IncorrectLookupParameters(str(exc)) from exc
            start, end = chosen.bounds()
            events = events.filter(created_at__gte=start, created_at__lt=end)
        return queryset.filter(pk__in=events.values("session_id"))


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
        "rule_display",
        "outcome_display",
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

    @admin.display(description="rule applied")
    def rule_display(self, obj):
        return audit.rule_text(obj.details) or "-"

    @admin.display(description="outcome")
    def outcome_display(self, obj):
        return event_outcome(obj) or "-"


def event_outcome(event: SessionEvent) -> str:
    """The event's outcome in plain language ("... → $27.50 refunded"), or ""."""
    return audit.outcome_text(event.action, event.details, event.session.currency)


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
    for key in (*audit.RULE_KEYS, "canceled_by"):  # in the "rule applied" and outcome columns
        details.pop(key, None)
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
    list_filter = ["status", CoachFilter, "currency", RuleFilter, AuditFilter]
    search_fields = ["student__email", "coach__email"]
    search_help_text = "A student's or coach's email, or a session number."
    list_select_related = ["coach", "student", "slot__coach", "package"]
    list_per_page = 100
    inlines = [SessionEventInline, RefundInline, RescheduleProposalInline]
    change_list_template = "admin/sessions_app/session/change_list.html"
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
        "rule_applied",
        "outcome",
        "makeup_links",
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
        cancels = [event for event in self._audit_events(obj) if event.action == Action.CANCEL]
        event = cancels[-1] if cancels else None
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

    # --- the rule that applied and what it produced (issue 15) -----------------------------

    def _audit_events(self, obj) -> list[SessionEvent]:
        """The session's events that record an outcome (its cancel among them), oldest first:
        one query for the cancellation line, the rule, the outcome and the make-up links."""
        if getattr(obj, "_outcome_events", None) is None:
            events = (
                obj.events.filter(
                    action__in=[*audit.RULE_ACTIONS, Action.REFUND_CREDIT, Action.CREATE]
                )
                .select_related("actor")
                .order_by("created_at", "id")
            )
            obj._outcome_events = [event for event in events if event_outcome_of(event, obj)]
        return obj._outcome_events

    @admin.display(description="rule applied")
    def rule_applied(self, obj):
        """Each rule an event of this session applied, with its promise, from the details."""
        rules = [audit.rule_text(event.details) for event in self._audit_events(obj)]
        rules = [rule for rule in rules if rule]
        if not rules:
            return "None recorded"
        return format_html_join(mark_safe("<br>"), "{}", ((rule,) for rule in rules))

    @admin.display(description="outcome")
    def outcome(self, obj):
        """What each of those events produced: "Student canceled 18 h before: 50 % back →
        $27.50 refunded", "... → Make-up credit #12 given", "... → Session used"."""
        events = self._audit_events(obj)
        if not events:
            return "-"
        return format_html_join(
            mark_safe("<br>"),
            "{}: {}",
            ((local_time(event.created_at), event_outcome_of(event, obj)) for event in events),
        )

    @admin.display(description="make-up credit")
    def makeup_links(self, obj):
        """Both ends of a make-up credit: the session it replaces, the credit replacing it."""
        parts = []
        if obj.makeup_for_id:
            parts.append(format_html("Make-up credit for {}", _session_link(obj.makeup_for_id)))
        # The cancel that gave the credit names it (no query for the reverse link).
        credit_ids = [
            event.details["makeup_session_id"]
            for event in self._audit_events(obj)
            if event.action == Action.CANCEL and event.details.get("makeup_session_id")
        ]
        for credit_id in credit_ids:
            parts.append(format_html("Replaced by make-up credit {}", _session_link(credit_id)))
        if not parts:
            return "-"
        return format_html_join(mark_safe("<br>"), "{}", ((part,) for part in parts))

    # --- the report of late cancellations and no-shows --------------------------------------

    def get_urls(self):
        extra = [
            path(
                "audit/",
                self.admin_site.admin_view(self.audit_report_view),
                name="sessions_app_session_audit",
            ),
            path(
                "audit.csv",
                self.admin_site.admin_view(self.audit_csv_view),
                name="sessions_app_session_audit_csv",
            ),
        ]
        return [*extra, *super().get_urls()]

    def has_audit_permission(self, request) -> bool:
        """Active staff who may view sessions and their events (superusers may)."""
        user = request.user
        return (
            user.is_active
            and user.is_staff
            and user.has_perms(["sessions_app.view_session", "sessions_app.view_sessionevent"])
        )

    def audit_report_view(self, request):
        """Late cancellations, coach cancellations and no-shows per coach and per student over
        a range of days (the last 90 by default, at most 366), each count linking to the
        sessions it counts."""
        if not self.has_audit_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Late cancellations and no-shows",
            "categories": audit.CATEGORIES,
            "first": request.GET.get("first", ""),
            "last": request.GET.get("last", ""),
            "row_limit": AUDIT_ROWS_SHOWN,
        }
        try:
            chosen = audit.report_range(first=context["first"], last=context["last"])
        except audit.ReportRangeInvalid as exc:
            context["error"] = str(exc)
            return TemplateResponse(request, "admin/sessions_app/audit_report.html", context)
        start, end = chosen.bounds()
        dates = {"audit_first": chosen.first.isoformat(), "audit_last": chosen.last.isoformat()}
        tables = []
        for side in audit.SIDES:
            rows = list(audit.report_rows(side=side, start=start, end=end, limit=AUDIT_ROWS_SHOWN))
            tables.append(
                {
                    "side": side,
                    "title": f"Per {side}",
                    "rows": [_report_row(side, row, dates) for row in rows],
                    "more": len(rows) == AUDIT_ROWS_SHOWN,
                }
            )
        context.update(
            range=chosen,
            first=dates["audit_first"],
            last=dates["audit_last"],
            tables=tables,
            csv_query=urlencode({"first": dates["audit_first"], "last": dates["audit_last"]}),
        )
        return TemplateResponse(request, "admin/sessions_app/audit_report.html", context)

    def audit_csv_view(self, request):
        """The report as CSV, every row of both tables (streamed), formula-safe."""
        if not self.has_audit_permission(request):
            raise PermissionDenied
        first, last = request.GET.get("first", ""), request.GET.get("last", "")
        try:
            chosen = audit.report_range(first=first, last=last)
        except audit.ReportRangeInvalid:
            url = reverse("admin:sessions_app_session_audit")
            return HttpResponseRedirect(f"{url}?{urlencode({'first': first, 'last': last})}")
        start, end = chosen.bounds()

        def lines():
            yield AUDIT_CSV_HEADER
            for side in audit.SIDES:
                for row in audit.report_rows(side=side, start=start, end=end):
                    yield [
                        side,
                        row["person_id"],
                        row["email"],
                        row["display_name"],
                        *(row[key] for key in audit.CATEGORY_KEYS),
                        row["total"],
                        chosen.first.isoformat(),
                        chosen.last.isoformat(),
                    ]

        filename = f"late-cancellations-no-shows-{chosen.first:%Y%m%d}-{chosen.last:%Y%m%d}.csv"
        return csv_stream_response(lines(), filename)


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
        "rule_display",
        "outcome_display",
        "details_display",
    ]
    list_filter = ["action", "to_status", EventRuleFilter, "created_at"]
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

    @admin.display(description="rule applied")
    def rule_display(self, obj):
        return audit.rule_label(obj.details.get("rule")) or "-"

    @admin.display(description="outcome")
    def outcome_display(self, obj):
        return event_outcome(obj) or "-"


# The report page shows this many people per table (most events first); the CSV has them all.
AUDIT_ROWS_SHOWN = 100
# The report's CSV columns, in order; new columns go at the end.
AUDIT_CSV_HEADER = [
    "side",
    "user_id",
    "email",
    "display_name",
    *audit.CATEGORY_KEYS,
    "total",
    "first_day",
    "last_day",
]


def _report_row(side: str, row: dict, dates: dict) -> dict:
    """A report row with the session-list link of each count (that person, that kind, those
    days)."""
    person = (
        {"coach": row["person_id"]} if side == "coach" else {"student__id__exact": row["person_id"]}
    )
    base = reverse("admin:sessions_app_session_changelist")
    return {
        **row,
        "name": row["display_name"] or row["email"].split("@")[0],
        "url": f"{base}?{urlencode(person)}",
        "cells": [
            (
                row[key],
                f"{base}?{urlencode({**person, 'audit': key, **dates})}" if row[key] else "",
            )
            for key in audit.CATEGORY_KEYS
        ],
    }


def event_outcome_of(event: SessionEvent, session: Session) -> str:
    """`event_outcome` for an event of `session` (its currency, without a query)."""
    return audit.outcome_text(event.action, event.details, session.currency)


def _session_link(session_id: int) -> str:
    url = reverse("admin:sessions_app_session_change", args=[session_id])
    return format_html('<a href="{}">Session {}</a>', url, session_id)
