"""Payment gateways: one small interface for charging a package and refunding a session.

The `manual` gateway records the money movement for the coach to settle offline, so it
completes at once. An asynchronous gateway answers `CREATED` and settles later (see
`refunds.services.refund_settle`).
"""

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

from refunds.models import Payment, Refund, RefundState


@dataclass(frozen=True)
class GatewayResult:
    state: str
    reference: str = ""
    failure_reason: str = ""


class Gateway(Protocol):
    name: str

    def charge(self, payment: Payment) -> GatewayResult: ...

    def refund(self, refund: Refund) -> GatewayResult: ...


class ManualGateway:
    """Money changes hands outside the app; the record is the movement."""

    name = "manual"

    def charge(self, payment: Payment) -> GatewayResult:
        return GatewayResult(state=RefundState.DONE, reference=f"manual-payment-{payment.pk}")

    def refund(self, refund: Refund) -> GatewayResult:
        return GatewayResult(state=RefundState.DONE, reference=f"manual-refund-{refund.pk}")


GATEWAYS: dict[str, Gateway] = {"manual": ManualGateway()}


def get_gateway(name: str | None = None) -> Gateway:
    name = name or settings.PAYMENT_GATEWAY
    try:
        return GATEWAYS[name]
    except KeyError:
        raise LookupError(f"Unknown payment gateway {name!r}") from None
