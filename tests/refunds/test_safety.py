"""Money safety: caps, integer minor units, idempotency, and refusals that write nothing."""

from decimal import Decimal

import pytest

from refunds.models import Refund, RefundState
from refunds.selectors import refunded_cents_for_payment
from refunds.services import RefundNotAllowed, refund_issue
from sessions_app.lifecycle import TransitionNotAllowed
from sessions_app.models import SessionEvent
from sessions_app.services import session_cancel
from tests.factories import make_package, make_session

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("coaches_decide_refunds")]


def _state(session):
    """Everything a refused refund must leave untouched."""
    session.refresh_from_db()
    slot_status = session.slot.status if session.slot_id else None
    return (
        session.status,
        slot_status,
        Refund.objects.count(),
        SessionEvent.objects.filter(session=session).count(),
    )


# --- double submission -------------------------------------------------------------------------


def test_double_submitted_cancel_form_refunds_once():
    session = make_session("CONFIRMED", price_cents=30000, session_count=3)

    session_cancel(session=session, actor=session.coach, refund="full", reason="Ill")
    with pytest.raises(TransitionNotAllowed, match="This session was canceled"):
        session_cancel(session=session, actor=session.coach, refund="full", reason="Ill")

    refund = Refund.objects.get()
    assert (refund.session_id, refund.amount_cents, refund.kind) == (session.pk, 10000, "full")
    assert refund.idempotency_key == f"session-{session.pk}-cancel"
    assert session.events.filter(action="cancel").count() == 1


def test_refund_issue_twice_with_the_same_key_returns_the_first_refund():
    session = make_session("CONFIRMED", price_cents=30000, session_count=3)
    first = refund_issue(
        session=session,
        kind="partial",
        amount_cents=1250,
        issued_by=session.coach,
        idempotency_key="form-abc",
    )

    second = refund_issue(
        session=session,
        kind="partial",
        amount_cents=1250,
        issued_by=session.coach,
        idempotency_key="form-abc",
    )

    assert second.pk == first.pk
    assert list(Refund.objects.values_list("amount_cents", flat=True)) == [1250]


def test_same_key_with_another_amount_still_refunds_only_once():
    session = make_session("CONFIRMED", price_cents=30000, session_count=3)
    refund_issue(
        session=session, kind="partial", amount_cents=1250, issued_by=None, idempotency_key="k"
    )

    again = refund_issue(session=session, kind="full", issued_by=None, idempotency_key="k")

    assert (again.kind, again.amount_cents) == ("partial", 1250)
    assert Refund.objects.count() == 1


# --- amounts and caps --------------------------------------------------------------------------


def test_amounts_are_stored_as_integer_minor_units():
    session = make_session("CONFIRMED", price_cents=10001, session_count=3)  # 3334, 3334, 3333
    session_cancel(session=session, actor=session.coach, refund="partial", amount_cents=1250)

    refund = Refund.objects.get()
    assert refund.amount_cents == 1250
    assert isinstance(refund.amount_cents, int)
    assert session.price_share_cents == 3334


def test_full_refund_returns_exactly_the_session_share():
    package = make_package(price_cents=10001, session_count=3)
    sessions = list(package.sessions.order_by("number"))

    for session in sessions:
        session_cancel(session=session, actor=package.coach, refund="full")

    assert list(
        Refund.objects.order_by("session__number").values_list("amount_cents", flat=True)
    ) == [
        3334,
        3334,
        3333,
    ]
    assert refunded_cents_for_payment(payment=package.payment) == 10001


def test_full_refund_after_a_partial_one_returns_only_what_is_left_of_the_share():
    session = make_session("CONFIRMED", price_cents=30000, session_count=3)
    refund_issue(
        session=session,
        kind="partial",
        amount_cents=4000,
        issued_by=session.coach,
        idempotency_key="goodwill",
    )

    session_cancel(session=session, actor=session.coach, refund="full")

    assert sorted(session.refunds.values_list("amount_cents", flat=True)) == [4000, 6000]


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (0, "A partial refund must be at least 0.01."),
        (-500, "A partial refund must be at least 0.01."),
        (10001, "At most $100.00 can be refunded for this session."),
        (12.5, "Enter the amount to refund."),
        (Decimal("12.50"), "Enter the amount to refund."),
        ("1250", "Enter the amount to refund."),
        (True, "Enter the amount to refund."),
        (None, "Enter the amount to refund."),
    ],
    ids=["zero", "negative", "over-share", "float", "decimal", "string", "bool", "missing"],
)
def test_bad_partial_amount_is_refused_and_changes_nothing(amount, message):
    session = make_session("CONFIRMED", price_cents=30000, session_count=3)
    before = _state(session)

    with pytest.raises(RefundNotAllowed) as refused:
        session_cancel(session=session, actor=session.coach, refund="partial", amount_cents=amount)

    assert refused.value.message == message
    assert _state(session) == before == ("CONFIRMED", "BOOKED", 0, 3)


def test_partial_refund_over_what_is_left_of_the_share_is_refused():
    session = make_session("CONFIRMED", price_cents=30000, session_count=3)
    refund_issue(
        session=session, kind="partial", amount_cents=9000, issued_by=None, idempotency_key="k1"
    )

    with pytest.raises(RefundNotAllowed, match=r"At most \$10\.00 can"):
        session_cancel(session=session, actor=session.coach, refund="partial", amount_cents=1001)

    assert _state(session) == ("CONFIRMED", "BOOKED", 1, 3)


def test_nothing_left_to_refund_is_refused_for_a_full_refund():
    session = make_session("CONFIRMED", price_cents=30000, session_count=3)
    refund_issue(session=session, kind="full", issued_by=None, idempotency_key="k1")

    with pytest.raises(RefundNotAllowed, match=r"Nothing is left to refund for this session\."):
        session_cancel(session=session, actor=session.coach, refund="full")

    assert _state(session) == ("CONFIRMED", "BOOKED", 1, 3)


def test_package_payment_caps_refunds_even_when_shares_would_allow_more():
    # A payment smaller than the price (as a discounted charge would record it): the sessions'
    # shares add up to more than was paid, so the package cap is the one that binds.
    package = make_package(price_cents=30000, session_count=3)
    package.payment.__class__.objects.filter(pk=package.payment.pk).update(amount_cents=15000)
    first, second, third = package.sessions.order_by("number")

    session_cancel(session=first, actor=package.coach, refund="full")
    session_cancel(session=second, actor=package.coach, refund="full")
    with pytest.raises(RefundNotAllowed, match="Nothing is left to refund"):
        session_cancel(session=third, actor=package.coach, refund="full")

    assert list(Refund.objects.order_by("pk").values_list("amount_cents", flat=True)) == [
        10000,
        5000,
    ]
    third.refresh_from_db()
    assert third.status == "UNSCHEDULED"


def test_failed_refund_does_not_count_against_the_caps():
    session = make_session("CONFIRMED", price_cents=30000, session_count=3)
    failed = refund_issue(session=session, kind="full", issued_by=None, idempotency_key="k1")
    Refund.objects.filter(pk=failed.pk).update(state=RefundState.FAILED)

    session_cancel(session=session, actor=session.coach, refund="full")

    assert session.refunds.get(state=RefundState.DONE).amount_cents == 10000


def test_amount_with_a_full_or_no_refund_is_refused():
    session = make_session("CONFIRMED")
    with pytest.raises(RefundNotAllowed, match=r"An amount goes only with a partial refund\."):
        session_cancel(session=session, actor=session.coach, refund="none", amount_cents=100)
    assert _state(session) == ("CONFIRMED", "BOOKED", 0, 3)


def test_cancel_without_refund_writes_no_refund_but_records_the_choice():
    session = make_session("CONFIRMED")

    session_cancel(session=session, actor=session.coach, refund="none", reason="No-show")

    assert Refund.objects.count() == 0
    event = session.events.get(action="cancel")
    assert event.details == {
        "refund": "none",
        "reason": "No-show",
        "canceled_by": "coach",
        "rule": "coach_cancel",
        "rule_summary": "The coach cancels: what the coach decides each time (full, partial "
        "or no refund).",
        "rule_refund_cents": session.price_share_cents,
        "rule_used": False,
    }
