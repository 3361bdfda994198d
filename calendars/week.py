"""The week view: one week of a user's calendar as a time grid, in the viewer's timezone.

Reads only: sessions and proposals through `sessions_app.selectors`; a coach's availability,
busy times and time off through `calendars.selectors`. Every query is scoped to the viewer and
their number does not grow with the data.

The layout is computed here, so the template only places blocks:

- every entry is cut at local midnight into one block per day it touches;
- a block is positioned by local wall-clock minutes, so on a 23- or 25-hour day the blocks after
  the clock change still line up with the hour lines (a block spanning the change is drawn by
  its wall-clock length; its text gives both times with their abbreviations);
- blocks that overlap are placed side by side (lanes); the coach's availability is the
  background they sit on;
- the hours shown run from the earliest to the latest block of the week, at least 08:00-18:00
  (busy times and time off running over several days are drawn within them instead of
  stretching them to 24).
"""

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

from accounts.models import User
from calendars import selectors as calendar_selectors
from sessions_app import selectors as session_selectors
from sessions_app.lifecycle import Status

# The dates the week view shows: far enough from date.min/date.max that a week's bounds, its
# neighbours and their conversion to UTC in any timezone never overflow.
FIRST_WEEK_DAY = date(1971, 1, 1)
LAST_WEEK_DAY = date(9998, 12, 31)

DAY_MINUTES = 24 * 60
# The hours every week shows at least; a block earlier or later widens the range.
FIRST_HOUR, LAST_HOUR = 8, 18
# The shortest block drawn, so that a five-minute busy time still has room for its label.
MIN_BLOCK_MINUTES = 15
# Blocks drawn shorter than this show their text on one line.
COMPACT_BELOW_MINUTES = 45


def week_day_in_range(day: date) -> bool:
    """Whether the week view can show the week of `day` (FIRST_WEEK_DAY..LAST_WEEK_DAY)."""
    return FIRST_WEEK_DAY <= day <= LAST_WEEK_DAY


def week_monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The start of `day` in `tz`, as a UTC instant (where midnight does not exist, the moment
    the day begins).

    In UTC because Python compares and subtracts two datetimes of one and the same tzinfo by
    their wall clocks, which is wrong across a clock change; every comparison here is in UTC.
    """
    return datetime.combine(day, datetime.min.time(), tzinfo=tz).astimezone(UTC)


def week_bounds(monday: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Local Monday 00:00 to the next Monday 00:00 in `tz` (167 to 169 hours across DST), as
    UTC instants."""
    return local_midnight(monday, tz), local_midnight(monday + timedelta(days=7), tz)


# --- what a block can be -----------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    key: str
    label: str  # the text on every block of this kind
    legend: str  # what it means, in the legend


KINDS = {
    kind.key: kind
    for kind in (
        Kind("available", "Available", "your bookable hours (weekly and one-off), less time off"),
        Kind("busy", "Busy", "busy in one of your external calendars"),
        Kind("timeoff", "Time off", "you are away; nobody can book"),
        Kind("requested", "Requested", "a booking request; the time is held for it"),
        Kind("confirmed", "Confirmed", "booked at this time"),
        Kind("rescheduling", "Agreed", "the agreed time of a session being rescheduled"),
        Kind("proposed", "Proposed", "a proposed new time, held until it is answered"),
        Kind("completed", "Completed", "the session took place"),
    )
}
SESSION_KINDS = ("requested", "confirmed", "rescheduling", "proposed", "completed")
COACH_KINDS = ("available", "busy", "timeoff", *SESSION_KINDS)

_KIND_OF_STATUS = {
    Status.REQUESTED: "requested",
    Status.CONFIRMED: "confirmed",
    Status.RESCHEDULING: "rescheduling",
    Status.COMPLETED: "completed",
}


@dataclass(frozen=True)
class WeekEntry:
    """One thing on the calendar, whole (a block is its part on one day)."""

    start: datetime  # in the viewer's timezone (compare them in UTC: see local_midnight)
    end: datetime
    kind: str  # a key of KINDS
    detail: str = ""  # a further line: the time off's reason, "New time proposed", ...
    person: str = ""  # the other side of a session
    package: str = ""
    session_id: int | None = None

    @property
    def label(self) -> str:
        return KINDS[self.kind].label

    @property
    def is_background(self) -> bool:
        return self.kind == "available"


@dataclass
class Block:
    """The part of an entry on one day, placed on that day's wall clock."""

    entry: WeekEntry
    start: datetime  # this day's part, in the viewer's timezone
    end: datetime
    top: int  # where it is drawn: minutes after midnight on the day's wall clock
    bottom: int
    show_zone: bool  # its day changes clocks, or its times have different abbreviations
    lane: int = 0
    lanes: int = 1

    @property
    def span(self) -> int:
        return self.bottom - self.top

    @property
    def is_compact(self) -> bool:
        return self.span < COMPACT_BELOW_MINUTES

    @property
    def from_earlier_day(self) -> bool:
        return self.start.astimezone(UTC) > self.entry.start.astimezone(UTC)

    @property
    def to_later_day(self) -> bool:
        return self.end.astimezone(UTC) < self.entry.end.astimezone(UTC)

    @property
    def start_text(self) -> str:
        return self._when(self.entry.start)

    @property
    def end_text(self) -> str:
        return self._when(self.entry.end, is_end=True)

    def _when(self, moment: datetime, *, is_end: bool = False) -> str:
        """A time of the entry as seen from this block's day: '09:30' on that day, 'Sun 01:00'
        on another day of the week, 'Sun 8 Nov 01:00' further away, '24:00' for an end at the
        next midnight; with the abbreviation where the clocks change ('01:30 EST')."""
        day = self.start.date()
        tz = moment.tzinfo
        if moment.date() == day:
            text = f"{moment:%H:%M}"
        elif is_end and moment == local_midnight(day + timedelta(days=1), tz):
            text = "24:00"  # (== between different tzinfos compares instants)
        elif abs((moment.date() - day).days) < 7:
            text = f"{moment:%a %H:%M}"
        else:
            text = f"{moment:%a} {moment.day} {moment:%b %H:%M}"
        return f"{text} {moment.tzname()}" if self.show_zone else text


@dataclass
class WeekDay:
    date: date
    tz: ZoneInfo
    start: datetime  # local midnight, in UTC
    end: datetime  # the next local midnight, in UTC
    is_today: bool
    is_selected: bool  # the day a narrow screen shows
    blocks: list[Block] = field(default_factory=list)  # in time order
    now_minute: int | None = None  # the wall-clock minute of now, today only

    @property
    def hours(self) -> float:
        """23, 24 or 25 on a day the clocks change (24.5 where they move by 30 minutes)."""
        return (self.end - self.start) / timedelta(hours=1)

    @property
    def clock_change(self) -> str:
        """'Clocks go back 1 hour (25-hour day)' on a day the clocks change, else ''."""
        shift = round((self.hours - 24) * 60)
        if not shift:
            return ""
        amount = "1 hour" if abs(shift) == 60 else f"{abs(shift)} minutes"
        way = "back" if shift > 0 else "forward"
        length = f"{self.hours:g}-hour day"
        return f"Clocks go {way} {amount} ({length}): {self.zone_names}"

    @property
    def zone_names(self) -> str:
        """'EST', or 'EDT to EST' on a day the abbreviation changes."""
        first, last = _zone_names(self)
        return first if first == last else f"{first} to {last}"

    @property
    def previous_week(self) -> date | None:
        """This weekday a week earlier (kept inside the range), or None at its start."""
        return _shifted(self.date, -7)

    @property
    def next_week(self) -> date | None:
        """This weekday a week later (kept inside the range), or None at its end."""
        return _shifted(self.date, 7)

    @property
    def background(self) -> list[Block]:
        return [block for block in self.blocks if block.entry.is_background]

    @property
    def foreground(self) -> list[Block]:
        return [block for block in self.blocks if not block.entry.is_background]


@dataclass
class Week:
    monday: date
    selected: date  # the day a narrow screen shows (from ?week=, else today)
    today: date
    tz: ZoneInfo
    is_coach: bool
    days: list[WeekDay]
    entries: list[WeekEntry]  # every entry, whole, in time order
    first_minute: int  # the hours shown: a whole hour to a whole hour
    last_minute: int

    @property
    def sunday(self) -> date:
        return self.monday + timedelta(days=6)

    @property
    def previous(self) -> date | None:
        """The selected day a week earlier (kept inside the range), or None at its start."""
        return _shifted(self.selected, -7)

    @property
    def next(self) -> date | None:
        """The selected day a week later (kept inside the range), or None at its end."""
        return _shifted(self.selected, 7)

    @property
    def this_week(self) -> bool:
        return week_monday(self.today) == self.monday

    @property
    def hour_count(self) -> int:
        return (self.last_minute - self.first_minute) // 60

    @property
    def hour_marks(self) -> list[tuple[int, str]]:
        """(minute, '08:00') for every hour line shown."""
        return [
            (minute, f"{minute // 60:02d}:00")
            for minute in range(self.first_minute, self.last_minute + 1, 60)
        ]

    @property
    def zone_names(self) -> str:
        """'EST', or 'EDT, then EST' for a week in which the clocks change."""
        names: list[str] = []
        for day in self.days:
            for name in _zone_names(day):
                if name not in names:
                    names.append(name)
        return ", then ".join(names)

    @property
    def kinds(self) -> list[Kind]:
        """The legend: every kind of block this viewer can see."""
        return [KINDS[key] for key in (COACH_KINDS if self.is_coach else SESSION_KINDS)]

    @property
    def is_empty(self) -> bool:
        return not self.entries


def _zone_names(day: WeekDay) -> tuple[str, str]:
    """The abbreviations at the start and at the end of `day`."""
    last = day.end - timedelta(microseconds=1)
    return day.start.astimezone(day.tz).tzname(), last.astimezone(day.tz).tzname()


def _shifted(day: date, days: int) -> date | None:
    target = min(max(day + timedelta(days=days), FIRST_WEEK_DAY), LAST_WEEK_DAY)
    return target if week_monday(target) != week_monday(day) else None


# --- reading the week ----------------------------------------------------------------------------


def _session_entries(*, user: User, start: datetime, end: datetime) -> list[WeekEntry]:
    """`user`'s sessions (as coach and as student) and their pending proposals: two queries."""
    entries = []
    for session in session_selectors.sessions_for_calendar_week(user=user, start=start, end=end):
        other = session.student if session.coach_id == user.pk else session.coach
        entries.append(
            WeekEntry(
                start=session.slot.start,
                end=session.slot.end,
                kind=_KIND_OF_STATUS[Status(session.status)],
                detail="New time proposed" if session.status == Status.RESCHEDULING else "",
                person=other.name,
                package=session.package.title,
                session_id=session.pk,
            )
        )
    for proposal in session_selectors.proposals_for_calendar_week(user=user, start=start, end=end):
        session = proposal.session
        other = session.student if session.coach_id == user.pk else session.coach
        mine = proposal.proposed_by_id == user.pk
        entries.append(
            WeekEntry(
                start=proposal.slot.start,
                end=proposal.slot.end,
                kind="proposed",
                detail="Waiting for an answer" if mine else "Answer it",
                person=other.name,
                package=session.package.title,
                session_id=session.pk,
            )
        )
    return entries


def _coach_entries(*, coach: User, start: datetime, end: datetime) -> list[WeekEntry]:
    """The coach's free availability, external busy times and time off."""
    entries = [
        WeekEntry(begin, finish, "available")
        for begin, finish in calendar_selectors.coach_availability_between(
            coach=coach, start=start, end=end
        )
    ]
    entries += [
        WeekEntry(begin, finish, "busy", detail="External calendar")
        for begin, finish in calendar_selectors.coach_busy_between(
            coach=coach, start=start, end=end
        )
    ]
    entries += [
        WeekEntry(away.start, away.end, "timeoff", detail=away.reason)
        for away in calendar_selectors.coach_time_off_between(coach=coach, start=start, end=end)
    ]
    return entries


def week_for_user(*, user: User, day: date, now: datetime | None = None) -> Week:
    """The week of `day` of `user`'s calendar, laid out in their timezone.

    A coach sees their free availability, external busy times and time off, and all their
    sessions (as coach and as student); a student sees their sessions and the new times
    proposed for them, never a coach's availability. A constant number of queries: two for a
    student, seven for a coach (sessions, proposals, three for the availability, busy times,
    time off), plus the coach-profile check.
    """
    now = now or timezone.now()
    tz = user.tzinfo
    monday = week_monday(day)
    start, end = week_bounds(monday, tz)
    is_coach = user.is_coach
    entries = _session_entries(user=user, start=start, end=end)
    if is_coach:
        entries += _coach_entries(coach=user, start=start, end=end)
    entries = sorted(
        (
            replace(entry, start=entry.start.astimezone(tz), end=entry.end.astimezone(tz))
            for entry in entries
        ),
        key=lambda entry: (
            entry.start.astimezone(UTC),
            not entry.is_background,
            entry.end.astimezone(UTC),
            entry.kind,
        ),
    )

    today = now.astimezone(tz).date()
    days = []
    for offset in range(7):
        date_ = monday + timedelta(days=offset)
        days.append(
            WeekDay(
                date=date_,
                tz=tz,
                start=local_midnight(date_, tz),
                end=local_midnight(date_ + timedelta(days=1), tz),
                is_today=date_ == today,
                is_selected=date_ == day,
            )
        )
    for week_day in days:
        changes_clocks = week_day.hours != 24
        for entry in entries:
            block = _block(entry, week_day, changes_clocks)
            if block is not None:
                week_day.blocks.append(block)
        _assign_lanes(week_day.foreground)
        if week_day.is_today:
            week_day.now_minute = _wall_minutes(now.astimezone(tz))

    blocks = [block for week_day in days for block in week_day.blocks]
    needed = [extent for block in blocks if (extent := _needed_minutes(block))]
    first_hour = min([FIRST_HOUR] + [top // 60 for top, _ in needed])
    last_hour = max([LAST_HOUR] + [math.ceil(bottom / 60) for _, bottom in needed])
    first_minute, last_minute = first_hour * 60, last_hour * 60
    for block in blocks:
        block.top, block.bottom = max(block.top, first_minute), min(block.bottom, last_minute)
    for week_day in days:
        if week_day.now_minute is not None and not (
            first_minute <= week_day.now_minute <= last_minute
        ):
            week_day.now_minute = None
    return Week(
        monday=monday,
        selected=day,
        today=today,
        tz=tz,
        is_coach=is_coach,
        days=days,
        entries=entries,
        first_minute=first_minute,
        last_minute=last_minute,
    )


# --- the layout ----------------------------------------------------------------------------------


def _wall_minutes(moment: datetime) -> int:
    return moment.hour * 60 + moment.minute


def _block(entry: WeekEntry, day: WeekDay, changes_clocks: bool) -> Block | None:
    """`entry`'s part on `day`, or None when it does not touch that day."""
    begin = max(entry.start.astimezone(UTC), day.start)
    finish = min(entry.end.astimezone(UTC), day.end)
    if begin >= finish:
        return None
    at_day_end = finish == day.end
    length = math.ceil((finish - begin) / timedelta(minutes=1))
    begin, finish = begin.astimezone(day.tz), finish.astimezone(day.tz)
    top = _wall_minutes(begin)
    bottom = DAY_MINUTES if at_day_end else _wall_minutes(finish)
    if bottom <= top:
        # Inside the hour repeated when the clocks go back: drawn by its real length.
        bottom = top + length
    if bottom - top < MIN_BLOCK_MINUTES:
        bottom = top + MIN_BLOCK_MINUTES
    if bottom > DAY_MINUTES:
        top, bottom = max(0, DAY_MINUTES - (bottom - top)), DAY_MINUTES
    return Block(
        entry=entry,
        start=begin,
        end=finish,
        top=top,
        bottom=bottom,
        show_zone=changes_clocks or entry.start.tzname() != entry.end.tzname(),
    )


# Kinds whose long stretches (days off, an all-day event elsewhere) need not be seen whole.
_LONG_KINDS = ("busy", "timeoff")


def _needed_minutes(block: Block) -> tuple[int, int] | None:
    """The minutes of `block` the hours shown must include.

    All of it, except for busy times and time off that run into the previous or next day:
    only their first or last hour (the rest is drawn as far as the hours shown go), and
    nothing of a block of theirs covering the whole day. So a day off does not stretch every
    day of the week to 24 hours.
    """
    if block.entry.kind not in _LONG_KINDS:
        return block.top, block.bottom
    at_start, at_end = block.top == 0, block.bottom == DAY_MINUTES
    if at_start and at_end:
        return None
    if at_end:
        return block.top, min(block.bottom, block.top + 60)
    if at_start:
        return max(0, block.bottom - 60), block.bottom
    return block.top, block.bottom


def _assign_lanes(blocks: list[Block]) -> None:
    """Place overlapping blocks side by side: each block takes the first free lane of its
    group of (transitively) overlapping blocks, and the group shares the width equally."""
    group: list[Block] = []
    lane_ends: list[int] = []
    group_end = -1
    for block in sorted(blocks, key=lambda block: (block.top, -block.bottom)):
        if group and block.top >= group_end:
            for member in group:
                member.lanes = len(lane_ends)
            group, lane_ends = [], []
        for lane, lane_end in enumerate(lane_ends):
            if lane_end <= block.top:
                block.lane, lane_ends[lane] = lane, block.bottom
                break
        else:
            block.lane = len(lane_ends)
            lane_ends.append(block.bottom)
        group.append(block)
        group_end = max(group_end, block.bottom) if len(group) > 1 else block.bottom
    for member in group:
        member.lanes = len(lane_ends)
