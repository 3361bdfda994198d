"""Celery tasks for sessions: thin wrappers over the services, idempotent and safe to run twice
or concurrently (the sweeps lock with SKIP LOCKED, reminders and emails are claimed once).

Beat runs the sweeps (settings.CELERY_BEAT_SCHEDULE); the services schedule the notification
tasks with `transaction.on_commit`. Only primary keys cross the broker.
"""

import logging

from celery import shared_task

from sessions_app import notifications, services

logger = logging.getLogger(__name__)

# A sweep works in committed chunks: if a limit stops it, the next run carries on.
SWEEP_LIMITS = {"soft_time_limit": 840, "time_limit": 900}
# SMTP failures (smtplib.SMTPException is an OSError) are retried with a growing delay.
EMAIL_RETRY = {
    "autoretry_for": (OSError,),
    "retry_backoff": 30,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(name="sessions.expire_stale", **SWEEP_LIMITS)
def expire_stale() -> int:
    """Expire requests and reschedule proposals past their window."""
    count = services.sessions_expire_stale()
    logger.info("expire_stale: %d session(s) expired", count)
    return count


@shared_task(name="sessions.complete_past", **SWEEP_LIMITS)
def complete_past() -> int:
    """Complete confirmed sessions whose end has passed."""
    count = services.sessions_complete_past()
    logger.info("complete_past: %d session(s) completed", count)
    return count


@shared_task(name="sessions.send_reminders", **SWEEP_LIMITS)
def send_reminders() -> int:
    """Send the due 24 h and 1 h reminders, each once."""
    count = services.sessions_send_reminders()
    logger.info("send_reminders: %d session(s) reminded", count)
    return count


@shared_task(name="sessions.notify_event", **EMAIL_RETRY)
def notify_event(*, event_id: int) -> int:
    """Email the people concerned by one session event (nothing if it is gone or was sent)."""
    return notifications.events_notify(event_ids=[event_id])


@shared_task(name="sessions.notify_events", **EMAIL_RETRY)
def notify_events(*, event_ids: list[int]) -> int:
    """Email the people concerned by a chunk of session events (a sweep's)."""
    return notifications.events_notify(event_ids=event_ids)
