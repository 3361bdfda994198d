"""Concurrent refunds on PostgreSQL: two requests at once, each on its own connection.

The payment row lock in `refund_issue` (and the session row lock in `session_cancel`) must make
the second request see the first one's refund, so the money never exceeds what was paid.
"""

import threading

import pytest
from django.db import connections

from refunds.models import Payment, Refund
from refunds.selectors import refunded_cents_for_payment
from refunds.services import RefundNotAllowed, refund_issue
from sessions_app.lifecycle import TransitionNotAllowed
from sessions_app.services import session_cancel
from tests.factories import make_package, make_session

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(*calls):
    """Run each call in its own thread and DB connection, released at once by a barrier.

    Returns one outcome per call: its return value, or the exception it raised.
    """
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def worker(index, call):
        try:
            barrier.wait(timeout=10)
            outcomes[index] = call()
        except Exception as exc:  # the test asserts each outcome
            outcomes[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def test_two_concurrent_cancels_never_refund_more_than_the_package_payment():
    # Paid 200.00 for three sessions priced 100.00 each (a discounted charge), and a partial
    # refund of 50.00 already issued: 150.00 remain, enough for one full refund of 100.00 but
    # not for two.
    package = make_package(price_cents=30000, session_count=3)
    Payment.objects.filter(pk=package.payment.pk).update(amount_cents=20000)
    first, second, third = package.sessions.order_by("number")
    refund_issue(
        session=third,
        kind="partial",
        amount_cents=5000,
        issued_by=package.coach,
        idempotency_key="goodwill",
    )
    coach = package.offering.coach

    outcomes = run_together(
        lambda: session_cancel(session=first, actor=coach, refund="full"),
        lambda: session_cancel(session=second, actor=coach, refund="full"),
    )

    assert [type(outcome).__name__ for outcome in outcomes] == ["Session", "Session"]
    package.payment.refresh_from_db()
    assert refunded_cents_for_payment(payment=package.payment) == 20000
    amounts = sorted(
        Refund.objects.filter(session__in=[first, second]).values_list("amount_cents", flat=True)
    )
    # Whichever committed first got the whole share; the other only what was left.
    assert amounts == [5000, 10000]


def test_two_concurrent_full_refunds_of_one_session_refund_its_share_once():
    session = make_session("CONFIRMED", price_cents=30000, session_count=3)
    refund_issue(
        session=session,
        kind="partial",
        amount_cents=4000,
        issued_by=session.coach,
        idempotency_key="goodwill",
    )

    outcomes = run_together(
        *(
            lambda key=key: refund_issue(
                session=session, kind="full", issued_by=session.coach, idempotency_key=key
            )
            for key in ("request-a", "request-b")
        )
    )

    refused = [outcome for outcome in outcomes if isinstance(outcome, RefundNotAllowed)]
    issued = [outcome for outcome in outcomes if isinstance(outcome, Refund)]
    assert len(refused) == len(issued) == 1
    assert refused[0].message == "Nothing is left to refund for this session."
    assert sorted(session.refunds.values_list("amount_cents", flat=True)) == [4000, 6000]


def test_double_submitted_cancel_form_at_the_same_moment_refunds_once():
    session = make_session("CONFIRMED", price_cents=30000, session_count=3)
    coach = session.coach

    outcomes = run_together(
        lambda: session_cancel(session=session, actor=coach, refund="full", reason="Ill"),
        lambda: session_cancel(session=session, actor=coach, refund="full", reason="Ill"),
    )

    assert sorted(type(outcome).__name__ for outcome in outcomes) == [
        "Session",
        "TransitionNotAllowed",
    ]
    assert next(o for o in outcomes if isinstance(o, TransitionNotAllowed)).message == (
        "This session was canceled; it cannot change any more."
    )
    assert list(Refund.objects.values_list("session_id", "amount_cents")) == [(session.pk, 10000)]
    assert session.events.filter(action="cancel").count() == 1
