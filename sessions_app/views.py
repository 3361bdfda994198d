"""Pages for coaches and students: thin views over sessions_app.selectors and services.

Every change is a POST that calls exactly one service. A `DomainError` becomes a message (or a
form error on the cancel page), never a 500. A form carries what the page showed (the status,
the agreed reservation, the pending proposal), so a double submission or a stale page gets a
clear message and changes nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from calendars import services as calendar_services
from calendars.selectors import booking_bounds, start_refusal
from catalog import selectors as catalog_selectors
from core.errors import DomainError
from core.guards import coach_required, safe_next_url
from core.money import format_money
from core.pagination import keyset_assemble, keyset_page, keyset_seek
from core.times import (
    EN_DASH,
    clock_range,
    day_label,
    moment_label,
    range_label,
    slot_label,
)
from policies.rules import outcome_sentence
from policies.selectors import policy_for_coach
from refunds import selectors as refund_selectors
from refunds.models import RefundState
from refunds.selectors import session_refundable_cents
from sessions_app import selectors, services
from sessions_app.expiry import (
    credit_expiry,
    expired_refusal,
    expiry_moment_label,
    extension_until,
)
from sessions_app.forms import (
    CancelForm,
    DeclineForm,
    PackageExtendForm,
    StartChoiceForm,
    StudentCancelForm,
    format_start,
    parse_start,
    parse_week,
)
from sessions_app.lifecycle import Action, Status
from sessions_app.models import Session
from sessions_app.rows import cached_day_table, day_table_from_cache

LIST_PAGE_SIZE = 25
# How far past an empty week the picker looks for the next open time.
NEXT_OPEN_WEEKS = 12


def home(request):
    """Coaches land on Get started until students can book them, then on Tasks (Get started
    stays in the navigation until every step is done); students on My sessions; visitors on the
    landing page."""
    if request.user.is_authenticated:
        if request.user.is_coach:
            from accounts.selectors import coach_is_bookable

            bookable = coach_is_bookable(coach=request.user)
            return redirect("sessions:tasks" if bookable else "accounts:get_started")
        return redirect("sessions:my_sessions")
    return render(request, "home.html")


# --- helpers ----------------------------------------------------------------------------------


coach_only = coach_required(
    message="Tasks, Upcoming and Completed are pages for coaches.",
    redirect_to="sessions:my_sessions",
)


def _session_or_404(request, pk: int) -> Session:
    session = selectors.session_for_user(user=request.user, pk=pk)
    if session is None:
        raise Http404("No such session.")
    return session


def _next_url(request, session: Session) -> str:
    return safe_next_url(request, reverse("sessions:detail", args=[session.pk]))


def _stale_message(request, session: Session) -> str | None:
    """Why the page the form came from no longer matches the session, or None."""
    seen_status = request.POST.get("seen_status")
    if seen_status and seen_status != session.status:
        label = Status(session.status).label if session.status in Status.values else "changed"
        return (
            f"This session changed since the page was loaded: it is now {label}. "
            "Nothing was done; check it and try again if needed."
        )
    seen_slot = request.POST.get("seen_slot")
    if seen_slot is not None and seen_slot != str(session.slot_id or ""):
        return (
            "This session's time changed since the page was loaded. "
            "Nothing was done; check the new time."
        )
    seen_proposal = request.POST.get("seen_proposal")
    if seen_proposal:
        proposal = selectors.session_pending_proposal(session=session)
        if proposal is None or str(proposal.pk) != seen_proposal:
            return (
                "The proposed time changed since the page was loaded. "
                "Nothing was done; check the new proposal."
            )
    return None


def _act(request, pk: int, run: Callable[[Session], Session], success: Callable[[Session], str]):
    """Run one service on the viewer's session: stale pages and refusals become messages.

    `success` words the message from the session the service returned.
    """
    session = _session_or_404(request, pk)
    stale = _stale_message(request, session)
    if stale:
        messages.warning(request, stale)
        return redirect(_next_url(request, session))
    try:
        result = run(session)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success(result))
    return redirect(_next_url(request, session))


def _group_by_day(items, when: Callable) -> list[tuple[date | None, list]]:
    """[(local date, [items])] in the given order; items without a time group under None."""
    groups: list[tuple[date | None, list]] = []
    for item in items:
        moment = when(item)
        day = timezone.localtime(moment).date() if moment else None
        if not groups or groups[-1][0] != day:
            groups.append((day, []))
        groups[-1][1].append(item)
    return groups


def _page(request, queryset, keys, filters: "ListFilters | None" = None):
    """The page of `queryset` (ordered by `keys`) that the request's cursor names, keeping the
    list's filters in its links; a missing or malformed cursor gives the first page."""
    base_query = filters.params if filters else {}
    return keyset_page(queryset, request, keys=keys, size=LIST_PAGE_SIZE, base_query=base_query)


def _where(session: Session, user) -> str:
    """Where a confirmed (or rescheduling) session lives for the viewer."""
    if user.pk == session.coach_id:
        return "in Upcoming and on your calendar"
    return "in My sessions"


# The detail page's back link: ?from=<key> names the list the person came from (a whitelist:
# anything else falls back to the viewer's usual list). (label, URL name).
BACK_LINKS = {
    "tasks": ("Tasks", "sessions:tasks"),
    "upcoming": ("Upcoming", "sessions:upcoming"),
    "completed": ("Completed", "sessions:completed"),
    "canceled": ("Canceled", "sessions:canceled"),
    "my": ("My sessions", "sessions:my_sessions"),
    "students": ("Students", "sessions:students"),
    "calendar": ("Calendar", "feeds:week"),
}
COACH_ONLY_BACK = {"tasks", "upcoming", "completed", "canceled", "students"}


def _back_link(request, session: Session, as_coach: bool) -> tuple[str, str, str]:
    """(key, label, url) of the page the person came from, by the whitelisted ?from= key."""
    key = request.GET.get("from") or ""
    if key not in BACK_LINKS or (key in COACH_ONLY_BACK and not as_coach):
        if not as_coach:
            key = "my"
        elif session.status == Status.REQUESTED:
            key = "tasks"
        else:
            key = "upcoming"
    label, name = BACK_LINKS[key]
    return key, label, reverse(name)


def _other_side(session: Session, user) -> str:
    return session.student.name if user.pk == session.coach_id else session.coach.name


# --- coach lists ------------------------------------------------------------------------------


SEARCH_MAX_LENGTH = 100
UPCOMING_STATUS_CHOICES = [(Status.CONFIRMED, "Confirmed"), (Status.RESCHEDULING, "Rescheduling")]


@dataclass
class ListFilters:
    """What a coach list's filter form asked for, checked: bad values are dropped and named
    in `errors` (shown on the page), never a 500."""

    search: str = ""
    offering_id: int | None = None
    status: str = ""
    errors: list[str] | None = None
    offerings: list | None = None
    statuses: list | None = None

    @property
    def active(self) -> bool:
        return bool(self.search or self.offering_id or self.status)

    @property
    def params(self) -> dict:
        """The filters set, as query parameters for pagination links."""
        return {
            key: value
            for key, value in (
                ("search", self.search),
                ("offering", self.offering_id or ""),
                ("status", self.status),
            )
            if value
        }


def _list_filters(request, *, statuses=None) -> ListFilters:
    errors = []
    offerings = catalog_selectors.coach_offering_choices(coach=request.user)
    search = request.GET.get("search", "").strip()
    if len(search) > SEARCH_MAX_LENGTH:
        errors.append(
            f"The search is longer than {SEARCH_MAX_LENGTH} characters; showing all sessions."
        )
        search = ""
    offering_id = None
    raw = request.GET.get("offering", "").strip()
    if raw:
        if raw.isdigit() and int(raw) in {o.pk for o in offerings}:
            offering_id = int(raw)
        else:
            errors.append("That offering is not one of yours; showing all offerings.")
    status = request.GET.get("status", "").strip()
    if status and statuses is not None:
        if status not in {value for value, _ in statuses}:
            errors.append("Unknown status; showing every status.")
            status = ""
    else:
        status = ""
    return ListFilters(search, offering_id, status, errors, offerings, statuses)


def _list_context(filters: ListFilters, page, tab: str, **extra) -> dict:
    return {"page_obj": page, "tab": tab, "filters": filters, "from_key": tab, **extra}


@login_required
@require_GET
@coach_only
def tasks(request):
    """Booking requests, reschedule proposals waiting on the coach (oldest deadline first),
    and agreed times that a busy time in the coach's own calendar now overlaps."""
    now = timezone.now()
    return render(
        request,
        "sessions_app/tasks.html",
        {"tasks": selectors.coach_tasks(coach=request.user, now=now), "now": now},
    )


def _day_list(request, tab: str, select: Callable, keys, statuses=None, rows: bool = False):
    """A coach list shown as one table with a row per day: `select(**filters)` gives the
    sessions in the order of `keys`, narrowed by the page's checked filters (status only where
    `statuses` are). With `rows`, each day's sessions also come as display rows
    (`sessions_app.rows`) for the lean `_day_table.html`, and a page whose table was rendered
    before for the same rows is served from that table and the rows' stamps alone."""
    filters = _list_filters(request, statuses=statuses)
    narrowing = {"search": filters.search, "offering_id": filters.offering_id}
    if statuses is not None:
        narrowing["status"] = filters.status
    if rows and not filters.search:
        response = _day_list_from_cache(request, tab, keys, filters, narrowing)
        if response is not None:
            return response
    page = _page(request, select(coach=request.user, **narrowing), keys, filters)
    if rows:
        selectors.with_pending_proposals(page.object_list)
    days = _group_by_day(page.object_list, lambda s: s.starts_at)
    extra = {"days": days}
    if rows:
        extra["day_table"] = cached_day_table(request, days, tab)
    return render(request, f"sessions_app/{tab}.html", _list_context(filters, page, tab, **extra))


def _day_list_from_cache(request, tab: str, keys, filters: ListFilters, narrowing: dict):
    """The page from its rows' stamps (`selectors.coach_list_stamps`: one compiled query) and
    its table as rendered before for them; None when that table is not cached (or the page is
    empty), and the list is read in full."""
    seek = keyset_seek(request, Session, keys=keys)
    narrowing = {name: value for name, value in narrowing.items() if name != "search"}
    stamps = selectors.coach_list_stamps(
        tab=tab, coach=request.user, seek=seek, size=LIST_PAGE_SIZE, **narrowing
    )
    page = keyset_assemble(
        stamps, keys=keys, seek=seek, size=LIST_PAGE_SIZE, base_query=filters.params
    )
    if not page.object_list:
        return None
    table = day_table_from_cache(request, [stamp.mark for stamp in page.object_list], tab)
    if table is None:
        return None
    days = _group_by_day(page.object_list, lambda s: s.starts_at)
    context = _list_context(filters, page, tab, days=days, day_table=table)
    return render(request, f"sessions_app/{tab}.html", context)


@login_required
@require_GET
@coach_only
def upcoming(request):
    """Confirmed and rescheduling sessions from now on, by day, filtered by student, offering
    and status, paginated."""
    return _day_list(
        request,
        "upcoming",
        selectors.coach_upcoming_sessions,
        selectors.UPCOMING_KEYS,
        statuses=UPCOMING_STATUS_CHOICES,
        rows=True,
    )


@login_required
@require_GET
@coach_only
def completed(request):
    """Completed sessions, newest first, by day, filtered by student and offering, paginated."""
    return _day_list(
        request,
        "completed",
        selectors.coach_completed_sessions,
        selectors.COMPLETED_KEYS,
        rows=True,
    )


@login_required
@require_GET
@coach_only
def canceled(request):
    """Canceled sessions with what was refunded, newest first, by the day they were booked
    for, filtered by student and offering, paginated."""
    return _day_list(
        request, "canceled", selectors.coach_canceled_sessions, selectors.CANCELED_KEYS
    )


@login_required
@require_GET
@coach_only
def students(request):
    """Everyone who bought from the coach: packages, credits left, next and last session."""
    filters = _list_filters(request)
    students = selectors.coach_students(coach=request.user, search=filters.search)
    page = _page(request, students, selectors.STUDENTS_KEYS, filters)
    return render(request, "sessions_app/students.html", _list_context(filters, page, "students"))


@login_required
@require_GET
@coach_only
def student_detail(request, student_id: int):
    """One student of the coach: packages with progress, upcoming sessions and their
    history, paginated."""
    found = selectors.coach_student(coach=request.user, student_id=student_id)
    if found is None:
        raise Http404("No such student.")
    history = _page(request, found.history, selectors.STUDENT_PAST_KEYS)
    return render(
        request,
        "sessions_app/student_detail.html",
        {
            "found": found,
            "page_obj": history,
            "from_key": "students",
            "max_extension_days": PackageExtendForm.MAX_DAYS,
        },
    )


@login_required
@require_POST
@coach_only
def package_extend(request, pk: int):
    """The coach gives a package's credits more days (package_extend_expiry), from its student's
    page: from the current expiry, or from now once it has passed."""
    package = selectors.coach_package(coach=request.user, pk=pk)
    if package is None:
        raise Http404("No such package.")
    back = reverse("sessions:student_detail", args=[package.student_id])
    form = PackageExtendForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.errors["days"][0])
        return redirect(back)
    now = timezone.now()
    until = extension_until(package=package, days=form.cleaned_data["days"], now=now)
    try:
        package = services.package_extend_expiry(
            package=package, actor=request.user, until=until, now=now
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"The credits of “{package.title}” for {package.student.name} now expire on "
            f"{expiry_moment_label(package.expires_at)}. Sessions not booked yet can be "
            "booked until then.",
        )
    return redirect(back)


# --- student list -----------------------------------------------------------------------------


@login_required
@require_GET
def my_sessions(request):
    """A student's credits, requests, proposals to answer, upcoming and past sessions."""
    sections = selectors.student_session_sections(student=request.user)
    past = _page(
        request,
        selectors.student_past_sessions(student=request.user),
        selectors.STUDENT_PAST_KEYS,
    )
    packages = selectors.student_packages(student=request.user)
    context = {
        **vars(sections),
        "packages": packages,
        "credit_groups": selectors.student_credit_groups(
            credits=sections.credits, packages=packages
        ),
        "page_obj": past,
        "awaiting_payment": refund_selectors.payments_awaiting(student=request.user),
        "now": timezone.now(),  # one clock for the page's "in 11 h" deadlines
    }
    return render(request, "sessions_app/my_sessions.html", context)


# --- one session ------------------------------------------------------------------------------


@login_required
@require_GET
def detail(request, pk: int):
    """Everything about one session, and only the actions the lifecycle allows now."""
    session = selectors.session_detail_for_user(user=request.user, pk=pk)
    if session is None:
        raise Http404("No such session.")
    proposal = session.pending_proposals[0] if session.pending_proposals else None
    actions = set(
        selectors.session_available_actions(session=session, user=request.user, proposal=proposal)
    )
    context = {
        "session": session,
        "actions": actions,
        "proposal": proposal,
        "as_coach": session.coach_id == request.user.pk,
        "other_name": _other_side(session, request.user),
        "refunded_cents": session.refunded_cents,
        "decline_form": DeclineForm(),
        # An unused credit's expiry; booked and ended sessions are not affected by it.
        "credit_expiry": credit_expiry(session.package.expires_at, timezone.now())
        if session.status == Status.UNSCHEDULED
        else None,
    }
    context["back_key"], context["back_label"], context["back_url"] = _back_link(
        request, session, context["as_coach"]
    )
    if Action.CANCEL in actions:
        context.update(_cancel_context(session, actions, request.user))
    return render(request, "sessions_app/detail.html", context)


def _cancel_context(
    session: Session, actions: set, user, form: CancelForm | StudentCancelForm | None = None
) -> dict:
    """The refund drawer (the coach) or the student's cancel page: what the coach's policy
    gives if the session is canceled now (`services.session_cancel_outcome`)."""
    outcome = services.session_cancel_outcome(session=session, actor=user)
    context = {
        "outcome": outcome,
        "policy": policy_for_coach(coach=session.coach),
        "can_reschedule": Action.PROPOSE_RESCHEDULE in actions,
    }
    if user.pk != session.coach_id:
        context["cancel_form"] = form or StudentCancelForm(choices=outcome.choices)
        context["outcome_sentence"] = outcome_sentence(
            outcome, name="", currency=session.currency, you=True
        )
        return context
    refundable = outcome.refund_cents  # for the coach, all that is still refundable
    context.update(
        default_refund=outcome.default,
        refundable_cents=refundable,
        cancel_form=form or CancelForm(refundable_cents=refundable, currency=session.currency),
        rate=selectors.coach_cancellation_rate(
            coach=session.coach, days=settings.CANCELLATION_RATE_DAYS
        ),
    )
    return context


@login_required
@require_http_methods(["GET", "POST"])
def cancel(request, pk: int):
    """The refund drawer as its own page (the detail page opens it as a <dialog>); for the
    student, the page that shows what the coach's policy gives back before they confirm."""
    session = _session_or_404(request, pk)
    if request.method == "POST" and (stale := _stale_message(request, session)):
        messages.warning(request, stale)
        return redirect(_next_url(request, session))
    actions = set(selectors.session_available_actions(session=session, user=request.user))
    if Action.CANCEL not in actions:
        messages.error(request, _cannot(session, "cancel"))
        return redirect(_next_url(request, session))
    as_coach = request.user.pk == session.coach_id
    form = None
    if request.method == "POST":
        if as_coach:
            refundable = session_refundable_cents(session=session)
            form = CancelForm(request.POST, refundable_cents=refundable, currency=session.currency)
        else:
            outcome = services.session_cancel_outcome(session=session, actor=request.user)
            form = StudentCancelForm(request.POST, choices=outcome.choices)
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.session_cancel(
                    session=session,
                    actor=request.user,
                    refund=data["refund"],
                    amount_cents=data.get("amount_cents"),
                    reason=data.get("reason", ""),
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, _cancel_message(session, data, request.user))
                return redirect(_next_url(request, session))
    context = {
        "session": session,
        "next": safe_next_url(request),
        "as_coach": as_coach,
        **_cancel_context(session, actions, request.user, form),
    }
    return render(request, "sessions_app/cancel.html", context)


def _cancel_message(session: Session, data: dict, user) -> str:
    """ "Canceled: <whose session, when>; it's under Canceled; <refund outcome>"."""
    when = f" on {slot_label(session.slot)}" if session.slot_id else ""
    by_coach = user.pk == session.coach_id
    if by_coach:
        head = f"Canceled: {session.student.name}'s session{when} is under Canceled"
    else:
        head = f"Canceled: your session{when} with {session.coach.name} is in My sessions"
    if data["refund"] == "none":
        return f"{head}; canceled without refund."
    if data["refund"] == "credit":
        whose = f"{session.student.name} has" if by_coach else "you have"
        return f"{head}; {whose} a make-up credit to book another time."
    refund = session.refunds.order_by("-created_at", "-id").first()
    amount = format_money(refund.amount_cents, refund.currency) if refund else ""
    kind = "full" if data["refund"] == "full" else "partial"
    message = f"{head}; a {kind} refund of {amount}."
    if refund is not None and refund.state == RefundState.CREATED:
        # A card processor settles it after this page: its state shows on the session.
        whose = "the student's" if by_coach else "your"
        message += f" It goes back to {whose} card; its state shows below."
    return message


@login_required
@require_POST
def refund_credit(request, pk: int):
    """The student takes a make-up credit the coach's cancel left to their choice as a full
    refund instead."""
    return _act(
        request,
        pk,
        lambda session: services.session_refund_credit(session=session, actor=request.user),
        lambda session: (
            "Your make-up credit is refunded in full; the session is under My sessions as canceled."
        ),
    )


def _cannot(session: Session, verb: str) -> str:
    return f"You can't {verb} this session now: it is {session.get_status_display()}."


# --- choosing a time: book, reschedule, propose another time ----------------------------------
#
# One picker for the three: GET lists the session's bookable starts for one week (?week=, a
# date in it) in the viewer's timezone, grouped by day; GET ?start= is the confirm step; only
# the confirm step's POST writes, through the one service of that picker.


@dataclass(frozen=True)
class Picker:
    kind: str
    action: Action
    verb: str  # "You can't <verb> this session now"
    title: str
    intro: str
    confirm_verb: str  # "<Book> Thu 3 Dec, 11:00-12:30 GMT?"
    url: str
    run: Callable


PICKERS = {
    picker.kind: picker
    for picker in [
        Picker(
            kind="book",
            action=Action.BOOK,
            verb="book",
            title="Book a time",
            intro="Choose one of the coach's open times. The coach then accepts or declines it.",
            confirm_verb="Book",
            url="sessions:book",
            run=services.session_book,
        ),
        Picker(
            kind="reschedule",
            action=Action.PROPOSE_RESCHEDULE,
            verb="reschedule",
            title="Reschedule: choose a new time",
            intro="Propose one of the open times. Until the other side confirms it, the session "
            "stays at its agreed time.",
            confirm_verb="Propose",
            url="sessions:reschedule",
            run=services.session_propose_reschedule,
        ),
        Picker(
            kind="counter",
            action=Action.COUNTER_PROPOSE,
            verb="propose another time for",
            title="Propose another time",
            intro="Pick a different open time instead of the one proposed to you. Until it is "
            "answered, the session stays at its agreed time.",
            confirm_verb="Propose",
            url="sessions:counter_propose",
            run=services.session_counter_propose,
        ),
    ]
}


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _local_midnight(day: date) -> datetime:
    """The start of `day` in the viewer's timezone, as an aware UTC datetime (so that adding a
    length to it is real time, not wall-clock time)."""
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone()).astimezone(UTC)


def _picker_url(picker: Picker, session: Session, target: str = "", **params) -> str:
    """The picker (or, with `start`, its confirm step), keeping where the person came from."""
    query = {key: value for key, value in params.items() if value}
    if target:
        query["next"] = target
    url = reverse(picker.url, args=[session.pk])
    return f"{url}?{urlencode(query)}" if query else url


@dataclass(frozen=True)
class PickerWeeks:
    """The weeks a picker can show: from this week to the one holding the booking horizon."""

    first: date
    last: date
    latest: datetime

    def holds(self, day: date) -> bool:
        return self.first <= _monday(day) <= self.last


def _picker_weeks(session: Session, now: datetime) -> PickerWeeks:
    latest = booking_bounds(coach=session.coach, now=now).latest
    return PickerWeeks(
        first=_monday(timezone.localtime(now).date()),
        last=_monday(timezone.localtime(latest).date()),
        latest=latest,
    )


def _week_param(request, weeks: PickerWeeks) -> date:
    """The week asked for (?week=, any date in it), or this week with a message why not."""
    raw = request.GET.get("week")
    if not raw:
        return weeks.first
    try:
        day = parse_week(raw)
    except ValueError:
        messages.warning(request, "That is not a week that can be shown. Here is this week.")
        return weeks.first
    if _monday(day) < weeks.first:
        messages.warning(request, "That week has passed. Here is this week.")
        return weeks.first
    if _monday(day) > weeks.last:
        messages.warning(
            request,
            f"Times can be booked only until {day_label(weeks.latest)}. Here is this week.",
        )
        return weeks.first
    return _monday(day)


def _week_of_start(start: datetime, weeks: PickerWeeks) -> str:
    """The ?week= value that shows `start`, if the picker can show it; else ""."""
    day = timezone.localtime(start).date()
    return _monday(day).isoformat() if weeks.holds(day) else ""


def _picker(request, pk: int, kind: str):
    picker = PICKERS[kind]
    session = _session_or_404(request, pk)
    if request.method == "POST" and (stale := _stale_message(request, session)):
        messages.warning(request, stale)
        return redirect(_next_url(request, session))
    proposal = (
        selectors.session_pending_proposal(session=session)
        if session.status == Status.RESCHEDULING
        else None
    )
    actions = set(
        selectors.session_available_actions(session=session, user=request.user, proposal=proposal)
    )
    if picker.action not in actions:
        if picker.kind == "book" and selectors.session_credit_expired(session=session):
            refusal = expired_refusal(session.package, session.coach.name)
        elif proposal is not None and proposal.proposed_by_id == request.user.pk:
            refusal = "You have proposed a new time already. Withdraw it first to propose another."
        else:
            refusal = _cannot(session, picker.verb)
        messages.error(request, refusal)
        return redirect("sessions:detail", pk=session.pk)
    now = timezone.now()
    weeks = _picker_weeks(session, now)
    context = {
        "session": session,
        "picker": picker,
        "proposal": proposal,
        "other_name": _other_side(session, request.user),
        "length": session.package.duration_minutes,
        "next_target": safe_next_url(request),
        "exit_url": _next_url(request, session),
        "timezone_name": timezone.get_current_timezone_name(),
        "timezone_abbreviation": timezone.localtime(now).tzname(),
    }
    if request.method == "POST":
        return _picker_submit(request, picker, session, weeks)
    if "start" in request.GET:
        return _picker_confirm(request, picker, session, weeks, now, context)
    return _picker_week(request, picker, session, weeks, now, context)


def _picker_week(request, picker, session, weeks: PickerWeeks, now: datetime, context: dict):
    """One week of the session's bookable starts, by day, each linking to the confirm step."""
    week = _week_param(request, weeks)
    begin, end = _local_midnight(week), _local_midnight(week + timedelta(days=7))
    length = timedelta(minutes=session.package.duration_minutes)
    target = context["next_target"]
    starts = selectors.session_bookable_starts(
        session=session, start=begin, end=end, now=now, proposal=context["proposal"]
    )
    days = [
        (
            day,
            [
                {
                    "start": start,
                    "end": start + length,
                    "clock": clock_range(start, start + length),
                    "label": range_label(start, start + length),
                    "url": _picker_url(picker, session, target, start=format_start(start)),
                }
                for start in day_starts
            ],
        )
        for day, day_starts in _group_by_day(starts, lambda start: start)
    ]
    next_open = None
    if not starts and week < weeks.last:
        later = selectors.session_bookable_starts(
            session=session,
            start=end,
            end=min(end + timedelta(weeks=NEXT_OPEN_WEEKS), weeks.latest + timedelta(seconds=1)),
            now=now,
            proposal=context["proposal"],
        )
        if later:
            next_open = {
                "label": range_label(later[0], later[0] + length),
                "url": _picker_url(
                    picker, session, target, week=_week_of_start(later[0], weeks) or ""
                ),
            }
    previous_week = week - timedelta(days=7) if week > weeks.first else None
    following_week = week + timedelta(days=7) if week < weeks.last else None
    context.update(
        {
            "days": days,
            "week": week,
            "week_label": f"{day_label(week)} {EN_DASH} {day_label(week + timedelta(days=6))}",
            "next_open": next_open,
            "previous_url": previous_week
            and _picker_url(picker, session, target, week=previous_week.isoformat()),
            "following_url": following_week
            and _picker_url(picker, session, target, week=following_week.isoformat()),
        }
    )
    return render(request, "sessions_app/choose_slot.html", context)


def _picker_confirm(request, picker, session, weeks: PickerWeeks, now: datetime, context: dict):
    """The confirm step: "Book Thu 3 Dec, 11:00-12:30 GMT?" with Confirm and Back."""
    target = context["next_target"]
    try:
        start = parse_start(request.GET.get("start"))
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect(_picker_url(picker, session, target))
    free = selectors.session_bookable_starts(
        session=session,
        start=start,
        end=start + timedelta(microseconds=1),
        now=now,
        proposal=context["proposal"],
    )
    if free != [start]:
        messages.error(request, start_refusal(coach=session.coach, start=start, now=now))
        return redirect(_picker_url(picker, session, target, week=_week_of_start(start, weeks)))
    end = start + timedelta(minutes=session.package.duration_minutes)
    label = range_label(start, end)
    other = session.student if request.user.pk == session.coach_id else session.coach
    with timezone.override(other.tzinfo):
        other_label = range_label(start, end)
    context.update(
        {
            "start": start,
            "end": end,
            "start_value": format_start(start),
            "label": label,
            # The same time on the other side's clock, when it reads differently there.
            "other_label": other_label if other_label != label else "",
            "back_url": _picker_url(picker, session, target, week=_week_of_start(start, weeks)),
        }
    )
    return render(request, "sessions_app/confirm_time.html", context)


def _picker_submit(request, picker, session, weeks: PickerWeeks):
    """The confirm step's POST: one service call; a refusal goes back to that week."""
    target = safe_next_url(request)
    form = StartChoiceForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.errors["start"][0])
        return redirect(_picker_url(picker, session, target))
    start = form.cleaned_data["start"]
    agreed = session.slot
    try:
        result = picker.run(session=session, start=start, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect(_picker_url(picker, session, target, week=_week_of_start(start, weeks)))
    if picker.kind == "book":
        messages.success(
            request,
            f"Requested: {slot_label(result.slot)} waits for {result.coach.name} to accept, "
            f"by {moment_label(result.request_expires_at)}; you'll get an email. "
            "It is under Requests in My sessions.",
        )
    else:
        other = _other_side(session, request.user)
        messages.success(
            request,
            f"Rescheduling: you proposed {slot_label(result.slot)}; the agreed time "
            f"{slot_label(agreed)} stays until {other} answers. "
            f"The session stays {_where(session, request.user)}.",
        )
    return redirect(target or reverse("sessions:detail", args=[session.pk]))


@login_required
@require_http_methods(["GET", "POST"])
def book(request, pk: int):
    """A student's credit: choose one of the coach's open times (session_book)."""
    return _picker(request, pk, "book")


@login_required
@require_http_methods(["GET", "POST"])
def reschedule(request, pk: int):
    """Either side proposes a new time for a confirmed session (session_propose_reschedule)."""
    return _picker(request, pk, "reschedule")


@login_required
@require_http_methods(["GET", "POST"])
def counter_propose(request, pk: int):
    """The side that did not propose offers another time (session_counter_propose)."""
    return _picker(request, pk, "counter")


# --- one-click actions ------------------------------------------------------------------------


@login_required
@require_POST
def withdraw(request, pk: int):
    return _act(
        request,
        pk,
        lambda s: services.session_withdraw(session=s, actor=request.user),
        lambda s: (
            "Withdrawn: the session is back to Unscheduled in My sessions, "
            f"a credit of {s.package.title} to book again."
        ),
    )


@login_required
@require_POST
def accept(request, pk: int):
    return _act(
        request,
        pk,
        lambda s: services.session_accept(session=s, actor=request.user),
        lambda s: (
            f"Confirmed: {s.student.name}'s session on {slot_label(s.slot)} is in Upcoming "
            "and on your calendar."
        ),
    )


@login_required
@require_POST
def decline(request, pk: int):
    form = DeclineForm(request.POST)
    if not form.is_valid():
        session = _session_or_404(request, pk)
        messages.error(request, "Keep the reason under 500 characters. Nothing was changed.")
        return redirect(_next_url(request, session))
    reason = form.cleaned_data["reason"]
    return _act(
        request,
        pk,
        lambda s: services.session_decline(session=s, actor=request.user, reason=reason),
        lambda s: (
            f"Declined: the session is back to Unscheduled; {s.student.name} keeps the credit "
            "and can book another time."
        ),
    )


@login_required
@require_POST
def confirm_reschedule(request, pk: int):
    """The side that did not propose takes the proposed time: it becomes the agreed one."""
    return _act(
        request,
        pk,
        lambda s: services.session_confirm_reschedule(session=s, actor=request.user),
        lambda s: (
            f"Confirmed at the new time: {slot_label(s.slot)}. "
            f"The session is {_where(s, request.user)}."
        ),
    )


@login_required
@require_POST
def decline_reschedule(request, pk: int):
    """The side that did not propose keeps the current time (session_decline_reschedule)."""
    return _act(
        request,
        pk,
        lambda s: services.session_decline_reschedule(session=s, actor=request.user),
        lambda s: (
            f"Confirmed at the current time: {slot_label(s.slot)}. The proposed time was "
            f"declined; the session stays {_where(s, request.user)}."
        ),
    )


@login_required
@require_POST
def withdraw_proposal(request, pk: int):
    """The side that proposed takes the proposal back (session_withdraw_proposal)."""
    return _act(
        request,
        pk,
        lambda s: services.session_withdraw_proposal(session=s, actor=request.user),
        lambda s: (
            f"Confirmed at the agreed time: your proposal was withdrawn; the session stays at "
            f"{slot_label(s.slot)}, {_where(s, request.user)}."
        ),
    )


@login_required
@require_POST
def keep_time(request, pk: int):
    """The coach keeps an agreed time although a busy time in their own calendar overlaps it
    (calendars.services.reservation_keep_despite_busy): it leaves Tasks."""
    session = _session_or_404(request, pk)
    if stale := _stale_message(request, session):
        messages.warning(request, stale)
        return redirect(_next_url(request, session))
    if session.coach_id != request.user.pk:
        messages.error(request, "Only the coach can keep a time that their own calendar overlaps.")
    elif session.status not in (Status.CONFIRMED, Status.RESCHEDULING):
        messages.error(request, _cannot(session, "keep the time of"))
    else:
        try:
            calendar_services.reservation_keep_despite_busy(slot=session.slot, coach=request.user)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request,
                f"Kept {slot_label(session.slot)} with {session.student.name}: it stays "
                f"{session.get_status_display()} in Upcoming. It leaves Tasks "
                "unless another busy time in your calendar overlaps it.",
            )
    return redirect(_next_url(request, session))
