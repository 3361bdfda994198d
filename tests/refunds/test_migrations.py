"""refunds 0003 (card payments) run on real rows made with the historical models of 0002."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.core.management import call_command

from tests.migration_support import latest_migrations, migrate_to

BEFORE = ("refunds", "0002_refund_settle_attempts")
AFTER = ("refunds", "0003_stripe_payments")
NOW = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)


def _with_refunds_at(node):
    """Every other app at its latest migration, refunds at `node`."""
    return [leaf for leaf in latest_migrations() if leaf[0] != "refunds"] + [node]


def _arrange(apps) -> dict:
    User = apps.get_model("accounts", "User")
    Offering = apps.get_model("catalog", "Offering")
    Package = apps.get_model("sessions_app", "Package")
    Session = apps.get_model("sessions_app", "Session")
    Payment = apps.get_model("refunds", "Payment")
    Refund = apps.get_model("refunds", "Refund")
    coach = User.objects.create(email="coach@example.com", display_name="Coach")
    student = User.objects.create(email="student@example.com", display_name="Student")
    offering = Offering.objects.create(
        coach=coach, title="Lesson", session_count=1, duration_minutes=60, price_cents=5000
    )
    ids = {}
    for name, state in (("paid", "DONE"), ("waiting", "CREATED")):
        package = Package.objects.create(
            offering=offering,
            coach=coach,
            student=student,
            title="Lesson",
            session_count=1,
            duration_minutes=60,
            price_cents=5000,
            currency="USD",
        )
        payment = Payment.objects.create(
            package=package,
            amount_cents=5000,
            currency="USD",
            gateway="manual",
            reference=f"manual-payment-{package.pk}",
            state=state,
            idempotency_key=f"package-{package.pk}-payment",
        )
        ids[name] = payment.pk
        if state == "DONE":
            session = Session.objects.create(
                package=package,
                coach=coach,
                student=student,
                number=1,
                status="CANCELED",
                price_share_cents=5000,
                currency="USD",
            )
            ids["refund"] = Refund.objects.create(
                session=session,
                payment=payment,
                amount_cents=1250,
                currency="USD",
                kind="partial",
                state="DONE",
                gateway="manual",
                idempotency_key=f"cancel-{session.pk}",
            ).pk
    return ids


@pytest.fixture(scope="module")
def migrated(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        try:
            with time_machine.travel(NOW, tick=False):
                try:
                    ids = _arrange(migrate_to(_with_refunds_at(BEFORE)))
                    migrate_to(_with_refunds_at(AFTER))
                finally:
                    migrate_to(latest_migrations())
            yield ids
        finally:
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def rows(migrated, db):
    return migrated


def test_payments_recorded_paid_get_their_paid_time_and_awaiting_ones_none(rows):
    from refunds.models import Payment, PaymentState

    paid, waiting = Payment.objects.get(pk=rows["paid"]), Payment.objects.get(pk=rows["waiting"])

    assert (paid.state, paid.paid_at) == (PaymentState.DONE, NOW)
    assert (waiting.state, waiting.paid_at) == (PaymentState.CREATED, None)
    assert (paid.attempts, paid.failure_reason) == (0, "")
    assert paid.get_state_display() == "Paid"


def test_existing_refunds_keep_their_state_and_are_no_retry(rows):
    from refunds.models import Refund, RefundState

    refund = Refund.objects.get(pk=rows["refund"])

    assert (refund.state, refund.retry_of, refund.amount_cents) == (RefundState.DONE, None, 1250)
    assert refund.get_state_display() == "Succeeded"
    assert not Refund.objects.filter(retry_of=refund).exists()
