"""Reads about money: what was paid, what was refunded, what can still be refunded."""

from django.db.models import Sum

from refunds.models import Refund, RefundState

# A failed refund moved no money; created (pending) and done ones count against the caps.
COUNTED_STATES = (RefundState.CREATED, RefundState.DONE)


def refunded_cents_for_session(*, session) -> int:
    return (
        Refund.objects.filter(session=session, state__in=COUNTED_STATES).aggregate(
            total=Sum("amount_cents")
        )["total"]
        or 0
    )


def refunded_cents_for_payment(*, payment) -> int:
    return (
        Refund.objects.filter(payment=payment, state__in=COUNTED_STATES).aggregate(
            total=Sum("amount_cents")
        )["total"]
        or 0
    )


def session_refundable_cents(*, session) -> int:
    """The most that can still be refunded for `session`: its share, capped by the package."""
    payment = session.package.payment
    left_on_session = session.price_share_cents - refunded_cents_for_session(session=session)
    left_on_payment = payment.amount_cents - refunded_cents_for_payment(payment=payment)
    return max(0, min(left_on_session, left_on_payment))
