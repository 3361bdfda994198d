"""Writes for money: recording a package's payment and issuing a session's refund.

A refund never changes a session's status: `sessions_app.services.session_cancel` does that and
calls `refund_issue` inside its own transaction. Only a gateway that merely records
(`records_only`, the manual one) is called inside that transaction. For any other gateway the
refund is written CREATED and, once the transaction has committed, `refunds.tasks.settle_refund`
submits it to the gateway and settles it through `refund_settle`: a rolled-back cancel never
reaches the gateway.
"""

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import DomainError
from core.money import format_money
from core.transactions import on_commit
from refunds.gateways import GatewayRefused, GatewayResult, GatewayUnavailable, get_gateway
from refunds.models import (
    Payment,
    PaymentState,
    ProcessorEvent,
    Refund,
    RefundKind,
    RefundState,
)
from refunds.selectors import session_refundable_cents

logger = logging.getLogger(__name__)
AWAITING_RECONCILE_AFTER = timedelta(minutes=5)
AWAITING_RECONCILE_FOR = timedelta(days=7)
# Card attempts (processor payments) one package may make before it takes no more.
MAX_CARD_ATTEMPTS = 10


class RefundNotAllowed(DomainError):
    default_message = "That refund is not possible."


def payment_record(*, package, purchase_token: str | None = None) -> Payment:
    """Record the payment for a freshly bought package, in the purchase's transaction.

    The manual gateway records it paid at once. A processor that takes cards leaves it
    CREATED (awaiting payment) with no processor call yet: `payment_prepare` creates the
    processor's payment once this transaction has committed, so a purchase that rolls back
    leaves nothing at the processor. The idempotency key is bound to the purchase token (the
    confirmation page's one-time nonce) when there is one.
    """
    gateway = get_gateway()
    key = f"purchase-{purchase_token}" if purchase_token else f"package-{package.pk}-payment"
    with transaction.atomic():
        payment = Payment.objects.create(
            package=package,
            amount_cents=package.price_cents,
            currency=package.currency,
            gateway=gateway.name,
            idempotency_key=key,
        )
        result = gateway.charge(payment)
        payment.state = PaymentState(result.state)
        payment.reference = result.reference
        payment.failure_reason = result.failure_reason
        if payment.state == PaymentState.DONE:
            payment.paid_at = timezone.now()
        payment.save(update_fields=["state", "reference", "failure_reason", "paid_at"])
    return payment


class PaymentNotPossible(DomainError):
    default_message = "This payment cannot be made now."


# Processor statuses in which a new card attempt needs a new processor payment: the last
# attempt was refused, its 3-D Secure step abandoned, or it was canceled.
_RETRY_NEEDS_NEW_INTENT = ("requires_action", "canceled")


def _locked_payment(payment: Payment) -> Payment:
    return Payment.objects.select_for_update().select_related("package").get(pk=payment.pk)


def _card_gateway(payment: Payment):
    gateway = get_gateway(payment.gateway)
    if not getattr(gateway, "takes_cards", False):
        raise PaymentNotPossible("This package is not paid by card.")
    return gateway


def _new_intent(gateway, payment: Payment):
    """A new processor payment for `payment` (locked by the caller): one per attempt, each
    with its own idempotency key derived from the purchase's. Bounded: a package that has
    been refused MAX_CARD_ATTEMPTS times takes no more cards (card testing)."""
    if payment.attempts >= MAX_CARD_ATTEMPTS:
        raise PaymentNotPossible(
            f"This package has had {MAX_CARD_ATTEMPTS} payment attempts, the most we allow. "
            "Nothing more can be charged for it; buy it again to start over."
        )
    payment.attempts += 1
    intent = gateway.intent_create(
        payment, idempotency_key=f"{payment.idempotency_key}-attempt-{payment.attempts}"
    )
    payment.reference = intent.id
    payment.save(update_fields=["attempts", "reference"])
    return intent


def payment_prepare(*, payment: Payment):
    """The processor payment (`refunds.gateways.Intent`) the payment page pays, made if needed.

    Returns None once the payment is DONE (nothing left to pay). The payment row is locked
    while the processor is asked, so two tabs opening the page make one processor payment.
    Raises `GatewayUnavailable` when the processor cannot be reached.
    """
    gateway = _card_gateway(payment)
    with transaction.atomic():
        payment = _locked_payment(payment)
        if payment.state == PaymentState.DONE:
            return None
        if not payment.reference:
            return _new_intent(gateway, payment)
        intent = gateway.intent_retrieve(payment.reference)
        if intent.state == PaymentState.DONE:
            _payment_apply(payment, intent)
            return None
        return intent


def payment_pay_with_card(*, payment: Payment, card_token: str):
    """Pay an awaiting payment with the card the page tokenised; returns the `Intent`.

    Its `state` says what happened: DONE (paid: the package's sessions are credits now),
    FAILED (refused, with `failure_reason`; the student may try another card) or CREATED with
    status `requires_action` (the page completes the bank's 3-D Secure step with
    `confirmCardPayment`, then opens the return page). A payment already DONE is not charged
    again. A retry after a refused or abandoned attempt is a new processor payment (the old one
    is canceled first), so no attempt can be paid twice.
    """
    gateway = _card_gateway(payment)
    with transaction.atomic():
        payment = _locked_payment(payment)
        if payment.state == PaymentState.DONE:
            return gateway.intent_retrieve(payment.reference)
        intent = (
            gateway.intent_retrieve(payment.reference)
            if payment.reference
            else _new_intent(gateway, payment)
        )
        if intent.state == PaymentState.DONE:
            _payment_apply(payment, intent)
            return intent
        if intent.status == "processing":
            raise PaymentNotPossible("Your last payment is still being processed. Wait a moment.")
        if intent.state == PaymentState.FAILED or intent.status in _RETRY_NEEDS_NEW_INTENT:
            if intent.status != "canceled":
                gateway.intent_cancel(intent.id)
                again = gateway.intent_retrieve(intent.id)
                if again.state == PaymentState.DONE:  # paid meanwhile (another tab)
                    _payment_apply(payment, again)
                    return again
                if again.status != "canceled":
                    # Stripe refused to cancel it: it is being paid (another tab finished its
                    # 3-D Secure step). Replacing it would lose that payment, or charge twice.
                    raise PaymentNotPossible(
                        "Your last payment is still being processed. Wait a moment and reload "
                        "this page."
                    )
            intent = _new_intent(gateway, payment)
    # The card attempt itself runs outside the lock's transaction: its outcome is read back
    # from the processor and applied under the lock, like a webhook's.
    attempt = gateway.intent_pay_with_card(intent.id, card_token=card_token)
    with transaction.atomic():
        payment = _locked_payment(payment)
        if payment.reference == attempt.id:
            _payment_apply(payment, attempt)
    return attempt


def payment_refresh(*, payment: Payment) -> Payment:
    """Ask the processor about `payment` and apply its answer (the return page, a webhook and
    the reconciliation sweep all come here). Idempotent: a DONE payment is returned as is,
    and the credits are created exactly once, whoever learns of the success first."""
    gateway = _card_gateway(payment)
    if payment.state == PaymentState.DONE or not payment.reference:
        return payment
    intent = gateway.intent_retrieve(payment.reference)
    with transaction.atomic():
        payment = _locked_payment(payment)
        if payment.reference == intent.id:
            _payment_apply(payment, intent)
    return payment


def _payment_apply(payment: Payment, intent) -> None:
    """Apply the processor's answer to the locked `payment`: DONE creates the credits once."""
    if payment.state == PaymentState.DONE:
        return
    if intent.state == PaymentState.DONE:
        if intent.amount and intent.amount != payment.amount_cents:
            logger.error(
                "payment %s: the processor received %s, not %s; left awaiting payment",
                payment.pk,
                intent.amount,
                payment.amount_cents,
            )
            return
        payment.state = PaymentState.DONE
        payment.paid_at = timezone.now()
        payment.failure_reason = ""
        payment.save(update_fields=["state", "paid_at", "failure_reason"])
        # sessions_app calls this module at import time; its credits service is looked up here.
        from sessions_app.services import package_credits_create

        package_credits_create(package=payment.package)
    elif intent.state == PaymentState.FAILED:
        payment.state = PaymentState.FAILED
        payment.failure_reason = intent.failure_reason or "The payment did not go through."
        payment.save(update_fields=["state", "failure_reason"])


def payments_reconcile_awaiting(*, now=None, limit: int = 200) -> int:
    """Ask the processor about payments still awaiting it (a webhook that never came, a
    student who closed the page after paying): those between five minutes and seven days old,
    oldest first, at most `limit` per run. Returns how many became paid."""
    now = now or timezone.now()
    ids = list(
        Payment.objects.filter(
            state__in=(PaymentState.CREATED, PaymentState.FAILED),
            created_at__lte=now - AWAITING_RECONCILE_AFTER,
            created_at__gte=now - AWAITING_RECONCILE_FOR,
        )
        .exclude(reference="")
        .exclude(gateway="manual")
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    paid = 0
    for payment in Payment.objects.filter(pk__in=ids):
        try:
            if payment_refresh(payment=payment).state == PaymentState.DONE:
                paid += 1
        except (GatewayUnavailable, DomainError) as exc:
            logger.warning("reconcile payment %s: %s", payment.pk, exc)
    return paid


def payment_lock(*, package) -> Payment:
    """Lock the package's payment row in the caller's transaction: what refunds lock, so a
    make-up credit valued from the refunds sees them all committed."""
    return Payment.objects.select_for_update().get(package_id=package.pk)


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
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(package_id=session.package_id)
        # A refund goes back the way the money came, whatever the gateway configured now.
        gateway = get_gateway(payment.gateway)
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
        return _refund_create(
            gateway,
            session=session,
            payment=payment,
            amount_cents=amount,
            kind=kind,
            issued_by=issued_by,
            reason=reason,
            idempotency_key=idempotency_key,
        )


def _refund_create(gateway, *, idempotency_key: str, **fields) -> Refund:
    """Write the refund (once per key) in the caller's transaction, with the payment locked;
    a records-only gateway settles it now, any other after commit."""
    payment = fields["payment"]
    try:
        with transaction.atomic():
            refund = Refund.objects.create(
                currency=payment.currency,
                gateway=gateway.name,
                idempotency_key=idempotency_key,
                **fields,
            )
    except IntegrityError:
        return Refund.objects.get(idempotency_key=idempotency_key)
    if getattr(gateway, "records_only", False):
        _apply_gateway_result(refund, gateway.refund(refund))
    if refund.state == RefundState.CREATED:
        _schedule_settlement(refund)
    return refund


def refund_retry(*, refund: Refund, issued_by) -> Refund:
    """Retry a FAILED refund as a new refund of the same amount (the admin's action).

    The failed refund stays as it is (the audit keeps both); the new one points at it
    (`retry_of`), has its own idempotency key and goes to the gateway after commit. Retrying
    the same failed refund twice returns the first retry. The caps are checked again, since a
    failed refund no longer counts against them.
    """
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
        refund = Refund.objects.select_for_update().select_related("session").get(pk=refund.pk)
        existing = Refund.objects.filter(retry_of=refund).first()
        if existing is not None:
            return existing
        if refund.state != RefundState.FAILED:
            raise RefundNotAllowed("Only a failed refund can be retried.")
        if payment.state != PaymentState.DONE:
            raise RefundNotAllowed("The payment for this package has not gone through.")
        refundable = session_refundable_cents(session=refund.session)
        if refund.amount_cents > refundable:
            raise RefundNotAllowed(
                f"At most {format_money(refundable, payment.currency)} can be refunded for "
                "this session now."
            )
        return _refund_create(
            get_gateway(refund.gateway),
            session=refund.session,
            payment=payment,
            amount_cents=refund.amount_cents,
            kind=refund.kind,
            issued_by=issued_by,
            reason=f"Retry of refund {refund.pk}" + (f": {refund.reason}" if refund.reason else ""),
            idempotency_key=f"{refund.idempotency_key}-retry",
            retry_of=refund,
        )


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
    session's status. A submission the processor refuses outright (`GatewayRefused`) fails the
    refund with its reason (staff may retry it). Raises `refunds.gateways.GatewayUnavailable`
    when the gateway cannot be asked right now.
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
                try:
                    result = gateway.refund(refund)
                except GatewayRefused as exc:
                    # The processor refused the request itself (say, a payment it does not
                    # know): asking again would be refused again, so the refund fails
                    # visibly, for staff to see and retry, rather than staying pending for the
                    # sweep to resubmit forever.
                    reason = f"The payment processor refused the refund: {exc.message}"
                    result = GatewayResult(state=RefundState.FAILED, failure_reason=reason[:255])
                _apply_gateway_result(refund, result)
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
    if refund.state == RefundState.FAILED:
        # An error in the log is what operations alert on: a person retries it in the admin.
        logger.error(
            "refund %s (%s, session %s) failed at %s: %s",
            refund.pk,
            format_money(refund.amount_cents, refund.currency),
            refund.session_id,
            refund.gateway,
            refund.failure_reason,
        )


# --- processor webhooks ------------------------------------------------------------------------

PAYMENT_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.processing",
        "payment_intent.requires_action",
    }
)
REFUND_EVENTS = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)


def processor_event_record(*, gateway: str, info) -> ProcessorEvent | None:
    """Store a verified webhook event once by its id; None when it was already received (a
    replay or a re-send), so it is never processed twice. The caller queues
    `processor_event_process` for a new one."""
    try:
        with transaction.atomic():
            return ProcessorEvent.objects.create(
                gateway=gateway, event_id=info.id, type=info.type, object_id=info.object_id
            )
    except IntegrityError:
        return None


def processor_event_process(*, event: ProcessorEvent) -> str:
    """Apply one stored webhook event, re-reading its payment or refund from the processor (a
    body is never trusted for a state). Idempotent; an event of another type is acknowledged
    and ignored. Returns what was done, for the log."""
    outcome = "ignored"
    if not event.object_id:
        # Nothing to re-read: an empty id would match a payment or refund not yet at the
        # processor (and settling such a refund would submit it).
        outcome = "no object"
    elif event.type in PAYMENT_EVENTS:
        payment = Payment.objects.filter(gateway=event.gateway, reference=event.object_id).first()
        if payment is None:
            outcome = "no such payment"
        else:
            outcome = f"payment {payment.pk} {payment_refresh(payment=payment).state}"
    elif event.type in REFUND_EVENTS:
        refund = Refund.objects.filter(gateway=event.gateway, reference=event.object_id).first()
        if refund is None:
            outcome = "no such refund"
        else:
            outcome = f"refund {refund.pk} {refund_settle(refund=refund).state}"
    ProcessorEvent.objects.filter(pk=event.pk, processed_at__isnull=True).update(
        processed_at=timezone.now()
    )
    return outcome
