"""Celery tasks for calendars: thin wrappers over `calendars.services`, safe to run twice or
concurrently. Beat runs them (settings.CELERY_BEAT_SCHEDULE)."""

import logging

from celery import shared_task

from accounts.models import User
from calendars import services

logger = logging.getLogger(__name__)


@shared_task(name="calendars.reopen_freed_slots", soft_time_limit=240, time_limit=300)
def reopen_freed_slots() -> int:
    """Future HELD/BOOKED slots whose holder is gone go back to OPEN."""
    count = services.slots_reopen_freed()
    logger.info("reopen_freed_slots: %d slot(s) reopened", count)
    return count


@shared_task(name="calendars.materialise_availability", soft_time_limit=840, time_limit=900)
def materialise_availability(*, weeks_ahead: int | None = None):
    """Turn the weekly availability patterns into open slots a rolling number of weeks ahead."""
    result = services.availability_patterns_materialise(weeks_ahead=weeks_ahead)
    logger.info("materialise_availability: %s", result)
    return result


def _counts(result: services.SyncResult) -> dict:
    return {
        "calendars": result.calendars,
        "failed": result.failed,
        "blocked": result.blocked,
        "reopened": result.reopened,
    }


@shared_task(name="calendars.sync_external_calendars", soft_time_limit=600, time_limit=660)
def sync_external_calendars() -> dict:
    """Fetch every coach's external calendars; block and reopen slots (one bad feed never
    stops the others: its error is recorded on the calendar)."""
    return _counts(services.external_calendars_sync())


# At most 10 calendars, 8 fetched at a time, each at most 3 x CALENDAR_SYNC_TIMEOUT (10 s).
@shared_task(name="calendars.sync_coach_calendars", soft_time_limit=120, time_limit=150)
def sync_coach_calendars(*, coach_id: int) -> dict | None:
    """Sync one coach's external calendars (queued by adding or removing a calendar and by
    "Sync now"); nothing if the coach is gone."""
    coach = User.objects.filter(pk=coach_id).first()
    if coach is None:
        logger.info("sync_coach_calendars: coach %s no longer exists", coach_id)
        return None
    result = services.external_calendars_sync(coach=coach)
    logger.info("sync_coach_calendars: coach %s: %s", coach_id, result)
    return _counts(result)
