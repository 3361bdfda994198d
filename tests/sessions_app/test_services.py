"""What each service does besides the status: slots, windows, money, sweeps, invariants."""

from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import CoachProfile
from calendars.models import SlotStatus, TimeSlot
from calendars.services import SlotUnavailable, slots_reopen_freed
from refunds.models import Payment, PaymentState, Refund, RefundKind, RefundState
from refunds.services import RefundNotAllowed
from sessions_app import services
from sessions_app.lifecycle import Action, PermissionDenied, Status, TransitionNotAllowed
from sessions_app.models import ProposalStatus, RescheduleProposal, Session, SessionEvent
from tests.factories import (
    CoachFactory,
    OfferingFactory,
    StudentFactory,
    TimeSlotFactory,
    make_package,
    make_session,
)

pytestmark = pytest.mark.django_db


def slot_status(slot) -> str:
    return TimeSlot.objects.get(pk=slot.pk).status


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
    assert list(package.sessions.values_list("status", flat=True)) == [Status.UNSCHEDULED] * 4
    assert SessionEvent.objects.filter(session__package=package, action=Action.CREATE).count() == 4


def test_purchase_of_inactive_offering_is_refused():
    offering = OfferingFactory(is_active=False)

    with pytest.raises(TransitionNotAllowed, match="no longer available"):
        services.package_purchase(student=StudentFactory(), offering=offering)

    assert Payment.objects.count() == 0 and Session.objects.count() == 0


def test_coach_cannot_buy_own_offering():
    offering = OfferingFactory()

    with pytest.raises(PermissionDenied):
        services.package_purchase(student=offering.coach, offering=offering)


# --- booking and answering requests --------------------------------------------------------


@time_machine.travel("2026-03-02 09:00Z", tick=False)
def test_book_holds_slot_and_request_expires_after_the_coach_window():
    session = make_session()
    slot = TimeSlotFactory(coach=session.coach, start=timezone.now() + timedelta(days=5))

    services.session_book(session=session, slot=slot, actor=session.student)

    session.refresh_from_db()
    assert (session.status, session.slot, slot_status(slot)) == (
        Status.REQUESTED,
        slot,
        SlotStatus.HELD,
    )
    assert session.request_expires_at == timezone.now() + timedelta(hours=48)


@time_machine.travel("2026-03-02 09:00Z", tick=False)
def test_request_for_a_soon_slot_expires_at_its_start():
    session = make_session()
    slot = TimeSlotFactory(coach=session.coach, start=timezone.now() + timedelta(hours=5))

    services.session_book(session=session, slot=slot, actor=session.student)

    session.refresh_from_db()
    assert session.request_expires_at == slot.start


def test_book_and_propose_use_default_windows_when_the_coach_profile_is_gone():
    session = make_session("UNSCHEDULED")
    coach = session.coach
    first, second = TimeSlotFactory(coach=coach), TimeSlotFactory(coach=coach)
    CoachProfile.objects.filter(user=coach).delete()  # as the admin's Delete once allowed
    now = timezone.now()

    with time_machine.travel(now, tick=False):
        services.session_book(session=session, slot=first, actor=session.student)
        session.refresh_from_db()
        request_expires_at = session.request_expires_at
        services.session_accept(session=session, actor=coach)
        proposal = services.session_propose_reschedule(
            session=session, slot=second, actor=session.student
        )

    session.refresh_from_db()
    defaults = CoachProfile()
    assert request_expires_at == min(
        now + timedelta(hours=defaults.request_window_hours), first.start
    )
    assert session.status == Status.RESCHEDULING
    assert proposal.expires_at == min(
        now + timedelta(hours=defaults.reschedule_window_hours), second.start
    )
    assert SessionEvent.objects.get(session=session, action=Action.BOOK).details["slot_id"] == (
        first.pk
    )


def test_book_refuses_a_slot_that_is_taken_and_changes_nothing():
    first = make_session("REQUESTED")
    other = make_package(offering=first.package.offering).sessions.first()

    with pytest.raises(SlotUnavailable, match="just taken"):
        services.session_book(session=other, slot=first.slot, actor=other.student)

    other.refresh_from_db()
    assert (other.status, other.slot) == (Status.UNSCHEDULED, None)
    assert other.events.count() == 1


def test_book_refuses_another_coachs_slot():
    session = make_session()

    with pytest.raises(SlotUnavailable, match="another coach"):
        services.session_book(session=session, slot=TimeSlotFactory(), actor=session.student)


def test_book_refuses_past_slot_and_slot_inside_minimum_notice():
    session = make_session()
    profile = session.coach.coach_profile
    profile.minimum_notice_hours = 24
    profile.save()
    soon = TimeSlotFactory(coach=session.coach, start=timezone.now() + timedelta(hours=3))
    past = TimeSlotFactory(coach=session.coach, start=timezone.now() - timedelta(hours=3))

    for slot in (soon, past):
        with pytest.raises(SlotUnavailable, match="too soon"):
            services.session_book(session=session, slot=slot, actor=session.student)
        assert slot_status(slot) == SlotStatus.OPEN


def test_student_cannot_hold_two_sessions_at_the_same_time():
    first = make_session("REQUESTED")
    second = make_package(student=first.student).sessions.first()
    same_time = TimeSlotFactory(coach=second.coach, start=first.slot.start, end=first.slot.end)

    with pytest.raises(SlotUnavailable, match="already has a session"):
        services.session_book(session=second, slot=same_time, actor=second.student)

    assert slot_status(same_time) == SlotStatus.OPEN


@pytest.mark.parametrize("action", ["withdraw", "decline"])
def test_withdraw_and_decline_return_the_credit_and_reopen_the_slot(action):
    session = make_session("REQUESTED")
    slot = session.slot

    if action == "withdraw":
        services.session_withdraw(session=session, actor=session.student)
    else:
        services.session_decline(session=session, actor=session.coach, reason="Away that week")

    session.refresh_from_db()
    assert (session.status, session.slot, session.request_expires_at) == (
        Status.UNSCHEDULED,
        None,
        None,
    )
    assert slot_status(slot) == SlotStatus.OPEN
    if action == "decline":
        assert session.events.last().details["reason"] == "Away that week"


def test_accept_books_the_slot():
    session = make_session("REQUESTED")

    services.session_accept(session=session, actor=session.coach)

    session.refresh_from_db()
    assert (session.status, slot_status(session.slot), session.request_expires_at) == (
        Status.CONFIRMED,
        SlotStatus.BOOKED,
        None,
    )


def test_accept_after_the_window_is_refused_even_before_the_sweep():
    session = make_session("REQUESTED")

    with (
        time_machine.travel(session.request_expires_at + timedelta(minutes=1)),
        pytest.raises(TransitionNotAllowed, match="expired"),
    ):
        services.session_accept(session=session, actor=session.coach)

    assert Session.objects.get(pk=session.pk).status == Status.REQUESTED


# --- rescheduling -------------------------------------------------------------------------


def test_propose_holds_new_slot_and_reopens_the_old_one():
    session = make_session("CONFIRMED")
    old, new = session.slot, TimeSlotFactory(coach=session.coach)

    proposal = services.session_propose_reschedule(session=session, slot=new, actor=session.student)

    session.refresh_from_db()
    assert (session.status, session.slot) == (Status.RESCHEDULING, old)
    assert (slot_status(old), slot_status(new)) == (SlotStatus.OPEN, SlotStatus.HELD)
    assert (proposal.status, proposal.proposed_by) == (ProposalStatus.PENDING, session.student)


def test_propose_the_same_time_is_refused():
    session = make_session("CONFIRMED")

    with pytest.raises(SlotUnavailable, match="already agreed"):
        services.session_propose_reschedule(session=session, slot=session.slot, actor=session.coach)
    assert slot_status(session.slot) == SlotStatus.BOOKED


@pytest.mark.parametrize("who", ["student", "coach"])
def test_propose_after_the_agreed_time_has_started_is_refused_even_before_the_sweep(who):
    session = make_session("CONFIRMED")
    new = TimeSlotFactory(coach=session.coach, start=session.slot.start + timedelta(days=1))

    with (
        time_machine.travel(session.slot.start + timedelta(minutes=1)),
        pytest.raises(TransitionNotAllowed) as refused,
    ):
        services.session_propose_reschedule(session=session, slot=new, actor=getattr(session, who))

    assert refused.value.message == "This session has already started; it can't be rescheduled."
    session.refresh_from_db()
    assert (session.status, slot_status(session.slot), slot_status(new)) == (
        Status.CONFIRMED,
        SlotStatus.BOOKED,
        SlotStatus.OPEN,
    )
    assert RescheduleProposal.objects.filter(session=session).count() == 0


def test_counter_proposal_after_the_proposal_expired_is_refused_even_before_the_sweep():
    session = make_session("RESCHEDULING")
    pending = RescheduleProposal.objects.get(session=session)
    other_time = TimeSlotFactory(coach=session.coach, start=pending.slot.start + timedelta(days=1))

    with (
        time_machine.travel(pending.expires_at + timedelta(minutes=1)),
        pytest.raises(TransitionNotAllowed, match="This proposal has expired"),
    ):
        services.session_counter_propose(session=session, slot=other_time, actor=session.student)

    pending.refresh_from_db()
    assert (pending.status, slot_status(pending.slot), slot_status(other_time)) == (
        ProposalStatus.PENDING,
        SlotStatus.HELD,
        SlotStatus.OPEN,
    )


def test_confirm_reschedule_books_the_new_time_and_raises_the_sequence():
    session = make_session("RESCHEDULING")
    proposal = RescheduleProposal.objects.get(session=session)

    services.session_confirm_reschedule(session=session, actor=session.student)

    session.refresh_from_db()
    proposal.refresh_from_db()
    assert (session.status, session.slot, session.sequence) == (
        Status.CONFIRMED,
        proposal.slot,
        1,
    )
    assert (proposal.status, slot_status(proposal.slot)) == (
        ProposalStatus.ACCEPTED,
        SlotStatus.BOOKED,
    )


def test_counter_proposal_supersedes_and_hands_the_answer_back():
    session = make_session("RESCHEDULING")
    first = RescheduleProposal.objects.get(session=session)
    other_time = TimeSlotFactory(coach=session.coach)

    second = services.session_counter_propose(
        session=session, slot=other_time, actor=session.student
    )

    first.refresh_from_db()
    assert (first.status, slot_status(first.slot)) == (ProposalStatus.SUPERSEDED, SlotStatus.OPEN)
    assert (second.proposed_by, slot_status(other_time)) == (session.student, SlotStatus.HELD)
    with pytest.raises(PermissionDenied):
        services.session_confirm_reschedule(session=session, actor=session.student)
    services.session_confirm_reschedule(session=session, actor=session.coach)
    assert Session.objects.get(pk=session.pk).slot == other_time


def test_counter_proposal_may_offer_back_the_last_agreed_time():
    session = make_session("RESCHEDULING")
    original = session.slot
    first = RescheduleProposal.objects.get(session=session)

    back = services.session_counter_propose(session=session, slot=original, actor=session.student)
    services.session_confirm_reschedule(session=session, actor=session.coach)

    first.refresh_from_db()
    session.refresh_from_db()
    assert (back.slot, first.status, slot_status(first.slot)) == (
        original,
        ProposalStatus.SUPERSEDED,
        SlotStatus.OPEN,
    )
    assert (session.status, session.slot, slot_status(original)) == (
        Status.CONFIRMED,
        original,
        SlotStatus.BOOKED,
    )


def test_counter_proposal_of_the_pending_proposals_own_time_is_refused():
    session = make_session("RESCHEDULING")
    pending = RescheduleProposal.objects.get(session=session)

    with pytest.raises(SlotUnavailable) as refused:
        services.session_counter_propose(session=session, slot=pending.slot, actor=session.student)

    assert refused.value.message == (
        "That is the time already proposed; confirm it or pick a different one."
    )
    pending.refresh_from_db()
    assert (pending.status, slot_status(pending.slot)) == (ProposalStatus.PENDING, SlotStatus.HELD)
    assert RescheduleProposal.objects.filter(session=session).count() == 1


# --- cancel and refunds --------------------------------------------------------------------


def test_cancel_with_full_refund_returns_the_share_and_reopens_the_slot():
    session = make_session("CONFIRMED", price_cents=10000, session_count=3)

    services.session_cancel(session=session, actor=session.coach, refund="full", reason="Ill")

    session.refresh_from_db()
    refund = Refund.objects.get(session=session)
    assert (refund.amount_cents, refund.kind, refund.state, refund.issued_by) == (
        3334,
        RefundKind.FULL,
        RefundState.DONE,
        session.coach,
    )
    assert (session.status, slot_status(session.slot)) == (Status.CANCELED, SlotStatus.OPEN)
    assert session.events.last().details == {
        "refund": "full",
        "reason": "Ill",
        "refund_id": refund.pk,
        "refund_amount_cents": 3334,
    }


def test_cancel_with_partial_refund_records_the_amount():
    session = make_session("REQUESTED", price_cents=9000, session_count=3)

    services.session_cancel(
        session=session, actor=session.coach, refund="partial", amount_cents=1250
    )

    assert list(Refund.objects.values_list("amount_cents", "kind")) == [(1250, "partial")]
    assert slot_status(session.slot) == SlotStatus.OPEN


def test_cancel_without_refund_writes_no_refund_but_keeps_the_choice():
    session = make_session("COMPLETED")

    services.session_cancel(session=session, actor=session.coach, refund="none")

    assert Refund.objects.count() == 0
    assert session.events.order_by("-id").first().details == {"refund": "none", "reason": ""}
    assert slot_status(session.slot) == SlotStatus.BOOKED  # a past slot stays as it was


def test_cancel_while_rescheduling_releases_the_proposed_slot():
    session = make_session("RESCHEDULING")
    proposal = RescheduleProposal.objects.get(session=session)

    services.session_cancel(session=session, actor=session.coach, refund="none")

    proposal.refresh_from_db()
    assert (proposal.status, slot_status(proposal.slot)) == (
        ProposalStatus.CANCELED,
        SlotStatus.OPEN,
    )


@pytest.mark.parametrize(
    ("refund", "amount", "message"),
    [
        ("partial", 10001, r"At most \$100\.00 can"),
        ("partial", 0, r"at least 0\.01"),
        ("partial", -5, r"at least 0\.01"),
        ("partial", None, "Enter the amount"),
        ("partial", "12", "Enter the amount"),
        ("full", 500, "only with a partial"),
        ("everything", None, "Choose Full refund"),
    ],
)
def test_bad_refund_choices_are_refused_and_change_nothing(refund, amount, message):
    session = make_session("CONFIRMED", price_cents=30000, session_count=3)

    with pytest.raises(RefundNotAllowed, match=message):
        services.session_cancel(
            session=session, actor=session.coach, refund=refund, amount_cents=amount
        )

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
    from refunds.services import refund_issue

    refund_issue(
        session=session,
        kind="partial",
        amount_cents=600,
        issued_by=session.coach,
        idempotency_key="first",
    )
    with pytest.raises(RefundNotAllowed, match=r"At most \$4\.00 can"):
        refund_issue(
            session=session,
            kind="partial",
            amount_cents=401,
            issued_by=session.coach,
            idempotency_key="second",
        )
    services.session_cancel(session=session, actor=session.coach, refund="full")

    assert sorted(Refund.objects.values_list("amount_cents", flat=True)) == [400, 600]


# --- sweeps -------------------------------------------------------------------------------


def test_expire_stale_returns_stale_requests_to_unscheduled_once():
    stale, fresh = make_session("REQUESTED"), make_session("REQUESTED")
    fresh.request_expires_at = stale.request_expires_at + timedelta(hours=1)
    Session.objects.filter(pk=fresh.pk).update(request_expires_at=fresh.request_expires_at)
    slot = stale.slot

    with time_machine.travel(stale.request_expires_at + timedelta(seconds=1), tick=False):
        assert services.sessions_expire_stale() == 1
        assert services.sessions_expire_stale() == 0

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, stale.slot, slot_status(slot)) == (
        Status.UNSCHEDULED,
        None,
        SlotStatus.OPEN,
    )
    assert fresh.status == Status.REQUESTED
    event = stale.events.last()
    assert (event.action, event.actor, event.from_status, event.to_status) == (
        Action.EXPIRE,
        None,
        Status.REQUESTED,
        Status.UNSCHEDULED,
    )


def test_expire_stale_ends_unanswered_reschedules_and_keeps_the_credit():
    session = make_session("RESCHEDULING")
    proposal = RescheduleProposal.objects.get(session=session)

    with time_machine.travel(proposal.expires_at, tick=False):
        assert services.sessions_expire_stale() == 1
        assert services.sessions_expire_stale() == 0

    session.refresh_from_db()
    proposal.refresh_from_db()
    assert (session.status, session.slot, proposal.status, slot_status(proposal.slot)) == (
        Status.UNSCHEDULED,
        None,
        ProposalStatus.EXPIRED,
        SlotStatus.OPEN,
    )
    assert session.events.filter(action=Action.EXPIRE_RESCHEDULE).count() == 1


def test_complete_past_marks_ended_sessions_once():
    ended, later = make_session("CONFIRMED"), make_session("CONFIRMED")
    Session.objects.filter(pk=later.pk).update(
        slot=TimeSlotFactory(coach=later.coach, start=ended.slot.start + timedelta(days=2))
    )

    with time_machine.travel(ended.slot.end, tick=False):
        assert services.sessions_complete_past() == 1
        assert services.sessions_complete_past() == 0

    assert Session.objects.get(pk=ended.pk).status == Status.COMPLETED
    assert Session.objects.get(pk=later.pk).status == Status.CONFIRMED
    assert SessionEvent.objects.filter(action=Action.COMPLETE).count() == 1


def test_reopen_freed_slots_reopens_only_slots_without_a_holder():
    held = make_session("REQUESTED").slot
    orphan = TimeSlotFactory(coach=CoachFactory(), status=SlotStatus.BOOKED)
    past_orphan = TimeSlotFactory(
        coach=orphan.coach,
        status=SlotStatus.BOOKED,
        start=timezone.now() - timedelta(days=1),
        end=timezone.now() - timedelta(hours=23),
    )

    assert slots_reopen_freed() == 1
    assert slots_reopen_freed() == 0

    assert (slot_status(held), slot_status(orphan), slot_status(past_orphan)) == (
        SlotStatus.HELD,
        SlotStatus.OPEN,
        SlotStatus.BOOKED,
    )


# --- invariants the database holds when the services are bypassed --------------------------


def test_database_refuses_two_active_sessions_on_one_slot():
    first = make_session("REQUESTED")
    second = make_package().sessions.first()

    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.filter(pk=second.pk).update(status=Status.CONFIRMED, slot=first.slot)


def test_database_refuses_two_pending_proposals_on_one_slot():
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


def test_database_refuses_a_holding_status_without_a_slot():
    session = make_session()

    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.filter(pk=session.pk).update(status=Status.REQUESTED)


def test_database_refuses_unknown_status_and_negative_amounts():
    session = make_session()

    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.filter(pk=session.pk).update(status="LOST")
    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.filter(pk=session.pk).update(price_share_cents=-1)


# --- calendar versions --------------------------------------------------------------------


def test_calendar_sequence_rises_whenever_a_calendar_entry_changes():
    session = make_session("RESCHEDULING")  # accepted once (0), then a proposal is pending
    proposal = RescheduleProposal.objects.get(session=session)
    with time_machine.travel(proposal.expires_at, tick=False):
        services.sessions_expire_stale()
    assert Session.objects.get(pk=session.pk).sequence == 1  # the entry was withdrawn

    services.session_book(
        session=session, slot=TimeSlotFactory(coach=session.coach), actor=session.student
    )
    services.session_accept(session=session, actor=session.coach)
    assert Session.objects.get(pk=session.pk).sequence == 2  # on calendars again, newer

    services.session_cancel(session=session, actor=session.coach, refund="none")
    assert Session.objects.get(pk=session.pk).sequence == 3
