"""Writes for money: recording a package's payment and issuing a session's refund.

A refund never changes a session's status: `sessions_app.services.session_cancel` does that and
calls `refund_issue` inside its own transaction. Only a gateway that merely records
(`records_only`, the manual one) is called inside that transaction. For any other gateway the
refund is written CREATED and, once the transaction has committed, `refunds.tasks.settle_refund`
submits it to the gateway and settles it through `refund_settle`: a rolled-back cancel never
reaches the gateway.
"""

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import DomainError
from core.money import format_money
from core.transactions import on_commit
from refunds.gateways import get_gateway
from refunds.models import Payment, PaymentState, Refund, RefundKind, RefundState
from refunds.selectors import session_refundable_cents


class RefundNotAllowed(DomainError):
    default_message = "That refund is not possible."


def payment_record(*, package, gateway_name: str | None = None) -> Payment:
    """Record the payment for a freshly bought package through the gateway."""
    gateway = get_gateway(gateway_name)
    with transaction.atomic():
        payment = Payment.objects.create(
            package=package,
            amount_cents=package.price_cents,
            currency=package.currency,
            gateway=gateway.name,
            idempotency_key=f"package-{package.pk}-payment",
        )
        result = gateway.charge(payment)
        payment.state = PaymentState(result.state)
        payment.reference = result.reference
        payment.save(update_fields=["state", "reference"])
    return payment


def refund_issue(
    *,
    session,
    kind: str,
    issued_by,
    idempotency_key: str,
    amount_cents: int | None = None,
    reason: str = "",
) -> Refund:
    """Refund part or all of one session's share, at most once per `idempotency_key`.

    `full` returns whatever of the session's share is still refundable; `partial` takes
    1..refundable cents. The package's payment row is locked, so concurrent refunds of the same
    package can never add up to more than was paid. A records-only gateway settles the refund
    here (DONE at once); any other gateway sees it only after commit (see the module docstring).
    """
    if kind not in RefundKind.values:
        raise RefundNotAllowed("Choose a full or a partial refund.")
    gateway = get_gateway()
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(package_id=session.package_id)
        existing = Refund.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        if payment.state != PaymentState.DONE:
            raise RefundNotAllowed("The payment for this package has not gone through.")
        refundable = session_refundable_cents(session=session)
        if refundable <= 0:
            raise RefundNotAllowed("Nothing is left to refund for this session.")
        if kind == RefundKind.FULL:
            amount = refundable
        else:
            if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
                raise RefundNotAllowed("Enter the amount to refund.")
            if amount_cents < 1:
                raise RefundNotAllowed("A partial refund must be at least 0.01.")
            if amount_cents > refundable:
                raise RefundNotAllowed(
                    f"At most {format_money(refundable, payment.currency)} can be refunded "
                    "for this session."
                )
            amount = amount_cents
        try:
            with transaction.atomic():
                refund = Refund.objects.create(
                    session=session,
                    payment=payment,
                    amount_cents=amount,
                    currency=payment.currency,
                    kind=kind,
                    gateway=gateway.name,
                    issued_by=issued_by,
                    reason=reason,
                    idempotency_key=idempotency_key,
                )
        except IntegrityError:
            return Refund.objects.get(idempotency_key=idempotency_key)
        if getattr(gateway, "records_only", False):
            _apply_gateway_result(refund, gateway.refund(refund))
        if refund.state == RefundState.CREATED:
            _schedule_settlement(refund)
    return refund


def _schedule_settlement(refund: Refund) -> None:
    """Ask the settle task to submit (if needed) and settle the refund once this transaction
    has committed; nothing is queued if it rolls back."""
    from refunds.tasks import settle_refund  # the task module imports this one

    refund_id = refund.pk
    on_commit(lambda: settle_refund.delay(refund_id=refund_id))


def refund_settle(*, refund: Refund) -> Refund:
    """Submit the refund to its gateway if it was not yet, then move CREATED -> DONE or FAILED.

    A refund not yet submitted (CREATED with no gateway reference) is sent with
    `gateway.refund()`; a gateway that answers CREATED is then asked for the outcome with
    `refund_status()`. Idempotent: a refund that is already settled (DONE or FAILED) is returned
    unchanged, one already submitted is never submitted again, and a gateway that still answers
    CREATED leaves it CREATED (the caller tries again later). Each call first counts itself
    (`settle_attempts`, `last_attempt_at`) and commits that; the submission and its reference
    then commit in their own transaction before the outcome is asked in a last one, so a failing
    status call never causes a second submission. The refund row is locked in each, so two
    concurrent settlements submit and apply the outcome once. A refund never changes its
    session's status. Raises `refunds.gateways.GatewayUnavailable` when the gateway cannot be
    asked right now.
    """
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.state != RefundState.CREATED:
            return refund
        # The attempt is recorded first, in its own transaction, so it counts even when the
        # gateway fails below: the pending sweep leaves the refund to this task's retries.
        refund.settle_attempts += 1
        refund.last_attempt_at = timezone.now()
        refund.save(update_fields=["settle_attempts", "last_attempt_at"])
    gateway = get_gateway(refund.gateway)
    if not refund.reference:
        with transaction.atomic():
            refund = Refund.objects.select_for_update().get(pk=refund.pk)
            if refund.state != RefundState.CREATED:
                return refund
            if not refund.reference:
                _apply_gateway_result(refund, gateway.refund(refund))
            if refund.state != RefundState.CREATED:
                return refund
    # The submission and its reference are committed before the outcome is asked, so a status
    # call that fails (an outage, a time limit) never rolls the reference back and the retry
    # never submits the refund again.
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.state != RefundState.CREATED:
            return refund
        result = gateway.refund_status(refund)
        if result.state != RefundState.CREATED:
            _apply_gateway_result(refund, result)
    return refund


def _apply_gateway_result(refund: Refund, result) -> None:
    refund.state = RefundState(result.state)
    refund.reference = result.reference or refund.reference
    refund.failure_reason = result.failure_reason
    if refund.state != RefundState.CREATED:
        refund.settled_at = timezone.now()
    refund.save(update_fields=["state", "reference", "failure_reason", "settled_at"])
