"""Celery tasks for calendars: thin wrappers over `calendars.services`, safe to run twice or
concurrently. Beat runs them (settings.CELERY_BEAT_SCHEDULE)."""

import logging

from celery import shared_task

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


@shared_task(name="calendars.sync_external_calendars", soft_time_limit=600, time_limit=660)
def sync_external_calendars() -> dict:
    """Fetch every coach's external calendars; block and reopen slots (one bad feed never
    stops the others: its error is recorded on the calendar)."""
    result = services.external_calendars_sync()
    return {
        "calendars": result.calendars,
        "failed": result.failed,
        "blocked": result.blocked,
        "reopened": result.reopened,
    }
