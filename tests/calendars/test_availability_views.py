"""The coach's availability page: adding slots and weekly patterns, removing, refusing."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from calendars.models import AvailabilityPattern, SlotStatus, TimeSlot
from tests.conftest import messages_of
from tests.factories import (
    CoachFactory,
    ExternalCalendarFactory,
    StudentFactory,
    TimeSlotFactory,
    make_pattern,
    make_session,
)

NOW = datetime(2026, 10, 12, 6, 0, tzinfo=UTC)  # Monday, 08:00 in Berlin (summer time)
pytestmark = [pytest.mark.django_db, pytest.mark.time_machine(NOW, tick=False)]
PAGE = reverse("calendars:availability")
SLOT_ADD = reverse("calendars:slot_add")
PATTERN_ADD = reverse("calendars:pattern_add")


@pytest.fixture
def coach():
    return CoachFactory(timezone="Europe/Berlin")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def slot_rows(coach) -> list[tuple]:
    return list(TimeSlot.objects.filter(coach=coach).order_by("start").values_list("start", "end"))


def pattern_data(**overrides) -> dict:
    data = {
        "pattern-weekdays": ["0", "2"],
        "pattern-start_time": "09:00",
        "pattern-end_time": "11:00",
        "pattern-slot_minutes": "60",
        "pattern-weeks": "2",
        "pattern-valid_from": "",
    }
    data.update(overrides)
    return data


# --- who may see it ------------------------------------------------------------------------


def test_anonymous_visitor_is_sent_to_log_in(client):
    response = client.get(PAGE)

    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_student_is_sent_to_the_profile_page_with_a_message(client):
    client.force_login(StudentFactory())

    response = client.get(PAGE, follow=True)

    assert response.redirect_chain == [(reverse("accounts:profile"), 302)]
    assert messages_of(response) == [
        "Availability is for coaches. Become a coach on your profile page first."
    ]


def test_student_cannot_add_a_slot(client):
    client.force_login(StudentFactory())

    response = client.post(
        SLOT_ADD, {"slot-date": "2026-10-20", "slot-start_time": "09:00", "slot-end_time": "10:00"}
    )

    assert response.status_code == 302
    assert TimeSlot.objects.count() == 0


def test_post_without_csrf_token_is_refused(coach):
    client = Client(enforce_csrf_checks=True)
    client.force_login(coach)

    response = client.post(
        SLOT_ADD, {"slot-date": "2026-10-20", "slot-start_time": "09:00", "slot-end_time": "10:00"}
    )

    assert response.status_code == 403
    assert TimeSlot.objects.count() == 0


def test_get_on_an_action_url_is_not_allowed(coach_client):
    assert coach_client.get(SLOT_ADD).status_code == 405


# --- the page --------------------------------------------------------------------------------


def test_page_lists_future_slots_by_day_in_the_coachs_timezone(coach_client, coach):
    TimeSlotFactory(coach=coach, start=utc(2026, 10, 13, 7))
    TimeSlotFactory(coach=coach, start=utc(2026, 10, 13, 22, 30))  # 00:30 on the 14th in Berlin
    TimeSlotFactory(coach=coach, start=utc(2026, 10, 12, 4))  # already over
    TimeSlotFactory(start=utc(2026, 10, 13, 9))  # another coach's

    response = coach_client.get(PAGE)

    assert response.status_code == 200
    page = response.content.decode()
    assert [s.start for s in response.context["slots"]] == [
        utc(2026, 10, 13, 7),
        utc(2026, 10, 13, 22, 30),
    ]
    assert "Tuesday 13 October 2026" in page
    assert "Wednesday 14 October 2026" in page
    assert "09:00" in page and "00:30" in page
    assert "Europe/Berlin" in page


def test_page_shows_held_slots_with_a_link_to_their_session(coach_client, coach):
    session = make_session("REQUESTED", coach=coach)

    response = coach_client.get(PAGE)

    page = response.content.decode()
    assert reverse("sessions:detail", args=[session.pk]) in page
    assert "Held" in page
    assert reverse("calendars:slot_remove", args=[session.slot_id]) not in page


@pytest.mark.parametrize("rows", [5, 200])
def test_page_query_count_stays_flat_as_slots_grow(
    coach_client, coach, rows, django_assert_max_num_queries
):
    for hour in range(rows):
        TimeSlotFactory(coach=coach, start=utc(2026, 10, 13) + timedelta(hours=hour))
    make_session("CONFIRMED", coach=coach)
    coach_client.post(PATTERN_ADD, pattern_data())

    # session, user, coach profile, Tasks badge, slot count and page, patterns, external calendars
    with django_assert_max_num_queries(8):
        response = coach_client.get(PAGE)

    assert response.status_code == 200
    assert len(response.context["slots"].object_list) == min(rows + 9, 50)


def test_page_is_paginated(coach_client, coach):
    for hour in range(60):
        TimeSlotFactory(coach=coach, start=utc(2026, 10, 13) + timedelta(hours=hour))

    response = coach_client.get(PAGE, {"page": "2"})

    first = response.context["slots"].object_list[0]
    assert first.start == utc(2026, 10, 13) + timedelta(hours=50)
    assert len(response.context["slots"].object_list) == 10


def test_page_includes_the_external_calendars_section(coach_client):
    assert "calendars/_external_calendars.html" in [
        t.name for t in coach_client.get(PAGE).templates
    ]


def test_page_gets_the_coachs_external_calendars_from_the_view_in_one_query(coach_client, coach):
    first = ExternalCalendarFactory(coach=coach, name="Work")
    ExternalCalendarFactory(name="Someone else's")

    with CaptureQueriesContext(connection) as one:
        response = coach_client.get(PAGE)
    paused = ExternalCalendarFactory(coach=coach, name="Family", is_active=False)
    more = [ExternalCalendarFactory(coach=coach) for _ in range(3)]
    with CaptureQueriesContext(connection) as five:
        again = coach_client.get(PAGE)

    assert response.context["external_calendars"] == [first]
    assert again.context["external_calendars"] == [first, paused, *more]
    assert len(five.captured_queries) == len(one.captured_queries)
    calendar_reads = [q for q in five.captured_queries if "calendars_externalcalendar" in q["sql"]]
    assert len(calendar_reads) == 1


# --- adding one slot -----------------------------------------------------------------------------


def test_adding_a_slot_stores_the_coachs_local_time_in_utc(coach_client, coach):
    response = coach_client.post(
        SLOT_ADD,
        {"slot-date": "2026-10-27", "slot-start_time": "09:00", "slot-end_time": "10:30"},
        follow=True,
    )

    # 27 October is after Berlin's change to winter time (UTC+1).
    assert slot_rows(coach) == [(utc(2026, 10, 27, 8), utc(2026, 10, 27, 9, 30))]
    assert messages_of(response) == ["Slot added: Tue 27 Oct 2026, 09:00 CET."]


def test_an_end_of_midnight_means_the_end_of_that_day(coach_client, coach):
    coach_client.post(
        SLOT_ADD, {"slot-date": "2026-10-20", "slot-start_time": "23:00", "slot-end_time": "00:00"}
    )

    assert slot_rows(coach) == [(utc(2026, 10, 20, 21), utc(2026, 10, 20, 22))]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (
            {"slot-date": "2026-10-11", "slot-start_time": "09:00", "slot-end_time": "10:00"},
            "A slot must start in the future.",
        ),
        (
            {"slot-date": "2026-10-20", "slot-start_time": "10:00", "slot-end_time": "09:00"},
            "The end must be after the start.",
        ),
        (
            {"slot-date": "2026-13-45", "slot-start_time": "09:00", "slot-end_time": "10:00"},
            "Enter a valid date.",
        ),
        (
            {"slot-date": "2026-10-20", "slot-start_time": "9 o'clock", "slot-end_time": "10:00"},
            "Enter a valid time.",
        ),
        (
            {"slot-date": "", "slot-start_time": "", "slot-end_time": ""},
            "This field is required.",
        ),
        (
            {"slot-date": "2026-10-20", "slot-start_time": "06:00", "slot-end_time": "19:00"},
            "A slot can last at most 12 hours.",
        ),
        (
            # Berlin's clocks jump from 02:00 to 03:00 on 28 March 2027.
            {"slot-date": "2027-03-28", "slot-start_time": "02:30", "slot-end_time": "03:30"},
            "02:30 does not exist on 28 March 2027 in your timezone",
        ),
    ],
)
def test_bad_slot_is_refused_with_a_message_and_writes_nothing(coach_client, coach, data, error):
    TimeSlotFactory(coach=coach, start=utc(2026, 10, 30, 9))
    before = slot_rows(coach)

    response = coach_client.post(SLOT_ADD, data)

    assert response.status_code == 400
    assert error in response.content.decode()
    assert slot_rows(coach) == before


@pytest.mark.parametrize(
    ("day", "start", "end"),
    [
        ("9999-12-31", "09:00", "00:00"),  # the end would be 10000-01-01
        ("0001-01-01", "00:30", "01:00"),  # before 0001-01-01 in UTC (Berlin is ahead)
        ("2028-10-12", "09:00", "10:00"),  # one day past the two years ahead
        ("2026-10-10", "09:00", "10:00"),  # two days ago
    ],
)
def test_slot_date_outside_yesterday_to_two_years_ahead_is_refused_on_the_field(
    coach_client, coach, day, start, end
):
    response = coach_client.post(
        SLOT_ADD, {"slot-date": day, "slot-start_time": start, "slot-end_time": end}
    )

    assert response.status_code == 400
    assert response.context["slot_form"].errors == {
        "date": ["Pick a date between 11 October 2026 and 11 October 2028."]
    }
    assert TimeSlot.objects.count() == 0


def test_slot_on_the_last_allowed_date_ending_at_midnight_is_added(coach_client, coach):
    response = coach_client.post(
        SLOT_ADD, {"slot-date": "2028-10-11", "slot-start_time": "23:00", "slot-end_time": "00:00"}
    )

    assert response.status_code == 302
    assert slot_rows(coach) == [(utc(2028, 10, 11, 21), utc(2028, 10, 11, 22))]


def test_date_fields_carry_the_allowed_range(coach_client):
    page = coach_client.get(PAGE).content.decode()

    assert 'name="slot-date" min="2026-10-11" max="2028-10-11"' in page
    assert 'name="pattern-valid_from" min="2026-10-12" max="2027-10-13"' in page


def test_overlapping_slot_is_refused_with_a_message(coach_client, coach):
    TimeSlotFactory(coach=coach, start=utc(2026, 10, 20, 7, 30))  # 09:30-10:30 Berlin

    response = coach_client.post(
        SLOT_ADD, {"slot-date": "2026-10-20", "slot-start_time": "09:00", "slot-end_time": "10:00"}
    )

    assert response.status_code == 400
    assert "That time overlaps one of your existing slots." in response.content.decode()
    assert TimeSlot.objects.filter(coach=coach).count() == 1


# --- weekly patterns ---------------------------------------------------------------------------


def test_adding_a_weekly_pattern_creates_its_slots_and_says_how_many(coach_client, coach):
    response = coach_client.post(PATTERN_ADD, pattern_data(), follow=True)

    assert messages_of(response) == ["Weekly availability added: 8 slots created."]
    assert AvailabilityPattern.objects.filter(coach=coach).count() == 2
    assert slot_rows(coach)[:2] == [
        (utc(2026, 10, 12, 7), utc(2026, 10, 12, 8)),
        (utc(2026, 10, 12, 8), utc(2026, 10, 12, 9)),
    ]


def test_weekly_pattern_skips_overlapping_times_and_says_so(coach_client, coach):
    TimeSlotFactory(coach=coach, start=utc(2026, 10, 14, 7, 30))  # Wednesday 09:30 Berlin

    response = coach_client.post(PATTERN_ADD, pattern_data(), follow=True)

    assert messages_of(response) == [
        "Weekly availability added: 6 slots created, 2 skipped because they overlap slots "
        "you already have."
    ]
    assert TimeSlot.objects.filter(coach=coach).count() == 7


def test_ongoing_pattern_is_stored_without_an_end(coach_client, coach):
    coach_client.post(PATTERN_ADD, pattern_data(**{"pattern-ongoing": "on"}))

    assert set(AvailabilityPattern.objects.values_list("valid_until", flat=True)) == {None}


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"pattern-weekdays": []}, "Choose at least one weekday."),
        ({"pattern-weekdays": ["9"]}, "Select a valid choice."),
        ({"pattern-end_time": "08:00"}, "The end must be after the start"),
        ({"pattern-slot_minutes": "abc"}, "Enter a whole number."),
        ({"pattern-slot_minutes": "3"}, "greater than or equal to 5"),
        ({"pattern-slot_minutes": "180"}, "The window is shorter than one slot."),
        ({"pattern-weeks": "0"}, "greater than or equal to 1"),
        ({"pattern-weeks": "60"}, "less than or equal to 52"),
        ({"pattern-valid_from": "2026-10-01"}, "A pattern cannot start in the past."),
        ({"pattern-valid_from": "yesterday"}, "Enter a valid date."),
        (
            {
                "pattern-weekdays": ["0"],
                "pattern-weeks": "1",
                "pattern-end_time": "08:30",
                "pattern-start_time": "07:00",
                "pattern-slot_minutes": "30",
            },
            "That pattern has no future times in the weeks chosen.",
        ),
    ],
)
def test_bad_pattern_is_refused_with_a_message_and_writes_nothing(
    coach_client, coach, overrides, error
):
    response = coach_client.post(PATTERN_ADD, pattern_data(**overrides))

    assert response.status_code == 400
    assert error in response.content.decode()
    assert AvailabilityPattern.objects.count() == 0
    assert TimeSlot.objects.count() == 0


@pytest.mark.parametrize(
    ("day", "error"),
    [
        ("9999-12-31", "A pattern must start within a year."),
        ("0001-01-01", "A pattern cannot start in the past."),
    ],
)
def test_pattern_start_date_at_the_ends_of_the_calendar_is_refused_on_the_field(
    coach_client, day, error
):
    response = coach_client.post(PATTERN_ADD, pattern_data(**{"pattern-valid_from": day}))

    assert response.status_code == 400
    assert response.context["pattern_form"].errors == {"valid_from": [error]}
    assert AvailabilityPattern.objects.count() == 0


def test_stopping_a_pattern_removes_its_open_slots(coach_client, coach):
    coach_client.post(PATTERN_ADD, pattern_data(**{"pattern-weekdays": ["2"]}), follow=True)
    pattern = AvailabilityPattern.objects.get(coach=coach)

    response = coach_client.post(reverse("calendars:pattern_stop", args=[pattern.pk]), follow=True)

    pattern.refresh_from_db()
    assert pattern.is_active is False
    assert TimeSlot.objects.filter(coach=coach).count() == 0
    assert messages_of(response) == [
        "Weekly pattern stopped; 4 open slots removed. Requested and booked times stay."
    ]


def test_stopping_another_coachs_pattern_is_a_404_and_changes_nothing(coach_client):
    other = CoachFactory()
    with time_machine.travel(NOW, tick=False):
        pattern = make_pattern(
            coach=other,
            weekday=1,
            start_time=datetime(2000, 1, 1, 9).time(),
            end_time=datetime(2000, 1, 1, 10).time(),
            slot_minutes=60,
            weeks=1,
        )

    response = coach_client.post(reverse("calendars:pattern_stop", args=[pattern.pk]))

    pattern.refresh_from_db()
    assert response.status_code == 404
    assert pattern.is_active is True
    assert TimeSlot.objects.filter(coach=other).count() == 1


# --- removing slots ------------------------------------------------------------------------------


def test_removing_an_open_slot_deletes_it(coach_client, coach):
    slot = TimeSlotFactory(coach=coach, start=utc(2026, 10, 20, 7))

    response = coach_client.post(reverse("calendars:slot_remove", args=[slot.pk]), follow=True)

    assert TimeSlot.objects.filter(pk=slot.pk).exists() is False
    assert messages_of(response) == ["Slot removed: Tue 20 Oct 2026, 09:00 CEST."]


def test_removing_a_held_slot_is_refused_with_a_message(coach_client, coach):
    session = make_session("REQUESTED", coach=coach)

    response = coach_client.post(
        reverse("calendars:slot_remove", args=[session.slot_id]), follow=True
    )

    assert TimeSlot.objects.get(pk=session.slot_id).status == SlotStatus.HELD
    assert messages_of(response) == ["Only open slots can be removed; this one is taken."]


@pytest.mark.parametrize("whose", ["another coach's", "unknown"])
def test_removing_a_slot_that_is_not_yours_is_a_404(coach_client, whose):
    slot = TimeSlotFactory()
    pk = slot.pk if whose == "another coach's" else slot.pk + 1000

    response = coach_client.post(reverse("calendars:slot_remove", args=[pk]))

    assert response.status_code == 404
    assert TimeSlot.objects.filter(pk=slot.pk, status=SlotStatus.OPEN).exists()
