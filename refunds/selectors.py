"""Reads about money: what was paid, what was refunded, what can still be refunded."""

from django.db.models import IntegerField, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from refunds.models import Payment, PaymentState, Refund, RefundState

# A failed refund moved no money; created (pending) and done ones count against the caps.
COUNTED_STATES = (RefundState.CREATED, RefundState.DONE)


def _counted_refunds(**lookup):
    return Refund.objects.filter(**lookup, state__in=COUNTED_STATES)


def refunded_cents_for_session(*, session) -> int:
    return _counted_refunds(session=session).aggregate(total=Sum("amount_cents"))["total"] or 0


def refunded_cents_for_payment(*, payment) -> int:
    return _counted_refunds(payment=payment).aggregate(total=Sum("amount_cents"))["total"] or 0


def refunded_cents_subquery(*, via: str) -> Coalesce:
    """For `.annotate()`: each outer row's counted refunds in cents, 0 when there are none.

    `via` is the Refund lookup that leads to the outer row: "session" for sessions,
    "payment" for payments, "payment__package" for packages.
    """
    total = (
        _counted_refunds(**{via: OuterRef("pk")})
        .order_by()
        .values(via)
        .annotate(total=Sum("amount_cents"))
        .values("total")
    )
    return Coalesce(Subquery(total, output_field=IntegerField()), 0)


def session_refundable_cents(*, session) -> int:
    """The most that can still be refunded for `session`: its share, capped by the package."""
    payment = session.package.payment
    left_on_session = session.price_share_cents - refunded_cents_for_session(session=session)
    left_on_payment = payment.amount_cents - refunded_cents_for_payment(payment=payment)
    return max(0, min(left_on_session, left_on_payment))


def payment_for_student(*, student, pk: int):
    """The student's own payment with its package and coach, or None (someone else's too)."""
    return (
        Payment.objects.select_related("package", "package__coach")
        .filter(pk=pk, package__student=student)
        .first()
    )


def payments_awaiting(*, student) -> list:
    """The student's packages still waiting for their payment (awaiting or refused), newest
    first, with their coach: one query."""
    return list(
        Payment.objects.select_related("package", "package__coach")
        .filter(package__student=student, state__in=(PaymentState.CREATED, PaymentState.FAILED))
        .order_by("-created_at")[:20]
    )


def package_payment(*, package) -> Payment:
    """The payment of `package` (every package has one)."""
    return Payment.objects.get(package_id=package.pk)
