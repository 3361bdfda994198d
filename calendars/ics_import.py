"""Reading an iCalendar file into busy times (no network, no database).

`read_calendar` is the one reader: `calendars.sync.fetch_busy` calls it on what it fetched.

Bounded: whatever a file says, reading it costs time and memory in proportion to the file's
size and to the sync window, never to what a repeat rule asks for. Before parsing, events that
neither repeat nor touch the window (a calendar's years of past events) are dropped by a cheap
line scan, and the rest are capped (`MAX_EVENTS`, `MAX_LINES`, `MAX_EXCEPTIONS`); repeat
rules are expanded lazily, one occurrence at a time, simple ones starting just before the
window (`FREQ=MINUTELY` since 2010 costs the same as since yesterday); a series stops at
`MAX_OCCURRENCES_PER_SERIES`, the calendar at `MAX_BUSY_TIMES`, a rule at `MAX_RULE_STEPS`
occurrences looked at, and the whole reading at `READ_CPU_SECONDS` of this thread's CPU
time. Over a cap the calendar is refused with a sentence for the coach (its previous busy
times still count).

Lenient where calendar programs are sloppy: a repeat rule with stray spaces or lower case
(``BYDAY=MO, TU, WE``) is repaired; one that still cannot be read keeps its event as a single
occurrence, with a note. Windows and Exchange TZIDs (``Eastern Standard Time``,
``"(UTC-05:00) Eastern Time (US & Canada)"``) are read as their IANA zone (see
`calendars.windows_zones`), ahead of any VTIMEZONE block of that name; an unknown TZID without
a VTIMEZONE falls back to the coach's zone, with a note. VFREEBUSY periods (all but FBTYPE=FREE)
are busy.
"""

import heapq
import logging
import re
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
from celery.exceptions import SoftTimeLimitExceeded
from dateutil import rrule as dateutil_rrule

from calendars import windows_zones
from calendars.errors import CalendarFetchError
from calendars.intervals import Interval

logger = logging.getLogger(__name__)

# The most events one calendar may contribute within a coach's booking horizon.
MAX_BUSY_TIMES = 2000
# The most occurrences of one repeating event within the horizon (one series cannot exceed the
# calendar's cap either).
MAX_OCCURRENCES_PER_SERIES = MAX_BUSY_TIMES
# The most events (VEVENT and VFREEBUSY blocks) read from one file, after dropping the ones
# that neither repeat nor touch the window.
MAX_EVENTS = 5000
# The most lines parsed (after dropping those events): parsing is what a file costs most,
# some 30 µs a line, and it cannot be interrupted.
MAX_LINES = 60_000
# The most occurrences of one repeat rule looked at, before and within the window.
MAX_RULE_STEPS = 100_000
# The most EXDATE/RDATE values of one event.
MAX_EXCEPTIONS = 10_000
# The CPU time (of the reading thread) one calendar file may take to read.
READ_CPU_SECONDS = 5.0

_KEEP_ANYWAY = "Its previous busy times still count."
_FEWER = "Share a calendar with fewer events (for example without frequent repeating reminders)."


@dataclass
class CalendarRead:
    """What one calendar file says: its busy times, and what was skipped or repaired (each a
    sentence for the coach)."""

    busy: list[Interval]
    notes: list[str] = field(default_factory=list)


def read_calendar(data: bytes, *, start: datetime, end: datetime, tz: ZoneInfo) -> CalendarRead:
    """The busy times of `data` overlapping `start`..`end`, with notes for the coach.

    One interval per busy occurrence, as the calendar has it: neither clipped to the range (an
    event under way keeps its start, one running past `end` its end, so the same event reads
    the same at every sync) nor merged with its neighbours (an event added next to a busy time
    is a busy time of its own, first seen later). Identical ones count once. Sorted, in UTC.

    Recurring events are expanded (RRULE, RDATE, EXDATE, moved occurrences); transparent
    ("free") and cancelled events are skipped; all-day events are busy whole days in `tz`.
    """
    if b"BEGIN:VCALENDAR" not in data[:4096].upper():
        raise CalendarFetchError(
            "That address did not return a calendar file (.ics). Use the secret iCal "
            "address from your calendar's settings, not the web page's address."
        )
    reader = _Reader(start=start, end=end, tz=tz)
    try:
        text = _prefilter(data, start=start, end=end)
        calendar = icalendar.Calendar.from_ical(text)
        busy = reader.read(calendar)
    except (SoftTimeLimitExceeded, CalendarFetchError):
        raise  # the task's time limit (an Exception too) is not a bad calendar
    except Exception as exc:  # icalendar raises many kinds for bad input
        logger.info("unreadable calendar file: %r", exc)
        raise CalendarFetchError(f"The calendar file could not be read ({exc}).") from exc
    return CalendarRead(busy=sorted(busy), notes=reader.notes())


def busy_intervals(data: bytes, *, start: datetime, end: datetime, tz: ZoneInfo) -> list[Interval]:
    """The busy times of `read_calendar`, without its notes."""
    return read_calendar(data, start=start, end=end, tz=tz).busy


def _as_utc(value: date | datetime, tz: ZoneInfo) -> datetime:
    """An iCalendar time as an aware UTC datetime: all-day dates and floating times in `tz`."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, datetime.min.time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def _too_many_events(detail: str = "") -> CalendarFetchError:
    return CalendarFetchError(
        f"This calendar has more than {MAX_BUSY_TIMES:,} events in the time students can "
        f"book{detail}; Coachbook reads at most that many. {_FEWER} {_KEEP_ANYWAY}"
    )


def _too_many_exceptions() -> CalendarFetchError:
    return CalendarFetchError(
        f"An event in this calendar lists more than {MAX_EXCEPTIONS:,} added or skipped "
        f"dates of its repeat rule; Coachbook reads at most that many. {_KEEP_ANYWAY}"
    )


# --- before parsing: a line scan ---------------------------------------------------------------

_FOLD = re.compile(r"\r?\n[ \t]")
_REPEATING = {"RRULE", "RDATE", "EXRULE"}


def _date_of(line: str) -> date | None:
    """The date a DTSTART/DTEND line's value starts with (the value follows the last colon:
    a quoted TZID may hold colons, a date-time holds none)."""
    value = line.rsplit(":", 1)[-1].strip()
    if len(value) >= 8 and value[:8].isdigit():
        try:
            return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
        except ValueError:
            return None
    return None


def _duration_of(line: str) -> timedelta | None:
    try:
        return abs(icalendar.vDuration.from_ical(line.rsplit(":", 1)[-1].strip()))
    except Exception:
        return None


def _prefilter(data: bytes, *, start: datetime, end: datetime) -> str:
    """The file's text without the VEVENTs that neither repeat nor come within two days of the
    window (so a calendar's history costs a line scan, not a parse); refused when more than
    `MAX_EVENTS` events are left."""
    text = _FOLD.sub("", data.decode("utf-8", errors="replace"))
    first, last = (start - timedelta(days=2)).date(), (end + timedelta(days=2)).date()
    kept: list[str] = []
    block: list[str] | None = None
    events = exceptions = 0
    for line in text.splitlines():
        upper = line[:16].upper()
        if block is None:
            if upper.startswith("BEGIN:VEVENT"):
                block = [line]
                continue
            if upper.startswith("BEGIN:VFREEBUSY"):
                events += 1
            kept.append(line)
            continue
        block.append(line)
        if upper.startswith(("EXDATE", "RDATE")):
            exceptions += line.count(",") + 1
            if exceptions > MAX_EXCEPTIONS:
                raise _too_many_exceptions()
        if not upper.startswith("END:VEVENT"):
            continue
        exceptions = 0
        if _touches(block, first, last):
            events += 1
            if events > MAX_EVENTS:
                raise CalendarFetchError(
                    f"This calendar has more than {MAX_EVENTS:,} events that repeat or fall "
                    f"in the time students can book; Coachbook reads at most that many. "
                    f"{_FEWER} {_KEEP_ANYWAY}"
                )
            kept.extend(block)
        block = None
    if block is not None:
        kept.extend(block)  # unterminated: let the parser say so
    if len(kept) > MAX_LINES:
        raise CalendarFetchError(
            f"This calendar is too large to read: its events that repeat or fall in the time "
            f"students can book take more than {MAX_LINES:,} lines. {_FEWER} {_KEEP_ANYWAY}"
        )
    return "\r\n".join(kept) + "\r\n"


def _touches(block: list[str], first: date, last: date) -> bool:
    """Whether a VEVENT block may have a busy time between the dates `first` and `last`."""
    begins = finishes = lasts = None
    nested = 0
    for line in block[1:-1]:
        name = line.split(":", 1)[0].split(";", 1)[0].strip().upper()
        if name == "BEGIN":
            nested += 1  # a VALARM's properties are not the event's
        elif name == "END":
            nested -= 1
        elif nested:
            continue
        elif name == "RECURRENCE-ID":
            moved = _date_of(line)  # a moved occurrence: its old time matters too
            if moved is None or first <= moved <= last:
                return True
        elif name in _REPEATING:
            return True  # read it properly
        elif name == "DURATION":
            lasts = _duration_of(line)
            if lasts is None:
                return True
        elif name == "DTSTART":
            begins = _date_of(line)
        elif name == "DTEND":
            finishes = _date_of(line)
    if begins is None:
        return True
    if begins > last:
        return False
    if finishes is None and lasts is not None:
        finishes = begins + lasts + timedelta(days=1)
    return (finishes or begins) >= first


# --- after parsing -----------------------------------------------------------------------------


def _name(component) -> str:
    summary = " ".join(str(component.get("SUMMARY", "")).split())
    if summary:
        return f"“{summary[:80]}{'…' if len(summary) > 80 else ''}”"
    dtstart = component.get("DTSTART")
    when = getattr(dtstart, "dt", None)
    return f"An event on {when:%Y-%m-%d}" if isinstance(when, date) else "An event"


def _repair_rule(text: str) -> str:
    """A repeat rule with the sloppiness calendar programs write removed: spaces anywhere,
    lower case, a repeated ``RRULE:`` prefix, empty parts and list items."""
    text = re.sub(r"[\s\\]+", "", text).upper()
    if text.startswith("RRULE:"):
        text = text[len("RRULE:") :]
    parts = []
    for part in text.split(";"):
        if "=" not in part:
            continue
        key, _, value = part.partition("=")
        value = ",".join(item for item in value.split(",") if item)
        if key and value:
            parts.append(f"{key}={value}")
    return ";".join(parts)


def _rule_texts(component) -> list[str]:
    rules = component.get("RRULE")
    if rules is None:
        return []
    if not isinstance(rules, list):
        rules = [rules]
    texts = []
    for rule in rules:
        # A rule icalendar could not read is kept as its text (vBroken, a str).
        raw = rule.to_ical() if isinstance(rule, icalendar.vRecur) else str(rule)
        texts.append(raw.decode() if isinstance(raw, bytes) else raw)
    return texts


_SIMPLE_STEP = {
    "SECONDLY": timedelta(seconds=1),
    "MINUTELY": timedelta(minutes=1),
    "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1),
    "WEEKLY": timedelta(weeks=1),
}


class _Overrun(Exception):
    """The CPU deadline passed while dateutil searched for an occurrence."""


class _PastWindow(Exception):
    """dateutil searched past the window's year without finding an occurrence."""


_DATEUTIL_ITER = dateutil_rrule.rrule._iter.__code__


class _Watchdog:
    """A profile hook (`sys.setprofile`, this thread only) that every few thousand calls
    raises `_Overrun` once the thread's CPU time passes `deadline`, or `_PastWindow` once
    dateutil's search loop has reached a year after `last_year`."""

    def __init__(self, deadline: float, last_year: int):
        self.deadline, self.last_year, self.calls = deadline, last_year, 0

    def __call__(self, frame, event, arg) -> None:
        self.calls += 1
        if self.calls % 4096:
            return
        if time.thread_time() > self.deadline:
            raise _Overrun
        for caller in (frame, frame.f_back):
            if caller is not None and caller.f_code is _DATEUTIL_ITER:
                if caller.f_locals.get("year", 0) > self.last_year:
                    raise _PastWindow
                return


class _Reader:
    """Turns a parsed calendar into busy intervals, counting against the caps."""

    def __init__(self, *, start: datetime, end: datetime, tz: ZoneInfo):
        self.start, self.end, self.tz = start, end, tz
        self.deadline = time.thread_time() + READ_CPU_SECONDS
        self.busy: set[Interval] = set()
        self.unknown_zones: set[str] = set()
        self.bad_rules: list[str] = []
        self.ticks = 0

    def notes(self) -> list[str]:
        notes = [
            f"{name}: its repeat rule could not be read, so only its first time counts as busy."
            for name in self.bad_rules
        ]
        notes += [
            f"Times in the time zone “{zone}”, which Coachbook does not know, were read in your "
            f"own time zone ({self.tz.key})."
            for zone in sorted(self.unknown_zones)
        ]
        return notes

    # -- limits

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks % 256 == 0 and time.thread_time() > self.deadline:
            raise self.too_slow()

    @staticmethod
    def too_slow() -> CalendarFetchError:
        return CalendarFetchError(
            f"This calendar takes too long to read (more than {READ_CPU_SECONDS:g} "
            f"seconds); Coachbook stops there. Share a calendar with fewer events or "
            f"simpler repeating ones. {_KEEP_ANYWAY}"
        )

    def overlaps(self, begin: datetime, finish: datetime) -> bool:
        return finish > begin and finish > self.start and begin < self.end

    def add(self, begin: datetime, finish: datetime) -> bool:
        """Counts a busy occurrence; whether it overlaps the window."""
        if self.overlaps(begin, finish):
            self.busy.add((begin, finish))
            if len(self.busy) > MAX_BUSY_TIMES:
                raise _too_many_events()
            return True
        return False

    # -- times

    def zone_of(self, prop) -> ZoneInfo | None:
        """The zone a property's TZID names (mapped from Windows names), or None."""
        params = getattr(prop, "params", None) or {}
        tzid = params.get("TZID")
        if not tzid:
            return None
        found = windows_zones.zone(str(tzid))
        if found is None:
            self.unknown_zones.add(str(tzid))
        return found

    def value(self, value, prop) -> date | datetime:
        """A DATE or DATE-TIME value of `prop`, in its TZID's (mapped) zone when it has one."""
        if isinstance(value, datetime):
            zone = self.zone_of(prop)
            if zone is not None:
                return value.replace(tzinfo=zone)
            if value.tzinfo is not None:
                self.unknown_zones.discard(str((prop.params or {}).get("TZID", "")))
        return value

    def utc(self, value: date | datetime) -> datetime:
        return _as_utc(value, self.tz)

    # -- reading

    def read(self, calendar) -> set[Interval]:
        overridden: dict[str, set[datetime]] = {}
        masters, singles = [], []
        for component in calendar.walk("VEVENT"):
            self.tick()
            if component.get("DTSTART") is None:
                continue
            recurrence_id = component.get("RECURRENCE-ID")
            if recurrence_id is not None:
                moved = self.utc(self.value(recurrence_id.dt, recurrence_id))
                overridden.setdefault(str(component.get("UID", "")), set()).add(moved)
                singles.append(component)
            elif component.get("RRULE") is not None or component.get("RDATE") is not None:
                masters.append(component)
            else:
                singles.append(component)
        for component in singles:
            self.tick()
            if self.is_busy(component):
                begin, length = self.first_and_length(component)
                if length is not None:
                    self.add_occurrence(begin, length)
        for component in masters:
            if self.is_busy(component):
                self.read_series(component, overridden.get(str(component.get("UID", "")), set()))
        for component in calendar.walk("VFREEBUSY"):
            self.read_free_busy(component)
        # A TZID with a VTIMEZONE of its own was read in that zone: no note for it.
        self.unknown_zones -= {
            str(vtimezone.get("TZID", "")) for vtimezone in calendar.walk("VTIMEZONE")
        }
        return self.busy

    @staticmethod
    def is_busy(component) -> bool:
        if str(component.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
            return False
        return str(component.get("STATUS", "")).upper() != "CANCELLED"

    def first_and_length(self, component) -> tuple[date | datetime, timedelta | None]:
        """The event's start, and how long it lasts (None: an instant, which is not busy)."""
        dtstart = component["DTSTART"]
        first = self.value(dtstart.dt, dtstart)
        if component.get("DTEND") is not None:
            dtend = component["DTEND"]
            last = self.value(dtend.dt, dtend)
            if isinstance(first, datetime) or isinstance(last, datetime):
                return first, self.utc(last) - self.utc(first)
            return first, last - first
        if component.get("DURATION") is not None:
            return first, component["DURATION"].dt
        if isinstance(first, datetime):
            return first, None
        return first, timedelta(days=1)

    def add_occurrence(self, begin: date | datetime, length: timedelta) -> bool:
        if isinstance(begin, datetime):
            first = self.utc(begin)
            return self.add(first, first + length)
        # An all-day event: whole days in the coach's zone (a day may have 23 or 25 hours).
        return self.add(self.utc(begin), self.utc(begin + length))

    def read_series(self, component, overridden: set[datetime]) -> None:
        name = _name(component)
        first, length = self.first_and_length(component)
        if length is None:
            return
        all_day = not isinstance(first, datetime)
        zone = None if all_day else first.tzinfo
        wall = datetime.combine(first, datetime.min.time()) if all_day else first
        wall = wall.replace(tzinfo=None)

        def utc_of(moment: datetime) -> datetime:
            return moment.replace(tzinfo=zone or self.tz).astimezone(UTC)

        streams: list[Iterator[datetime]] = []
        bad = False
        for text in _rule_texts(component):
            rule = self.rule(text, wall, zone, length)
            if rule is None:
                bad = True
            else:
                streams.append(utc_of(moment) for moment in self.expanding(rule, name))
        extra = self.dates(component.get("RDATE"), zone)
        excluded = set(self.dates(component.get("EXDATE"), zone))
        if bad and not streams:
            self.bad_rules.append(name)
        streams.append(iter(sorted({utc_of(wall), *extra})))

        in_window = steps = 0
        limit = self.end + timedelta(days=1)  # rules run in wall time: an hour of slack at DST
        previous = None
        for begin in heapq.merge(*streams):
            self.tick()
            if begin >= limit:
                break
            steps += 1
            if steps > MAX_RULE_STEPS:
                raise CalendarFetchError(
                    f"{name} repeats so often (more than {MAX_RULE_STEPS:,} times since it "
                    f"began) that Coachbook cannot read it. {_FEWER} {_KEEP_ANYWAY}"
                )
            if begin == previous or begin in excluded or begin in overridden:
                continue
            previous = begin
            if all_day:
                local = begin.astimezone(self.tz).replace(tzinfo=None).date()
                begin, finish = self.utc(local), self.utc(local + length)
            else:
                finish = begin + length
            if self.overlaps(begin, finish):
                in_window += 1
                if in_window > MAX_OCCURRENCES_PER_SERIES:
                    who = "an event" + name[len("An event") :] if name[0] == "A" else name
                    raise _too_many_events(
                        f" ({who} alone repeats more than {MAX_OCCURRENCES_PER_SERIES:,} times)"
                    )
                self.add(begin, finish)

    def expanding(self, rule, name: str) -> Iterator[datetime]:
        """A dateutil rule's occurrences, each looked for under the CPU deadline: dateutil may
        search a long time without yielding (a rule matching nothing runs to the year 9999),
        so a profile hook on this thread checks the deadline while it searches. A rule that
        fails while expanding ends there (with a note if it yielded nothing)."""
        moments = iter(rule)
        last_year = (self.end + timedelta(days=2)).astimezone(UTC).year + 1
        watchdog = _Watchdog(self.deadline, last_year)
        found = False
        while True:
            previous = sys.getprofile()
            sys.setprofile(watchdog)
            try:
                moment = next(moments)
            except StopIteration:
                return
            except _Overrun:
                raise self.too_slow() from None
            except _PastWindow:
                return
            except SoftTimeLimitExceeded:
                raise
            except Exception as exc:
                logger.info("repeat rule failed while expanding: %r", exc)
                if not found:
                    self.bad_rules.append(name)
                return
            finally:
                sys.setprofile(previous)
            found = True
            yield moment

    def rule(self, text: str, wall: datetime, zone, length: timedelta):
        """A lazy dateutil rule in wall time for one RRULE (repaired), or None if unreadable.

        A rule without COUNT repeating at most weekly starts a whole number of its periods
        later, just before the window (the BY-parts filter within a period, so they match the
        same times): its cost is proportional to the window, not to its age."""
        repaired = _repair_rule(text)
        parts = dict(part.partition("=")[::2] for part in repaired.split(";"))
        until_text = parts.pop("UNTIL", None)
        try:
            dtstart = wall
            step = _SIMPLE_STEP.get(parts.get("FREQ", ""))
            if step is not None and "COUNT" not in parts:
                step *= int(parts.get("INTERVAL", "1") or "1")
                window = (
                    self.start.astimezone(zone or self.tz).replace(tzinfo=None)
                    - length
                    - timedelta(days=2)
                )
                if step > timedelta(0) and dtstart < window:
                    dtstart += step * ((window - dtstart) // step)
            body = ";".join(f"{key}={value}" for key, value in parts.items())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rule = dateutil_rrule.rrulestr(body, dtstart=dtstart, cache=False)
                # Never past the window (dateutil checks UNTIL only on a match, though: a rule
                # matching nothing, such as 30 February, is stopped by `expanding`).
                until = self.end.astimezone(zone or self.tz).replace(tzinfo=None)
                until += timedelta(days=2)
                if until_text is not None:
                    until = min(until, self.until(until_text, zone))
                rule = rule.replace(until=until)
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            logger.info("unreadable repeat rule %r: %r", text, exc)
            return None
        return rule

    def until(self, text: str, zone) -> datetime:
        """UNTIL as a wall time of the series: UTC ones moved into its zone, dates to their
        end."""
        if len(text) == 8:
            return datetime.strptime(text, "%Y%m%d") + timedelta(days=1, seconds=-1)
        if text.endswith("Z"):
            moment = datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            return moment.astimezone(zone or self.tz).replace(tzinfo=None)
        return datetime.strptime(text, "%Y%m%dT%H%M%S")

    def dates(self, props, zone) -> list[datetime]:
        """EXDATE or RDATE values as UTC starts (a PERIOD counts by its start)."""
        if props is None:
            return []
        if not isinstance(props, list):
            props = [props]
        found: list[datetime] = []
        for prop in props:
            for item in getattr(prop, "dts", []):
                value = item.dt
                if isinstance(value, tuple):
                    value = value[0]
                value = self.value(value, prop)
                if isinstance(value, datetime) and value.tzinfo is None and zone is not None:
                    value = value.replace(tzinfo=zone)
                found.append(self.utc(value))
                if len(found) > MAX_EXCEPTIONS:
                    raise _too_many_exceptions()
                self.tick()
        return found

    def read_free_busy(self, component) -> None:
        """FREEBUSY periods are busy unless FBTYPE=FREE (both start/end and start/duration)."""
        props = component.get("FREEBUSY")
        if props is None:
            return
        if not isinstance(props, list):
            props = [props]
        for prop in props:
            self.tick()
            kind = str((getattr(prop, "params", None) or {}).get("FBTYPE", "BUSY")).upper()
            if kind == "FREE":
                continue
            periods = getattr(prop, "dts", None) or [prop]
            for period in periods:
                begin, finish = period.dt if isinstance(period.dt, tuple) else (None, None)
                if begin is None:
                    continue
                if isinstance(finish, timedelta):
                    finish = begin + finish
                self.add(self.utc(begin), self.utc(finish))
