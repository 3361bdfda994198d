"""The issue's acceptance story, end to end through the services, on a fixed clock.

A coach with 30-, 60- and 90-minute offerings sets Mon-Fri 09:00-17:00 once; a student books a
90-minute session at 10:00 and a 30-minute one cannot start before 11:30; the coach proposes
another time and the student declines it, and the lesson is still at 10:00; an unanswered
proposal leaves it there too.
"""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from calendars.models import SlotStatus
from calendars.selectors import bookable_starts
from calendars.services import availability_week_set
from sessions_app import services
from sessions_app.lifecycle import Status
from tests.factories import CoachFactory, OfferingFactory, StudentFactory, make_package

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
# A Tuesday evening in winter, 23:30 London time: the hour that used to break the seed.
NOW = datetime(2026, 12, 1, 23, 30, tzinfo=LONDON)
WEDNESDAY = datetime(2026, 12, 2, tzinfo=LONDON)


def _at(hour: int, minute: int = 0) -> datetime:
    return WEDNESDAY.replace(hour=hour, minute=minute)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def coach(clock):
    coach = CoachFactory(timezone="Europe/London", profile__minimum_notice_hours=2)
    nine_to_five = [(time(9), time(17))]
    availability_week_set(coach=coach, week={day: nine_to_five for day in range(5)})
    return coach


def _starts(coach, minutes: int, student=None) -> list[datetime]:
    return bookable_starts(
        coach=coach,
        duration_minutes=minutes,
        start=_at(0),
        end=_at(23, 59),
        student=student,
    )


def test_ninety_minute_booking_reserves_exactly_ninety_minutes_and_shifts_shorter_sessions(coach):
    student = StudentFactory(timezone="Europe/London")
    package = make_package(student=student, coach=coach, duration_minutes=90)
    session = package.sessions.first()

    services.session_book(session=session, start=_at(10), actor=student)

    session.refresh_from_db()
    assert (session.slot.start, session.slot.end) == (_at(10), _at(11, 30))
    assert session.slot.status == SlotStatus.HELD
    thirty = _starts(coach, 30, student=StudentFactory())
    assert thirty[:3] == [_at(9), _at(9, 30), _at(11, 30)]
    assert _at(10) not in thirty and _at(11) not in thirty
    # The coach can sell 30, 60 and 90 minutes at the same hours.
    assert _starts(coach, 60)[:2] == [_at(9), _at(11, 30)]
    assert _starts(coach, 90)[-1] == _at(15, 30)


@pytest.fixture
def confirmed(coach):
    student = StudentFactory(timezone="Europe/London")
    OfferingFactory(coach=coach, duration_minutes=30)
    package = make_package(student=student, coach=coach, duration_minutes=90)
    session = package.sessions.first()
    services.session_book(session=session, start=_at(10), actor=student)
    services.session_accept(session=session, actor=coach)
    session.refresh_from_db()
    return session


def test_declined_proposal_keeps_the_lesson_at_ten(coach, confirmed):
    agreed = confirmed.slot
    proposal = services.session_propose_reschedule(session=confirmed, start=_at(14), actor=coach)
    # While the new time is being agreed, 10:00 is still booked: nobody else can take it.
    assert _at(10) not in _starts(coach, 30, student=StudentFactory())

    services.session_decline_reschedule(session=confirmed, actor=confirmed.student)

    confirmed.refresh_from_db()
    proposal.refresh_from_db()
    agreed.refresh_from_db()
    proposal.slot.refresh_from_db()
    assert confirmed.status == Status.CONFIRMED
    assert confirmed.slot_id == agreed.pk
    assert (agreed.start, agreed.status) == (_at(10), SlotStatus.BOOKED)
    assert (proposal.status, proposal.slot.status) == ("DECLINED", SlotStatus.RELEASED)
    assert _at(14) in _starts(coach, 30, student=StudentFactory())


def test_unanswered_proposal_expires_back_to_the_agreed_time(coach, confirmed, clock):
    proposal = services.session_propose_reschedule(session=confirmed, start=_at(15), actor=coach)
    # The proposal waits until the earliest of the window, its start and the agreed start.
    assert proposal.expires_at == _at(10)

    clock.move_to(_at(10, 1))
    assert services.sessions_expire_stale() == 1

    confirmed.refresh_from_db()
    proposal.refresh_from_db()
    assert confirmed.status == Status.CONFIRMED
    assert confirmed.slot.start == _at(10)
    assert confirmed.slot.status == SlotStatus.BOOKED
    assert proposal.status == "EXPIRED"
    assert list(confirmed.events.values_list("action", flat=True))[-1] == "expire_reschedule"


def test_tomorrow_morning_is_bookable_late_in_the_evening(coach):
    """23:30 on a Tuesday: Wednesday 09:00 lies beyond the two hours' notice."""
    assert _starts(coach, 60)[0] == _at(9)
    assert NOW + timedelta(hours=2) < _at(9)
