"""How session times read: the viewer's timezone and abbreviation, start-end with the real
length, the year only when it is not this one."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from core.times import clock_range, moment_label, range_label

pytestmark = pytest.mark.time_machine(datetime(2026, 11, 30, 9, 0, tzinfo=UTC), tick=False)
LONDON = ZoneInfo("Europe/London")


@pytest.fixture(autouse=True)
def in_london():
    with timezone.override(LONDON):
        yield


def at(*args) -> datetime:
    return datetime(*args, tzinfo=LONDON)


@pytest.mark.parametrize(
    ("start", "minutes", "label"),
    [
        (at(2026, 12, 3, 11, 0), 90, "Thu 3 Dec, 11:00\u201312:30 GMT"),
        (at(2026, 12, 3, 23, 30), 90, "Thu 3 Dec, 23:30 \u2013 Fri 4 Dec, 01:00 GMT"),
        (at(2027, 1, 4, 9, 0), 30, "Mon 4 Jan 2027, 09:00\u201309:30 GMT"),
        # The clocks go forward at 01:00 GMT on Sun 28 Mar 2027.
        (at(2027, 3, 28, 0, 30), 60, "Sun 28 Mar 2027, 00:30 GMT\u201302:30 BST"),
    ],
)
def test_range_label_shows_start_to_end_in_the_viewers_zone(start, minutes, label):
    start = start.astimezone(UTC)  # as stored; the length is real time, not wall-clock time
    assert range_label(start, start + timedelta(minutes=minutes)) == label


def test_a_utc_time_reads_in_the_viewers_zone():
    start = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    assert range_label(start, start + timedelta(hours=1)) == "Wed 1 Jul, 10:00\u201311:00 BST"
    assert moment_label(start) == "Wed 1 Jul, 10:00 BST"
    assert moment_label(None) == ""


def test_clock_range_marks_an_end_on_the_next_day():
    assert clock_range(at(2026, 12, 3, 11, 0), at(2026, 12, 3, 12, 30)) == "11:00\u201312:30"
    assert clock_range(at(2026, 12, 3, 23, 30), at(2026, 12, 4, 0, 30)) == (
        "23:30\u201300:30 (next day)"
    )


@pytest.mark.parametrize(
    ("start_utc", "label", "clock"),
    [
        # Sun 25 Oct 2026: 01:00-02:00 BST happens, then 01:00-02:00 GMT again.
        (
            datetime(2026, 10, 25, 0, 0, tzinfo=UTC),
            "Sun 25 Oct, 01:00 BST\u201301:00 GMT",
            "01:00 BST\u201301:00 GMT",
        ),
        (
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
            "Sun 25 Oct, 01:30 BST\u201301:30 GMT",
            "01:30 BST\u201301:30 GMT",
        ),
        (
            datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
            "Sun 25 Oct, 01:00\u201302:00 GMT",
            "01:00\u201302:00",
        ),
    ],
)
def test_the_clocks_back_night_names_each_hour_by_its_zone(start_utc, label, clock):
    """The two 01:00s of a clocks-back night read differently (Django's "T" is empty there)."""
    end = start_utc + timedelta(hours=1)
    assert (range_label(start_utc, end), clock_range(start_utc, end)) == (label, clock)
