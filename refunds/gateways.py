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

A gateway that cannot be reached raises `GatewayUnavailable`; the settle task retries it.
"""

from dataclasses import dataclass, field
from typing import Protocol

from django.conf import settings

from refunds.models import Payment, PaymentState, Refund, RefundState


class GatewayUnavailable(Exception):
    """The gateway could not be asked right now (network, outage); worth retrying later."""


@dataclass(frozen=True)
class GatewayResult:
    state: str
    reference: str = ""
    failure_reason: str = ""


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

    def charge(self, payment: Payment) -> GatewayResult:
        return GatewayResult(state=PaymentState.DONE, reference=f"manual-payment-{payment.pk}")

    def refund(self, refund: Refund) -> GatewayResult:
        return GatewayResult(state=RefundState.DONE, reference=f"manual-refund-{refund.pk}")

    def refund_status(self, refund: Refund) -> GatewayResult:
        return GatewayResult(state=RefundState.DONE, reference=refund.reference)


@dataclass
class DeferredGateway:
    """An example asynchronous gateway: it accepts a refund now and reports the outcome later.

    It stands in for a card processor whose refunds settle minutes or days after the request.
    `refund()` answers CREATED with a reference; `refund_status()` answers whatever outcome was
    decided for that reference with `decide()` (tests do that; a real provider would be asked
    over its API), and DONE when nothing was decided. It keeps its decisions in process memory,
    so it is for tests and demonstrations only.
    """

    name: str = "deferred"
    records_only: bool = False
    outcomes: dict[str, GatewayResult] = field(default_factory=dict)

    def charge(self, payment: Payment) -> GatewayResult:
        return GatewayResult(state=PaymentState.DONE, reference=f"deferred-payment-{payment.pk}")

    def refund(self, refund: Refund) -> GatewayResult:
        return GatewayResult(state=RefundState.CREATED, reference=f"deferred-refund-{refund.pk}")

    def refund_status(self, refund: Refund) -> GatewayResult:
        return self.outcomes.get(
            refund.reference, GatewayResult(state=RefundState.DONE, reference=refund.reference)
        )

    def decide(self, reference: str, state: str, failure_reason: str = "") -> None:
        """Fix the outcome `refund_status()` will report for the refund with `reference`."""
        self.outcomes[reference] = GatewayResult(
            state=state, reference=reference, failure_reason=failure_reason
        )


GATEWAYS: dict[str, Gateway] = {"manual": ManualGateway(), "deferred": DeferredGateway()}


def get_gateway(name: str | None = None) -> Gateway:
    name = name or settings.PAYMENT_GATEWAY
    try:
        return GATEWAYS[name]
    except KeyError:
        raise LookupError(f"Unknown payment gateway {name!r}") from None
