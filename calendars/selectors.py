"""Reads for availability, reservations and busy times, scoped to the coach who asks; and the
one computation of bookable start times."""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.selectors import coach_windows
from calendars import intervals
from calendars.intervals import Interval
from calendars.models import (
    ACTIVE_SLOT_STATUSES,
    AvailabilityRule,
    AvailabilityWindow,
    BusyTime,
    ExternalCalendar,
    SlotStatus,
    TimeOff,
    TimeSlot,
)

# --- bookable start times ----------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """What one coach's time looks like over a range, as merged UTC intervals.

    `windows`: each availability window as defined (weekly-rule occurrences and one-off windows,
    unmerged: the start-time grid is aligned to each one's start). `free`: availability minus
    time off. `taken`: the coach's active reservations (with their buffers) and external busy
    times. `student_taken`: the student's own active reservations.
    """

    windows: list[Interval]
    free: list[Interval]
    taken: list[Interval]
    student_taken: list[Interval]


def _intervals(queryset, begin: str = "start", finish: str = "end") -> list[Interval]:
    return list(queryset.values_list(begin, finish))


def _availability(
    *, coach, start: datetime, end: datetime
) -> tuple[list[Interval], list[Interval]]:
    """(each availability window, sorted; availability minus time off, merged) overlapping
    [start, end): three queries."""
    tz = coach.tzinfo
    rules = list(AvailabilityRule.objects.filter(coach=coach))
    first = timezone.localtime(start, tz).date() - timedelta(days=1)
    last = timezone.localtime(end, tz).date() + timedelta(days=1)
    windows = intervals.rule_occurrences(rules, first, last, tz)
    windows += _intervals(
        AvailabilityWindow.objects.filter(coach=coach, end__gt=start, start__lt=end)
    )
    time_off = _intervals(TimeOff.objects.filter(coach=coach, end__gt=start, start__lt=end))
    return sorted(windows), intervals.subtract(intervals.merge(windows), intervals.merge(time_off))


def coach_schedule(
    *, coach, start: datetime, end: datetime, student=None, session=None
) -> Schedule:
    """The coach's availability, time off, reservations and busy times overlapping
    [start, end), plus the student's reservations: five or six queries, whatever the data.

    `session`'s own reservations are left out (a reschedule may overlap its current time).
    """
    windows, free = _availability(coach=coach, start=start, end=end)
    # A coach who also takes lessons is busy during those too (and a student who also
    # coaches during their own sessions): both roles of one person count.
    reservations = TimeSlot.objects.filter(
        Q(coach=coach) | Q(student=coach),
        status__in=ACTIVE_SLOT_STATUSES,
        reserved_end__gt=start,
        reserved_start__lt=end,
    )
    if session is not None:
        reservations = reservations.exclude(session=session)
    # The coach's own reservations carry the coach's buffers; the lessons the coach takes
    # elsewhere take only their own time (their buffers are the other coach's).
    taken = [
        (reserved_start, reserved_end) if coach_id == coach.pk else (begin, finish)
        for coach_id, begin, finish, reserved_start, reserved_end in reservations.values_list(
            "coach_id", "start", "end", "reserved_start", "reserved_end"
        )
    ]
    taken += _intervals(BusyTime.objects.filter(coach=coach, end__gt=start, start__lt=end))
    student_taken: list[Interval] = []
    if student is not None:
        mine = TimeSlot.objects.filter(
            Q(student=student) | Q(coach=student),
            status__in=ACTIVE_SLOT_STATUSES,
            end__gt=start,
            start__lt=end,
        )
        if session is not None:
            mine = mine.exclude(session=session)
        student_taken = _intervals(mine)
    return Schedule(
        windows=windows,
        free=free,
        taken=intervals.merge(taken),
        student_taken=intervals.merge(student_taken),
    )


@dataclass(frozen=True)
class BookingBounds:
    """The earliest and latest start a student may book now, and the coach's grid."""

    earliest: datetime
    latest: datetime
    step: timedelta
    before: timedelta
    after: timedelta


def booking_bounds(*, coach, now: datetime | None = None) -> BookingBounds:
    """now + minimum notice .. now + booking horizon, with the coach's start interval and
    buffers (from the coach's profile, or the defaults)."""
    now = now or timezone.now()
    terms = coach_windows(coach=coach)
    return BookingBounds(
        earliest=now + timedelta(hours=terms.minimum_notice_hours),
        latest=now + timedelta(days=terms.booking_horizon_days),
        step=timedelta(minutes=terms.start_interval_minutes),
        before=timedelta(minutes=terms.buffer_before_minutes),
        after=timedelta(minutes=terms.buffer_after_minutes),
    )


def start_refusal(*, coach, start: datetime, now: datetime | None = None) -> str:
    """Why `start` is not one of the coach's bookable starts now, in words a student
    understands (the booking pages and `reservation_hold` say the same)."""
    bounds = booking_bounds(coach=coach, now=now)
    if start < bounds.earliest:
        return "That time is too soon; pick a later one."
    if start > bounds.latest:
        return "That time is too far ahead; pick an earlier one."
    return "That time is not free any more. Pick another."


def bookable_starts(
    *,
    coach,
    duration_minutes: int,
    start: datetime,
    end: datetime,
    student=None,
    now: datetime | None = None,
    session=None,
) -> list[datetime]:
    """Every start in [start, end) at which a session of `duration_minutes` can be booked now.

    A start lies on the coach's start-interval grid counted from the start of an availability
    window; the session fits inside availability (weekly rules and one-off windows, minus time
    off); with the coach's buffers it overlaps none of the coach's active reservations or
    external busy times; it overlaps none of `student`'s reservations; and it lies between
    now + minimum notice and now + booking horizon. `session`'s own reservations do not count
    (its current time while it is rescheduled). Computed, never stored; a constant number of
    queries whatever the number of rows.
    """
    bounds = booking_bounds(coach=coach, now=now)
    low, high = max(start, bounds.earliest), min(end, bounds.latest + timedelta(microseconds=1))
    if low >= high:
        return []
    length = timedelta(minutes=duration_minutes)
    pad = length + bounds.before + bounds.after + timedelta(days=1)
    schedule = coach_schedule(
        coach=coach, start=low - pad, end=high + pad, student=student, session=session
    )
    return starts_in_schedule(schedule, bounds=bounds, length=length, low=low, high=high)


def starts_in_schedule(
    schedule: Schedule, *, bounds: BookingBounds, length: timedelta, low: datetime, high: datetime
) -> list[datetime]:
    """The grid starts in [low, high) that `schedule` can take a session of `length` at."""
    candidates: set[datetime] = set()
    for window_start, window_end in schedule.windows:
        if window_end <= low or window_start >= high:
            continue
        skip = max(0, math.ceil((low - window_start) / bounds.step))
        moment = window_start + skip * bounds.step
        while moment < window_end and moment < high:
            candidates.add(moment)
            moment += bounds.step
    return [
        moment
        for moment in sorted(candidates)
        if intervals.contains(schedule.free, moment, moment + length)
        and not intervals.overlaps(
            schedule.taken, moment - bounds.before, moment + length + bounds.after
        )
        and not intervals.overlaps(schedule.student_taken, moment, moment + length)
    ]


# --- the coach's own availability (the Availability page) --------------------------------------


def coach_rules(*, coach) -> list[AvailabilityRule]:
    """The coach's weekly rules, by weekday and start time: one query."""
    return list(
        AvailabilityRule.objects.filter(coach=coach).order_by("weekday", "start_time", "pk")
    )


def coach_rule(*, coach, pk) -> AvailabilityRule | None:
    """One of the coach's weekly rules (None for anyone else's or an unknown id)."""
    return AvailabilityRule.objects.filter(coach=coach, pk=pk).first()


def coach_upcoming_windows(*, coach, now: datetime | None = None) -> QuerySet:
    """The coach's one-off windows that have not ended, soonest first."""
    now = now or timezone.now()
    return AvailabilityWindow.objects.filter(coach=coach, end__gt=now).order_by("start", "pk")


def coach_window(*, coach, pk) -> AvailabilityWindow | None:
    return AvailabilityWindow.objects.filter(coach=coach, pk=pk).first()


def coach_upcoming_time_off(*, coach, now: datetime | None = None) -> QuerySet:
    """The coach's time off that has not ended, soonest first."""
    now = now or timezone.now()
    return TimeOff.objects.filter(coach=coach, end__gt=now).order_by("start", "pk")


def coach_time_off(*, coach, pk) -> TimeOff | None:
    return TimeOff.objects.filter(coach=coach, pk=pk).first()


def coach_active_reservations(
    *, coach, start: datetime, end: datetime | None = None
) -> list[TimeSlot]:
    """The coach's held and booked reservations overlapping [start, end) (without `end`: every
    one that ends after `start`), soonest first: one query."""
    reservations = TimeSlot.objects.filter(
        coach=coach, status__in=ACTIVE_SLOT_STATUSES, end__gt=start
    )
    if end is not None:
        reservations = reservations.filter(start__lt=end)
    return list(reservations.order_by("start", "pk"))


def coach_reservations_outside_week(*, coach, week, now: datetime | None = None) -> list[TimeSlot]:
    """The coach's held and booked reservations that have not ended and would not lie inside
    their availability if their undated weekly windows were `week` ({weekday: [(start, end)]},
    as `availability_week_set` takes it). Dated weekly windows and one-off windows count as
    they are; time off is left out (it does not change with the week). At most three queries."""
    now = now or timezone.now()
    reservations = coach_active_reservations(coach=coach, start=now)
    if not reservations:
        return []
    tz = coach.tzinfo
    rules = [rule for rule in coach_rules(coach=coach) if rule.valid_from or rule.valid_until]
    rules += [
        AvailabilityRule(weekday=weekday, start_time=begin, end_time=finish)  # never saved
        for weekday, windows in week.items()
        for begin, finish in windows
    ]
    one_off = _intervals(AvailabilityWindow.objects.filter(coach=coach, end__gt=now))
    outside = []
    for reservation in reservations:
        begin, finish = reservation.start, reservation.end
        first = timezone.localtime(begin, tz).date() - timedelta(days=1)
        last = timezone.localtime(finish, tz).date()
        near = [(a, b) for a, b in one_off if b >= begin and a <= finish]
        free = intervals.merge(intervals.rule_occurrences(rules, first, last, tz) + near)
        if not intervals.contains(free, begin, finish):
            outside.append(reservation)
    return outside


def coach_external_calendars(*, coach) -> list[ExternalCalendar]:
    """The coach's external calendars (active and paused), oldest first: one query."""
    return list(ExternalCalendar.objects.filter(coach=coach).order_by("created_at", "pk"))


def coach_external_calendar(*, coach, pk) -> ExternalCalendar | None:
    """One of the coach's external calendars (None for anyone else's or an unknown id)."""
    return ExternalCalendar.objects.filter(coach=coach, pk=pk).first()


# --- for the week view ----------------------------------------------------------------------


def coach_busy_between(*, coach, start: datetime, end: datetime) -> list[Interval]:
    """The coach's external busy times overlapping [start, end), merged: one query."""
    return intervals.merge(
        _intervals(BusyTime.objects.filter(coach=coach, end__gt=start, start__lt=end))
    )


def coach_time_off_between(*, coach, start: datetime, end: datetime) -> list[TimeOff]:
    return list(TimeOff.objects.filter(coach=coach, end__gt=start, start__lt=end).order_by("start"))


def coach_availability_between(*, coach, start: datetime, end: datetime) -> list[Interval]:
    """The coach's availability (weekly rules and one-off windows, minus time off) within
    [start, end), merged and clipped: three queries."""
    _, free = _availability(coach=coach, start=start, end=end)
    return [(max(a, start), min(b, end)) for a, b in free if b > start and a < end]


# --- for sessions_app (conflicts with external busy times) --------------------------------------


def coach_conflicting_slot_ids(*, coach, now: datetime | None = None) -> QuerySet:
    """The ids of the coach's BOOKED reservations that have not ended and that an external
    busy time overlaps, not counting busy times first seen before the coach chose to keep that
    time: a subquery (`values("pk")`) for a session filter."""
    return _conflicting_slots(coach=coach, now=now or timezone.now()).values("pk")


def coach_conflicting_session_ids(*, coach, now: datetime | None = None) -> QuerySet:
    """The sessions whose agreed reservations `coach_conflicting_slot_ids` finds: a subquery
    (`values("session")`) that starts from the coach's busy times, not from their sessions."""
    return _conflicting_slots(coach=coach, now=now or timezone.now()).values("session")


def _conflicting_slots(*, coach, now: datetime) -> QuerySet:
    overlapping = BusyTime.objects.filter(
        coach_id=OuterRef("coach_id"), start__lt=OuterRef("end"), end__gt=OuterRef("start")
    )
    return (
        # `reserved_end` (never before `end`) bounds the scan of the (coach, status,
        # reserved_end) index.
        TimeSlot.objects.filter(
            coach=coach, status=SlotStatus.BOOKED, reserved_end__gt=now, end__gt=now
        )
        # Uncorrelated, so the database checks it once first: a coach with no busy time ahead
        # (no external calendar) costs nothing here, however many sessions they have booked.
        .filter(Exists(BusyTime.objects.filter(coach=coach, end__gt=now)))
        .filter(
            Q(Exists(overlapping), conflict_kept_at__isnull=True)
            | Q(Exists(overlapping.filter(created_at__gt=OuterRef("conflict_kept_at"))))
        )
    )


def coach_conflicts_newest_busy(*, coach, now: datetime | None = None) -> dict[int, BusyTime]:
    """For each of the coach's conflicting reservations (as `coach_conflicting_slot_ids` counts
    them), the overlapping busy time first seen most recently (after the coach chose to keep
    the time, if they did): {reservation id: BusyTime}. Two queries; none when nothing
    conflicts."""
    slots = list(
        TimeSlot.objects.filter(pk__in=coach_conflicting_slot_ids(coach=coach, now=now)).only(
            "pk", "start", "end", "conflict_kept_at"
        )
    )
    if not slots:
        return {}
    busy = BusyTime.objects.filter(
        coach=coach,
        start__lt=max(slot.end for slot in slots),
        end__gt=min(slot.start for slot in slots),
    ).order_by("-created_at", "-pk")
    newest: dict[int, BusyTime] = {}
    for each in busy:
        for slot in slots:
            if slot.pk in newest or not (each.start < slot.end and each.end > slot.start):
                continue
            if slot.conflict_kept_at is None or each.created_at > slot.conflict_kept_at:
                newest[slot.pk] = each
    return newest


def slots_by_id(*, ids) -> dict[int, TimeSlot]:
    """The reservations with these ids, by id (one query; none for no ids)."""
    ids = {pk for pk in ids if pk is not None}
    return TimeSlot.objects.in_bulk(ids) if ids else {}
