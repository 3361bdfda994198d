"""Celery tasks for refunds: thin, keyword-only, idempotent, safe to run twice or concurrently.

`settle_refund` is scheduled by `refunds.services.refund_issue` (on commit) when the gateway
leaves a refund CREATED; it retries with exponential backoff while the gateway has no outcome
or cannot be reached. `settle_pending_refunds` is the periodic safety net: it re-queues every
refund still CREATED after its retries ran out or its task was lost.
"""

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from refunds.gateways import GatewayUnavailable
from refunds.models import Refund, RefundState
from refunds.services import refund_settle

logger = logging.getLogger(__name__)

# Backoff 30 s, 60 s, 120 s ... capped at 10 minutes: about 45 minutes over 8 retries, and no
# countdown ever exceeds Redis' one-hour visibility timeout.
SETTLE_MAX_RETRIES = 8
SETTLE_BACKOFF_SECONDS = 30
SETTLE_BACKOFF_MAX_SECONDS = 600
# The sweep leaves young refunds to their own task.
PENDING_SWEEP_AGE = timedelta(minutes=15)


class RefundStillPending(Exception):
    """The gateway has no outcome for this refund yet; asking again later."""


@shared_task(
    name="refunds.settle_refund",
    autoretry_for=(RefundStillPending, GatewayUnavailable),
    retry_backoff=SETTLE_BACKOFF_SECONDS,
    retry_backoff_max=SETTLE_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
    max_retries=SETTLE_MAX_RETRIES,
    acks_late=True,
)
def settle_refund(*, refund_id: int) -> str | None:
    """Settle one refund through its gateway; returns its state, or None if it is gone."""
    refund = Refund.objects.filter(pk=refund_id).first()
    if refund is None:
        logger.warning("settle_refund: refund %s no longer exists", refund_id)
        return None
    refund = refund_settle(refund=refund)
    if refund.state == RefundState.CREATED:
        raise RefundStillPending(f"refund {refund_id} is still pending at {refund.gateway}")
    logger.info("settle_refund: refund %s is %s", refund_id, refund.state)
    return refund.state


@shared_task(name="refunds.settle_pending_refunds", acks_late=True)
def settle_pending_refunds() -> int:
    """Queue `settle_refund` for every refund left CREATED longer than PENDING_SWEEP_AGE."""
    cutoff = timezone.now() - PENDING_SWEEP_AGE
    ids = list(
        Refund.objects.filter(state=RefundState.CREATED, created_at__lte=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for refund_id in ids:
        settle_refund.delay(refund_id=refund_id)
    return len(ids)
