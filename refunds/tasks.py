"""Celery tasks for refunds: thin, keyword-only, idempotent, safe to run twice or concurrently.

`settle_refund` is scheduled by `refunds.services.refund_issue` (on commit) when the gateway
leaves a refund CREATED; it retries with exponential backoff while the gateway has no outcome
or cannot be reached. `settle_pending_refunds` is the periodic safety net: it re-queues a
refund still CREATED only once its own task can no longer be running, that is when its last
settlement attempt is older than the whole retry chain (its retries ran out or the task was
lost), or when no attempt was ever made and it is older than PENDING_SWEEP_AGE.
"""

import logging
from datetime import timedelta

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from core.errors import DomainError
from refunds.gateways import GatewayUnavailable
from refunds.models import ProcessorEvent, Refund, RefundState
from refunds.services import (
    payments_reconcile_awaiting,
    processor_event_process,
    refund_settle,
)

logger = logging.getLogger(__name__)

# Backoff 30 s, 60 s, 120 s ... capped at 10 minutes, over 8 retries, and no countdown ever
# exceeds Redis' one-hour visibility timeout. `retry_jitter` picks each countdown at random
# between 0 and that value, so these are upper bounds: the chain lasts at most
# SETTLE_RETRY_CHAIN (30+60+120+240+480+600+600+600 s = 45.5 minutes), usually less.
SETTLE_MAX_RETRIES = 8
SETTLE_BACKOFF_SECONDS = 30
SETTLE_BACKOFF_MAX_SECONDS = 600
SETTLE_RETRY_CHAIN = timedelta(
    seconds=sum(
        min(SETTLE_BACKOFF_SECONDS * 2**retry, SETTLE_BACKOFF_MAX_SECONDS)
        for retry in range(SETTLE_MAX_RETRIES)
    )
)
# The sweep leaves young, never attempted refunds to their own (queued) task.
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
    """Queue `settle_refund` for every CREATED refund whose own task can no longer be running.

    That is a refund whose last settlement attempt is older than SETTLE_RETRY_CHAIN (its
    retries ran out, or its task was lost between retries), or one never attempted and created
    longer than PENDING_SWEEP_AGE ago (its first task was lost). A refund whose task is still
    retrying is left alone, so its chain is not doubled.
    """
    now = timezone.now()
    ids = list(
        Refund.objects.filter(state=RefundState.CREATED)
        .filter(
            Q(last_attempt_at__isnull=True, created_at__lte=now - PENDING_SWEEP_AGE)
            | Q(last_attempt_at__lte=now - SETTLE_RETRY_CHAIN)
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for refund_id in ids:
        settle_refund.delay(refund_id=refund_id)
    return len(ids)


# Events whose own task never ran (a broker that was down) are picked up by the sweep after this.
EVENT_SWEEP_AGE = timedelta(minutes=2)


@shared_task(
    name="refunds.process_processor_event",
    autoretry_for=(GatewayUnavailable,),
    retry_backoff=SETTLE_BACKOFF_SECONDS,
    retry_backoff_max=SETTLE_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
    max_retries=SETTLE_MAX_RETRIES,
    acks_late=True,
)
def process_processor_event(*, event_id: int) -> str | None:
    """Apply one stored webhook event (`refunds.services.processor_event_process`)."""
    event = ProcessorEvent.objects.filter(pk=event_id).first()
    if event is None:
        return None
    try:
        outcome = processor_event_process(event=event)
    except DomainError as exc:
        # The processor refused to show the object (not ours, deleted): asking again would be
        # refused again, so the event is finished, with the reason in the log.
        ProcessorEvent.objects.filter(pk=event.pk, processed_at__isnull=True).update(
            processed_at=timezone.now()
        )
        logger.error("processor event %s (%s) refused: %s", event.event_id, event.type, exc)
        return f"refused: {exc}"
    logger.info("processor event %s (%s): %s", event.event_id, event.type, outcome)
    return outcome


@shared_task(name="refunds.reconcile_awaiting_payments", acks_late=True)
def reconcile_awaiting_payments() -> int:
    """The safety net for card payments: queue stored webhook events whose task never ran, and
    ask the processor about payments still awaiting it. Returns how many became paid."""
    stale = ProcessorEvent.objects.filter(
        processed_at__isnull=True, received_at__lte=timezone.now() - EVENT_SWEEP_AGE
    ).values_list("pk", flat=True)[:500]
    for event_id in stale:
        process_processor_event.delay(event_id=event_id)
    return payments_reconcile_awaiting()
