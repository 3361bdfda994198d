"""No double booking, under real concurrency on PostgreSQL: one slot, one holder; a coach's
slots never overlap; a student never holds two sessions at the same time.

The concurrent tests release their threads together with a barrier; each thread has its own
database connection, as two web workers would.
"""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from calendars.models import TimeSlot
from calendars.services import SlotUnavailable, slot_create
from sessions_app.lifecycle import Action, Status
from sessions_app.models import Session, SessionEvent
from sessions_app.services import session_book
from tests.factories import (
    CoachFactory,
    OfferingFactory,
    StudentFactory,
    TimeSlotFactory,
    make_package,
)


def race(count: int, act) -> list:
    """Run act(index) in `count` threads released at once; each result or raised exception."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = act(index)
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a booking thread hung"
    return results


def credits_for(offering, count: int) -> list[Session]:
    """One unscheduled session each for `count` different students of the offering's coach."""
    return [
        make_package(offering=offering).sessions.order_by("number").first() for _ in range(count)
    ]


@pytest.mark.parametrize("students", [2, 10])
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_bookings_of_one_slot_let_exactly_one_student_in(students):
    offering = OfferingFactory()
    slot = TimeSlotFactory(coach=offering.coach)
    sessions = credits_for(offering, students)

    results = race(
        students,
        lambda i: session_book(session=sessions[i], slot=slot, actor=sessions[i].student),
    )

    winners = [result for result in results if isinstance(result, Session)]
    refusals = [result for result in results if isinstance(result, SlotUnavailable)]
    assert (len(winners), len(refusals)) == (1, students - 1), results
    assert {refusal.message for refusal in refusals} == {"That time was just taken. Pick another."}
    slot.refresh_from_db()
    assert slot.status == "HELD"
    assert list(Session.objects.filter(slot=slot).values_list("pk", "status")) == [
        (winners[0].pk, Status.REQUESTED)
    ]
    assert SessionEvent.objects.filter(action=Action.BOOK).count() == 1
    raced = Session.objects.filter(pk__in=[session.pk for session in sessions])
    assert raced.filter(status=Status.UNSCHEDULED).count() == students - 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_overlapping_slot_creation_lets_exactly_one_win():
    coach = CoachFactory()
    start = (timezone.now() + timedelta(days=5)).replace(minute=0, second=0, microsecond=0)
    times = [
        (start, start + timedelta(hours=1)),
        (start + timedelta(minutes=30), start + timedelta(minutes=90)),
    ]

    results = race(2, lambda i: slot_create(coach=coach, start=times[i][0], end=times[i][1]))

    created = [result for result in results if isinstance(result, TimeSlot)]
    refusals = [result for result in results if isinstance(result, SlotUnavailable)]
    assert (len(created), len(refusals)) == (1, 1), results
    assert refusals[0].message == "That time overlaps one of your existing slots."
    assert list(TimeSlot.objects.filter(coach=coach).values_list("pk", flat=True)) == [
        created[0].pk
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_identical_slot_creations_make_one_slot():
    coach = CoachFactory()
    start = (timezone.now() + timedelta(days=5)).replace(minute=0, second=0, microsecond=0)

    results = race(
        10, lambda i: slot_create(coach=coach, start=start, end=start + timedelta(hours=1))
    )

    assert sum(isinstance(result, TimeSlot) for result in results) == 1, results
    assert sum(isinstance(result, SlotUnavailable) for result in results) == 9
    assert TimeSlot.objects.filter(coach=coach).count() == 1


def _same_time_with_two_coaches():
    student = StudentFactory()
    start = (timezone.now() + timedelta(days=4)).replace(minute=0, second=0, microsecond=0)
    sessions, slots = [], []
    for _ in range(2):
        offering = OfferingFactory()
        package = make_package(offering=offering, student=student)
        sessions.append(package.sessions.order_by("number").first())
        slots.append(
            TimeSlotFactory(
                coach=offering.coach,
                start=start + timedelta(minutes=30 * len(slots)),
                end=start + timedelta(minutes=60 + 30 * len(slots)),
            )
        )
    return student, sessions, slots


@pytest.mark.django_db
def test_student_cannot_hold_two_sessions_at_the_same_time_with_two_coaches():
    student, sessions, slots = _same_time_with_two_coaches()
    session_book(session=sessions[0], slot=slots[0], actor=student)

    with pytest.raises(SlotUnavailable) as refused:
        session_book(session=sessions[1], slot=slots[1], actor=student)

    assert refused.value.message == "The student already has a session at that time."
    slots[1].refresh_from_db()
    sessions[1].refresh_from_db()
    assert (slots[1].status, sessions[1].status) == ("OPEN", Status.UNSCHEDULED)


@pytest.mark.parametrize("attempt", range(5))  # a lost race shows up within a few
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_student_booking_two_coaches_at_once_for_the_same_time_gets_one(attempt):
    student, sessions, slots = _same_time_with_two_coaches()

    results = race(2, lambda i: session_book(session=sessions[i], slot=slots[i], actor=student))

    refusals = [result for result in results if isinstance(result, SlotUnavailable)]
    assert sum(isinstance(result, Session) for result in results) == 1, results
    assert [refusal.message for refusal in refusals] == [
        "The student already has a session at that time."
    ]
    assert Session.objects.filter(student=student, status=Status.REQUESTED).count() == 1
    assert TimeSlot.objects.filter(pk__in=[s.pk for s in slots], status="HELD").count() == 1
