"""Pure arithmetic on [start, end) intervals of aware datetimes, and the expansion of weekly
rules into dates. No database access: the selectors feed these with rows they read."""

import bisect
import zoneinfo
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

Interval = tuple[datetime, datetime]
MIDNIGHT = time(0, 0)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping intervals covering the same time (touching ones joined)."""
    merged: list[Interval] = []
    for begin, finish in sorted(intervals):
        if merged and begin <= merged[-1][1]:
            if finish > merged[-1][1]:
                merged[-1] = (merged[-1][0], finish)
        else:
            merged.append((begin, finish))
    return merged


def overlaps(busy: list[Interval], begin: datetime, finish: datetime) -> bool:
    """Whether [begin, finish) overlaps any of the merged `busy` intervals."""
    # The last busy interval starting before `finish` has the latest end of those that could
    # overlap (merged intervals are disjoint and sorted).
    index = bisect.bisect_left(busy, (finish,)) - 1
    return index >= 0 and busy[index][1] > begin


def subtract(free: list[Interval], taken: list[Interval]) -> list[Interval]:
    """The merged `free` intervals without the merged `taken` ones (both sorted, disjoint)."""
    result: list[Interval] = []
    index = 0
    for begin, finish in free:
        while index < len(taken) and taken[index][1] <= begin:
            index += 1
        cursor, scan = begin, index
        while scan < len(taken) and taken[scan][0] < finish:
            if taken[scan][0] > cursor:
                result.append((cursor, taken[scan][0]))
            cursor = max(cursor, taken[scan][1])
            scan += 1
        if cursor < finish:
            result.append((cursor, finish))
    return result


def contains(free: list[Interval], begin: datetime, finish: datetime) -> bool:
    """Whether [begin, finish) lies inside one of the merged `free` intervals."""
    index = bisect.bisect_right(free, (begin, datetime.max.replace(tzinfo=UTC))) - 1
    return index >= 0 and free[index][0] <= begin and free[index][1] >= finish


def local_to_utc(day: date, wall: time, tz: zoneinfo.ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `wall` on `day` in `tz`.

    An ambiguous time (clocks going back) means its first occurrence; a time that does not exist
    (clocks going forward) moves forward by the gap, as a wall clock would.
    """
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)


def local_time_exists(day: date, wall: time, tz: zoneinfo.ZoneInfo) -> bool:
    """False for a wall-clock time skipped by a DST change (e.g. 01:30 on a spring-forward day
    in London)."""
    naive = datetime.combine(day, wall)
    return local_to_utc(day, wall, tz).astimezone(tz).replace(tzinfo=None) == naive


def wall_window(day: date, start: time, end: time, tz: zoneinfo.ZoneInfo) -> Interval:
    """The UTC interval of the wall-clock window start..end on `day` (end 00:00: midnight)."""
    finish_day = day + timedelta(days=1) if end == MIDNIGHT else day
    return local_to_utc(day, start, tz), local_to_utc(finish_day, end, tz)


def rule_occurrences(rules, first: date, last: date, tz: zoneinfo.ZoneInfo) -> list[Interval]:
    """Every UTC interval the weekly `rules` (weekday, start_time, end_time, valid_from,
    valid_until) define on the local dates first..last, inclusive."""
    by_weekday: dict[int, list] = {}
    for rule in rules:
        by_weekday.setdefault(rule.weekday, []).append(rule)
    intervals: list[Interval] = []
    day = first
    while day <= last:
        for rule in by_weekday.get(day.weekday(), ()):
            if rule.valid_from and day < rule.valid_from:
                continue
            if rule.valid_until and day > rule.valid_until:
                continue
            intervals.append(wall_window(day, rule.start_time, rule.end_time, tz))
        day += timedelta(days=1)
    return intervals
