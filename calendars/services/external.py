"""External calendars: a coach's secret iCal addresses elsewhere (Google, Outlook, Apple).

Every sync fetches the coaches' active calendars (`calendars.sync`: guarded, each fetch under
one deadline, several at a time, outside any transaction, least recently attempted first and
in turns across coaches); as soon as all of one
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

    Refuses, with the sync's own message, what the sync would refuse before fetching: the
    address's form, scheme and length, and a host that cannot be found or resolves to a
    private, loopback or otherwise non-public address (unless CALENDAR_SYNC_ALLOW_PRIVATE).
    Nothing is fetched here (the host is only resolved); the first sync, queued in the
    background on commit, says whether the calendar can be read.
    """
    _require_coach(coach)
    try:
        url = calendar_sync.check_address(url)
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


# A coach's calendars are fetched in turns with everyone else's (round-robin): each run
# takes every coach's least recently attempted calendar first, then everyone's second, and so
# on, and at most this many of one coach's calendars per run.
PER_COACH_PER_RUN = MAX_EXTERNAL_CALENDARS


def external_calendars_sync(
    *, now: datetime | None = None, coach: User | None = None, budget: float | None = None
) -> SyncResult:
    """Sync every active external calendar (or only `coach`'s) into busy times.

    The order of work is by last attempt (`last_attempt_at`, never attempted first): coaches
    by their least recently attempted calendar, and the fetches taken in turns across coaches
    (every coach's first calendar, then every coach's second, ...; at most PER_COACH_PER_RUN of
    one coach's per run), so one coach with many slow calendars cannot hold another back.
    Every fetch ends by its own deadline (CALENDAR_SYNC_TIMEOUT); `budget` (seconds) is how
    long the run may go on starting fetches. A calendar the run did not finish (not reached
    within the budget, still being read, or the task's time limit) records why in its
    `last_error`; one not reached keeps its last attempt, so it goes first next run, while one
    attempted goes behind the others, so a slow calendar is neither starved nor always first.

    Each coach's busy times are stored as soon as all of that coach's calendars have an
    outcome, so a run cut short keeps the work it did. Safe to run twice or concurrently (each
    coach is written under a lock on their calendars; a calendar paused or removed while it
    was being fetched is left as it is now). Never raises for a bad feed: it is recorded on the
    calendar and reported in the result. The number of queries grows with the number of
    calendars, not with the number of busy times (bulk inserts, chunked deletes).
    """
    now = now or timezone.now()
    result = SyncResult(calendars=0, failed=0, added=0, removed=0, errors={})
    result.removed += _busy_times_expired(coach=coach, now=now)

    calendars = ExternalCalendar.objects.filter(is_active=True).select_related("coach")
    if coach is not None:
        calendars = calendars.filter(coach=coach)
    never = datetime.min.replace(tzinfo=UTC)
    by_coach: dict[int, list[ExternalCalendar]] = {}

    def turn(calendar: ExternalCalendar) -> tuple:
        # Least recently attempted first; of those attempted at the same moment (one run), the
        # one least recently read well (a calendar that run did not finish goes first).
        return (
            calendar.last_attempt_at or never,
            calendar.last_synced_at or never,
            calendar.coach_id,
            calendar.pk,
        )

    for calendar in sorted(calendars, key=turn):
        mine = by_coach.setdefault(calendar.coach_id, [])
        if len(mine) < PER_COACH_PER_RUN:
            mine.append(calendar)
    order = sorted(by_coach, key=lambda coach_id: turn(by_coach[coach_id][0]))
    result.calendars = sum(len(mine) for mine in by_coach.values())
    window_ends = _sync_window_ends(coach_ids=list(by_coach), now=now)
    jobs = [
        {
            "calendar_id": calendar.pk,
            "url": calendar.url,
            "start": now,
            "end": window_ends[calendar.coach_id],
            "tz": calendar.coach.tzinfo,
        }
        for turn in range(max((len(mine) for mine in by_coach.values()), default=0))
        for coach_id in order
        for calendar in by_coach[coach_id][turn : turn + 1]
    ]
    coach_of = {calendar.pk: calendar.coach_id for mine in by_coach.values() for calendar in mine}
    fetched: dict[int, list] = {coach_id: [] for coach_id in by_coach}
    applied: set[int] = set()
    started: set[int] = set()
    try:
        for outcome in calendar_sync.fetch_as_completed(jobs, budget=budget, started=started):
            coach_id = coach_of[outcome.calendar_id]
            mine = fetched[coach_id]
            mine.append(outcome)
            if len(mine) < len(by_coach[coach_id]):
                continue
            applied.add(coach_id)
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
    except SoftTimeLimitExceeded:
        _record_unfinished(
            [calendar.pk for c in by_coach if c not in applied for calendar in by_coach[c]],
            started=started,
            now=now,
        )
        raise
    logger.info("external calendar sync: %s", result)
    return result


def _record_unfinished(calendar_ids: list[int], *, started: set[int], now: datetime) -> None:
    """The task's time limit stopped the run: each calendar it did not finish says so (those
    whose fetch had begun count as attempted, so they do not go first every time). Two
    queries at most; busy times are left as they were."""
    begun = [pk for pk in calendar_ids if pk in started]
    waiting = [pk for pk in calendar_ids if pk not in started]
    active = ExternalCalendar.objects.filter(is_active=True)
    if begun:
        active.filter(pk__in=begun).update(
            last_error=calendar_sync.NOT_FINISHED, last_error_at=now, last_attempt_at=now
        )
    if waiting:
        active.filter(pk__in=waiting).update(
            last_error=calendar_sync.NOT_REACHED, last_error_at=now
        )


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
            attempted = {"last_attempt_at": now} if outcome.attempted else {}
            if not outcome.ok:
                mine.update(last_error=outcome.error[:2000], last_error_at=now, **attempted)
                continue
            mine.update(
                last_synced_at=now,
                last_error="",
                last_error_at=None,
                last_sync_notes=calendar_sync.bounded_notes(outcome.notes),
                **attempted,
            )
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
