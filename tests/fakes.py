"""Test doubles for the payment gateways (production code keeps only `manual` and `stripe`)."""

from dataclasses import dataclass, field

from refunds.gateways import GatewayResult
from refunds.models import PaymentState, RefundState


@dataclass
class DeferredGateway:
    """An asynchronous gateway: it accepts a refund now and reports the outcome later.

    It stands in for a card processor whose refunds settle minutes or days after the request,
    without a server: `refund()` answers CREATED with a reference; `refund_status()` answers
    whatever outcome was decided for that reference with `decide()`, and DONE when nothing was
    decided. A package bought through it is paid at once (like `manual`).
    """

    name: str = "deferred"
    records_only: bool = False
    takes_cards: bool = False
    outcomes: dict[str, GatewayResult] = field(default_factory=dict)

    def charge(self, payment) -> GatewayResult:
        return GatewayResult(state=PaymentState.DONE, reference=f"deferred-payment-{payment.pk}")

    def refund(self, refund) -> GatewayResult:
        return GatewayResult(state=RefundState.CREATED, reference=f"deferred-refund-{refund.pk}")

    def refund_status(self, refund) -> GatewayResult:
        return self.outcomes.get(
            refund.reference, GatewayResult(state=RefundState.DONE, reference=refund.reference)
        )

    def decide(self, reference: str, state: str, failure_reason: str = "") -> None:
        """Fix the outcome `refund_status()` will report for the refund with `reference`."""
        self.outcomes[reference] = GatewayResult(
            state=state, reference=reference, failure_reason=failure_reason
        )
