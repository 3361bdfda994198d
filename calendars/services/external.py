"""External calendars: a coach's secret iCal addresses elsewhere (Google, Outlook, Apple).

Every sync fetches the coaches' active calendars (`calendars.sync`: guarded, several at a
time, outside any transaction, least recently synced coaches first); as soon as all of one
coach's calendars are fetched, the busy times of each calendar that could be read are brought
in line with what it says (`BusyTime` rows, diffed: an unchanged busy time keeps the moment it
was first seen, `created_at`; one gone from the calendar is deleted, a new one inserted). A
calendar that fails keeps the busy times it had (it may still be busy then); the failure is
recorded on it (`last_error`, `last_error_at`) and never stops the others. Busy times that have
ended are dropped. Pausing a calendar deletes its busy times; removing it deletes them with it.

Busy times are subtracted from bookable times (with the coach's buffers); one that lands on an
agreed session is a conflict in the coach's Tasks, never a silent move: the sync writes busy
times only, no reservation and no session.
"""

import logging
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from accounts.models import MAX_BOOKING_HORIZON_DAYS, User
from accounts.selectors import coach_booking_horizon_days
from calendars import sync as calendar_sync
from calendars.models import ACTIVE_SLOT_STATUSES, BusyTime, ExternalCalendar, TimeSlot
from calendars.services.errors import require_coach as _require_coach
from core.errors import DomainError, PermissionDenied
from core.transactions import on_commit

logger = logging.getLogger(__name__)

# Busy times are read as far ahead as a coach's booking horizon (plus a day: the coach's today
# can be ahead of UTC), or to the end of the coach's furthest reservation if that is further (a
# session booked before the coach shortened the horizon), never further than the longest
# horizon allowed (plus that day).
SYNC_HORIZON = timedelta(days=MAX_BOOKING_HORIZON_DAYS + 1)

MAX_EXTERNAL_CALENDARS = 10


# "Sync now" is refused this soon after the coach's last sync or last "Sync now".
SYNC_NOW_INTERVAL = timedelta(minutes=1)


class ExternalCalendarInvalid(DomainError):
    default_message = "That calendar address cannot be used."


class ExternalCalendarUnchanged(DomainError):
    default_message = "That calendar is already in that state."


class SyncTooSoon(DomainError):
    default_message = "Your calendars were synced less than a minute ago. Try again in a minute."


def _sync_too_soon() -> SyncTooSoon:
    return SyncTooSoon(
        "Your calendars were synced less than a minute ago. Try again in a minute; they are "
        f"also synced {calendar_sync.sync_every_words()} on their own."
    )


def _sync_claim_key(coach_id: int) -> str:
    return f"coachbook:calendar-sync:coach:{coach_id}"


def _queue_coach_sync(coach_id: int) -> None:
    """Sync the coach's calendars in the background once the transaction commits (network
    fetches never run inside a web request). `robust`: a broker outage is logged, never an
    error after the committed change; the periodic sync catches up. Claims nothing: only
    "Sync now" (and the sync itself, through the calendars' times) holds "Sync now" back."""
    from calendars.tasks import sync_coach_calendars

    def send() -> None:
        sync_coach_calendars.delay(coach_id=coach_id)

    on_commit(send)


def external_calendars_sync_queue(*, coach: User, now: datetime | None = None) -> None:
    """ "Sync now": queue a background sync of the coach's calendars (task
    `calendars.sync_coach_calendars`, sent on commit).

    Refused with `SyncTooSoon` within SYNC_NOW_INTERVAL of the coach's last sync (a calendar's
    last success or error) or of the coach's last "Sync now", so repeated clicks cannot pile up
    network fetches. Adding, removing, pausing or resuming a calendar queues a sync too but
    does not hold "Sync now" back (until that sync has run).
    """
    _require_coach(coach)
    now = now or timezone.now()
    since = now - SYNC_NOW_INTERVAL
    recent = ExternalCalendar.objects.filter(coach=coach).filter(
        Q(last_synced_at__gt=since) | Q(last_error_at__gt=since)
    )
    if recent.exists():
        raise _sync_too_soon()
    # Claimed atomically (across processes with the Redis cache), released by expiry.
    if not cache.add(_sync_claim_key(coach.pk), 1, timeout=int(SYNC_NOW_INTERVAL.total_seconds())):
        raise _sync_too_soon()
    _queue_coach_sync(coach.pk)


@dataclass
class SyncResult:
    """What a sync did: calendars fetched and failed, busy times added and removed."""

    calendars: int
    failed: int
    added: int
    removed: int
    errors: dict[int, str]

    def __str__(self) -> str:
        return (
            f"calendars={self.calendars} failed={self.failed} "
            f"added={self.added} removed={self.removed}"
        )


def external_calendar_add(*, coach: User, url: str, name: str = "") -> ExternalCalendar:
    """Add one of the coach's external calendars (an http, https or webcal iCal address).

    Checks the address's form and scheme only; the first sync, queued in the background on
    commit, says whether it can be read.
    """
    _require_coach(coach)
    try:
        url = calendar_sync.normalize_url(url)
    except calendar_sync.CalendarFetchError as exc:
        raise ExternalCalendarInvalid(exc.message) from exc
    name = (name or "").strip()[:80] or (urllib.parse.urlsplit(url).hostname or "")[:80]
    with transaction.atomic():
        # The coach's row serialises adds: two cannot both pass the count check below.
        User.objects.select_for_update().filter(pk=coach.pk).first()
        existing = ExternalCalendar.objects.select_for_update().filter(coach=coach)
        if any(calendar.url == url for calendar in existing):
            raise ExternalCalendarInvalid("You have already added that calendar.")
        if len(existing) >= MAX_EXTERNAL_CALENDARS:
            raise ExternalCalendarInvalid(
                f"You can connect at most {MAX_EXTERNAL_CALENDARS} calendars; remove one first."
            )
        try:
            with transaction.atomic():
                calendar = ExternalCalendar.objects.create(coach=coach, url=url, name=name)
        except IntegrityError as exc:
            raise ExternalCalendarInvalid("You have already added that calendar.") from exc
        _queue_coach_sync(coach.pk)
    return calendar


def _free_calendar(calendar: ExternalCalendar) -> int:
    """Delete `calendar`'s busy times (and, when no other active calendar of the coach is left,
    the coach's busy times carried over from before calendars were tracked): how many."""
    removed = BusyTime.objects.filter(calendar=calendar).delete()[0]
    others = ExternalCalendar.objects.filter(coach_id=calendar.coach_id, is_active=True).exclude(
        pk=calendar.pk
    )
    if not others.exists():
        removed += BusyTime.objects.filter(
            coach_id=calendar.coach_id, calendar__isnull=True
        ).delete()[0]
    return removed


def external_calendar_remove(*, calendar: ExternalCalendar, coach: User) -> int:
    """Disconnect an external calendar; its busy times go with it, at once (their time is
    bookable again where availability allows). Returns how many busy times were removed."""
    with transaction.atomic():
        locked = (
            ExternalCalendar.objects.select_for_update().filter(pk=calendar.pk, coach=coach).first()
        )
        if locked is None:
            raise PermissionDenied("That calendar is not yours.")
        removed = _free_calendar(locked)
        locked.delete()
    return removed


def external_calendar_set_active(
    *, calendar: ExternalCalendar, coach: User, is_active: bool
) -> int | None:
    """Pause (`is_active=False`) or resume one of the coach's external calendars.

    A paused calendar is not fetched and blocks nothing: pausing deletes its busy times at once
    and returns how many (nothing else needs a sync: the coach's other calendars keep theirs).
    Resuming queues a background sync of the coach's calendars on commit and returns None. A
    calendar already in that state is refused with `ExternalCalendarUnchanged` (nothing
    written, nothing queued).
    """
    with transaction.atomic():
        locked = (
            ExternalCalendar.objects.select_for_update().filter(pk=calendar.pk, coach=coach).first()
        )
        if locked is None:
            raise PermissionDenied("That calendar is not yours.")
        if locked.is_active == is_active:
            raise ExternalCalendarUnchanged(
                f"“{locked}” is already {'active' if is_active else 'paused'}."
            )
        ExternalCalendar.objects.filter(pk=locked.pk).update(is_active=is_active)
        if not is_active:
            return _free_calendar(locked)
        _queue_coach_sync(coach.pk)
    return None


def external_calendars_sync(
    *, now: datetime | None = None, coach: User | None = None
) -> SyncResult:
    """Sync every active external calendar (or only `coach`'s) into busy times.

    Coaches go least recently synced first, and each coach's busy times are stored as soon as
    all of that coach's calendars are fetched, so a run cut short (the task's time limit) keeps
    the work it did and the next run starts with the coaches it missed. Safe to run twice or
    concurrently (each coach is written under a lock on their calendars; a calendar paused or
    removed while it was being fetched is left as it is now). Never raises for a bad feed: it
    is recorded on the calendar and reported in the result. The number of queries grows with
    the number of calendars, not with the number of busy times (bulk inserts, chunked deletes).
    """
    now = now or timezone.now()
    result = SyncResult(calendars=0, failed=0, added=0, removed=0, errors={})
    result.removed += _busy_times_expired(coach=coach, now=now)

    calendars = ExternalCalendar.objects.filter(is_active=True).select_related("coach")
    if coach is not None:
        calendars = calendars.filter(coach=coach)
    by_coach: dict[int, list[ExternalCalendar]] = {}
    for calendar in calendars.order_by("coach_id", "pk"):
        by_coach.setdefault(calendar.coach_id, []).append(calendar)
    never = datetime.min.replace(tzinfo=UTC)
    order = sorted(
        by_coach,
        key=lambda coach_id: (
            min(calendar.last_synced_at or never for calendar in by_coach[coach_id]),
            coach_id,
        ),
    )
    result.calendars = sum(len(mine) for mine in by_coach.values())
    window_ends = _sync_window_ends(coach_ids=list(by_coach), now=now)
    jobs = [
        {
            "calendar_id": calendar.pk,
            "url": calendar.url,
            "start": now,
            "end": window_ends[coach_id],
            "tz": calendar.coach.tzinfo,
        }
        for coach_id in order
        for calendar in by_coach[coach_id]
    ]
    coach_of = {calendar.pk: calendar.coach_id for mine in by_coach.values() for calendar in mine}
    fetched: dict[int, list] = {coach_id: [] for coach_id in by_coach}
    for outcome in calendar_sync.fetch_as_completed(jobs):
        coach_id = coach_of[outcome.calendar_id]
        mine = fetched[coach_id]
        mine.append(outcome)
        if len(mine) < len(by_coach[coach_id]):
            continue
        try:
            added, removed = _busy_times_apply(coach_id, mine, now)
        except SoftTimeLimitExceeded:
            raise  # the task's time limit stops the run; what was applied stays
        except Exception:  # one coach's trouble must not stop the others
            logger.exception("external calendar sync failed for coach %s", coach_id)
            continue
        result.added += added
        result.removed += removed
        for outcome in mine:
            if not outcome.ok:
                result.failed += 1
                result.errors[outcome.calendar_id] = outcome.error
    logger.info("external calendar sync: %s", result)
    return result


def _busy_times_expired(*, coach: User | None, now: datetime) -> int:
    """Delete (for everyone, or only `coach`) the busy times nothing should count any more:
    those that have ended (a failing calendar's too), those of paused calendars (paused by a
    path that did not clean up), and those carried over from before calendars were tracked
    of a coach with no active calendar left. One query; returns how many."""
    no_active_calendar = ~Exists(
        ExternalCalendar.objects.filter(coach_id=OuterRef("coach_id"), is_active=True)
    )
    stale = BusyTime.objects.filter(
        Q(end__lte=now)
        | Q(calendar__is_active=False)
        | (Q(calendar__isnull=True) & no_active_calendar)
    )
    if coach is not None:
        stale = stale.filter(coach=coach)
    return stale.delete()[0]


def _sync_window_ends(*, coach_ids: list[int], now: datetime) -> dict[int, datetime]:
    """How far ahead each coach's busy times are read: the coach's booking horizon plus a day
    (the default horizon for a coach without a profile), or the end of the coach's furthest
    active reservation if that is later (an agreed session must hear of a busy time even after
    the coach shortened the horizon), never beyond SYNC_HORIZON. Two queries."""
    if not coach_ids:
        return {}
    days = coach_booking_horizon_days(coach_ids=coach_ids)
    furthest = dict(
        TimeSlot.objects.filter(
            coach_id__in=coach_ids, status__in=ACTIVE_SLOT_STATUSES, end__gt=now
        )
        .order_by()
        .values("coach_id")
        .annotate(last=Max("end"))
        .values_list("coach_id", "last")
    )
    ends = {}
    for coach_id in coach_ids:
        end = now + timedelta(days=days[coach_id] + 1)
        if coach_id in furthest:
            end = max(end, furthest[coach_id])
        ends[coach_id] = min(end, now + SYNC_HORIZON)
    return ends


def _busy_times_apply(coach_id: int, outcomes: list, now: datetime) -> tuple[int, int]:
    """Record each calendar's outcome; for each calendar that could be read, make its stored
    busy times exactly what it says (unchanged ones are kept, with the moment first seen).
    Busy times that have ended are dropped. Once every one of the coach's calendars was read,
    the busy times carried over from before calendars were tracked go too (what they stood
    for is in the calendars' own now). A calendar paused or removed since its fetch began is
    skipped. Returns (added, removed)."""
    added = removed = 0
    with transaction.atomic():
        # Serialises concurrent syncs of the same coach, and pausing or removing a calendar.
        active = {
            calendar.pk
            for calendar in ExternalCalendar.objects.select_for_update().filter(coach_id=coach_id)
            if calendar.is_active
        }
        outcomes = [outcome for outcome in outcomes if outcome.calendar_id in active]
        for outcome in outcomes:
            mine = ExternalCalendar.objects.filter(pk=outcome.calendar_id)
            if not outcome.ok:
                mine.update(last_error=outcome.error[:2000], last_error_at=now)
                continue
            mine.update(last_synced_at=now, last_error="", last_error_at=None)
            wanted = {(start, end) for start, end in outcome.busy if end > now}
            seen: set = set()
            gone = []
            for pk, start, end in BusyTime.objects.filter(
                calendar_id=outcome.calendar_id
            ).values_list("pk", "start", "end"):
                key = (start, end)
                if key in wanted and key not in seen:
                    seen.add(key)  # kept as it is, with its created_at
                else:
                    gone.append(pk)  # gone from the calendar, or a duplicate
            for chunk in _chunks(gone):
                removed += BusyTime.objects.filter(pk__in=chunk).delete()[0]
            fresh = [
                BusyTime(coach_id=coach_id, calendar_id=outcome.calendar_id, start=start, end=end)
                for start, end in sorted(wanted - seen)
            ]
            BusyTime.objects.bulk_create(fresh, batch_size=500)
            added += len(fresh)
        if active and len(outcomes) == len(active) and all(o.ok for o in outcomes):
            removed += BusyTime.objects.filter(coach_id=coach_id, calendar__isnull=True).delete()[0]
        # A busy time now on an agreed session: the coach is told (once per agreed time and
        # busy time), in this transaction, and the session never moves.
        from notifications.services import deliveries_for_busy_conflicts

        deliveries_for_busy_conflicts(coach_id=coach_id, now=now)
    return added, removed


def _chunks(ids: list[int], size: int = 500):
    for index in range(0, len(ids), size):
        yield ids[index : index + size]
