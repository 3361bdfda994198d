"""The coach's Availability page: weekly hours, one-off windows, time off, external calendars.

Thin views: each POST parses a form and calls one service in `calendars.services`; reads go
through `calendars.selectors`. A refusal (`DomainError`) is shown on the page and writes nothing.
"Preview" renders the page with what a change would do, without writing anything, so the whole
page works without JavaScript.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.views.decorators.http import require_GET, require_POST

from accounts.selectors import coach_windows
from calendars import selectors, services
from calendars import sync as calendar_sync
from calendars.forms import TimeOffForm, WeekForm, WindowForm, and_list, local_today
from calendars.intervals import MIDNIGHT, local_time_exists, wall_window
from calendars.models import SlotStatus
from calendars.services import WEEKDAY_NAMES, Week, wall_label, wall_minutes, week_hours
from core.errors import DomainError
from core.guards import coach_required

PAGE = "calendars:availability"
LISTED_RESERVATIONS = 10  # a preview names this many affected sessions, then counts the rest
CLOCK_CHANGE_LOOKAHEAD_DAYS = 366


coach_only = coach_required(
    message="Availability is for coaches. Become a coach on your profile page first.",
    redirect_to="accounts:profile",
)


def _back(section: str):
    return redirect(f"{reverse(PAGE)}#{section}")


# --- words -------------------------------------------------------------------------------------


def hours_words(hours: float) -> str:
    """'40 h', '37 h 30 min', '45 min'."""
    whole, minutes = divmod(round(hours * 60), 60)
    if whole and minutes:
        return f"{whole} h {minutes} min"
    return f"{minutes} min" if minutes else f"{whole} h"


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _windows_words(windows) -> list[str]:
    return [f"{wall_label(begin)}\u2013{wall_label(finish, end=True)}" for begin, finish in windows]


def range_label(start: datetime, end: datetime, tz) -> str:
    """'Sat 17 Oct 2026, 10:00-14:00 CEST' (with an en dash) in `tz`; an end at the next
    midnight is 24:00."""
    begin, finish = timezone.localtime(start, tz), timezone.localtime(end, tz)
    if finish.date() == begin.date():
        tail = date_format(finish, "H:i")
    elif finish.time() == MIDNIGHT and finish.date() == begin.date() + timedelta(days=1):
        tail = "24:00"
    else:
        tail = date_format(finish, "D j M, H:i")
    zone = (
        begin.tzname()
        if begin.tzname() == finish.tzname()
        else f"{begin.tzname()}/{finish.tzname()}"
    )
    return f"{date_format(begin, 'D j M Y, H:i')}\u2013{tail} {zone}"


def days_label(start: datetime, end: datetime, tz) -> str:
    """Time off as whole days ('Mon 21 Dec 2026 - Sun 3 Jan 2027 (14 days)') when it runs from
    midnight to midnight in `tz`, as times otherwise."""
    begin, finish = timezone.localtime(start, tz), timezone.localtime(end, tz)
    if begin.time() != MIDNIGHT or finish.time() != MIDNIGHT:
        return (
            f"{date_format(begin, 'D j M Y, H:i')} \u2013 {date_format(finish, 'D j M Y, H:i T')}"
        )
    first, last = begin.date(), finish.date() - timedelta(days=1)
    days = _plural((last - first).days + 1, "day", "days")
    if first == last:
        return f"{date_format(first, 'D j M Y')} ({days})"
    return f"{date_format(first, 'D j M Y')} \u2013 {date_format(last, 'D j M Y')} ({days})"


# --- what the page shows -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReservationRow:
    """A booked or requested session, in a preview or a warning."""

    label: str
    state: str
    session_id: int | None


def _reservation_rows(reservations, tz) -> list[ReservationRow]:
    return [
        ReservationRow(
            label=range_label(reservation.start, reservation.end, tz),
            state="booked" if reservation.status == SlotStatus.BOOKED else "awaiting an answer",
            session_id=reservation.session_id,
        )
        for reservation in reservations
    ]


@dataclass(frozen=True)
class DayChange:
    name: str
    before: list[str]
    after: list[str]

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True)
class WeekPreview:
    """What saving a weekly-hours grid would change: per day before and after, the hours a
    week, the sessions that would lie outside the new hours (they stay), and clock changes."""

    days: list[DayChange]
    hours_before: str
    hours_after: str
    outside: list[ReservationRow]
    outside_count: int
    clock_notes: list[str]
    notice: str = ""

    @property
    def changed(self) -> bool:
        return any(day.changed for day in self.days)

    @property
    def outside_more(self) -> int:
        return self.outside_count - len(self.outside)


def _undated_week(rules) -> Week:
    week: Week = {weekday: [] for weekday in range(7)}
    for rule in rules:
        if rule.valid_from is None and rule.valid_until is None:
            week[rule.weekday].append((rule.start_time, rule.end_time))
    return week


def _clock_notes(week: Week, tz, today: date) -> list[str]:
    """What the next clock changes (within a year) do to the windows of `week` on those days:
    a start or end that does not exist that day, a window that is an hour shorter or longer."""
    notes = []
    day = today
    for _ in range(CLOCK_CHANGE_LOOKAHEAD_DAYS):
        following = day + timedelta(days=1)
        offset = datetime.combine(day, MIDNIGHT, tzinfo=tz).utcoffset()
        next_offset = datetime.combine(following, MIDNIGHT, tzinfo=tz).utcoffset()
        if offset != next_offset:
            direction = "forward" if next_offset > offset else "back"
            for begin, finish in week.get(day.weekday(), ()):
                note = _clock_note(day, begin, finish, tz)
                if note:
                    notes.append(
                        f"{date_format(day, 'l j F Y')}, the clocks go {direction}: {note}"
                    )
        day = following
    return notes


def _clock_note(day: date, begin: time, finish: time, tz) -> str:
    wall = f"{wall_label(begin)}\u2013{wall_label(finish, end=True)}"
    start, end = wall_window(day, begin, finish, tz)
    planned = timedelta(minutes=wall_minutes(finish, end=True) - wall_minutes(begin))
    checked = [begin] if finish == MIDNIGHT else [begin, finish]
    missing = [wall_label(moment) for moment in checked if not local_time_exists(day, moment, tz)]
    length = hours_words((end - start).total_seconds() / 3600)
    if missing:
        local_start, local_end = timezone.localtime(start, tz), timezone.localtime(end, tz)
        real = f"{local_start:%H:%M}\u2013{wall_label(local_end.time(), end=True)}"
        return (
            f"{and_list(missing)} does not exist that day, so your {wall} window runs "
            f"{real} ({length})."
        )
    if end - start != planned:
        return f"your {wall} window lasts {length} that day."
    return ""


def _week_preview(*, coach, current: Week, proposed: Week, notice: str = "") -> WeekPreview:
    tz = coach.tzinfo
    outside = selectors.coach_reservations_outside_week(coach=coach, week=proposed)
    return WeekPreview(
        days=[
            DayChange(
                name=name,
                before=_windows_words(current.get(weekday, [])),
                after=_windows_words(proposed.get(weekday, [])),
            )
            for weekday, name in enumerate(WEEKDAY_NAMES)
        ],
        hours_before=hours_words(week_hours(current)),
        hours_after=hours_words(week_hours(proposed)),
        outside=_reservation_rows(outside[:LISTED_RESERVATIONS], tz),
        outside_count=len(outside),
        clock_notes=_clock_notes(proposed, tz, local_today(tz)),
        notice=notice,
    )


@dataclass(frozen=True)
class TimeOffPreview:
    label: str
    reservations: list[ReservationRow]
    count: int

    @property
    def more(self) -> int:
        return self.count - len(self.reservations)


@dataclass
class TimeOffRow:
    pk: int
    label: str
    reason: str
    booked: int = 0


@dataclass
class RuleRow:
    pk: int
    label: str
    dates: str = field(default="")


def _rule_dates(rule) -> str:
    if rule.valid_from and rule.valid_until:
        return (
            f"{date_format(rule.valid_from, 'j M Y')} to {date_format(rule.valid_until, 'j M Y')}"
        )
    if rule.valid_from:
        return f"from {date_format(rule.valid_from, 'j M Y')}"
    return f"until {date_format(rule.valid_until, 'j M Y')}"


def _page(
    request,
    *,
    status: int = 200,
    week_form=None,
    week_preview=None,
    window_form=None,
    time_off_form=None,
    time_off_preview=None,
):
    coach = request.user
    tz = coach.tzinfo
    now = timezone.now()
    rules = selectors.coach_rules(coach=coach)
    current = _undated_week(rules)
    windows = list(selectors.coach_upcoming_windows(coach=coach, now=now))
    offs = list(selectors.coach_upcoming_time_off(coach=coach, now=now))
    time_off = [
        TimeOffRow(pk=off.pk, label=days_label(off.start, off.end, tz), reason=off.reason)
        for off in offs
    ]
    if offs:
        # One read for every period's count of the sessions inside it.
        booked = selectors.coach_active_reservations(
            coach=coach, start=max(now, offs[0].start), end=max(off.end for off in offs)
        )
        for row, off in zip(time_off, offs, strict=True):
            row.booked = sum(1 for slot in booked if slot.start < off.end and slot.end > off.start)
    terms = coach_windows(coach=coach)
    context = {
        "timezone_name": tz.key,
        "timezone_abbreviation": timezone.localtime(now, tz).tzname(),
        "terms": terms,
        "week_form": week_form or WeekForm(week=current),
        "week_hours": hours_words(week_hours(current)),
        "week_preview": week_preview,
        "max_windows_per_day": services.MAX_WINDOWS_PER_DAY,
        "dated_rules": [
            RuleRow(
                pk=rule.pk,
                label=f"{WEEKDAY_NAMES[rule.weekday]}s "
                f"{wall_label(rule.start_time)}\u2013{wall_label(rule.end_time, end=True)}",
                dates=_rule_dates(rule),
            )
            for rule in rules
            if rule.valid_from or rule.valid_until
        ],
        "windows": [
            {"pk": window.pk, "label": range_label(window.start, window.end, tz)}
            for window in windows
        ],
        "time_off": time_off,
        "window_form": window_form or WindowForm(tz=tz),
        "time_off_form": time_off_form or TimeOffForm(tz=tz),
        "time_off_preview": time_off_preview,
        "external_calendars": selectors.coach_external_calendars(coach=coach),
        "calendar_sync_every": calendar_sync.sync_every_words(),
    }
    return render(request, "calendars/availability.html", context, status=status)


# --- pages -------------------------------------------------------------------------------------


@login_required
@require_GET
@coach_only
def availability(request):
    """The coach's weekly hours, one-off windows, time off and external calendars."""
    return _page(request)


@login_required
@require_POST
@coach_only
def week_update(request):
    """The weekly-hours grid: "preview" shows what would change, "copy" copies one day's hours
    to other days (not saved), "save" replaces the coach's weekly hours."""
    coach = request.user
    action = request.POST.get("action")
    form = WeekForm(request.POST, copying=action == "copy")
    if not form.is_valid():
        return _page(request, status=400, week_form=form)
    week = form.cleaned_data["week"]
    if action == "save":
        try:
            change = services.availability_week_set(coach=coach, week=week)
        except DomainError as exc:
            form.add_error(None, exc.message)
            return _page(request, status=400, week_form=form)
        hours = hours_words(change.hours_per_week)
        if change.added or change.removed:
            messages.success(request, f"Weekly hours saved: {hours} a week.")
        else:
            messages.info(request, f"Nothing to save: your weekly hours stay {hours} a week.")
        outside = selectors.coach_reservations_outside_week(coach=coach, week=week)
        if outside:
            messages.warning(request, _outside_words(len(outside)))
        return _back("weekly-hours")
    notice = ""
    if action == "copy":
        source, targets = form.copied
        notice = (
            f"{WEEKDAY_NAMES[source]}\u2019s hours copied to "
            f"{and_list([WEEKDAY_NAMES[day] for day in targets])}."
        )
    current = _undated_week(selectors.coach_rules(coach=coach))
    preview = _week_preview(coach=coach, current=current, proposed=week, notice=notice)
    # The grid shows the checked (sorted, copied) hours with a blank pair to add one more.
    return _page(request, week_form=WeekForm(week=week), week_preview=preview)


def _outside_words(count: int) -> str:
    sessions = _plural(
        count, "booked or requested session lies", "booked or requested sessions lie"
    )
    kept = "It stays" if count == 1 else "They stay"
    return (
        f"{sessions} outside your new weekly hours. {kept} as agreed; reschedule from the "
        "session\u2019s page if needed."
    )


@login_required
@require_POST
@coach_only
def rule_remove(request, pk: int):
    """Remove one dated weekly window (another coach's or an unknown one is a 404)."""
    rule = selectors.coach_rule(coach=request.user, pk=pk)
    if rule is None:
        raise Http404("No such weekly window.")
    try:
        services.availability_weekly_remove(rule=rule, coach=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Weekly window removed: {WEEKDAY_NAMES[rule.weekday]}s "
            f"{wall_label(rule.start_time)}\u2013{wall_label(rule.end_time, end=True)}. "
            "Sessions already booked stay booked.",
        )
    return _back("weekly-hours")


@login_required
@require_POST
@coach_only
def window_add(request):
    """Add a one-off window, entered in the coach's timezone."""
    coach = request.user
    form = WindowForm(request.POST, tz=coach.tzinfo)
    if form.is_valid():
        try:
            window = services.availability_window_add(
                coach=coach, start=form.cleaned_data["start"], end=form.cleaned_data["end"]
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            label = range_label(window.start, window.end, coach.tzinfo)
            messages.success(request, f"One-off window added: {label}.")
            return _back("one-off")
    return _page(request, status=400, window_form=form)


@login_required
@require_POST
@coach_only
def window_remove(request, pk: int):
    """Remove one one-off window (another coach's or an unknown one is a 404)."""
    window = selectors.coach_window(coach=request.user, pk=pk)
    if window is None:
        raise Http404("No such window.")
    try:
        services.availability_window_remove(window=window, coach=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        label = range_label(window.start, window.end, request.user.tzinfo)
        messages.success(
            request, f"One-off window removed: {label}. Sessions already booked stay booked."
        )
    return _back("one-off")


@login_required
@require_POST
@coach_only
def time_off_add(request):
    """Add whole days of time off; "preview" first lists the sessions booked in them."""
    coach = request.user
    tz = coach.tzinfo
    form = TimeOffForm(request.POST, tz=tz)
    if not form.is_valid():
        return _page(request, status=400, time_off_form=form)
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    label = days_label(start, end, tz)
    if request.POST.get("action") == "preview":
        inside = selectors.coach_active_reservations(
            coach=coach, start=max(start, timezone.now()), end=end
        )
        preview = TimeOffPreview(
            label=label,
            reservations=_reservation_rows(inside[:LISTED_RESERVATIONS], tz),
            count=len(inside),
        )
        return _page(request, time_off_form=form, time_off_preview=preview)
    try:
        off = services.time_off_add(
            coach=coach, start=start, end=end, reason=form.cleaned_data["reason"]
        )
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _page(request, status=400, time_off_form=form)
    messages.success(request, f"Time off added: {days_label(off.start, off.end, tz)}.")
    inside = selectors.coach_active_reservations(
        coach=coach, start=max(off.start, timezone.now()), end=off.end
    )
    if inside:
        kept = "It stays" if len(inside) == 1 else "They stay"
        sessions = _plural(
            len(inside), "booked or requested session falls", "booked or requested sessions fall"
        )
        messages.warning(
            request,
            f"{sessions} in this time off. {kept} as agreed; reschedule or cancel from the "
            "session\u2019s page if needed.",
        )
    return _back("time-off")


@login_required
@require_POST
@coach_only
def time_off_remove(request, pk: int):
    """Remove one period of time off (another coach's or an unknown one is a 404)."""
    off = selectors.coach_time_off(coach=request.user, pk=pk)
    if off is None:
        raise Http404("No such time off.")
    try:
        services.time_off_remove(time_off=off, coach=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        label = days_label(off.start, off.end, request.user.tzinfo)
        messages.success(
            request,
            f"Time off removed: {label}. Those days can be booked again where your hours allow.",
        )
    return _back("time-off")
