"""The week view: a time grid of one week (Monday first) in the viewer's timezone, with
availability, sessions, proposals, busy times and time off as blocks sized by their length."""

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.urls import reverse

from calendars.models import BusyTime
from calendars.services import time_off_add
from calendars.week import week_for_user
from sessions_app import services
from tests.conftest import messages_of
from tests.factories import (
    AvailabilityWindowFactory,
    CoachFactory,
    OfferingFactory,
    StudentFactory,
    make_package,
    make_rule,
)

NOW = datetime(2026, 10, 28, 12, 0, tzinfo=UTC)  # Wednesday
MONDAY = date(2026, 10, 26)
pytestmark = [pytest.mark.django_db, pytest.mark.time_machine(NOW, tick=False)]
WEEK = reverse("feeds:week")
DASH = "\u2013"  # the en dash between start and end times
BERLIN = ZoneInfo("Europe/Berlin")  # CET (UTC+1) all that week
NEW_YORK = ZoneInfo("America/New_York")  # falls back on Sunday 1 November 2026


def local(tz, *args) -> datetime:
    return datetime(*args, tzinfo=tz)


def before(start):
    """Early enough to book or move a session to `start` (earlier in this week is past)."""
    return time_machine.travel(min(NOW, start - timedelta(days=2)), tick=False)


def book(coach, start, *, minutes=60, student=None, accept=False):
    """A session of `minutes` booked at `start` (a window opened for it), accepted if asked."""
    AvailabilityWindowFactory(coach=coach, start=start, end=start + timedelta(minutes=minutes))
    offering = OfferingFactory(coach=coach, duration_minutes=minutes)
    package = make_package(offering=offering, student=student)
    session = package.sessions.order_by("number").first()
    with before(start):
        services.session_book(session=session, start=start, actor=package.student)
        if accept:
            services.session_accept(session=session, actor=coach)
    session.refresh_from_db()
    return session


def propose(session, start, *, actor):
    AvailabilityWindowFactory(coach=session.coach, start=start, end=start + timedelta(hours=1))
    with before(min(start, session.slot.start)):
        return services.session_propose_reschedule(session=session, start=start, actor=actor)


def busy(coach, start, end):
    return BusyTime.objects.create(coach=coach, start=start, end=end)


def week_of(user, day=MONDAY):
    return week_for_user(user=user, day=day, now=NOW)


def blocks(week, *, kinds=None):
    """(weekday, kind, top, bottom) of every block, day by day in time order."""
    return [
        (day.date.strftime("%a"), block.entry.kind, block.top, block.bottom)
        for day in week.days
        for block in day.blocks
        if kinds is None or block.entry.kind in kinds
    ]


def foreground(week):
    return [
        (day.date.strftime("%a"), block.entry.kind, block.top, block.bottom)
        for day in week.days
        for block in day.foreground
    ]


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def grid(response) -> str:
    """The page's grid (without the legend and the navigation)."""
    page = text(response)
    return page.split('<div class="week-grid"', 1)[1].split('<section class="week-legend"', 1)[0]


# --- what a coach sees ----------------------------------------------------------------------------


def test_coach_sees_availability_sessions_busy_and_time_off_as_blocks_in_their_timezone():
    coach = CoachFactory(timezone="Europe/Berlin")
    make_rule(coach=coach, weekday=3, start_time=time(9), end_time=time(17))  # Thursdays
    requested = book(coach, local(BERLIN, 2026, 10, 29, 10), minutes=90)
    confirmed = book(coach, local(BERLIN, 2026, 10, 29, 13), accept=True)
    busy(coach, local(BERLIN, 2026, 10, 30, 8, 15), local(BERLIN, 2026, 10, 30, 8, 45))
    time_off_add(
        coach=coach, start=local(BERLIN, 2026, 10, 29, 15), end=local(BERLIN, 2026, 10, 29, 16)
    )

    week = week_of(coach)

    assert blocks(week) == [
        ("Thu", "available", 9 * 60, 15 * 60),  # the rule (and the windows), less time off
        ("Thu", "requested", 10 * 60, 11 * 60 + 30),
        ("Thu", "confirmed", 13 * 60, 14 * 60),
        ("Thu", "timeoff", 15 * 60, 16 * 60),
        ("Thu", "available", 16 * 60, 17 * 60),
        ("Fri", "busy", 8 * 60 + 15, 8 * 60 + 45),
    ]
    [request_block] = [b for b in week.days[3].blocks if b.entry.kind == "requested"]
    assert (request_block.entry.session_id, request_block.entry.label) == (
        requested.pk,
        "Requested",
    )
    assert (request_block.start_text, request_block.end_text) == ("10:00", "11:30")
    assert request_block.entry.person == requested.student.name
    assert request_block.entry.package == requested.package.title
    assert [b.entry.session_id for b in week.days[3].foreground][1] == confirmed.pk


def test_available_is_the_coach_free_availability_less_time_off():
    coach = CoachFactory(timezone="Europe/Berlin")
    make_rule(coach=coach, weekday=0, start_time=time(9), end_time=time(12))
    AvailabilityWindowFactory(
        coach=coach, start=local(BERLIN, 2026, 10, 27, 18), end=local(BERLIN, 2026, 10, 27, 20)
    )
    time_off_add(
        coach=coach,
        start=local(BERLIN, 2026, 10, 26, 10),
        end=local(BERLIN, 2026, 10, 26, 11),
        reason="Dentist",
        now=NOW - timedelta(days=3),
    )

    week = week_of(coach)

    assert blocks(week) == [
        ("Mon", "available", 9 * 60, 10 * 60),
        ("Mon", "timeoff", 10 * 60, 11 * 60),
        ("Mon", "available", 11 * 60, 12 * 60),
        ("Tue", "available", 18 * 60, 20 * 60),
    ]
    assert [b.entry.detail for b in week.days[0].blocks] == ["", "Dentist", ""]
    assert [b.entry.is_background for b in week.days[0].blocks] == [True, False, True]


def test_blocks_are_sized_by_their_length_and_placed_by_css_from_their_minutes(client):
    coach = CoachFactory(timezone="Europe/Berlin")
    session = book(coach, local(BERLIN, 2026, 10, 29, 9, 15), minutes=90, accept=True)
    client.force_login(coach)

    response = client.get(WEEK)
    page = grid(response)

    href = reverse("sessions:detail", args=[session.pk])
    assert (
        '<li class="block block--confirmed" style="--top: 555; --span: 90; --lane: 0; '
        f'--lanes: 1"><a class="block__body" href="{href}">'
    ) in page
    assert (
        '<strong class="block__kind">Confirmed</strong> <span class="block__time">'
        f'<time datetime="2026-10-29T09:15:00+01:00">09:15</time>{DASH}'
        '<time datetime="2026-10-29T10:45:00+01:00">10:45</time></span> '
        f'<span class="block__who">{session.student.name}</span> '
        f'<span class="block__what">{session.package.title}</span>'
    ) in page
    assert '<div class="week-grid" style="--first: 480; --hours: 10">' in text(response)


def test_short_blocks_are_drawn_at_least_fifteen_minutes_long_and_compact():
    coach = CoachFactory(timezone="UTC")
    busy(coach, datetime(2026, 10, 27, 9, 0, tzinfo=UTC), datetime(2026, 10, 27, 9, 5, tzinfo=UTC))
    busy(coach, datetime(2026, 10, 27, 23, 55, tzinfo=UTC), datetime(2026, 10, 28, tzinfo=UTC))

    week = week_of(coach)

    assert blocks(week) == [("Tue", "busy", 540, 555), ("Tue", "busy", 1425, 1440)]
    assert [(b.start_text, b.end_text, b.is_compact) for b in week.days[1].blocks] == [
        ("09:00", "09:05", True),
        ("23:55", "24:00", True),
    ]


def test_overlapping_blocks_are_placed_side_by_side_over_the_availability():
    coach = CoachFactory(timezone="UTC")
    make_rule(coach=coach, weekday=1, start_time=time(8), end_time=time(18))
    first = book(coach, datetime(2026, 10, 27, 10, tzinfo=UTC), accept=True)
    book(coach, datetime(2026, 10, 27, 11, 30, tzinfo=UTC))
    book(coach, datetime(2026, 10, 27, 14, tzinfo=UTC))  # overlaps nothing
    # Seen in an external calendar after both were booked: it overlaps both.
    busy(coach, datetime(2026, 10, 27, 10, 30, tzinfo=UTC), datetime(2026, 10, 27, 12, tzinfo=UTC))

    tuesday = week_of(coach).days[1]

    assert [(b.entry.kind, b.top, b.lane, b.lanes) for b in tuesday.foreground] == [
        ("confirmed", 600, 0, 2),
        ("busy", 630, 1, 2),
        ("requested", 690, 0, 2),  # the first lane is free again at 11:00
        ("requested", 840, 0, 1),
    ]
    assert [(b.entry.kind, b.lane, b.lanes) for b in tuesday.background] == [("available", 0, 1)]
    assert tuesday.foreground[0].entry.session_id == first.pk


def test_an_entry_crossing_midnight_is_split_into_one_block_per_day():
    coach = CoachFactory(timezone="Europe/Berlin")
    session = book(coach, local(BERLIN, 2026, 10, 27, 23, 30), minutes=90, accept=True)

    week = week_of(coach)

    assert foreground(week) == [("Tue", "confirmed", 1410, 1440), ("Wed", "confirmed", 0, 60)]
    tuesday, wednesday = week.days[1].foreground[0], week.days[2].foreground[0]
    assert (tuesday.start_text, tuesday.end_text) == ("23:30", "Wed 01:00")
    assert (wednesday.start_text, wednesday.end_text) == ("Tue 23:30", "01:00")
    assert (tuesday.to_later_day, tuesday.from_earlier_day) == (True, False)
    assert (wednesday.to_later_day, wednesday.from_earlier_day) == (False, True)
    assert tuesday.entry is wednesday.entry
    assert [entry.session_id for entry in week.entries if entry.kind == "confirmed"] == [session.pk]
    assert (week.first_minute, week.last_minute) == (0, 24 * 60)


def test_a_session_that_began_the_sunday_before_shows_on_monday_morning():
    coach = CoachFactory(timezone="Europe/Berlin")
    book(coach, local(BERLIN, 2026, 11, 1, 23, 30), accept=True)

    this_week, next_week = week_of(coach), week_of(coach, MONDAY + timedelta(days=7))

    assert foreground(this_week) == [("Sun", "confirmed", 1410, 1440)]
    assert foreground(next_week) == [("Mon", "confirmed", 0, 30)]
    assert next_week.days[0].foreground[0].start_text == "Sun 23:30"


def test_hours_shown_run_from_the_earliest_to_the_latest_block_at_least_8_to_18():
    coach = CoachFactory(timezone="UTC")
    assert (week_of(coach).first_minute, week_of(coach).last_minute) == (480, 1080)

    busy(coach, datetime(2026, 10, 27, 6, 10, tzinfo=UTC), datetime(2026, 10, 27, 7, tzinfo=UTC))
    busy(
        coach,
        datetime(2026, 10, 30, 20, 30, tzinfo=UTC),
        datetime(2026, 10, 30, 21, 15, tzinfo=UTC),
    )
    week = week_of(coach)

    assert (week.first_minute, week.last_minute, week.hour_count) == (360, 1320, 16)
    assert [label for _, label in week.hour_marks] == [f"{h:02d}:00" for h in range(6, 23)]


def test_time_off_over_several_days_is_drawn_within_the_hours_shown_without_stretching_them():
    coach = CoachFactory(timezone="UTC")
    time_off_add(
        coach=coach,
        start=datetime(2026, 10, 29, 12, tzinfo=UTC),
        end=datetime(2026, 10, 31, 6, 30, tzinfo=UTC),
        reason="Conference",
    )

    week = week_of(coach)

    # Thursday from noon, all of Friday, Saturday to 06:30: 05:30-06:30 must be seen.
    assert (week.first_minute, week.last_minute) == (300, 1080)
    assert blocks(week) == [
        ("Thu", "timeoff", 720, 1080),
        ("Fri", "timeoff", 300, 1080),
        ("Sat", "timeoff", 300, 390),
    ]
    friday = week.days[4].blocks[0]
    assert (friday.start_text, friday.end_text) == ("Thu 12:00", "Sat 06:30")
    assert (friday.from_earlier_day, friday.to_later_day) == (True, True)


# --- clock changes --------------------------------------------------------------------------------


def test_the_day_the_clocks_go_back_has_25_hours_and_blocks_follow_its_wall_clock():
    coach = CoachFactory(timezone="America/New_York")
    # 01:30 EDT to 01:30 EST, then 01:30 EST to 02:30 EST: one after the other, the same
    # wall-clock hour, so drawn side by side.
    first = book(coach, datetime(2026, 11, 1, 5, 30, tzinfo=UTC), accept=True)
    second = book(coach, datetime(2026, 11, 1, 6, 30, tzinfo=UTC), student=StudentFactory())
    book(coach, local(NEW_YORK, 2026, 11, 1, 10), accept=True)

    week = week_of(coach)
    sunday = week.days[6]

    assert sunday.hours == 25
    assert sunday.clock_change == "Clocks go back 1 hour (25-hour day): EDT to EST"
    assert [
        (b.entry.session_id, b.top, b.bottom, b.lane, b.lanes, b.start_text, b.end_text)
        for b in sunday.foreground
    ] == [
        (first.pk, 90, 150, 0, 2, "01:30 EDT", "01:30 EST"),
        (second.pk, 90, 150, 1, 2, "01:30 EST", "02:30 EST"),
        (sunday.foreground[2].entry.session_id, 600, 660, 0, 1, "10:00 EST", "11:00 EST"),
    ]
    assert week.zone_names == "EDT, then EST"
    assert [day.clock_change for day in week.days[:6]] == [""] * 6


def test_the_day_the_clocks_go_forward_has_23_hours_and_a_block_across_it_keeps_its_times():
    coach = CoachFactory(timezone="America/New_York")
    # 01:30 EST to 03:30 EDT is one hour long; on the wall clock it covers 01:30-03:30.
    session = book(coach, datetime(2027, 3, 14, 6, 30, tzinfo=UTC), accept=True)

    sunday = week_of(coach, date(2027, 3, 14)).days[6]

    assert sunday.hours == 23
    assert sunday.clock_change == "Clocks go forward 1 hour (23-hour day): EST to EDT"
    [block] = sunday.foreground
    assert (block.entry.session_id, block.top, block.bottom) == (session.pk, 90, 210)
    assert (block.start_text, block.end_text) == ("01:30 EST", "03:30 EDT")


def test_week_bounds_follow_local_midnight_across_the_clock_change():
    # New York falls back on Sunday 1 November 2026: the week of 26 October lasts 169 hours.
    coach = CoachFactory(timezone="America/New_York")
    late_sunday = book(coach, datetime(2026, 11, 2, 4, 0, tzinfo=UTC), minutes=30)  # 23:00 EST
    early_monday = book(coach, datetime(2026, 11, 2, 5, 30, tzinfo=UTC), minutes=30)  # 00:30

    this_week, next_week = week_of(coach), week_of(coach, MONDAY + timedelta(days=7))

    assert [(e.session_id, e.start.isoformat()) for e in this_week.entries if e.session_id] == [
        (late_sunday.pk, "2026-11-01T23:00:00-05:00")
    ]
    assert [e.session_id for e in next_week.entries if e.session_id] == [early_monday.pk]
    assert foreground(this_week) == [("Sun", "requested", 1380, 1410)]


# --- sessions and proposals -----------------------------------------------------------------------


def test_a_rescheduling_session_shows_its_agreed_time_and_the_proposed_one_to_both_sides(client):
    coach = CoachFactory(timezone="Europe/Berlin")
    student = StudentFactory(timezone="Europe/Berlin")
    session = book(coach, local(BERLIN, 2026, 10, 29, 10), student=student, accept=True)
    propose(session, local(BERLIN, 2026, 10, 30, 15), actor=student)

    for viewer, detail in ((coach, "Answer it"), (student, "Waiting for an answer")):
        week = week_of(viewer)
        assert [
            (e.kind, e.label, e.start.isoformat(), e.session_id, e.detail)
            for e in week.entries
            if e.session_id
        ] == [
            (
                "rescheduling",
                "Agreed",
                "2026-10-29T10:00:00+01:00",
                session.pk,
                "New time proposed",
            ),
            ("proposed", "Proposed", "2026-10-30T15:00:00+01:00", session.pk, detail),
        ]

    client.force_login(student)
    page = grid(client.get(WEEK))
    assert page.count(f'href="{reverse("sessions:detail", args=[session.pk])}"') == 2
    assert '<strong class="block__kind">Agreed</strong>' in page
    assert '<strong class="block__kind">Proposed</strong>' in page


def test_completed_sessions_stay_on_the_week():
    coach = CoachFactory(timezone="UTC")
    session = book(coach, datetime(2026, 10, 26, 9, tzinfo=UTC), accept=True)
    # Completed sessions are in the past: looked at from the next morning.
    services.sessions_complete_past(now=datetime(2026, 10, 27, tzinfo=UTC))

    week = week_of(coach)

    assert [(e.kind, e.label, e.session_id) for e in week.entries if e.session_id] == [
        ("completed", "Completed", session.pk)
    ]


def test_student_sees_their_sessions_and_proposals_and_no_coach_availability(client):
    coach = CoachFactory(timezone="Europe/Berlin")
    student = StudentFactory(timezone="America/New_York")
    make_rule(coach=coach, weekday=3, start_time=time(8), end_time=time(18))
    busy(coach, local(BERLIN, 2026, 10, 29, 8), local(BERLIN, 2026, 10, 29, 9))
    mine = book(coach, local(BERLIN, 2026, 10, 29, 15), student=student, accept=True)
    theirs = book(coach, local(BERLIN, 2026, 10, 29, 11), accept=True)
    client.force_login(student)

    response = client.get(WEEK)
    page = grid(response)

    assert [(e.kind, e.session_id) for e in response.context["week"].entries] == [
        ("confirmed", mine.pk)
    ]
    assert "Times are in <strong>America/New_York</strong> (EDT, then EST)." in text(response)
    assert '<time datetime="2026-10-29T10:00:00-04:00">10:00</time>' in page
    assert f'<span class="block__who">{coach.name}</span>' in page
    assert reverse("sessions:detail", args=[theirs.pk]) not in page
    for kind in ("available", "busy", "timeoff"):
        assert f"block--{kind}" not in text(response)
    assert [kind.key for kind in response.context["week"].kinds] == [
        "requested",
        "confirmed",
        "rescheduling",
        "proposed",
        "completed",
    ]


def test_a_coach_also_sees_the_sessions_they_attend_as_a_student():
    coach = CoachFactory(timezone="UTC")
    mentor = CoachFactory(timezone="UTC")
    lesson = book(mentor, datetime(2026, 10, 30, 9, tzinfo=UTC), student=coach, accept=True)

    [entry] = week_of(coach).entries

    assert (entry.kind, entry.session_id, entry.person) == ("confirmed", lesson.pk, mentor.name)


# --- the page -------------------------------------------------------------------------------------


def test_page_has_a_day_heading_per_day_a_legend_and_the_week_stylesheet(client):
    client.force_login(CoachFactory(timezone="UTC"))

    response = client.get(WEEK)
    page = text(response)

    assert "<h1>Week of 26 October 2026</h1>" in page
    headings = re.findall(r'<h2 id="day-[\d-]+"><time datetime="([\d-]+)">([^<]+)</time>', page)
    assert headings == [
        ("2026-10-26", "Mon 26 Oct"),
        ("2026-10-27", "Tue 27 Oct"),
        ("2026-10-28", "Wed 28 Oct"),
        ("2026-10-29", "Thu 29 Oct"),
        ("2026-10-30", "Fri 30 Oct"),
        ("2026-10-31", "Sat 31 Oct"),
        ("2026-11-01", "Sun 1 Nov"),
    ]
    assert 'Wed 28 Oct</time> <span class="week-day__today">Today</span></h2>' in page
    assert page.count("Nothing scheduled.") == 7
    assert "Nothing this week." in page
    legend = page.split('<section class="week-legend"', 1)[1]
    assert re.findall(r"<strong>([^<]+)</strong>:", legend) == [
        "Available",
        "Busy",
        "Time off",
        "Requested",
        "Confirmed",
        "Agreed",
        "Proposed",
        "Completed",
    ]
    assert "css/week.css" in page
    assert "js/week.js" in page


def test_now_is_marked_on_today_only():
    coach = CoachFactory(timezone="Europe/Berlin")

    week = week_of(coach)

    assert [day.now_minute for day in week.days] == [None, None, 13 * 60, None, None, None, None]


def test_narrow_screens_show_the_chosen_day_with_links_to_each_day(client):
    client.force_login(StudentFactory(timezone="UTC"))

    page = text(client.get(WEEK, {"week": "2026-11-04"}))

    assert "<h1>Week of 2 November 2026</h1>" in page
    assert re.findall(r'class="(week-day[^"]*)" data-day="2026-11-04"', page) == [
        "week-day week-day--selected"
    ]
    picker = page.split('<nav class="week-daypicker"', 1)[1].split("</nav>", 1)[0]
    assert re.findall(r'<a href="\?week=([\d-]+)"', picker) == [
        f"2026-11-{day:02d}" for day in range(2, 9)
    ]
    assert re.findall(r'data-day="([\d-]+)"[^>]*aria-current="true"', picker) == ["2026-11-04"]
    # Previous and next week keep the chosen weekday.
    assert 'href="?week=2026-10-28" rel="prev"' in page
    assert 'href="?week=2026-11-11" rel="next"' in page
    assert f'href="{WEEK}">Today</a>' in page


def test_without_a_week_the_page_shows_this_week_with_today_chosen(client):
    client.force_login(StudentFactory(timezone="UTC"))

    response = client.get(WEEK)

    week = response.context["week"]
    assert (week.monday, week.selected, week.this_week) == (MONDAY, date(2026, 10, 28), True)
    assert f'href="{WEEK}" aria-current="date">Today</a>' in text(response)


def test_the_stylesheet_prints_the_whole_grid_without_navigation():
    css = (Path(settings.BASE_DIR) / "static" / "css" / "week.css").read_text()

    print_rules = css.split("@media print", 1)[1]
    assert ".site-header, .site-footer, .skip-link, .messages, .week-nav, .week-daypicker" in (
        print_rules
    )
    assert ".week-day { display: grid !important;" in print_rules
    assert "@media screen and (max-width: 49.99rem)" in css  # one day: screens only


def test_malformed_week_shows_a_message_and_the_current_week(client):
    client.force_login(StudentFactory())

    response = client.get(WEEK, {"week": "2026-13-45"})

    assert response.status_code == 200
    assert messages_of(response) == [
        "“2026-13-45” is not a date (use YYYY-MM-DD); showing this week."
    ]
    assert response.context["week"].monday == MONDAY


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
    assert response.context["week"].monday == MONDAY


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


@pytest.mark.parametrize(
    ("asked", "link", "target"),
    [("1971-01-04", 'rel="prev"', "1971-01-01"), ("9998-12-21", 'rel="next"', "9998-12-28")],
)
def test_the_links_next_to_the_first_and_last_weeks_stay_inside_the_range(
    client, asked, link, target
):
    client.force_login(StudentFactory())

    page = client.get(WEEK, {"week": asked}).content.decode()
    followed = client.get(WEEK, {"week": target})

    assert f'href="?week={target}" {link}' in page
    assert messages_of(followed) == []
    assert followed.context["week"].selected.isoformat() == target


# --- query counts ---------------------------------------------------------------------------------


def fill_coach_week(coach, count):
    """`count` sessions and proposals of all kinds, busy times and time off in the week."""
    for index in range(count):
        day = datetime(2026, 10, 26, tzinfo=UTC) + timedelta(days=index % 7, hours=index // 7)
        session = book(coach, day + timedelta(hours=8), accept=index % 3 != 0)
        if index % 3 == 1:
            propose(session, day + timedelta(hours=14), actor=session.student)
        busy(coach, day + timedelta(hours=20), day + timedelta(hours=20, minutes=30))
        time_off_add(
            coach=coach,
            start=day + timedelta(hours=22),
            end=day + timedelta(hours=23),
            now=day - timedelta(days=1),
        )
    make_rule(coach=coach, weekday=count % 7, start_time=time(9), end_time=time(17))


@pytest.mark.parametrize("count", [1, 9])
def test_coach_week_query_count_does_not_grow_with_entries(
    client, django_assert_num_queries, count
):
    coach = CoachFactory(timezone="UTC")
    fill_coach_week(coach, count)
    client.force_login(coach)

    # The user (its auth session comes from the cache), the coach-profile check, the sessions,
    # the proposals, the availability (rules, windows, time off), the busy times, the time
    # off, and the navigation's count of tasks.
    with django_assert_num_queries(10):
        response = client.get(WEEK)

    entries = response.context["week"].entries
    assert len([e for e in entries if e.session_id]) == count + len(range(1, count, 3))
    assert len([e for e in entries if e.kind == "busy"]) == count


@pytest.mark.parametrize("count", [1, 9])
def test_student_week_query_count_does_not_grow_with_entries(
    client, django_assert_num_queries, count
):
    coach = CoachFactory(timezone="UTC")
    student = StudentFactory(timezone="UTC")
    for index in range(count):
        day = datetime(2026, 10, 26, 8, tzinfo=UTC) + timedelta(days=index % 7, hours=index // 7)
        session = book(coach, day, student=student, accept=True)
        if index % 2:
            propose(session, day + timedelta(hours=8), actor=coach)
    client.force_login(student)

    # The user (its auth session comes from the cache), the coach-profile check, the
    # sessions, the proposals, and the navigation's count of new times waiting on the student.
    with django_assert_num_queries(5):
        response = client.get(WEEK)

    assert len(response.context["week"].entries) == count + count // 2
