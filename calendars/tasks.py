"""Celery tasks for calendars: thin wrappers over `calendars.services`, safe to run twice or
concurrently. Beat runs them (settings.CELERY_BEAT_SCHEDULE). Nothing is materialised ahead:
bookable times are computed when asked (`calendars.selectors.bookable_starts`)."""

import logging

from celery import shared_task

from accounts.models import User
from calendars import services

logger = logging.getLogger(__name__)


@shared_task(name="calendars.reopen_freed_slots", soft_time_limit=240, time_limit=300)
def reopen_freed_slots() -> int:
    """HELD/BOOKED reservations whose holder is gone (no session holding it as its time, no
    pending proposal) are released, so their time is bookable again."""
    count = services.slots_reopen_freed()
    logger.info("reopen_freed_slots: %d reservation(s) released", count)
    return count


def _counts(result: services.SyncResult) -> dict:
    return {
        "calendars": result.calendars,
        "failed": result.failed,
        "added": result.added,
        "removed": result.removed,
    }


def run_budget(soft_time_limit: float) -> float:
    """How long a sync task may go on starting fetches: its soft time limit less the wait for
    the fetches under way (each ends by its own deadline, CALENDAR_SYNC_TIMEOUT, plus a grace)
    and a margin to store the last coaches' busy times, so a run ends on its own, recording
    what it did not reach, before Celery's time limit has to stop it."""
    from calendars.sync import FETCH_GRACE_SECONDS, sync_timeout

    return max(soft_time_limit - (sync_timeout() + FETCH_GRACE_SECONDS) - 60, sync_timeout())


SYNC_SOFT_TIME_LIMIT = 600


@shared_task(
    name="calendars.sync_external_calendars",
    soft_time_limit=SYNC_SOFT_TIME_LIMIT,
    time_limit=SYNC_SOFT_TIME_LIMIT + 60,
)
def sync_external_calendars() -> dict:
    """Fetch every coach's active external calendars and bring their busy times in line (one
    bad feed never stops the others: its error is recorded on the calendar, and it keeps its
    busy times). Sessions are never moved: a busy time on an agreed session is a Tasks item.
    The run stops starting fetches in time to end before its time limit (`run_budget`)."""
    budget = run_budget(SYNC_SOFT_TIME_LIMIT)
    return _counts(services.external_calendars_sync(budget=budget))


COACH_SYNC_SOFT_TIME_LIMIT = 120


# At most 10 calendars, 8 fetched at a time, each ending by CALENDAR_SYNC_TIMEOUT (10 s).
@shared_task(
    name="calendars.sync_coach_calendars",
    soft_time_limit=COACH_SYNC_SOFT_TIME_LIMIT,
    time_limit=COACH_SYNC_SOFT_TIME_LIMIT + 30,
)
def sync_coach_calendars(*, coach_id: int) -> dict | None:
    """Sync one coach's external calendars (queued by adding or resuming a calendar and by
    "Sync now"); nothing if the coach is gone."""
    coach = User.objects.filter(pk=coach_id).first()
    if coach is None:
        logger.info("sync_coach_calendars: coach %s no longer exists", coach_id)
        return None
    result = services.external_calendars_sync(
        coach=coach, budget=run_budget(COACH_SYNC_SOFT_TIME_LIMIT)
    )
    logger.info("sync_coach_calendars: coach %s: %s", coach_id, result)
    return _counts(result)
