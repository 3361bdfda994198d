"""Celery tasks for sessions: thin wrappers over the services, idempotent and safe to run twice
or concurrently (the sweeps lock with SKIP LOCKED, reminders are claimed once).

Beat runs the sweeps (settings.CELERY_BEAT_SCHEDULE). Emails are not sent from here: every
change writes its deliveries to the outbox (`notifications`), whose own tasks send them.
"""

import logging

from celery import shared_task

from sessions_app import services

logger = logging.getLogger(__name__)

# A sweep works in committed chunks: if a limit stops it, the next run carries on.
SWEEP_LIMITS = {"soft_time_limit": 840, "time_limit": 900}


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


@shared_task(name="sessions.remind_expiring_credits", **SWEEP_LIMITS)
def remind_expiring_credits() -> int:
    """Remind students of unused credits expiring in 14 and 2 days, each reminder once."""
    count = services.packages_remind_expiring()
    logger.info("remind_expiring_credits: %d reminder(s) written", count)
    return count
