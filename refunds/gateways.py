"""Payment gateways: one small interface for charging a package and refunding a session.

A gateway answers each request with a `GatewayResult`:

- `DONE` or `FAILED`: the outcome is known now (the `manual` gateway always completes at once:
  it records the money movement for the coach to settle offline);
- `CREATED`: the request was accepted and settles later; the result then carries the gateway's
  `reference`, by which `refund_status()` is asked until the outcome is known.

`records_only` says whether the gateway merely records (moves no money itself). Only such a
gateway is called inside the database transaction that creates the refund. Any other gateway
is asked to refund only after that transaction has committed: `refunds.services.refund_issue`
writes the refund CREATED and schedules `refunds.tasks.settle_refund`, which submits it with
`refund()` and then settles it (`refunds.services.refund_settle`), so a cancel that rolls back
never moves money. A submission carries the refund's `idempotency_key` for the provider.

A processor that takes cards (`stripe`) also answers `charge()` with CREATED: the package waits
for its payment, which the student makes on the payment page (`intent_*` below) and which
`refunds.services.payment_refresh` settles from the processor's own answer.

A gateway that cannot be reached raises `GatewayUnavailable`; the settle task retries it.
"""

import contextlib
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from django.conf import settings

from core.errors import DomainError
from refunds.models import Payment, PaymentState, Refund, RefundState

logger = logging.getLogger(__name__)


class GatewayUnavailable(Exception):
    """The gateway could not be asked right now (network, outage); worth retrying later."""


class GatewayRefused(DomainError):
    """The processor refused the request itself (not the card): shown to the person asking."""

    default_message = "The payment processor refused this request."


@dataclass(frozen=True)
class GatewayResult:
    state: str
    reference: str = ""
    failure_reason: str = ""


@dataclass(frozen=True)
class Intent:
    """What Coachbook needs of a processor's payment (a Stripe PaymentIntent)."""

    id: str
    status: str  # the processor's own status, e.g. "requires_action", "succeeded"
    state: str  # PaymentState: CREATED (not settled yet), DONE or FAILED
    client_secret: str = ""
    failure_reason: str = ""
    amount: int = 0
    currency: str = ""


@dataclass(frozen=True)
class ChargeSummary:
    """A payment's amounts as the processor reports them, in minor units."""

    paid_cents: int
    refunded_cents: int
    currency: str

    @property
    def remaining_cents(self) -> int:
        return self.paid_cents - self.refunded_cents


@dataclass(frozen=True)
class ProcessorEventInfo:
    """A verified webhook event: its id, type and the id of the object it is about."""

    id: str
    type: str
    object_id: str
    object_type: str


class Gateway(Protocol):
    name: str
    records_only: bool

    def charge(self, payment: Payment) -> GatewayResult: ...

    def refund(self, refund: Refund) -> GatewayResult: ...

    def refund_status(self, refund: Refund) -> GatewayResult: ...


class ManualGateway:
    """Money changes hands outside the app; the record is the movement."""

    name = "manual"
    records_only = True
    takes_cards = False

    def charge(self, payment: Payment) -> GatewayResult:
        return GatewayResult(state=PaymentState.DONE, reference=f"manual-payment-{payment.pk}")

    def refund(self, refund: Refund) -> GatewayResult:
        return GatewayResult(state=RefundState.DONE, reference=f"manual-refund-{refund.pk}")

    def refund_status(self, refund: Refund) -> GatewayResult:
        return GatewayResult(state=RefundState.DONE, reference=refund.reference)


# Stripe's refund failure codes, as a person should read them.
REFUND_FAILURE_REASONS = {
    "charge_for_pending_refund_disputed": "The payment is disputed.",
    "declined": "The card's bank declined the refund.",
    "expired_or_canceled_card": "The card has expired or was canceled.",
    "insufficient_funds": "The account has too little balance to refund from.",
    "lost_or_stolen_card": "The card was reported lost or stolen.",
    "merchant_request": "The refund was canceled.",
    "unknown": "The card's bank could not take the refund back.",
}


def _field(obj, name: str, default=None):
    """A field of a Stripe object or a plain dict (webhook bodies and expanded fields)."""
    if obj is None:
        return default
    try:
        value = obj[name]
    except (KeyError, TypeError):
        value = getattr(obj, name, default)
    return default if value is None else value


class StripeGateway:
    """Cards through Stripe's API (the official `stripe` SDK), configured from settings.

    A purchase is a PaymentIntent for the package's price, paid on Coachbook's page with
    Stripe.js: the card element makes a token, the server confirms the PaymentIntent with it,
    and `confirmCardPayment` in the page completes a 3-D Secure step when the bank asks for one.
    A refund is a Stripe Refund on the package's PaymentIntent, created after the cancel
    commits with the refund's idempotency key.
    """

    name = "stripe"
    records_only = False
    takes_cards = True

    def _client(self):
        return _stripe_client(
            settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.STRIPE_TIMEOUT_SECONDS
        )

    def _call(self, what: str, request):
        """Run one API request, turning the SDK's errors into Coachbook's."""
        import stripe

        try:
            return request()
        except stripe.CardError:
            raise
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise GatewayUnavailable(f"Stripe could not be reached ({what}): {exc}") from exc
        except stripe.AuthenticationError as exc:
            logger.error("Stripe refused Coachbook's API key (%s): %s", what, exc)
            raise GatewayUnavailable("Stripe refused Coachbook's API key.") from exc
        except stripe.InvalidRequestError as exc:
            raise GatewayRefused(exc.user_message or str(exc)) from exc
        except stripe.StripeError as exc:
            if (exc.http_status or 500) >= 500:
                raise GatewayUnavailable(f"Stripe answered {exc.http_status} ({what})") from exc
            raise GatewayRefused(exc.user_message or str(exc)) from exc

    # --- payments --------------------------------------------------------------------------

    def charge(self, payment: Payment) -> GatewayResult:
        # Nothing is charged yet: the student pays on the payment page.
        return GatewayResult(state=PaymentState.CREATED)

    def intent_create(self, payment: Payment, *, idempotency_key: str) -> Intent:
        params = {
            "amount": payment.amount_cents,
            "currency": payment.currency.lower(),
            "payment_method_types": ["card"],
            "metadata": {"coachbook_payment": str(payment.pk), "package": str(payment.package_id)},
        }
        intent = self._call(
            "create a payment",
            lambda: self._client().v1.payment_intents.create(
                params=params, options={"idempotency_key": idempotency_key}
            ),
        )
        return _intent(intent)

    def intent_retrieve(self, reference: str) -> Intent:
        return _intent(
            self._call(
                "read a payment", lambda: self._client().v1.payment_intents.retrieve(reference)
            )
        )

    def intent_pay_with_card(self, reference: str, *, card_token: str) -> Intent:
        """Attach the card the page tokenised and confirm; a declined card is a FAILED intent."""
        import stripe

        client = self._client()
        try:
            token = self._call("read the card", lambda: client.v1.tokens.retrieve(card_token))
        except GatewayRefused as exc:
            # An unknown, used or expired token: Stripe's own words ("Not Found", "No such
            # token: 'tok_...'") mean nothing to the student.
            raise GatewayRefused("That card could not be read. Enter it again.") from exc
        card_id = _field(_field(token, "card"), "id", "")
        if not card_id:
            raise GatewayRefused("That card could not be read. Enter it again.")
        self._call(
            "attach the card",
            lambda: client.v1.payment_intents.update(reference, params={"payment_method": card_id}),
        )
        try:
            intent = self._call(
                "confirm the payment", lambda: client.v1.payment_intents.confirm(reference)
            )
        except stripe.CardError as exc:
            # The bank refused the card: the intent now carries the reason.
            intent = self._call(
                "read a payment", lambda: client.v1.payment_intents.retrieve(reference)
            )
            result = _intent(intent)
            if result.state == PaymentState.CREATED:
                return _with_failure(result, result.failure_reason or exc.user_message or "")
            return result
        return _intent(intent)

    def intent_cancel(self, reference: str) -> None:
        """Cancel a PaymentIntent that will not be paid (a new attempt replaces it)."""
        # Refused when it already succeeded, is processing or is canceled: the caller reads it
        # again to know which.
        with contextlib.suppress(GatewayRefused):
            self._call(
                "cancel a payment", lambda: self._client().v1.payment_intents.cancel(reference)
            )

    def charge_summary(self, payment: Payment) -> ChargeSummary | None:
        """What Stripe reports as paid and refunded for `payment`, or None before a charge."""
        if not payment.reference:
            return None
        client = self._client()
        intent = self._call(
            "read a payment", lambda: client.v1.payment_intents.retrieve(payment.reference)
        )
        charge = _field(intent, "latest_charge")
        if not charge:
            return None
        if isinstance(charge, str):
            charge_id = charge
            charge = self._call("read a charge", lambda: client.v1.charges.retrieve(charge_id))
        paid = _field(charge, "amount", 0) if _field(charge, "paid", False) else 0
        return ChargeSummary(
            paid_cents=int(paid),
            refunded_cents=int(_field(charge, "amount_refunded", 0)),
            currency=str(_field(charge, "currency", payment.currency)).upper(),
        )

    # --- refunds ---------------------------------------------------------------------------

    def refund(self, refund: Refund) -> GatewayResult:
        payment = refund.payment
        params = {
            "payment_intent": payment.reference,
            "amount": refund.amount_cents,
            "metadata": {"coachbook_refund": str(refund.pk), "session": str(refund.session_id)},
        }
        created = self._call(
            "create a refund",
            lambda: self._client().v1.refunds.create(
                params=params, options={"idempotency_key": refund.idempotency_key}
            ),
        )
        return _refund_result(created)

    def refund_status(self, refund: Refund) -> GatewayResult:
        return _refund_result(
            self._call(
                "read a refund", lambda: self._client().v1.refunds.retrieve(refund.reference)
            )
        )

    # --- webhooks --------------------------------------------------------------------------

    def event_verify(self, payload: bytes, signature: str) -> ProcessorEventInfo:
        """The event in `payload` if `signature` proves Stripe sent it lately; else ValueError."""
        import stripe

        if not settings.STRIPE_WEBHOOK_SECRET:
            raise ValueError("STRIPE_WEBHOOK_SECRET is not set.")
        if not signature:
            raise ValueError("The Stripe-Signature header is missing.")
        try:
            stripe.WebhookSignature.verify_header(
                payload,
                signature,
                settings.STRIPE_WEBHOOK_SECRET,
                tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
            )
        except stripe.SignatureVerificationError as exc:
            raise ValueError(f"The signature does not match: {exc.user_message or exc}") from exc
        # Parsed here rather than by `stripe.Webhook.construct_event`, which fails with an
        # AttributeError (a 500) on a signed body that is JSON but not an object.
        event = json.loads(payload)
        if not isinstance(event, dict):
            raise ValueError("The body is not a Stripe event.")
        obj = _field(_field(event, "data"), "object", {})
        event_id, event_type = _field(event, "id", ""), _field(event, "type", "")
        if not (isinstance(event_id, str) and event_id and isinstance(event_type, str)):
            raise ValueError("The event has no id or type.")
        return ProcessorEventInfo(
            id=event_id[:255],
            type=event_type[:100],
            object_id=str(_field(obj, "id", ""))[:255],
            object_type=str(_field(obj, "object", ""))[:64],
        )


@lru_cache(maxsize=4)
def _stripe_client(api_key: str, api_base: str, timeout: int):
    import stripe

    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        max_network_retries=2,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def _intent(intent) -> Intent:
    status = _field(intent, "status", "")
    error = _field(intent, "last_payment_error")
    reason = str(_field(error, "message", "")) if error else ""
    if status == "succeeded":
        state = PaymentState.DONE
    elif status == "canceled":
        state, reason = PaymentState.FAILED, reason or "The payment was canceled."
    elif status == "requires_payment_method" and error:
        state = PaymentState.FAILED
    else:
        # requires_payment_method (fresh), requires_confirmation, requires_action, processing
        state = PaymentState.CREATED
    return Intent(
        id=_field(intent, "id", ""),
        status=status,
        state=state,
        client_secret=_field(intent, "client_secret", ""),
        failure_reason=reason[:255],
        amount=int(_field(intent, "amount", 0)),
        currency=str(_field(intent, "currency", "")).upper(),
    )


def _with_failure(intent: Intent, reason: str) -> Intent:
    return Intent(
        id=intent.id,
        status=intent.status,
        state=PaymentState.FAILED,
        client_secret=intent.client_secret,
        failure_reason=(reason or "Your card was declined.")[:255],
        amount=intent.amount,
        currency=intent.currency,
    )


def _refund_result(refund) -> GatewayResult:
    status = _field(refund, "status", "")
    reference = _field(refund, "id", "")
    if status == "succeeded":
        return GatewayResult(state=RefundState.DONE, reference=reference)
    if status in ("failed", "canceled"):
        # A canceled refund was canceled by the merchant; a failed one without a code failed
        # at the bank for a reason Stripe does not say.
        code = _field(refund, "failure_reason", "") or (
            "merchant_request" if status == "canceled" else "unknown"
        )
        reason = REFUND_FAILURE_REASONS.get(code, f"Stripe could not refund ({code}).")
        return GatewayResult(state=RefundState.FAILED, reference=reference, failure_reason=reason)
    # pending, requires_action: Stripe settles it later.
    return GatewayResult(state=RefundState.CREATED, reference=reference)


GATEWAYS: dict[str, Gateway] = {"manual": ManualGateway(), "stripe": StripeGateway()}


def get_gateway(name: str | None = None) -> Gateway:
    name = name or settings.PAYMENT_GATEWAY
    try:
        return GATEWAYS[name]
    except KeyError:
        raise LookupError(f"Unknown payment gateway {name!r}") from None
