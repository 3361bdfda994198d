"""The week view: one week, Monday first, in the viewer's timezone, with text labels."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from calendars.feeds import week_for_user
from sessions_app import services
from tests.conftest import messages_of
from tests.factories import (
    CoachFactory,
    OfferingFactory,
    StudentFactory,
    TimeSlotFactory,
    make_package,
)

NOW = datetime(2026, 10, 28, 12, 0, tzinfo=UTC)  # Wednesday
pytestmark = [pytest.mark.django_db, pytest.mark.time_machine(NOW, tick=False)]
WEEK = reverse("feeds:week")
DASH = "\u2013"  # the en dash between start and end times


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def slot(coach, start, **fields):
    return TimeSlotFactory(coach=coach, start=start, end=start + timedelta(hours=1), **fields)


def book(coach, start, *, accept=False, student=None):
    package = make_package(offering=OfferingFactory(coach=coach), student=student)
    session = package.sessions.order_by("number").first()
    services.session_book(session=session, slot=slot(coach, start), actor=package.student)
    if accept:
        services.session_accept(session=session, actor=coach)
    session.refresh_from_db()
    return session


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_coach_sees_open_held_booked_and_blocked_slots_with_labels_in_their_timezone(client):
    coach = CoachFactory(timezone="America/New_York")
    slot(coach, utc(2026, 10, 29, 14))  # Thursday 10:00 EDT
    requested = book(coach, utc(2026, 10, 29, 15))
    confirmed = book(coach, utc(2026, 10, 29, 16), accept=True)
    slot(coach, utc(2026, 10, 30, 14), status="BLOCKED", block_source="external")
    slot(coach, utc(2026, 10, 30, 15), status="BLOCKED", block_source="coach")
    client.force_login(coach)

    page = text(client.get(WEEK))

    assert "Week of Monday 26 October 2026" in page
    assert "Times are in America/New_York." in page
    assert f'10:00{DASH}11:00 EDT</time> <span class="what">Open</span>' in page
    assert f'11:00{DASH}12:00 EDT</time> <span class="what">Held: requested</span>' in page
    assert f"{requested.package.title} with {requested.student.name}" in page
    assert f'12:00{DASH}13:00 EDT</time> <span class="what">Booked: confirmed</span>' in page
    assert reverse("sessions:detail", args=[confirmed.pk]) in page
    assert "Busy in one of your external calendars" in page
    assert "Blocked by you" in page


def test_student_sees_their_sessions_and_nothing_else(client):
    coach = CoachFactory()
    student = StudentFactory(timezone="Europe/Berlin")
    mine = book(coach, utc(2026, 10, 29, 14), accept=True, student=student)
    theirs = book(coach, utc(2026, 10, 29, 16), accept=True)
    slot(coach, utc(2026, 10, 29, 18))
    client.force_login(student)

    response = client.get(WEEK)
    page = text(response)

    days = response.context["week"].days
    assert [entry.session_id for day in days for entry in day.entries] == [mine.pk]
    assert f'15:00{DASH}16:00 CET</time> <span class="what">Confirmed</span>' in page
    assert f"with {coach.name}" in page
    assert reverse("sessions:detail", args=[theirs.pk]) not in page
    assert "week-entry--open" not in page.split('<ol class="week-days">', 1)[1]


def test_week_param_shows_that_week_with_previous_and_next_links(client):
    client.force_login(StudentFactory())

    page = text(client.get(WEEK, {"week": "2026-11-04"}))

    assert "Week of Monday 2 November 2026" in page
    assert 'href="?week=2026-10-26" rel="prev"' in page
    assert 'href="?week=2026-11-09" rel="next"' in page
    assert 'href="?week=2026-10-26">This week</a>' in page


def test_malformed_week_shows_a_message_and_the_current_week(client):
    client.force_login(StudentFactory())

    response = client.get(WEEK, {"week": "2026-13-45"})

    assert response.status_code == 200
    assert messages_of(response) == [
        "“2026-13-45” is not a date (use YYYY-MM-DD); showing this week."
    ]
    assert response.context["week"].monday.isoformat() == "2026-10-26"


def test_week_bounds_follow_local_midnight_across_the_dst_change():
    # New York falls back on Sunday 1 November 2026: the week of 26 October lasts 169 hours.
    coach = CoachFactory(timezone="America/New_York")
    late_sunday = slot(coach, utc(2026, 11, 2, 4, 30))  # Sun 1 Nov 23:30 EST
    early_monday = slot(coach, utc(2026, 11, 2, 5, 30))  # Mon 2 Nov 00:30 EST
    monday = datetime(2026, 10, 26).date()

    this_week = week_for_user(user=coach, monday=monday)
    next_week = week_for_user(user=coach, monday=monday + timedelta(days=7))

    assert [(e.start.isoformat(), e.label) for e in this_week.days[6].entries] == [
        ("2026-11-01T23:30:00-05:00", "Open")
    ]
    assert [e.start for e in next_week.days[0].entries] == [early_monday.start]
    assert late_sunday.start not in [e.start for day in next_week.days for e in day.entries]


def test_every_day_is_listed_with_a_text_fallback_when_empty(client):
    client.force_login(CoachFactory())

    page = text(client.get(WEEK))

    for day in ("Monday 26 Oct", "Tuesday 27 Oct", "Sunday 1 Nov"):
        assert day in page
    assert page.count("Nothing scheduled.") == 7
    assert 'Wednesday 28 Oct <span class="badge badge--confirmed">Today</span>' in page


def test_week_view_query_count_does_not_grow_with_entries(client):
    coach = CoachFactory()
    client.force_login(coach)
    book(coach, utc(2026, 10, 29, 10), accept=True)
    with CaptureQueriesContext(connection) as few:
        client.get(WEEK)
    for hour in range(11, 17):
        book(coach, utc(2026, 10, 30, hour), accept=hour % 2 == 0)
        slot(coach, utc(2026, 10, 31, hour))
    with CaptureQueriesContext(connection) as many:
        response = client.get(WEEK)

    assert sum(len(day.entries) for day in response.context["week"].days) == 13
    assert len(few.captured_queries) == len(many.captured_queries)


def test_week_view_needs_a_login(client):
    response = client.get(WEEK)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize("asked", ["9999-12-31", "0001-01-01", "1970-12-31"])
def test_week_outside_the_calendar_range_shows_a_message_and_the_current_week(client, asked):
    client.force_login(CoachFactory(timezone="Pacific/Kiritimati"))  # UTC+14

    response = client.get(WEEK, {"week": asked})

    assert response.status_code == 200
    assert messages_of(response) == ["The calendar covers 1971 to 9998; showing this week."]
    assert response.context["week"].monday.isoformat() == "2026-10-26"


@pytest.mark.parametrize(
    ("asked", "monday", "missing"),
    [("9998-12-31", "9998-12-28", 'rel="next"'), ("1971-01-01", "1970-12-28", 'rel="prev"')],
)
def test_first_and_last_weeks_render_without_a_link_past_the_range(client, asked, monday, missing):
    client.force_login(CoachFactory(timezone="America/Los_Angeles"))  # behind UTC

    response = client.get(WEEK, {"week": asked})

    assert response.status_code == 200
    assert messages_of(response) == []
    assert response.context["week"].monday.isoformat() == monday
    assert missing not in response.content.decode()
