"""The one datetime format: how pages and messages word a time. In the current timezone (the
viewer's, which the timezone middleware activates), with the zone's abbreviation, and a
session always as its start-end with its real length (printed with an en dash,
"11:00\u201312:30"; plain hyphens here).

    moment_label(dt)          "Thu 3 Dec, 11:00 GMT"
    range_label(start, end)   "Thu 3 Dec, 11:00-12:30 GMT"
                              "Thu 3 Dec, 23:30 - Fri 4 Dec, 01:00 GMT"   (past midnight)
                              "Sun 29 Mar, 00:30 GMT-02:00 BST"           (across a DST change)

The year is added when it is not the current one ("Mon 4 Jan 2027, 09:00 GMT"). The
`session_times` template filters call these, so pages, messages and emails agree.
"""

from datetime import date, datetime

from django.utils import timezone
from django.utils.dateformat import format as date_format

EN_DASH = "\u2013"


def _local(value: datetime) -> datetime:
    return timezone.localtime(value)


def _clock(local: datetime, *, zone: bool = False) -> str:
    """ "11:00", or "11:00 GMT" with `zone`. The abbreviation is Python's `tzname()`, which
    knows which of the two 01:30s of a clocks-back night is meant (Django's "T" is empty
    for such an ambiguous time)."""
    return f"{local:%H:%M} {local.tzname()}" if zone else f"{local:%H:%M}"


def _this_year() -> int:
    return timezone.localtime(timezone.now()).year


def day_label(value: date | datetime, *, long: bool = False) -> str:
    """ "Thu 3 Dec" ("Thursday 3 December" when `long`), with the year when not this year."""
    if isinstance(value, datetime):
        value = _local(value).date()
    text = date_format(value, "l j F" if long else "D j M")
    return text if value.year == _this_year() else f"{text} {value.year}"


def moment_label(value: datetime | None) -> str:
    """One moment: "Thu 3 Dec, 11:00 GMT"; "" for None."""
    if value is None:
        return ""
    local = _local(value)
    return f"{day_label(local)}, {_clock(local, zone=True)}"


def range_label(start: datetime | None, end: datetime | None) -> str:
    """A session's time from its start to its end: "Thu 3 Dec, 11:00-12:30 GMT"."""
    if start is None:
        return ""
    if end is None:
        return moment_label(start)
    begin, finish = _local(start), _local(end)
    if begin.date() != finish.date():
        return f"{day_label(begin)}, {_clock(begin)} {EN_DASH} {moment_label(end)}"
    changes = begin.tzname() != finish.tzname()
    return f"{day_label(begin)}, {_clock(begin, zone=changes)}{EN_DASH}{_clock(finish, zone=True)}"


def clock_range(start: datetime, end: datetime) -> str:
    """Only the clock times, for a list already grouped by day: "11:00-12:30"."""
    begin, finish = _local(start), _local(end)
    # Across a clock change both ends name their zone ("01:30 BST-01:30 GMT").
    changes = begin.tzname() != finish.tzname()
    tail = _clock(finish, zone=changes)
    if begin.date() != finish.date():
        tail = f"{tail} (next day)"
    return f"{_clock(begin, zone=changes)}{EN_DASH}{tail}"


def slot_label(slot) -> str:
    """A reservation (anything with `start` and `end`) as its range; "" for None."""
    return range_label(slot.start, slot.end) if slot is not None else ""


# --- relative times (issue 13): "in 11 h", for deadlines -----------------------------------

URGENT_WITHIN_SECONDS = 6 * 3600
SOON_WITHIN_SECONDS = 24 * 3600


def relative_label(moment: datetime | None, now: datetime) -> str:
    """How far `moment` lies after `now`: "in 40 min" under an hour, "in 11 h" under 48 hours,
    "in 2 days" beyond; "overdue" once past; "" for None. Rounded down, so a deadline is never
    later than the words say."""
    if moment is None:
        return ""
    seconds = (moment - now).total_seconds()
    if seconds <= 0:
        return "overdue"
    if seconds < 60:
        return "in under 1 min"
    if seconds < 3600:
        return f"in {int(seconds // 60)} min"
    if seconds < 48 * 3600:
        return f"in {int(seconds // 3600)} h"
    return f"in {int(seconds // 86400)} days"


def urgency(moment: datetime | None, now: datetime) -> str:
    """ "overdue", "urgent" (under 6 h), "soon" (under 24 h) or "" for a deadline."""
    if moment is None:
        return ""
    seconds = (moment - now).total_seconds()
    if seconds <= 0:
        return "overdue"
    if seconds < URGENT_WITHIN_SECONDS:
        return "urgent"
    if seconds < SOON_WITHIN_SECONDS:
        return "soon"
    return ""
