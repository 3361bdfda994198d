"""Celery tasks of the outbox: thin, ids in, safe to run twice or concurrently.

`send_delivery(ies)` are queued on commit by the services that write deliveries; they have no
retries of their own: a failure is recorded on the row and `send_due` (beat, every minute by
default) retries it with backoff, and also sends whatever a dead broker or a killed worker left
pending (a bounded run: the rest waits for the next minute). `warn_expiring` (beat) writes and
sends the warnings before request and proposal deadlines.

`sessions.notify_event(s)` are the previous release's task names, kept so that messages it
queued before the deploy are not lost: they write the deliveries still missing for those events
(by key, so nothing is written twice) and queue their sending.
"""

import logging

from celery import shared_task

from notifications import services

logger = logging.getLogger(__name__)

SWEEP_LIMITS = {"soft_time_limit": 840, "time_limit": 900}
# The outbox sweep stops itself after NOTIFICATIONS_SWEEP_SECONDS (50); this is the backstop.
SEND_DUE_LIMITS = {"soft_time_limit": 240, "time_limit": 300}


@shared_task(name="notifications.send_delivery")
def send_delivery(*, delivery_id: int) -> str:
    """Send one delivery (nothing if it is gone, sent, or being sent elsewhere)."""
    return services.delivery_send(delivery_id=delivery_id)


@shared_task(name="notifications.send_deliveries")
def send_deliveries(*, delivery_ids: list[int]) -> int:
    """Send a chunk of deliveries written together (a sweep's)."""
    return services.deliveries_send(delivery_ids=delivery_ids)


@shared_task(name="notifications.send_due", **SEND_DUE_LIMITS)
def send_due() -> int:
    """The outbox sweep: pending deliveries that are due, each once, a bounded run."""
    count = services.deliveries_send_due()
    logger.info("send_due: %d delivery(ies) sent", count)
    return count


@shared_task(name="notifications.warn_expiring", **SWEEP_LIMITS)
def warn_expiring() -> int:
    """Warn of requests and proposals about to expire, once each."""
    ids = services.deliveries_warn_expiring()
    sent = services.deliveries_send_new(delivery_ids=ids)
    logger.info("warn_expiring: %d warning(s) written, %d sent", len(ids), sent)
    return len(ids)


@shared_task(name="sessions.notify_event")
def notify_event(event_id: int) -> int:
    """The previous release's task: write and queue the deliveries of one event."""
    return len(services.deliveries_for_event_ids(event_ids=[event_id]))


@shared_task(name="sessions.notify_events")
def notify_events(event_ids: list[int]) -> int:
    """The previous release's task: write and queue the deliveries of these events."""
    return len(services.deliveries_for_event_ids(event_ids=event_ids))
