"""Writes for availability: weekly rules, one-off windows and time off.

Every input is bounded (windows per day, how far ahead, how long), so no form can create
absurd amounts of data; a refusal says why and writes nothing.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from calendars.intervals import MIDNIGHT
from calendars.models import AvailabilityRule, AvailabilityWindow, TimeOff
from calendars.services.errors import AvailabilityInvalid, require_coach
from core.errors import PermissionDenied

MAX_WINDOWS_PER_DAY = 6
MIN_WINDOW = timedelta(minutes=5)
MAX_DAYS_AHEAD = 2 * 365  # a one-off window or time off starts at most this far ahead
MAX_ONE_OFF_WINDOW = timedelta(hours=24)
MAX_TIME_OFF = timedelta(days=366)
MAX_UPCOMING_WINDOWS = 200
MAX_UPCOMING_TIME_OFF = 100
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

Week = dict[int, list[tuple[time, time]]]


def wall_minutes(wall: time, *, end: bool = False) -> int:
    """Minutes since midnight; an end of 00:00 is 24:00."""
    return 24 * 60 if end and wall == MIDNIGHT else wall.hour * 60 + wall.minute


def wall_label(wall: time, *, end: bool = False) -> str:
    return "24:00" if end and wall == MIDNIGHT else f"{wall:%H:%M}"


def _lock_coach(coach) -> None:
    """Serialise the coach's availability writes: with the coach's row locked, two requests
    cannot both pass a limit or overlap check against rows that do not exist yet."""
    User.objects.select_for_update().filter(pk=coach.pk).first()


def _check_day(weekday: int, windows: list[tuple[time, time]]) -> list[tuple[time, time]]:
    """One weekday's windows, sorted, each at least MIN_WINDOW, none overlapping."""
    name = WEEKDAY_NAMES[weekday]
    if len(windows) > MAX_WINDOWS_PER_DAY:
        raise AvailabilityInvalid(f"{name}: at most {MAX_WINDOWS_PER_DAY} windows a day.")
    ordered = sorted(windows, key=lambda window: wall_minutes(window[0]))
    previous_end = -1
    for begin, finish in ordered:
        if begin.second or finish.second or begin.microsecond or finish.microsecond:
            raise AvailabilityInvalid(f"{name}: use whole minutes.")
        low, high = wall_minutes(begin), wall_minutes(finish, end=True)
        if high - low < MIN_WINDOW.total_seconds() // 60:
            raise AvailabilityInvalid(
                f"{name} {wall_label(begin)}\u2013{wall_label(finish, end=True)}: a window must "
                "end at least 5 minutes after it starts (and cannot cross midnight)."
            )
        if low < previous_end:
            raise AvailabilityInvalid(f"{name}: two windows overlap; join them or move one.")
        previous_end = high
    return ordered


def _check_weekday(weekday) -> int:
    if isinstance(weekday, bool) or not isinstance(weekday, int) or not 0 <= weekday <= 6:
        raise AvailabilityInvalid("Choose a weekday.")
    return weekday


def availability_weekly_add(
    *,
    coach,
    weekday: int,
    start_time: time,
    end_time: time,
    valid_from: date | None = None,
    valid_until: date | None = None,
) -> AvailabilityRule:
    """Add one weekly window ("Mondays 09:00-17:00") in the coach's wall-clock time.

    Refused when it overlaps a window of that weekday in force on the same dates (an undated
    window is in force on every date), or the day would have more than MAX_WINDOWS_PER_DAY of
    them; `valid_until` before `valid_from` is refused too.
    """
    require_coach(coach)
    weekday = _check_weekday(weekday)
    if valid_from and valid_until and valid_until < valid_from:
        raise AvailabilityInvalid("The last date must not be before the first.")
    with transaction.atomic():
        _lock_coach(coach)
        existing = [
            rule
            for rule in AvailabilityRule.objects.select_for_update().filter(
                coach=coach, weekday=weekday
            )
            if _dates_meet(rule.valid_from, rule.valid_until, valid_from, valid_until)
        ]
        _check_day(
            weekday,
            [(rule.start_time, rule.end_time) for rule in existing] + [(start_time, end_time)],
        )
        return AvailabilityRule.objects.create(
            coach=coach,
            weekday=weekday,
            start_time=start_time,
            end_time=end_time,
            valid_from=valid_from,
            valid_until=valid_until,
        )


def _dates_meet(first_a, last_a, first_b, last_b) -> bool:
    """Whether two date ranges (None: open-ended) share a date."""
    return (last_b is None or first_a is None or first_a <= last_b) and (
        last_a is None or first_b is None or first_b <= last_a
    )


def availability_weekly_remove(*, rule: AvailabilityRule, coach) -> None:
    """Remove one of the coach's weekly windows. Sessions already booked in it stay booked."""
    with transaction.atomic():
        deleted, _ = AvailabilityRule.objects.filter(pk=rule.pk, coach=coach).delete()
        if not deleted:
            raise PermissionDenied("That window is not yours.")


@dataclass(frozen=True)
class WeekChange:
    """What saving a weekly-hours grid did."""

    added: int
    removed: int
    hours_per_week: float


def week_hours(week: Week) -> float:
    """The bookable hours a week of `week` holds (wall-clock, ignoring DST)."""
    minutes = sum(
        wall_minutes(finish, end=True) - wall_minutes(begin)
        for windows in week.values()
        for begin, finish in windows
    )
    return minutes / 60


def availability_week_check(*, week: Week) -> Week:
    """The weekly-hours grid, checked day by day and sorted, or `AvailabilityInvalid`."""
    checked: Week = {}
    for weekday, windows in week.items():
        day = _check_weekday(weekday)
        checked[day] = _check_day(day, list(windows))
    return checked


def availability_week_set(*, coach, week: Week) -> WeekChange:
    """Replace the coach's weekly windows (those without date limits) by the grid `week`:
    {weekday: [(start, end), ...]}; a weekday left out has no windows.

    Rules that are already there are kept as they are (same weekday and times), so saving an
    unchanged grid writes nothing. Sessions already booked are never touched.
    """
    require_coach(coach)
    checked = availability_week_check(week=week)
    wanted = {
        (weekday, begin, finish)
        for weekday, windows in checked.items()
        for begin, finish in windows
    }
    with transaction.atomic():
        _lock_coach(coach)
        current = list(
            AvailabilityRule.objects.select_for_update().filter(
                coach=coach, valid_from__isnull=True, valid_until__isnull=True
            )
        )
        have = {(rule.weekday, rule.start_time, rule.end_time): rule for rule in current}
        stale = [rule.pk for key, rule in have.items() if key not in wanted]
        AvailabilityRule.objects.filter(pk__in=stale).delete()
        fresh = [
            AvailabilityRule(coach=coach, weekday=weekday, start_time=begin, end_time=finish)
            for weekday, begin, finish in sorted(wanted - set(have))
        ]
        AvailabilityRule.objects.bulk_create(fresh)
    return WeekChange(added=len(fresh), removed=len(stale), hours_per_week=week_hours(checked))


def _check_interval(
    start: datetime, end: datetime, *, longest: timedelta, what: str, now: datetime
) -> None:
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise AvailabilityInvalid("Times must carry a timezone.")
    if any(moment.second or moment.microsecond for moment in (start, end)):
        # Start times are counted from a window's start: seconds would shift every one of them.
        raise AvailabilityInvalid("Use whole minutes.")
    if end <= start:
        raise AvailabilityInvalid("The end must be after the start.")
    if end - start > longest:
        raise AvailabilityInvalid(f"{what} can last at most {_span(longest)}.")
    if end <= now:
        raise AvailabilityInvalid(f"{what} must end in the future.")
    if start > now + timedelta(days=MAX_DAYS_AHEAD):
        raise AvailabilityInvalid(f"{what} must start within two years.")


def _span(length: timedelta) -> str:
    return (
        f"{length.days} days"
        if length.days >= 2
        else f"{int(length.total_seconds() // 3600)} hours"
    )


def availability_window_add(
    *, coach, start: datetime, end: datetime, now: datetime | None = None
) -> AvailabilityWindow:
    """Add a one-off extra window of bookable time (aware datetimes; at most 24 hours, within
    two years, at most MAX_UPCOMING_WINDOWS not yet ended)."""
    require_coach(coach)
    now = now or timezone.now()
    _check_interval(start, end, longest=MAX_ONE_OFF_WINDOW, what="A one-off window", now=now)
    with transaction.atomic():
        _lock_coach(coach)
        upcoming = AvailabilityWindow.objects.select_for_update().filter(coach=coach, end__gt=now)
        if len(upcoming) >= MAX_UPCOMING_WINDOWS:
            raise AvailabilityInvalid(
                f"You have {MAX_UPCOMING_WINDOWS} upcoming one-off windows; remove some first."
            )
        return AvailabilityWindow.objects.create(coach=coach, start=start, end=end)


def availability_window_remove(*, window: AvailabilityWindow, coach) -> None:
    """Remove a one-off window. Sessions already booked in it stay booked."""
    with transaction.atomic():
        deleted, _ = AvailabilityWindow.objects.filter(pk=window.pk, coach=coach).delete()
        if not deleted:
            raise PermissionDenied("That window is not yours.")


def time_off_add(
    *, coach, start: datetime, end: datetime, reason: str = "", now: datetime | None = None
) -> TimeOff:
    """Mark time away (aware datetimes; at most a year long, within two years): nothing in it
    can be booked. Sessions already booked in it stay booked; reschedule them if needed."""
    require_coach(coach)
    now = now or timezone.now()
    reason = " ".join((reason or "").split())
    if len(reason) > 200:
        raise AvailabilityInvalid("Keep the note under 200 characters.")
    _check_interval(start, end, longest=MAX_TIME_OFF, what="Time off", now=now)
    with transaction.atomic():
        _lock_coach(coach)
        upcoming = TimeOff.objects.select_for_update().filter(coach=coach, end__gt=now)
        if len(upcoming) >= MAX_UPCOMING_TIME_OFF:
            raise AvailabilityInvalid(
                f"You have {MAX_UPCOMING_TIME_OFF} upcoming periods of time off; remove some first."
            )
        return TimeOff.objects.create(coach=coach, start=start, end=end, reason=reason)


def time_off_remove(*, time_off: TimeOff, coach) -> None:
    """Remove a period of time off: its time is bookable again where availability allows."""
    with transaction.atomic():
        deleted, _ = TimeOff.objects.filter(pk=time_off.pk, coach=coach).delete()
        if not deleted:
            raise PermissionDenied("That time off is not yours.")
