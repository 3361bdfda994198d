"""The issue's "done when", end to end against localstripe through the real SDK."""

import pytest

from refunds.models import PaymentState, RefundState
from sessions_app import services as session_services
from tests.factories import make_card_package, next_free_start

pytestmark = pytest.mark.django_db


def test_five_sessions_paid_by_card_then_a_partial_refund_of_1250_lands_once(
    stripe_settings, localstripe, django_capture_on_commit_callbacks, settings
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from config.celery import app

    app.conf.task_always_eager = True
    try:
        package = make_card_package(localstripe, session_count=5, price_cents=25000)
        payment = package.payment
        payment.refresh_from_db()
        assert payment.state == PaymentState.DONE
        assert payment.reference.startswith("pi_")
        assert package.sessions.count() == 5

        session = package.sessions.order_by("number").first()
        coach, student = package.coach, package.student
        session_services.session_book(
            session=session, start=next_free_start(coach, package.duration_minutes), actor=student
        )
        session_services.session_accept(session=session, actor=coach)
        for _ in range(3):
            with django_capture_on_commit_callbacks(execute=True):
                try:
                    session_services.session_cancel(
                        session=session, actor=coach, refund="partial", amount_cents=1250
                    )
                except Exception:
                    pass
        refunds = localstripe.refunds_of(payment.reference)
        assert [each["amount"] for each in refunds] == [1250]
        refund = session.refunds.get()
        assert refund.state == RefundState.DONE
        assert refund.reference == refunds[0]["id"]
    finally:
        app.conf.task_always_eager = False
