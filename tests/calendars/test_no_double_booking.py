"""No double booking: a coach's active reservations never overlap (buffers included), nor a
student's, except the two reservations of one session (its agreed time and its proposal).

Through the services on both databases; on PostgreSQL also past the services (the exclusion
constraints refuse raw rows) and under real concurrency: threads released together by a barrier,
each with its own connection, as web workers would be.
"""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone

from calendars.models import ACTIVE_SLOT_STATUSES, SlotStatus, TimeSlot
from calendars.services import SlotUnavailable, availability_window_add
from calendars.services import reservations as reservation_services
from sessions_app import services
from sessions_app.lifecycle import Action, Status
from sessions_app.models import ProposalStatus, RescheduleProposal, Session, SessionEvent
from sessions_app.services import session_book
from tests.conftest import race
from tests.factories import CoachFactory, OfferingFactory, StudentFactory, make_package

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
JUST_TAKEN = "That time was just taken. Pick another."
NOT_FREE = "That time is not free any more. Pick another."


@pytest.fixture(autouse=True)
def clock():
    # Ticking from a fixed moment: the threads of a race share the one clock.
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


def day_ahead(days: int = 4):
    """Midnight UTC `days` from now: far from the notice, inside every horizon."""
    return (timezone.now() + timedelta(days=days)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )


def open_hours(coach, day, begin: int = 8, end: int = 14) -> None:
    availability_window_add(
        coach=coach, start=day + timedelta(hours=begin), end=day + timedelta(hours=end)
    )


def credits_for(offering, count: int, student=None) -> list[Session]:
    """One unscheduled session each for `count` students (or one `student`) of the offering."""
    return [
        make_package(offering=offering, student=student).sessions.order_by("number").first()
        for _ in range(count)
    ]


def overlapping_active_pairs(key: str, begin: str, finish: str) -> list[tuple[int, int]]:
    """Active reservations of one coach (or student) and different sessions that overlap."""
    rows = list(
        TimeSlot.objects.filter(status__in=ACTIVE_SLOT_STATUSES).values_list(
            "pk", key, "session_id", begin, finish
        )
    )
    return [
        (a[0], b[0])
        for a in rows
        for b in rows
        if a[0] < b[0] and a[1] == b[1] and a[2] != b[2] and a[3] < b[4] and b[3] < a[4]
    ]


def assert_no_overlaps() -> None:
    assert overlapping_active_pairs("coach", "reserved_start", "reserved_end") == []
    assert overlapping_active_pairs("student", "start", "end") == []


# --- through the services (SQLite and PostgreSQL) -------------------------------------------------


@pytest.mark.django_db
def test_overlapping_bookings_of_one_coach_are_refused_with_buffers():
    coach = CoachFactory(profile__buffer_before_minutes=10, profile__buffer_after_minutes=20)
    day = day_ahead()
    open_hours(coach, day)
    offering = OfferingFactory(coach=coach, duration_minutes=90)
    first, *others = credits_for(offering, 4)
    session_book(session=first, start=day + timedelta(hours=10), actor=first.student)

    outcomes = []
    # Between two sessions lie the first's 20 minutes after and the next's 10 before: 08:30
    # (ending at 10:00) and 11:30 (the first ends then) are refused, 12:00 leaves the gap.
    for session, hour in zip(others, (8.5, 11.5, 12), strict=True):
        try:
            booked = session_book(
                session=session, start=day + timedelta(hours=hour), actor=session.student
            )
            outcomes.append(booked.slot.start)
        except SlotUnavailable as refused:
            outcomes.append(refused.message)

    assert outcomes == [NOT_FREE, NOT_FREE, day + timedelta(hours=12)]
    assert sorted(TimeSlot.objects.filter(coach=coach).values_list("start", "end", "status")) == [
        (day + timedelta(hours=10), day + timedelta(hours=11, minutes=30), SlotStatus.HELD),
        (day + timedelta(hours=12), day + timedelta(hours=13, minutes=30), SlotStatus.HELD),
    ]
    assert_no_overlaps()


@pytest.mark.django_db
def test_a_student_cannot_hold_two_sessions_at_the_same_time_with_two_coaches():
    student, day = StudentFactory(), day_ahead()
    sessions = []
    for _ in range(2):
        offering = OfferingFactory()
        open_hours(offering.coach, day)
        sessions += credits_for(offering, 1, student=student)
    session_book(session=sessions[0], start=day + timedelta(hours=10), actor=student)

    with pytest.raises(SlotUnavailable) as refused:
        session_book(
            session=sessions[1], start=day + timedelta(hours=10, minutes=30), actor=student
        )

    assert refused.value.message == NOT_FREE
    sessions[1].refresh_from_db()
    assert (sessions[1].status, sessions[1].slot) == (Status.UNSCHEDULED, None)
    assert TimeSlot.objects.filter(session=sessions[1]).count() == 0
    assert_no_overlaps()


@pytest.mark.django_db
def test_a_reschedule_may_overlap_its_own_agreed_time_but_no_one_elses():
    coach, day = CoachFactory(), day_ahead()
    open_hours(coach, day)
    mine, theirs = credits_for(OfferingFactory(coach=coach), 2)
    for session, hour in ((mine, 9), (theirs, 11)):
        session_book(session=session, start=day + timedelta(hours=hour), actor=session.student)
        services.session_accept(session=session, actor=coach)

    proposal = services.session_propose_reschedule(
        session=mine, start=day + timedelta(hours=9, minutes=30), actor=mine.student
    )
    with pytest.raises(SlotUnavailable):
        services.session_counter_propose(
            session=mine, start=day + timedelta(hours=10, minutes=30), actor=coach
        )

    assert (proposal.slot.start, proposal.slot.status) == (
        day + timedelta(hours=9, minutes=30),
        SlotStatus.HELD,
    )
    assert RescheduleProposal.objects.get(pk=proposal.pk).status == ProposalStatus.PENDING
    assert_no_overlaps()


# --- past the services: the exclusion constraints (PostgreSQL) ------------------------------------


def _reservation(session, start, minutes=60, *, before=0, after=0, status=SlotStatus.HELD):
    return TimeSlot.objects.create(
        coach=session.coach,
        student=session.student,
        session=session,
        start=start,
        end=start + timedelta(minutes=minutes),
        reserved_start=start - timedelta(minutes=before),
        reserved_end=start + timedelta(minutes=minutes + after),
        status=status,
    )


@pytest.fixture
def two_sessions_of_one_coach(db):
    offering = OfferingFactory()
    return credits_for(offering, 2)


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("second", "refused"),
    [
        ({"start": 30}, True),  # overlapping times
        ({"start": 0}, True),  # the same time
        ({"start": 60, "before": 15}, True),  # only the buffers overlap
        ({"start": 60}, False),  # touching: [10:00, 11:00) then [11:00, 12:00)
        ({"start": 30, "status": SlotStatus.BOOKED}, True),
        ({"start": 30, "status": SlotStatus.RELEASED}, False),  # history never conflicts
    ],
    ids=["overlap", "same-time", "buffers", "touching", "booked", "released"],
)
def test_the_database_refuses_overlapping_active_reservations_of_one_coach(
    two_sessions_of_one_coach, second, refused
):
    first_session, second_session = two_sessions_of_one_coach
    ten = day_ahead() + timedelta(hours=10)
    _reservation(first_session, ten, status=SlotStatus.BOOKED)
    fields = dict(second)
    start = ten + timedelta(minutes=fields.pop("start"))

    if refused:
        with pytest.raises(IntegrityError, match="timeslot_coach_no_overlap"), transaction.atomic():
            _reservation(second_session, start, **fields)
    else:
        _reservation(second_session, start, **fields)

    assert TimeSlot.objects.filter(coach=first_session.coach).count() == (1 if refused else 2)


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_database_refuses_overlapping_active_reservations_of_one_student():
    student = StudentFactory()
    first, second = (
        credits_for(OfferingFactory(), 1, student=student)[0],
        credits_for(OfferingFactory(), 1, student=student)[0],
    )
    ten = day_ahead() + timedelta(hours=10)
    _reservation(first, ten)

    with pytest.raises(IntegrityError, match="timeslot_student_no_overlap"), transaction.atomic():
        _reservation(second, ten + timedelta(minutes=45))
    # A student's reservations carry no buffers: touching ones are fine.
    _reservation(second, ten + timedelta(minutes=60), before=30)

    assert TimeSlot.objects.filter(student=student).count() == 2


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_database_lets_one_sessions_agreed_time_and_proposal_overlap(
    two_sessions_of_one_coach,
):
    session = two_sessions_of_one_coach[0]
    ten = day_ahead() + timedelta(hours=10)

    _reservation(session, ten, status=SlotStatus.BOOKED, after=15)
    _reservation(session, ten + timedelta(minutes=30), after=15)

    assert TimeSlot.objects.filter(session=session).count() == 2


# --- concurrency (PostgreSQL) ---------------------------------------------------------------------


def _outcomes(results) -> tuple[list[Session], list[SlotUnavailable]]:
    """The winners and the refusals; anything else that escaped fails the test."""
    winners = [result for result in results if isinstance(result, Session)]
    refusals = [result for result in results if isinstance(result, SlotUnavailable)]
    assert len(winners) + len(refusals) == len(results), results
    return winners, refusals


def _starts(day, count: int) -> list:
    """`count` different starts 10 minutes apart from 10:00: every two of them overlap."""
    return [day + timedelta(hours=10, minutes=10 * index) for index in range(count)]


def _checked_after_everyone(monkeypatch, count: int) -> None:
    """Hold each booking between its availability check and its insert until all `count`
    have passed the check, so only the database can tell them apart. The services' own
    serialisation (the people's row locks) is taken out, as if it had a hole: the exclusion
    constraints must still let exactly one in."""
    monkeypatch.setattr(services, "_lock_people", lambda session: None)
    barrier = threading.Barrier(count)
    check = reservation_services.bookable_starts

    def checked(**kwargs):
        found = check(**kwargs)
        barrier.wait(timeout=30)
        return found

    monkeypatch.setattr(reservation_services, "bookable_starts", checked)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("students", [2, 6])
def test_students_booking_overlapping_starts_after_the_check_let_exactly_one_in(
    monkeypatch, students
):
    coach = CoachFactory(profile__start_interval_minutes=10, profile__buffer_after_minutes=5)
    day = day_ahead()
    open_hours(coach, day)
    sessions = credits_for(OfferingFactory(coach=coach), students)
    starts = _starts(day, students)
    _checked_after_everyone(monkeypatch, students)

    results = race(
        students,
        lambda i: session_book(session=sessions[i], start=starts[i], actor=sessions[i].student),
    )

    winners, refusals = _outcomes(results)
    assert (len(winners), [refusal.message for refusal in refusals]) == (
        1,
        [JUST_TAKEN] * (students - 1),
    )
    (winner,) = winners
    assert list(TimeSlot.objects.filter(coach=coach).values_list("session", "status", "start")) == [
        (winner.pk, SlotStatus.HELD, winner.slot.start)
    ]
    assert list(
        SessionEvent.objects.filter(action=Action.BOOK).values_list("session", flat=True)
    ) == [winner.pk]
    raced = Session.objects.filter(pk__in=[session.pk for session in sessions])
    assert sorted(raced.values_list("status", flat=True)) == sorted(
        [Status.REQUESTED] + [Status.UNSCHEDULED] * (students - 1)
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(3))  # a lost race shows up within a few
def test_ten_students_racing_for_overlapping_starts_get_one_booking_and_no_errors(attempt):
    coach = CoachFactory(profile__start_interval_minutes=10)
    day = day_ahead()
    open_hours(coach, day)
    sessions = credits_for(OfferingFactory(coach=coach), 10)
    starts = _starts(day, 5) * 2  # two students for each of five overlapping starts

    results = race(
        10, lambda i: session_book(session=sessions[i], start=starts[i], actor=sessions[i].student)
    )

    winners, refusals = _outcomes(results)
    assert (len(winners), len(refusals)) == (1, 9)
    # Refused by the check (it saw the winner) or by the constraint (it did not yet).
    assert {refusal.message for refusal in refusals} <= {JUST_TAKEN, NOT_FREE}
    assert TimeSlot.objects.filter(coach=coach, status__in=ACTIVE_SLOT_STATUSES).count() == 1
    assert SessionEvent.objects.filter(action=Action.BOOK).count() == 1
    assert_no_overlaps()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(3))
def test_a_student_booking_two_coaches_at_once_for_overlapping_times_gets_one(attempt):
    student, day = StudentFactory(), day_ahead()
    sessions = []
    for _ in range(2):
        offering = OfferingFactory()
        open_hours(offering.coach, day)
        sessions += credits_for(offering, 1, student=student)
    starts = [day + timedelta(hours=10), day + timedelta(hours=10, minutes=30)]

    results = race(2, lambda i: session_book(session=sessions[i], start=starts[i], actor=student))

    winners, refusals = _outcomes(results)
    # The student's row lock orders the two: the second sees the first's reservation.
    assert (len(winners), [refusal.message for refusal in refusals]) == (1, [NOT_FREE])
    assert Session.objects.filter(student=student, status=Status.REQUESTED).count() == 1
    assert TimeSlot.objects.filter(student=student, status=SlotStatus.HELD).count() == 1
    assert_no_overlaps()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_proposal_and_a_booking_racing_for_overlapping_times_get_one(monkeypatch):
    coach, day = CoachFactory(), day_ahead()
    open_hours(coach, day)
    confirmed, credit = credits_for(OfferingFactory(coach=coach), 2)
    session_book(session=confirmed, start=day + timedelta(hours=9), actor=confirmed.student)
    services.session_accept(session=confirmed, actor=coach)
    _checked_after_everyone(monkeypatch, 2)
    acts = [
        lambda: services.session_propose_reschedule(
            session=confirmed, start=day + timedelta(hours=11), actor=coach
        ),
        lambda: session_book(
            session=credit, start=day + timedelta(hours=11, minutes=30), actor=credit.student
        ),
    ]

    results = race(2, lambda i: acts[i]())

    refusals = [result for result in results if isinstance(result, SlotUnavailable)]
    made = [result for result in results if isinstance(result, (Session, RescheduleProposal))]
    assert (len(made), [refusal.message for refusal in refusals]) == (1, [JUST_TAKEN])
    assert TimeSlot.objects.filter(coach=coach, status__in=ACTIVE_SLOT_STATUSES).count() == 2
    assert_no_overlaps()
