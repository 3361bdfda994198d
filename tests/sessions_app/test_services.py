"""What each service does besides the status: reservations, windows, money, sweeps, invariants.

The clock is frozen; times come from one-off availability windows opened where a test needs
them (or from `next_free_start`), so nothing depends on the hour the suite runs.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction

from accounts.models import CoachProfile
from calendars.models import ACTIVE_SLOT_STATUSES, SlotStatus, TimeSlot
from calendars.services import SlotInvalid, SlotUnavailable, slots_reopen_freed
from calendars.services import availability_window_add as window_add
from refunds.models import Payment, PaymentState, Refund, RefundKind, RefundState
from refunds.services import RefundNotAllowed, refund_issue
from sessions_app import services
from sessions_app.lifecycle import Action, PermissionDenied, Status, TransitionNotAllowed
from sessions_app.models import ProposalStatus, RescheduleProposal, Session, SessionEvent
from tests.factories import (
    CoachFactory,
    OfferingFactory,
    StudentFactory,
    make_package,
    make_session,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("coaches_decide_refunds")]

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
DAY = datetime(2026, 3, 5, tzinfo=UTC)  # the Thursday after


def at(hour: int, minute: int = 0, day: datetime = DAY) -> datetime:
    return day.replace(hour=hour, minute=minute)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def slot_status(slot) -> str:
    return TimeSlot.objects.get(pk=slot.pk).status


def reservations_of(session) -> list[tuple[datetime, datetime, str]]:
    """Every reservation the session ever made: (start, end, status), oldest first."""
    return list(
        TimeSlot.objects.filter(session=session)
        .order_by("pk")
        .values_list("start", "end", "status")
    )


def credit(coach=None, student=None, minutes: int = 60):
    """An unscheduled session of a fresh package (of `coach`, for `student`)."""
    package = make_package(
        student=student,
        offering=OfferingFactory(coach=coach or CoachFactory(), duration_minutes=minutes),
    )
    return package.sessions.order_by("number").first()


def open_day(coach, begin: int = 9, end: int = 13, day: datetime = DAY):
    """A one-off window of availability on `day` from `begin` to `end` o'clock (UTC)."""
    window_add(coach=coach, start=at(begin, day=day), end=at(end, day=day))


def booked(start: datetime, *, coach=None, student=None, accept=False, minutes: int = 60):
    """A session booked at `start` (in an open window) through the services."""
    session = credit(coach, student, minutes)
    services.session_book(session=session, start=start, actor=session.student)
    if accept:
        services.session_accept(session=session, actor=session.coach)
    session.refresh_from_db()
    return session


def confirmed_at(start: datetime, coach=None, **kwargs):
    coach = coach or CoachFactory()
    open_day(coach, day=start)
    return booked(start, coach=coach, accept=True, **kwargs)


# --- purchase -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "count", "shares"),
    [
        (30000, 3, [10000, 10000, 10000]),
        (10000, 3, [3334, 3333, 3333]),
        (10001, 3, [3334, 3334, 3333]),
        (5, 1, [5]),
    ],
)
def test_purchase_splits_price_with_remainder_cents_first(price, count, shares):
    package = make_package(price_cents=price, session_count=count)

    assert list(package.sessions.values_list("price_share_cents", flat=True)) == shares
    assert sum(shares) == price


def test_purchase_records_payment_and_unscheduled_credits_with_one_event_each():
    offering = OfferingFactory(session_count=4, price_cents=20000, currency="EUR")
    student = StudentFactory()

    package = services.package_purchase(student=student, offering=offering)

    payment = Payment.objects.get(package=package)
    assert (payment.amount_cents, payment.currency, payment.gateway, payment.state) == (
        20000,
        "EUR",
        "manual",
        PaymentState.DONE,
    )
    assert list(package.sessions.values_list("status", "slot")) == [(Status.UNSCHEDULED, None)] * 4
    assert (
        list(
            SessionEvent.objects.filter(session__package=package).values_list(
                "action", "from_status", "to_status", "actor"
            )
        )
        == [(Action.CREATE, "", Status.UNSCHEDULED, student.pk)] * 4
    )
    assert TimeSlot.objects.count() == 0


def test_purchase_of_inactive_offering_is_refused():
    offering = OfferingFactory(is_active=False)

    with pytest.raises(TransitionNotAllowed) as refused:
        services.package_purchase(student=StudentFactory(), offering=offering)

    assert refused.value.message == "This offering is no longer available."
    assert (Payment.objects.count(), Session.objects.count()) == (0, 0)


def test_coach_cannot_buy_own_offering():
    offering = OfferingFactory()

    with pytest.raises(PermissionDenied) as refused:
        services.package_purchase(student=offering.coach, offering=offering)

    assert refused.value.message == "You cannot buy your own offering."


# --- booking ------------------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [30, 60, 90])
def test_book_holds_a_reservation_of_exactly_the_sessions_length(minutes):
    coach = CoachFactory(profile__buffer_before_minutes=10, profile__buffer_after_minutes=5)
    open_day(coach)
    session = credit(coach, minutes=minutes)

    services.session_book(session=session, start=at(10), actor=session.student)

    session.refresh_from_db()
    slot = session.slot
    length = timedelta(minutes=minutes)
    assert session.status == Status.REQUESTED
    assert (slot.coach, slot.student, slot.session, slot.status) == (
        coach,
        session.student,
        session,
        SlotStatus.HELD,
    )
    assert (slot.start, slot.end, slot.reserved_start, slot.reserved_end) == (
        at(10),
        at(10) + length,
        at(9, 50),
        at(10) + length + timedelta(minutes=5),
    )
    assert slot.duration_minutes == minutes
    assert session.request_expires_at == NOW + timedelta(hours=48)
    event = session.events.get(action=Action.BOOK)
    assert (event.actor, event.details) == (
        session.student,
        {"slot_id": slot.pk, "start": at(10).isoformat(), "end": (at(10) + length).isoformat()},
    )


def test_request_for_a_soon_start_expires_at_its_start():
    coach = CoachFactory()
    soon = NOW + timedelta(hours=5)
    window_add(coach=coach, start=soon, end=soon + timedelta(hours=1))

    session = booked(soon, coach=coach)

    assert session.request_expires_at == soon


def test_book_and_propose_use_default_windows_when_the_coach_profile_is_gone():
    coach = CoachFactory()
    first, second = NOW + timedelta(days=3), NOW + timedelta(days=4)
    for start in (first, second):
        window_add(coach=coach, start=start, end=start + timedelta(hours=1))
    session = credit(coach)
    CoachProfile.objects.filter(user=coach).delete()  # as the admin's Delete once allowed
    coach.refresh_from_db()

    services.session_book(session=session, start=first, actor=session.student)
    session.refresh_from_db()
    request_expires_at = session.request_expires_at
    services.session_accept(session=session, actor=coach)
    proposal = services.session_propose_reschedule(
        session=session, start=second, actor=session.student
    )

    defaults = CoachProfile()
    assert request_expires_at == NOW + timedelta(hours=defaults.request_window_hours)
    assert proposal.expires_at == NOW + timedelta(hours=defaults.reschedule_window_hours)
    assert Session.objects.get(pk=session.pk).status == Status.RESCHEDULING


NOT_FREE = "That time is not free any more. Pick another."


def _refusal_cases():
    """(name, arrange(coach) -> start, profile fields, the refusal)."""
    return [
        ("off-the-grid", lambda coach: at(10, 10), {}, (SlotUnavailable, NOT_FREE)),
        ("outside-availability", lambda coach: at(14), {}, (SlotUnavailable, NOT_FREE)),
        ("not-fitting-the-window", lambda coach: at(12, 30), {}, (SlotUnavailable, NOT_FREE)),
        (
            "inside-the-notice",
            lambda coach: NOW + timedelta(hours=3),
            {"minimum_notice_hours": 24},
            (SlotUnavailable, "That time is too soon; pick a later one."),
        ),
        (
            "in-the-past",
            lambda coach: NOW - timedelta(hours=3),
            {},
            (SlotUnavailable, "That time is too soon; pick a later one."),
        ),
        (
            "beyond-the-horizon",
            lambda coach: NOW + timedelta(days=8),
            {"booking_horizon_days": 7},
            (SlotUnavailable, "That time is too far ahead; pick an earlier one."),
        ),
        (
            "naive",
            lambda coach: at(10).replace(tzinfo=None),
            {},
            (SlotInvalid, "A time must carry a timezone."),
        ),
        (
            "taken-by-another-session",
            lambda coach: booked(at(10), coach=coach).slot.start,
            {},
            (SlotUnavailable, NOT_FREE),
        ),
        (
            "overlapping-another-session",
            lambda coach: booked(at(10), coach=coach) and at(10, 30),
            {},
            (SlotUnavailable, NOT_FREE),
        ),
    ]


@pytest.mark.parametrize(
    ("arrange", "profile", "refusal"),
    [pytest.param(*case[1:], id=case[0]) for case in _refusal_cases()],
)
def test_book_refuses_a_start_that_is_not_bookable_and_changes_nothing(arrange, profile, refusal):
    coach = CoachFactory(**{f"profile__{name}": value for name, value in profile.items()})
    open_day(coach)
    for moment in (NOW - timedelta(hours=3), NOW + timedelta(hours=3), NOW + timedelta(days=8)):
        window_add(coach=coach, start=moment, end=moment + timedelta(hours=1), now=moment)
    start = arrange(coach)
    session = credit(coach)
    reservations = list(TimeSlot.objects.values_list("pk", "status"))

    with pytest.raises(refusal[0]) as refused:
        services.session_book(session=session, start=start, actor=session.student)

    assert refused.value.message == refusal[1]
    session.refresh_from_db()
    assert (session.status, session.slot, session.request_expires_at) == (
        Status.UNSCHEDULED,
        None,
        None,
    )
    assert list(session.events.values_list("action", flat=True)) == [Action.CREATE]
    assert list(TimeSlot.objects.values_list("pk", "status")) == reservations


def test_book_refuses_a_time_the_student_holds_with_another_coach():
    student, coach, other = StudentFactory(), CoachFactory(), CoachFactory()
    open_day(coach)
    open_day(other)
    booked(at(10), coach=other, student=student)
    session = credit(coach, student)

    with pytest.raises(SlotUnavailable) as refused:
        services.session_book(session=session, start=at(10, 30), actor=student)

    assert refused.value.message == NOT_FREE
    services.session_book(session=session, start=at(11), actor=student)
    assert Session.objects.get(pk=session.pk).slot.start == at(11)


@pytest.mark.parametrize("action", ["withdraw", "decline"])
def test_withdraw_and_decline_return_the_credit_and_release_the_time(action):
    session = make_session("REQUESTED")
    slot = session.slot

    if action == "withdraw":
        services.session_withdraw(session=session, actor=session.student)
    else:
        services.session_decline(session=session, actor=session.coach, reason=" Away that week ")

    session.refresh_from_db()
    assert (session.status, session.slot, session.request_expires_at) == (
        Status.UNSCHEDULED,
        None,
        None,
    )
    assert slot_status(slot) == SlotStatus.RELEASED
    assert TimeSlot.objects.get(pk=slot.pk).released_at == NOW
    expected = {"slot_id": slot.pk, "start": slot.start.isoformat(), "end": slot.end.isoformat()}
    if action == "decline":
        expected["reason"] = "Away that week"
    assert session.events.order_by("pk").last().details == expected


def test_a_released_time_can_be_booked_again_by_anyone():
    first = make_session("REQUESTED")
    start = first.slot.start
    services.session_withdraw(session=first, actor=first.student)
    other = credit(first.coach)

    services.session_book(session=other, start=start, actor=other.student)

    other.refresh_from_db()
    assert (other.status, other.slot.start, other.slot.status) == (
        Status.REQUESTED,
        start,
        SlotStatus.HELD,
    )


def test_accept_books_the_held_time():
    session = make_session("REQUESTED")
    slot = session.slot

    services.session_accept(session=session, actor=session.coach)

    session.refresh_from_db()
    assert (session.status, session.slot, slot_status(slot), session.request_expires_at) == (
        Status.CONFIRMED,
        slot,
        SlotStatus.BOOKED,
        None,
    )


def test_accept_after_the_window_is_refused_even_before_the_sweep(clock):
    session = make_session("REQUESTED")
    clock.move_to(session.request_expires_at + timedelta(minutes=1))

    with pytest.raises(TransitionNotAllowed) as refused:
        services.session_accept(session=session, actor=session.coach)

    assert refused.value.message == "This request has expired; the student can book again."
    session.refresh_from_db()
    assert (session.status, slot_status(session.slot)) == (Status.REQUESTED, SlotStatus.HELD)


# --- rescheduling -------------------------------------------------------------------------


def test_propose_holds_the_new_time_and_keeps_the_agreed_one_booked():
    session = confirmed_at(at(10))
    agreed = session.slot

    proposal = services.session_propose_reschedule(
        session=session, start=at(12), actor=session.student
    )

    session.refresh_from_db()
    assert (session.status, session.slot, slot_status(agreed)) == (
        Status.RESCHEDULING,
        agreed,
        SlotStatus.BOOKED,
    )
    assert (proposal.status, proposal.proposed_by, proposal.slot.status) == (
        ProposalStatus.PENDING,
        session.student,
        SlotStatus.HELD,
    )
    assert (proposal.slot.start, proposal.slot.end, proposal.slot.session) == (
        at(12),
        at(13),
        session,
    )
    assert session.events.order_by("pk").last().details == {
        "proposal_id": proposal.pk,
        "agreed_slot_id": agreed.pk,
        "slot_id": proposal.slot_id,
        "start": at(12).isoformat(),
        "end": at(13).isoformat(),
    }


def test_while_rescheduling_nobody_else_can_take_the_agreed_time():
    session = confirmed_at(at(10))
    services.session_propose_reschedule(session=session, start=at(12), actor=session.coach)
    other = credit(session.coach)

    with pytest.raises(SlotUnavailable) as refused:
        services.session_book(session=other, start=at(10), actor=other.student)

    assert refused.value.message == NOT_FREE


def test_a_new_time_may_overlap_the_sessions_own_agreed_time():
    session = confirmed_at(at(10))

    proposal = services.session_propose_reschedule(
        session=session, start=at(10, 30), actor=session.coach
    )
    services.session_confirm_reschedule(session=session, actor=session.student)

    assert reservations_of(session) == [
        (at(10), at(11), SlotStatus.RELEASED),
        (at(10, 30), at(11, 30), SlotStatus.BOOKED),
    ]
    assert Session.objects.get(pk=session.pk).slot_id == proposal.slot_id


def test_a_new_time_must_be_free_for_the_student_too():
    session = confirmed_at(at(10))
    other = CoachFactory()
    open_day(other)
    booked(at(12), coach=other, student=session.student)

    with pytest.raises(SlotUnavailable) as refused:
        services.session_propose_reschedule(session=session, start=at(12, 30), actor=session.coach)

    assert refused.value.message == NOT_FREE
    assert reservations_of(session) == [(at(10), at(11), SlotStatus.BOOKED)]
    assert Session.objects.get(pk=session.pk).status == Status.CONFIRMED


def test_propose_the_agreed_time_is_refused():
    session = confirmed_at(at(10))

    with pytest.raises(SlotUnavailable) as refused:
        services.session_propose_reschedule(session=session, start=at(10), actor=session.coach)

    assert refused.value.message == "That is the time already agreed; pick a different one."
    assert reservations_of(session) == [(at(10), at(11), SlotStatus.BOOKED)]


@pytest.mark.parametrize("who", ["student", "coach"])
def test_propose_after_the_agreed_time_has_started_is_refused_even_before_the_sweep(who, clock):
    session = confirmed_at(at(10))
    clock.move_to(at(10, 1))

    with pytest.raises(TransitionNotAllowed) as refused:
        services.session_propose_reschedule(
            session=session, start=at(12), actor=getattr(session, who)
        )

    assert refused.value.message == "This session has already started; it can't be rescheduled."
    session.refresh_from_db()
    assert session.status == Status.CONFIRMED
    assert reservations_of(session) == [(at(10), at(11), SlotStatus.BOOKED)]
    assert RescheduleProposal.objects.filter(session=session).count() == 0


@pytest.mark.parametrize(
    ("window_hours", "agreed", "proposed", "deadline"),
    [
        (48, at(10), at(12), NOW + timedelta(hours=48)),  # the window
        (48, at(10), NOW + timedelta(hours=5), NOW + timedelta(hours=5)),  # the proposed start
        (48, NOW + timedelta(hours=6), at(12), NOW + timedelta(hours=6)),  # the agreed start
        (2, at(10), at(12), NOW + timedelta(hours=2)),
    ],
    ids=["window", "proposed-start", "agreed-start", "short-window"],
)
def test_a_proposal_waits_until_the_earliest_of_window_proposed_and_agreed_start(
    window_hours, agreed, proposed, deadline
):
    coach = CoachFactory(profile__reschedule_window_hours=window_hours)
    for start in (agreed, proposed):
        window_add(coach=coach, start=start, end=start + timedelta(hours=1))
    session = booked(agreed, coach=coach, accept=True)

    proposal = services.session_propose_reschedule(session=session, start=proposed, actor=coach)

    assert proposal.expires_at == deadline


def test_confirm_reschedule_books_the_new_time_releases_the_old_and_raises_the_sequence():
    session = confirmed_at(at(10))
    agreed = session.slot
    proposal = services.session_propose_reschedule(
        session=session, start=at(12), actor=session.coach
    )
    Session.objects.filter(pk=session.pk).update(reminder_24h_sent_at=NOW, reminder_1h_sent_at=NOW)

    services.session_confirm_reschedule(session=session, actor=session.student)

    session.refresh_from_db()
    proposal.refresh_from_db()
    assert (session.status, session.slot, session.sequence) == (
        Status.CONFIRMED,
        proposal.slot,
        1,
    )
    assert (session.reminder_24h_sent_at, session.reminder_1h_sent_at) == (None, None)
    assert (proposal.status, proposal.decided_at) == (ProposalStatus.ACCEPTED, NOW)
    assert reservations_of(session) == [
        (at(10), at(11), SlotStatus.RELEASED),
        (at(12), at(13), SlotStatus.BOOKED),
    ]
    assert session.events.order_by("pk").last().details == {
        "proposal_id": proposal.pk,
        "previous_slot_id": agreed.pk,
        "previous_start": at(10).isoformat(),
        "slot_id": proposal.slot_id,
        "start": at(12).isoformat(),
        "end": at(13).isoformat(),
    }


def test_counter_proposal_supersedes_releases_and_hands_the_answer_back():
    session = confirmed_at(at(10))
    first = services.session_propose_reschedule(session=session, start=at(11), actor=session.coach)

    # The previous proposal's time is released first, so the new one may overlap it.
    second = services.session_counter_propose(
        session=session, start=at(11, 30), actor=session.student
    )

    first.refresh_from_db()
    assert (first.status, first.decided_at, slot_status(first.slot)) == (
        ProposalStatus.SUPERSEDED,
        NOW,
        SlotStatus.RELEASED,
    )
    assert (second.proposed_by, second.status, slot_status(second.slot)) == (
        session.student,
        ProposalStatus.PENDING,
        SlotStatus.HELD,
    )
    assert reservations_of(session) == [
        (at(10), at(11), SlotStatus.BOOKED),
        (at(11), at(12), SlotStatus.RELEASED),
        (at(11, 30), at(12, 30), SlotStatus.HELD),
    ]
    with pytest.raises(PermissionDenied) as refused:
        services.session_confirm_reschedule(session=session, actor=session.student)
    assert refused.value.message == "You proposed this time; the other side answers it."

    services.session_confirm_reschedule(session=session, actor=session.coach)

    assert Session.objects.get(pk=session.pk).slot_id == second.slot_id


@pytest.mark.parametrize(
    ("start", "message"),
    [
        (at(10), "That is the time already agreed; pick a different one."),
        (at(12), "That is the time already proposed; confirm it or pick a different one."),
        (at(14), NOT_FREE),
    ],
    ids=["agreed-time", "pending-time", "unavailable"],
)
def test_a_refused_counter_proposal_leaves_the_pending_one_as_it_was(start, message):
    session = confirmed_at(at(10))
    pending = services.session_propose_reschedule(
        session=session, start=at(12), actor=session.coach
    )

    with pytest.raises(SlotUnavailable) as refused:
        services.session_counter_propose(session=session, start=start, actor=session.student)

    assert refused.value.message == message
    pending.refresh_from_db()
    assert (pending.status, slot_status(pending.slot)) == (ProposalStatus.PENDING, SlotStatus.HELD)
    assert reservations_of(session) == [
        (at(10), at(11), SlotStatus.BOOKED),
        (at(12), at(13), SlotStatus.HELD),
    ]
    assert Session.objects.get(pk=session.pk).status == Status.RESCHEDULING


@pytest.mark.parametrize(
    ("service", "who", "outcome"),
    [
        (services.session_decline_reschedule, "student", ProposalStatus.DECLINED),
        (services.session_withdraw_proposal, "coach", ProposalStatus.WITHDRAWN),
    ],
    ids=["decline_reschedule", "withdraw_proposal"],
)
def test_keeping_or_withdrawing_releases_the_proposal_and_the_agreed_time_stands(
    service, who, outcome
):
    session = confirmed_at(at(10))
    agreed = session.slot
    proposal = services.session_propose_reschedule(
        session=session, start=at(12), actor=session.coach
    )

    service(session=session, actor=getattr(session, who))

    session.refresh_from_db()
    proposal.refresh_from_db()
    assert (session.status, session.slot, session.sequence) == (Status.CONFIRMED, agreed, 0)
    assert (proposal.status, proposal.decided_at) == (outcome, NOW)
    assert reservations_of(session) == [
        (at(10), at(11), SlotStatus.BOOKED),
        (at(12), at(13), SlotStatus.RELEASED),
    ]
    assert session.events.order_by("pk").last().details == {
        "proposal_id": proposal.pk,
        "proposed_start": at(12).isoformat(),
        "slot_id": agreed.pk,
        "start": at(10).isoformat(),
        "end": at(11).isoformat(),
    }
    # The released time is free for anyone again.
    assert booked(at(12), coach=session.coach).slot.status == SlotStatus.HELD


@pytest.mark.parametrize(
    "answer",
    ["confirm", "counter", "decline_reschedule", "withdraw_proposal"],
)
def test_answers_after_the_proposal_expired_are_refused_even_before_the_sweep(answer, clock):
    session = confirmed_at(at(10))
    pending = services.session_propose_reschedule(
        session=session, start=at(12), actor=session.coach
    )
    clock.move_to(pending.expires_at)
    calls = {
        "confirm": lambda: services.session_confirm_reschedule(
            session=session, actor=session.student
        ),
        "counter": lambda: services.session_counter_propose(
            session=session, start=at(11), actor=session.student
        ),
        "decline_reschedule": lambda: services.session_decline_reschedule(
            session=session, actor=session.student
        ),
        "withdraw_proposal": lambda: services.session_withdraw_proposal(
            session=session, actor=session.coach
        ),
    }

    with pytest.raises(TransitionNotAllowed) as refused:
        calls[answer]()

    assert refused.value.message == "This proposal has expired; the current time stands."
    pending.refresh_from_db()
    assert (pending.status, slot_status(pending.slot)) == (ProposalStatus.PENDING, SlotStatus.HELD)


# --- cancel and refunds --------------------------------------------------------------------


def test_cancel_with_full_refund_returns_the_share_and_releases_the_time():
    session = make_session("CONFIRMED", price_cents=10000, session_count=3)
    slot = session.slot

    services.session_cancel(session=session, actor=session.coach, refund="full", reason=" Ill ")

    session.refresh_from_db()
    refund = Refund.objects.get(session=session)
    assert (refund.amount_cents, refund.kind, refund.state, refund.issued_by) == (
        3334,
        RefundKind.FULL,
        RefundState.DONE,
        session.coach,
    )
    assert (session.status, session.sequence, slot_status(slot)) == (
        Status.CANCELED,
        1,
        SlotStatus.RELEASED,
    )
    assert session.events.order_by("pk").last().details == {
        "refund": "full",
        "reason": "Ill",
        "refund_id": refund.pk,
        "refund_amount_cents": 3334,
        "canceled_by": "coach",
        "rule": "coach_cancel",
        "rule_summary": "The coach cancels: what the coach decides each time (full, partial "
        "or no refund).",
        "rule_refund_cents": 3334,
        "rule_used": False,
    }


def test_cancel_with_partial_refund_records_the_amount_and_releases_the_request():
    session = make_session("REQUESTED", price_cents=9000, session_count=3)

    services.session_cancel(
        session=session, actor=session.coach, refund="partial", amount_cents=1250
    )

    assert list(Refund.objects.values_list("amount_cents", "kind")) == [(1250, "partial")]
    assert slot_status(session.slot) == SlotStatus.RELEASED
    assert Session.objects.get(pk=session.pk).request_expires_at is None


def test_cancel_while_rescheduling_releases_both_reservations():
    session = confirmed_at(at(10))
    proposal = services.session_propose_reschedule(
        session=session, start=at(12), actor=session.coach
    )

    services.session_cancel(session=session, actor=session.coach, refund="none")

    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_at) == (ProposalStatus.CANCELED, NOW)
    assert reservations_of(session) == [
        (at(10), at(11), SlotStatus.RELEASED),
        (at(12), at(13), SlotStatus.RELEASED),
    ]
    assert Session.objects.get(pk=session.pk).status == Status.CANCELED
    # Both times are free again.
    assert [booked(at(hour), coach=session.coach).slot.start for hour in (10, 12)] == [
        at(10),
        at(12),
    ]


def test_cancel_of_a_completed_session_writes_no_refund_and_releases_its_time():
    session = make_session("COMPLETED")

    services.session_cancel(session=session, actor=session.coach, refund="none")

    assert Refund.objects.count() == 0
    assert session.events.order_by("pk").last().details == {
        "refund": "none",
        "reason": "",
        "canceled_by": "coach",
        "rule": "coach_discretion",
        "rule_summary": "Not booked ahead: the coach chooses the refund.",
        "rule_refund_cents": session.price_share_cents,
        "rule_used": False,
    }
    assert slot_status(session.slot) == SlotStatus.RELEASED


@pytest.mark.parametrize(
    ("status", "raised"),
    [("UNSCHEDULED", 0), ("REQUESTED", 0), ("CONFIRMED", 1), ("RESCHEDULING", 1), ("COMPLETED", 1)],
)
def test_cancel_raises_the_calendar_sequence_only_of_a_published_session(status, raised):
    """A session whose time calendars were given (confirmed, rescheduling, completed) gets a
    cancellation they accept: SEQUENCE above the last version they saw."""
    session = make_session(status)
    before = session.sequence

    services.session_cancel(session=session, actor=session.coach, refund="none")

    session.refresh_from_db()
    assert session.sequence - before == raised


@pytest.mark.parametrize(
    ("refund", "amount", "message"),
    [
        ("partial", 10001, "At most $100.00 can be refunded for this session."),
        ("partial", 0, "A partial refund must be at least 0.01."),
        ("partial", -5, "A partial refund must be at least 0.01."),
        ("partial", None, "Enter the amount to refund."),
        ("partial", "12", "Enter the amount to refund."),
        ("full", 500, "An amount goes only with a partial refund."),
        (
            "everything",
            None,
            "Choose Full refund, Partial refund, Give a make-up credit or Cancel without refund.",
        ),
    ],
)
def test_bad_refund_choices_are_refused_and_change_nothing(refund, amount, message):
    session = make_session("CONFIRMED", price_cents=30000, session_count=3)

    with pytest.raises(RefundNotAllowed) as refused:
        services.session_cancel(
            session=session, actor=session.coach, refund=refund, amount_cents=amount
        )

    assert refused.value.message == message
    session.refresh_from_db()
    assert (session.status, slot_status(session.slot)) == (Status.CONFIRMED, SlotStatus.BOOKED)
    assert Refund.objects.count() == 0


def test_second_cancel_is_refused_so_money_moves_once():
    session = make_session("CONFIRMED")
    services.session_cancel(session=session, actor=session.coach, refund="full")

    with pytest.raises(TransitionNotAllowed):
        services.session_cancel(session=session, actor=session.coach, refund="full")

    assert Refund.objects.filter(session=session).count() == 1


def test_refunds_never_exceed_the_session_share():
    session = make_session("UNSCHEDULED", price_cents=3000, session_count=3)
    refund_issue(
        session=session,
        kind="partial",
        amount_cents=600,
        issued_by=session.coach,
        idempotency_key="first",
    )
    with pytest.raises(RefundNotAllowed) as refused:
        refund_issue(
            session=session,
            kind="partial",
            amount_cents=401,
            issued_by=session.coach,
            idempotency_key="second",
        )
    services.session_cancel(session=session, actor=session.coach, refund="full")

    assert refused.value.message == "At most $4.00 can be refunded for this session."
    assert sorted(Refund.objects.values_list("amount_cents", flat=True)) == [400, 600]


# --- sweeps -------------------------------------------------------------------------------


def test_expire_stale_returns_stale_requests_to_unscheduled_once(clock):
    stale, fresh = make_session("REQUESTED"), make_session("REQUESTED")
    Session.objects.filter(pk=fresh.pk).update(
        request_expires_at=stale.request_expires_at + timedelta(hours=1)
    )
    slot = stale.slot
    clock.move_to(stale.request_expires_at + timedelta(seconds=1))

    assert (services.sessions_expire_stale(), services.sessions_expire_stale()) == (1, 0)

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, stale.slot, stale.request_expires_at, slot_status(slot)) == (
        Status.UNSCHEDULED,
        None,
        None,
        SlotStatus.RELEASED,
    )
    assert (fresh.status, slot_status(fresh.slot)) == (Status.REQUESTED, SlotStatus.HELD)
    assert [
        (e.action, e.actor, e.from_status, e.to_status, e.details)
        for e in stale.events.exclude(action=Action.CREATE).exclude(action=Action.BOOK)
    ] == [(Action.EXPIRE, None, Status.REQUESTED, Status.UNSCHEDULED, {"slot_id": slot.pk})]


def test_a_request_swept_after_its_start_releases_its_time(clock):
    coach = CoachFactory()
    soon = NOW + timedelta(hours=2)
    window_add(coach=coach, start=soon, end=soon + timedelta(hours=1))
    session = booked(soon, coach=coach)
    slot = session.slot
    assert session.request_expires_at == soon
    clock.move_to(soon + timedelta(hours=3))  # the sweep ran late: the start has passed

    assert services.sessions_expire_stale() == 1

    session.refresh_from_db()
    assert (session.status, session.slot) == (Status.UNSCHEDULED, None)
    assert (slot_status(slot), TimeSlot.objects.get(pk=slot.pk).released_at) == (
        SlotStatus.RELEASED,
        soon + timedelta(hours=3),
    )
    assert slots_reopen_freed() == 0


def test_expire_reschedule_keeps_the_agreed_time_booked_and_confirms_again(clock):
    session = confirmed_at(at(10))
    agreed = session.slot
    proposal = services.session_propose_reschedule(
        session=session, start=at(12), actor=session.coach
    )
    clock.move_to(proposal.expires_at)

    assert (services.sessions_expire_stale(), services.sessions_expire_stale()) == (1, 0)

    session.refresh_from_db()
    proposal.refresh_from_db()
    assert (session.status, session.slot, session.sequence) == (Status.CONFIRMED, agreed, 0)
    assert (proposal.status, proposal.decided_at) == (ProposalStatus.EXPIRED, proposal.expires_at)
    assert reservations_of(session) == [
        (at(10), at(11), SlotStatus.BOOKED),
        (at(12), at(13), SlotStatus.RELEASED),
    ]
    event = session.events.order_by("pk").last()
    assert (event.action, event.actor, event.from_status, event.to_status, event.details) == (
        Action.EXPIRE_RESCHEDULE,
        None,
        Status.RESCHEDULING,
        Status.CONFIRMED,
        # Like a kept or withdrawn proposal: `slot_id` names the agreed time that stands.
        {"proposal_id": proposal.pk, "proposed_start": at(12).isoformat(), "slot_id": agreed.pk},
    )
    assert session.events.filter(action=Action.EXPIRE_RESCHEDULE).count() == 1


def test_complete_past_marks_ended_sessions_once(clock):
    coach = CoachFactory()
    ended = confirmed_at(at(10), coach=coach)
    later = booked(at(12), coach=coach, accept=True)
    clock.move_to(at(11))

    assert (services.sessions_complete_past(), services.sessions_complete_past()) == (1, 0)

    assert Session.objects.get(pk=ended.pk).status == Status.COMPLETED
    assert Session.objects.get(pk=later.pk).status == Status.CONFIRMED
    assert list(
        SessionEvent.objects.filter(action=Action.COMPLETE).values_list(
            "session", "actor", "from_status", "to_status"
        )
    ) == [(ended.pk, None, Status.CONFIRMED, Status.COMPLETED)]


def _raw_reservation(session, start, status=SlotStatus.BOOKED):
    """A reservation row written past the services (what a crash or an old bug could leave)."""
    return TimeSlot.objects.create(
        coach=session.coach,
        student=session.student,
        session=session,
        start=start,
        end=start + timedelta(hours=1),
        reserved_start=start,
        reserved_end=start + timedelta(hours=1),
        status=status,
    )


def test_reopen_freed_releases_only_reservations_without_an_active_holder(clock):
    requested = make_session("REQUESTED")
    rescheduling = make_session("RESCHEDULING")
    proposal = RescheduleProposal.objects.get(session=rescheduling)
    credit_ = make_session("UNSCHEDULED")
    orphan_held = _raw_reservation(credit_, at(10), SlotStatus.HELD)
    orphan_booked = _raw_reservation(credit_, at(12))
    past_orphan = _raw_reservation(credit_, NOW - timedelta(days=1))

    assert (slots_reopen_freed(), slots_reopen_freed()) == (3, 0)

    assert {
        slot.pk: slot.status
        for slot in TimeSlot.objects.filter(
            pk__in=[
                requested.slot_id,
                rescheduling.slot_id,
                proposal.slot_id,
                orphan_held.pk,
                orphan_booked.pk,
                past_orphan.pk,
            ]
        )
    } == {
        requested.slot_id: SlotStatus.HELD,
        rescheduling.slot_id: SlotStatus.BOOKED,
        proposal.slot_id: SlotStatus.HELD,
        orphan_held.pk: SlotStatus.RELEASED,
        orphan_booked.pk: SlotStatus.RELEASED,
        past_orphan.pk: SlotStatus.RELEASED,
    }


# --- invariants through the services ------------------------------------------------------


def _overlapping_pairs(key: str, begin: str = "start", finish: str = "end") -> list:
    """Pairs of active reservations of one coach (or student) of different sessions whose
    [begin, finish) ranges overlap."""
    rows = list(
        TimeSlot.objects.filter(status__in=ACTIVE_SLOT_STATUSES).values_list(
            "pk", key, "session", begin, finish
        )
    )
    return [
        (a[0], b[0])
        for a in rows
        for b in rows
        if a[0] < b[0] and a[1] == b[1] and a[2] != b[2] and a[3] < b[4] and b[3] < a[4]
    ]


def test_a_coachs_active_reservations_never_overlap_with_their_buffers():
    coach = CoachFactory(
        profile__buffer_before_minutes=15,
        profile__buffer_after_minutes=15,
        profile__start_interval_minutes=15,
    )
    open_day(coach, 8, 13)
    booked(at(10), coach=coach)
    attempts = [at(9), at(9, 15), at(10, 30), at(11), at(11, 15), at(8, 30), at(11, 30)]

    outcomes = []
    for start in attempts:
        try:
            outcomes.append(booked(start, coach=coach).slot.start)
        except SlotUnavailable as refused:
            outcomes.append(refused.message)

    assert outcomes == [NOT_FREE] * 5 + [at(8, 30), at(11, 30)]
    assert list(
        TimeSlot.objects.filter(coach=coach, status__in=ACTIVE_SLOT_STATUSES)
        .order_by("start")
        .values_list("reserved_start", "reserved_end")
    ) == [(at(8, 15), at(9, 45)), (at(9, 45), at(11, 15)), (at(11, 15), at(12, 45))]
    assert _overlapping_pairs("coach", "reserved_start", "reserved_end") == []


def test_a_students_active_reservations_never_overlap_across_coaches():
    student = StudentFactory()
    coaches = [CoachFactory() for _ in range(3)]
    for coach in coaches:
        open_day(coach, 8, 13)
    booked(at(10), coach=coaches[0], student=student)

    outcomes = []
    for coach, start in [(coaches[1], at(10, 30)), (coaches[2], at(9, 30)), (coaches[1], at(11))]:
        try:
            outcomes.append(booked(start, coach=coach, student=student).slot.start)
        except SlotUnavailable as refused:
            outcomes.append(refused.message)

    assert outcomes == [NOT_FREE, NOT_FREE, at(11)]
    assert _overlapping_pairs("student") == []


# --- invariants the database holds when the services are bypassed --------------------------


@pytest.mark.parametrize("holder", ["REQUESTED", "CONFIRMED", "RESCHEDULING"])
def test_database_refuses_two_active_sessions_on_one_reservation(holder):
    first = make_session(holder)
    second = make_package().sessions.first()

    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.filter(pk=second.pk).update(status=Status.CONFIRMED, slot=first.slot)


def test_database_refuses_two_pending_proposals_on_one_reservation():
    session = make_session("RESCHEDULING")
    pending = RescheduleProposal.objects.get(session=session)
    other = make_session("CONFIRMED")

    with pytest.raises(IntegrityError), transaction.atomic():
        RescheduleProposal.objects.create(
            session=other,
            slot=pending.slot,
            proposed_by=other.coach,
            expires_at=pending.expires_at,
        )


def test_database_refuses_a_holding_status_without_a_time():
    session = make_session()

    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.filter(pk=session.pk).update(status=Status.REQUESTED)


def test_database_refuses_unknown_status_and_negative_amounts():
    session = make_session()

    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.filter(pk=session.pk).update(status="LOST")
    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.filter(pk=session.pk).update(price_share_cents=-1)


@pytest.mark.parametrize(
    "fields",
    [
        {"session": None},  # an active reservation must name its session
        {"reserved_start": at(10, 15)},  # the buffers must cover the time
        {"reserved_end": at(10, 45)},
        {"end": at(10)},  # end after start
        {"status": "OPEN"},  # the pre-cut slots' status is gone
    ],
    ids=["no-session", "reserved-start-inside", "reserved-end-inside", "empty", "unknown-status"],
)
def test_database_refuses_malformed_reservations(fields):
    session = make_session()
    row = {
        "coach": session.coach,
        "student": session.student,
        "session": session,
        "start": at(10),
        "end": at(11),
        "reserved_start": at(10),
        "reserved_end": at(11),
        "status": SlotStatus.HELD,
        **fields,
    }

    with pytest.raises(IntegrityError), transaction.atomic():
        TimeSlot.objects.create(**row)


# --- calendar versions --------------------------------------------------------------------


def test_calendar_sequence_rises_only_when_the_agreed_time_changes_or_goes(clock):
    session = confirmed_at(at(10))  # on calendars at sequence 0

    def sequence():
        return Session.objects.get(pk=session.pk).sequence

    seen = [sequence()]
    services.session_propose_reschedule(session=session, start=at(11), actor=session.coach)
    seen.append(sequence())
    services.session_decline_reschedule(session=session, actor=session.student)
    seen.append(sequence())
    services.session_propose_reschedule(session=session, start=at(11), actor=session.student)
    services.session_withdraw_proposal(session=session, actor=session.student)
    seen.append(sequence())
    proposal = services.session_propose_reschedule(
        session=session, start=at(12), actor=session.coach
    )
    clock.move_to(proposal.expires_at)
    services.sessions_expire_stale()
    seen.append(sequence())
    services.session_propose_reschedule(session=session, start=at(12), actor=session.coach)
    services.session_confirm_reschedule(session=session, actor=session.student)
    seen.append(sequence())
    services.session_cancel(session=session, actor=session.coach, refund="none")
    seen.append(sequence())

    assert seen == [0, 0, 0, 0, 0, 1, 2]
