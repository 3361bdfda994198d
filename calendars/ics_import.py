"""Reading an iCalendar file into busy times (no network, no database).

`read_calendar` is the one reader: `calendars.sync.fetch_busy` calls it on what it fetched.
"""

import itertools
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from celery.exceptions import SoftTimeLimitExceeded

from calendars.errors import CalendarFetchError
from calendars.intervals import Interval

logger = logging.getLogger(__name__)


@dataclass
class CalendarRead:
    """What one calendar file says: its busy times, and what was skipped or repaired (each a
    sentence for the coach)."""

    busy: list[Interval]
    notes: list[str] = field(default_factory=list)


def read_calendar(data: bytes, *, start: datetime, end: datetime, tz: ZoneInfo) -> CalendarRead:
    """The busy times of `data` overlapping `start`..`end` (see `busy_intervals`), with notes."""
    return CalendarRead(busy=busy_intervals(data, start=start, end=end, tz=tz))


def _as_utc(value: date | datetime, tz: ZoneInfo) -> datetime:
    """An iCalendar time as an aware UTC datetime: all-day dates and floating times in `tz`."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, datetime.min.time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


# The most events one calendar may contribute within a coach's booking horizon.
MAX_BUSY_TIMES = 2000


def busy_intervals(data: bytes, *, start: datetime, end: datetime, tz: ZoneInfo) -> list[Interval]:
    """The busy times in an iCalendar file that overlap `start`..`end`, in UTC, sorted.

    One interval per busy occurrence, as the calendar has it: neither clipped to the range (an
    event under way keeps its start, one running past `end` its end, so the same event reads
    the same at every sync) nor merged with its neighbours (an event added next to a busy time
    is a busy time of its own, first seen later). Identical ones count once.

    Recurring events are expanded (RRULE, RDATE, EXDATE, moved occurrences); transparent
    ("free") and cancelled events are skipped; all-day events are busy whole days in `tz`.
    """
    if b"BEGIN:VCALENDAR" not in data[:4096].upper():
        raise CalendarFetchError(
            "That address did not return a calendar file (.ics). Use the secret iCal "
            "address from your calendar's settings, not the web page's address."
        )
    try:
        calendar = icalendar.Calendar.from_ical(data)
        # Expanded lazily in time order, and at most one past the cap: a rule repeating every
        # minute for years must not be expanded whole (`between` would build the full list).
        query = recurring_ical_events.of(calendar, skip_bad_series=True)
        occurrences = list(
            itertools.islice(
                itertools.takewhile(
                    lambda event: _as_utc(event["DTSTART"].dt, tz) < end, query.after(start)
                ),
                MAX_BUSY_TIMES + 1,
            )
        )
    except SoftTimeLimitExceeded:
        raise  # the task's time limit (an Exception too) is not a bad calendar
    except Exception as exc:  # icalendar and the expander raise many kinds for bad input
        logger.info("unreadable calendar file: %r", exc)
        raise CalendarFetchError(f"The calendar file could not be read ({exc}).") from exc
    if len(occurrences) > MAX_BUSY_TIMES:
        raise CalendarFetchError(
            f"This calendar has more than {MAX_BUSY_TIMES:,} events in the time students can "
            "book; Coachbook reads at most that many. Share a calendar with fewer events (for "
            "example without frequent repeating reminders). Its previous busy times still count."
        )
    busy: set[Interval] = set()
    for event in occurrences:
        if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
            continue
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            continue
        dtstart = event.get("DTSTART")
        if dtstart is None:
            continue
        first = dtstart.dt
        if event.get("DTEND") is not None:
            last = event.get("DTEND").dt
        elif event.get("DURATION") is not None:
            last = first + event.get("DURATION").dt
        elif isinstance(first, datetime):
            continue  # an instant takes no time
        else:
            last = first + timedelta(days=1)
        begin, finish = _as_utc(first, tz), _as_utc(last, tz)
        if finish > begin and finish > start and begin < end:
            busy.add((begin, finish))
    return sorted(busy)
