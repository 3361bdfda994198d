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

