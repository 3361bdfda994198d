"""How the session pages and their messages word a time: in the viewer's timezone (the one
`accounts.middleware` activated), with the zone's abbreviation, and a session always as its
start-end with its real length (printed with an en dash, "11:00\u201312:30"; plain hyphens
here).

    moment_label(dt)          "Thu 3 Dec, 11:00 GMT"
    range_label(start, end)   "Thu 3 Dec, 11:00-12:30 GMT"
                              "Thu 3 Dec, 23:30 - Fri 4 Dec, 01:00 GMT"   (past midnight)
                              "Sun 29 Mar, 00:30 GMT-02:00 BST"           (across a DST change)

The year is added when it is not the current one ("Mon 4 Jan 2027, 09:00 GMT"). The template
filters in `sessions_app.templatetags.session_times` call these, so pages and messages agree.
"""

from datetime import date, datetime

from django.utils import timezone
from django.utils.dateformat import format as date_format

EN_DASH = "\u2013"


def _local(value: datetime) -> datetime:
    return timezone.localtime(value)


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
    return f"{day_label(local)}, {date_format(local, 'H:i T')}"


def range_label(start: datetime | None, end: datetime | None) -> str:
    """A session's time from its start to its end: "Thu 3 Dec, 11:00-12:30 GMT"."""
    if start is None:
        return ""
    if end is None:
        return moment_label(start)
    begin, finish = _local(start), _local(end)
    if begin.date() != finish.date():
        return f"{day_label(begin)}, {date_format(begin, 'H:i')} {EN_DASH} {moment_label(end)}"
    if begin.tzname() != finish.tzname():
        return (
            f"{day_label(begin)}, {date_format(begin, 'H:i T')}{EN_DASH}"
            f"{date_format(finish, 'H:i T')}"
        )
    return f"{day_label(begin)}, {date_format(begin, 'H:i')}{EN_DASH}{date_format(finish, 'H:i T')}"


def clock_range(start: datetime, end: datetime) -> str:
    """Only the clock times, for a list already grouped by day: "11:00-12:30"."""
    begin, finish = _local(start), _local(end)
    tail = date_format(finish, "H:i")
    if begin.date() != finish.date():
        tail = f"{tail} (next day)"
    return f"{date_format(begin, 'H:i')}{EN_DASH}{tail}"


def slot_label(slot) -> str:
    """A reservation (anything with `start` and `end`) as its range; "" for None."""
    return range_label(slot.start, slot.end) if slot is not None else ""
