"""The calendars admin: read-only pages for weekly rules, one-off windows, time off, busy times
and reservations, every time in its coach's own timezone, within fixed query budgets."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from calendars.models import BusyTime
from calendars.services import availability_week_set, availability_window_add, time_off_add
from sessions_app import services
from tests.factories import (
    CoachFactory,
    ExternalCalendarFactory,
    OfferingFactory,
    StudentFactory,
    make_package,
    make_session,
)

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
MODELS = ["availabilityrule", "availabilitywindow", "timeoff", "busytime", "timeslot"]


def _changelist(model: str) -> str:
    return reverse(f"admin:calendars_{model}_changelist")


@pytest.fixture
def clock():
    with time_machine.travel(datetime(2026, 6, 1, 8, 0, tzinfo=LONDON), tick=False) as traveller:
        yield traveller


@pytest.fixture
def london_coach(clock):
    coach = CoachFactory(timezone="Europe/London", display_name="Lou London")
    availability_week_set(coach=coach, week={day: [(time(9), time(17))] for day in range(5)})
    return coach


def _book(coach, start: datetime, minutes: int = 90):
    """A session of `minutes` booked with `coach` at `start` (one of its bookable starts)."""
    package = make_package(offering=OfferingFactory(coach=coach, duration_minutes=minutes))
    session = package.sessions.first()
    services.session_book(session=session, start=start, actor=package.student)
    session.refresh_from_db()
    return session


@pytest.mark.parametrize(
    ("start", "shown"),
    [
        (
            datetime(2026, 7, 1, 10, 0, tzinfo=LONDON),
            "Wed 01 Jul 2026 10:00\u201311:30 BST (Held)",
        ),
        (
            datetime(2026, 12, 2, 10, 0, tzinfo=LONDON),
            "Wed 02 Dec 2026 10:00\u201311:30 GMT (Held)",
        ),
    ],
    ids=["summer", "winter"],
)
def test_a_reservation_names_itself_in_its_coachs_zone_with_the_real_abbreviation(
    london_coach, admin_client, start, shown
):
    slot = _book(london_coach, start).slot

    response = admin_client.get(_changelist("timeslot"))

    assert str(slot) == shown
    assert shown in response.content.decode()
    assert "90 min" in response.content.decode()


def test_availability_time_off_and_busy_times_show_in_the_coachs_zone(london_coach, admin_client):
    window_start = datetime(2026, 7, 4, 10, 0, tzinfo=LONDON)  # a Saturday in summer
    availability_window_add(
        coach=london_coach, start=window_start, end=window_start + timedelta(hours=2)
    )
    away = datetime(2026, 8, 3, tzinfo=LONDON)
    time_off_add(coach=london_coach, start=away, end=away + timedelta(days=5), reason="Holiday")
    calendar = ExternalCalendarFactory(coach=london_coach, name="Work")
    busy = datetime(2026, 7, 6, 13, 0, tzinfo=LONDON)
    BusyTime.objects.create(
        coach=london_coach, calendar=calendar, start=busy, end=busy + timedelta(hours=1)
    )  # as the calendar sync stores it

    pages = {model: admin_client.get(_changelist(model)).content.decode() for model in MODELS}

    assert "Mon 09:00\u201317:00" in pages["availabilityrule"]
    assert "Europe/London" in pages["availabilityrule"]
    assert "Sat 04 Jul 2026 10:00\u201312:00 BST" in pages["availabilitywindow"]
    assert "Mon 03 Aug 2026 00:00\u2013Sat 08 Aug 2026 00:00 BST" in pages["timeoff"]
    assert "Holiday" in pages["timeoff"]
    assert "Mon 06 Jul 2026 13:00\u201314:00 BST" in pages["busytime"]
    assert "Work" in pages["busytime"]
    assert calendar.url not in pages["busytime"]  # the secret address stays secret


@pytest.mark.parametrize("model", MODELS)
def test_calendar_records_are_read_only(admin_client, model):
    coach = make_session("RESCHEDULING").coach
    availability_week_set(coach=coach, week={0: [(time(9), time(17))]})
    now = datetime.now(LONDON).replace(second=0, microsecond=0)
    availability_window_add(
        coach=coach, start=now + timedelta(days=1), end=now + timedelta(days=1, hours=1)
    )
    time_off_add(coach=coach, start=now + timedelta(days=2), end=now + timedelta(days=3))
    BusyTime.objects.create(coach=coach, start=now, end=now + timedelta(hours=1))
    obj = {
        "availabilityrule": coach.availability_rules.first(),
        "availabilitywindow": coach.availability_windows.first(),
        "timeoff": coach.time_off.first(),
        "busytime": coach.busy_times.first(),
        "timeslot": coach.time_slots.first(),
    }[model]
    change = reverse(f"admin:calendars_{model}_change", args=[obj.pk])
    page = admin_client.get(change)

    assert (page.status_code, 'name="_save"' in page.content.decode()) == (200, False)
    assert admin_client.post(change, {}).status_code == 403
    assert admin_client.get(reverse(f"admin:calendars_{model}_add")).status_code == 403
    delete = reverse(f"admin:calendars_{model}_delete", args=[obj.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_a_reservation_links_to_its_session_and_is_found_by_session_number(admin_client):
    session = make_session("CONFIRMED")
    make_session("CONFIRMED")

    response = admin_client.get(_changelist("timeslot"), {"q": str(session.pk)})

    rows = response.context_data["cl"].result_list
    assert [slot.session_id for slot in rows] == [session.pk]
    url = reverse("admin:sessions_app_session_change", args=[session.pk])
    assert url in response.content.decode()


def test_non_staff_are_refused_the_calendars_admin(client):
    client.force_login(StudentFactory())

    response = client.get(_changelist("timeslot"))

    assert response.status_code == 302


def _fill_calendars(coaches: int) -> None:
    """For each of `coaches` coaches: weekly hours, a one-off window, time off, a busy time,
    and a rescheduling session (an agreed time and a proposal's time)."""
    now = datetime.now(LONDON).replace(second=0, microsecond=0)
    for index in range(coaches):
        coach = make_session("RESCHEDULING").coach
        availability_week_set(coach=coach, week={day: [(time(9), time(17))] for day in range(5)})
        soon = now + timedelta(days=1 + index)
        availability_window_add(coach=coach, start=soon, end=soon + timedelta(hours=1))
        time_off_add(coach=coach, start=soon + timedelta(days=40), end=soon + timedelta(days=41))
        BusyTime.objects.create(
            coach=coach,
            calendar=ExternalCalendarFactory(coach=coach),
            start=soon,
            end=soon + timedelta(hours=1),
        )


@pytest.mark.parametrize("model", MODELS)
def test_calendar_lists_render_within_a_fixed_query_budget(
    admin_client, django_assert_max_num_queries, model
):
    _fill_calendars(12)

    with django_assert_max_num_queries(8):
        response = admin_client.get(_changelist(model))

    assert response.status_code == 200
    assert len(response.context_data["cl"].result_list) >= 12
