"""Deadlines in words relative to the page's clock, rounded down, with their urgency."""

from datetime import UTC, datetime, timedelta

import pytest

from core.times import relative_label, urgency

NOW = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ahead", "words", "level"),
    [
        (timedelta(seconds=-1), "overdue", "overdue"),
        (timedelta(0), "overdue", "overdue"),
        (timedelta(seconds=59), "in under 1 min", "urgent"),
        (timedelta(minutes=1), "in 1 min", "urgent"),
        (timedelta(minutes=59, seconds=59), "in 59 min", "urgent"),
        (timedelta(hours=1), "in 1 h", "urgent"),
        (timedelta(hours=5, minutes=59), "in 5 h", "urgent"),
        (timedelta(hours=6), "in 6 h", "soon"),
        (timedelta(hours=11, minutes=59), "in 11 h", "soon"),
        (timedelta(hours=23, minutes=59), "in 23 h", "soon"),
        (timedelta(hours=24), "in 24 h", ""),
        (timedelta(hours=47, minutes=59), "in 47 h", ""),
        (timedelta(hours=48), "in 2 days", ""),
        (timedelta(days=6, hours=23), "in 6 days", ""),
    ],
)
def test_a_deadline_reads_relative_to_now_rounded_down(ahead, words, level):
    assert relative_label(NOW + ahead, NOW) == words
    assert urgency(NOW + ahead, NOW) == level


def test_no_deadline_reads_as_nothing():
    assert relative_label(None, NOW) == ""
    assert urgency(None, NOW) == ""
