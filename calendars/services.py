"""Writes for time slots. Sessions hold, book and release slots only through these functions."""

import bisect
import logging
import urllib.parse
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from accounts.models import User
from calendars import sync as calendar_sync
from calendars.models import (
    AvailabilityPattern,
    BlockSource,
    ExternalCalendar,
    SlotStatus,
    TimeSlot,
)
from sessions_app.lifecycle import DomainError, PermissionDenied

logger = logging.getLogger(__name__)

MAX_SLOT_LENGTH = timedelta(hours=12)


class SlotUnavailable(DomainError):
    default_message = "That time was just taken. Pick another."


class SlotInvalid(DomainError):
    default_message = "That is not a valid time slot."


def _require_coach(user: User) -> None:
    if not user.is_coach:
        raise PermissionDenied("Only coaches have availability.")


def slot_create(
    *, coach: User, start: datetime, end: datetime, now: datetime | None = None
) -> TimeSlot:
    """Open a new bookable slot for `coach`; refuses past, malformed and overlapping slots."""
    now = now or timezone.now()
    _require_coach(coach)
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise SlotInvalid("Times must carry a timezone.")
    if end <= start:
        raise SlotInvalid("The end must be after the start.")
    if end - start > MAX_SLOT_LENGTH:
        raise SlotInvalid("A slot can last at most 12 hours.")
    if start <= now:
        raise SlotInvalid("A slot must start in the future.")
    try:
        with transaction.atomic():
            if TimeSlot.objects.filter(coach=coach, start__lt=end, end__gt=start).exists():
                raise SlotUnavailable("That time overlaps one of your existing slots.")
            return TimeSlot.objects.create(coach=coach, start=start, end=end)
    except (IntegrityError, OperationalError) as exc:
        # The exclusion constraint (or a deadlock between two overlapping inserts) on Postgres.
        logger.info("slot_create refused by the database: %s", exc)
        raise SlotUnavailable("That time overlaps one of your existing slots.") from exc


def slot_delete(*, slot: TimeSlot, coach: User) -> None:
    """Remove one of the coach's open slots. Slots with session history are kept."""
    with transaction.atomic():
        locked = TimeSlot.objects.select_for_update().filter(pk=slot.pk, coach=coach).first()
        if locked is None:
            raise PermissionDenied("That slot is not yours.")
        if locked.status != SlotStatus.OPEN:
            raise SlotUnavailable("Only open slots can be removed; this one is taken.")
        if locked.sessions.exists() or locked.proposals.exists():
            # Past sessions and proposals point at it; block it instead of losing that history.
            TimeSlot.objects.filter(pk=locked.pk).update(status=SlotStatus.BLOCKED)
            return
        locked.delete()


def slot_hold(*, slot: TimeSlot, coach: User, not_before: datetime) -> TimeSlot:
    """OPEN -> HELD, atomically: of two concurrent callers exactly one wins."""
    held = TimeSlot.objects.filter(
        pk=slot.pk, coach=coach, status=SlotStatus.OPEN, start__gte=not_before
    ).update(status=SlotStatus.HELD)
    if held != 1:
        raise SlotUnavailable()
    return TimeSlot.objects.get(pk=slot.pk)


def slot_book(*, slot: TimeSlot) -> None:
    """HELD -> BOOKED for a slot its holder just confirmed."""
    if (
        TimeSlot.objects.filter(pk=slot.pk, status=SlotStatus.HELD).update(status=SlotStatus.BOOKED)
        != 1
    ):
        raise SlotUnavailable("That time is no longer held for this session.")


def slots_release(*, slot_ids: Iterable[int], now: datetime | None = None) -> int:
    """Reopen held or booked slots that are still in the future; past ones keep their status."""
    now = now or timezone.now()
    ids = [pk for pk in slot_ids if pk is not None]
    if not ids:
        return 0
    return TimeSlot.objects.filter(
        pk__in=ids, status__in=[SlotStatus.HELD, SlotStatus.BOOKED], start__gt=now
    ).update(status=SlotStatus.OPEN)


def slots_reopen_freed(*, now: datetime | None = None) -> int:
    """Future HELD/BOOKED slots with no active holder go back to OPEN; returns how many."""
    from sessions_app.selectors import slot_active_holders

    now = now or timezone.now()
    holding_sessions, pending_proposals = slot_active_holders(slot=OuterRef("pk"))
    reopened = (
        TimeSlot.objects.filter(status__in=[SlotStatus.HELD, SlotStatus.BOOKED], start__gt=now)
        .filter(~Exists(holding_sessions), ~Exists(pending_proposals))
        .update(status=SlotStatus.OPEN)
    )
    if reopened:
        logger.info("slots_reopen_freed reopened %d slot(s)", reopened)
    return reopened


# --- weekly availability patterns --------------------------------------------------------------
#
# A pattern is a weekly window in the coach's own wall-clock time ("Mondays 09:00-12:00, 60-minute
# slots, Europe/Berlin"). It is turned into OPEN `TimeSlot`s date by date with zoneinfo, so a
# 09:00 slot stays at 09:00 local time across a DST change. Slots that would overlap one of the
# coach's existing slots are skipped, never forced. A pattern made "for N weeks" is materialised
# at once; an ongoing one (no `valid_until`) is rolled forward daily by
# `availability_patterns_materialise`, which only fills dates after the latest slot the pattern
# already made, so a slot the coach removed in between is not recreated.

MAX_PATTERN_WEEKS = 52
MAX_PATTERN_SLOT_MINUTES = int(MAX_SLOT_LENGTH.total_seconds() // 60)
MIN_PATTERN_SLOT_MINUTES = 5
MAX_PATTERN_START_DAYS = 366  # a pattern starts at most this many days after the coach's today
# How far ahead a one-off slot may be added (calendars.forms.SlotForm). Bounding the date also
# keeps the date arithmetic (an end of 00:00 is the next day; the conversion to UTC) clear of
# date.min and date.max.
MAX_SLOT_DAYS_AHEAD = 2 * 365
# The furthest any slot made through the forms and patterns can lie: the later of a one-off
# slot's last date and a pattern's last start date plus its longest run, plus two days (the
# coach's today can be a day ahead of UTC, and a slot can end at midnight the next day).
# External calendars are read this far ahead at most.
SLOT_HORIZON = timedelta(
    days=max(MAX_SLOT_DAYS_AHEAD, MAX_PATTERN_START_DAYS + 7 * MAX_PATTERN_WEEKS) + 2
)


@dataclass(frozen=True)
class PatternsResult:
    """What creating weekly patterns did: the patterns, and how many slots were made or skipped."""

    patterns: list[AvailabilityPattern]
    created: int
    skipped: int


def local_to_utc(day: date, wall: time, tz: zoneinfo.ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `wall` on `day` in `tz`.

    An ambiguous time (clocks going back) means its first occurrence; a time that does not exist
    (clocks going forward) moves forward by the gap, as a wall clock would.
    """
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)


def local_time_exists(day: date, wall: time, tz: zoneinfo.ZoneInfo) -> bool:
    """False for a wall-clock time skipped by a DST change (e.g. 02:30 on a spring-forward day)."""
    naive = datetime.combine(day, wall)
    return local_to_utc(day, wall, tz).astimezone(tz).replace(tzinfo=None) == naive


def _pattern_tz(pattern: AvailabilityPattern) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(pattern.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _pattern_times(
    pattern: AvailabilityPattern, first: date, last: date
) -> list[tuple[datetime, datetime]]:
    """Every (start, end) in UTC that `pattern` defines on the dates first..last (inclusive)."""
    tz = _pattern_tz(pattern)
    step = timedelta(minutes=pattern.slot_minutes)
    day = first + timedelta(days=(pattern.weekday - first.weekday()) % 7)
    times = []
    while day <= last:
        start = local_to_utc(day, pattern.start_time, tz)
        window_end = local_to_utc(day, pattern.end_time, tz)
        while start + step <= window_end:
            times.append((start, start + step))
            start += step
        day += timedelta(days=7)
    return times


def _create_each(slots: list[TimeSlot]) -> int:
    """Create slots one by one, each in its own savepoint; an overlap the database catches
    (a concurrent insert on PostgreSQL) skips that slot only."""
    created = 0
    for slot in slots:
        try:
            with transaction.atomic():
                if TimeSlot.objects.filter(
                    coach_id=slot.coach_id, start__lt=slot.end, end__gt=slot.start
                ).exists():
                    continue
                slot.save(force_insert=True)
                created += 1
        except (IntegrityError, OperationalError) as exc:
            logger.info("pattern slot %s refused by the database: %s", slot.start, exc)
    return created


def _insert_free(
    pattern: AvailabilityPattern, times: list[tuple[datetime, datetime]], now: datetime
) -> tuple[int, int]:
    """Create OPEN slots of `pattern` for `times` that start after `now` and overlap none of
    the coach's slots. Returns (created, skipped as overlapping). Call inside a transaction."""
    times = sorted((start, end) for start, end in times if start > now)
    if not times:
        return 0, 0
    existing = list(
        TimeSlot.objects.filter(
            coach_id=pattern.coach_id, start__lt=times[-1][1], end__gt=times[0][0]
        )
        .order_by("start")
        .values_list("start", "end")
    )
    starts = [start for start, _ in existing]
    reach = []  # reach[i]: the latest end among existing[0..i]
    for _, end in existing:
        reach.append(max(end, reach[-1]) if reach else end)
    fresh = []
    for start, end in times:
        before = bisect.bisect_left(starts, end)  # existing slots starting before this one ends
        if before and reach[before - 1] > start:
            continue
        fresh.append(TimeSlot(coach_id=pattern.coach_id, start=start, end=end, pattern=pattern))
    created = 0
    if fresh:
        try:
            with transaction.atomic():
                TimeSlot.objects.bulk_create(fresh)
            created = len(fresh)
        except (IntegrityError, OperationalError):
            # Someone added an overlapping slot meanwhile (PostgreSQL's exclusion constraint).
            for slot in fresh:
                slot.pk = None
            created = _create_each(fresh)
    return created, len(times) - created


def availability_patterns_create(
    *,
    coach: User,
    weekdays: Iterable[int],
    start_time: time,
    end_time: time,
    slot_minutes: int,
    weeks: int,
    valid_from: date | None = None,
    ongoing: bool = False,
    now: datetime | None = None,
) -> PatternsResult:
    """Create one weekly pattern per weekday (0 = Monday) and materialise its slots.

    Times are wall-clock times in the coach's timezone, DST-correct per date. Slots are made
    for `weeks` weeks from `valid_from` (default: the coach's today); past times are left out and
    times overlapping an existing slot are skipped and counted. `ongoing` patterns keep no end
    date: the daily `availability_patterns_materialise` keeps them filled ahead. Refuses (and
    writes nothing) when the input is malformed or the pattern would yield no future time at all.
    """
    now = now or timezone.now()
    _require_coach(coach)
    weekdays = sorted(set(weekdays))
    if not weekdays or any(not isinstance(day, int) or not 0 <= day <= 6 for day in weekdays):
        raise SlotInvalid("Choose at least one weekday.")
    if isinstance(slot_minutes, bool) or not isinstance(slot_minutes, int):
        raise SlotInvalid("Enter the slot length in minutes.")
    if not MIN_PATTERN_SLOT_MINUTES <= slot_minutes <= MAX_PATTERN_SLOT_MINUTES:
        raise SlotInvalid(
            f"A slot lasts {MIN_PATTERN_SLOT_MINUTES} to {MAX_PATTERN_SLOT_MINUTES} minutes."
        )
    if isinstance(weeks, bool) or not isinstance(weeks, int) or not 1 <= weeks <= MAX_PATTERN_WEEKS:
        raise SlotInvalid(f"Repeat for 1 to {MAX_PATTERN_WEEKS} weeks.")
    if end_time <= start_time:
        raise SlotInvalid("The end must be after the start (a window cannot cross midnight).")
    window = datetime.combine(date.min, end_time) - datetime.combine(date.min, start_time)
    if window < timedelta(minutes=slot_minutes):
        raise SlotInvalid("The window is shorter than one slot.")
    tz = coach.tzinfo
    today = now.astimezone(tz).date()
    valid_from = valid_from or today
    if valid_from < today:
        raise SlotInvalid("A pattern cannot start in the past.")
    if valid_from > today + timedelta(days=MAX_PATTERN_START_DAYS):
        raise SlotInvalid("A pattern must start within a year.")
    last = valid_from + timedelta(weeks=weeks) - timedelta(days=1)
    patterns, created, skipped = [], 0, 0
    with transaction.atomic():
        for weekday in weekdays:
            pattern = AvailabilityPattern.objects.create(
                coach=coach,
                weekday=weekday,
                start_time=start_time,
                end_time=end_time,
                slot_minutes=slot_minutes,
                timezone=tz.key,
                valid_from=valid_from,
                valid_until=None if ongoing else last,
            )
            made, overlapping = _insert_free(
                pattern, _pattern_times(pattern, valid_from, last), now
            )
            patterns.append(pattern)
            created += made
            skipped += overlapping
        if created + skipped == 0:
            raise SlotInvalid("That pattern has no future times in the weeks chosen.")
    return PatternsResult(patterns=patterns, created=created, skipped=skipped)


def availability_pattern_delete(
    *, pattern: AvailabilityPattern, coach: User, now: datetime | None = None
) -> int:
    """Stop a weekly pattern: it is deactivated and the open future slots it made go away.

    Held and booked slots stay (their sessions go on); an open slot that sessions or proposals
    point at is blocked instead of deleted, to keep that history. The open slots are locked
    before they are read and every write re-checks `status=OPEN`, so a slot booked at the same
    moment is either taken by the booking (and kept) or removed before the booking sees it;
    never deleted under a session. Safe to call twice. Returns how many open slots were removed
    or blocked.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            AvailabilityPattern.objects.select_for_update()
            .filter(pk=pattern.pk, coach=coach)
            .first()
        )
        if locked is None:
            raise PermissionDenied("That pattern is not yours.")
        AvailabilityPattern.objects.filter(pk=locked.pk).update(is_active=False)
        # Lock first: a concurrent `slot_hold` waits for this transaction, or, if it won, this
        # query (re-evaluated by PostgreSQL after the wait) no longer sees the slot as OPEN.
        still_open = TimeSlot.objects.filter(pattern=locked, status=SlotStatus.OPEN, start__gt=now)
        list(still_open.select_for_update().values_list("pk", flat=True))
        deleted = (
            still_open.filter(sessions__isnull=True, proposals__isnull=True)
            .delete()[1]
            .get(TimeSlot._meta.label, 0)
        )
        # What is left open is referenced by past sessions or proposals: keep it, blocked.
        blocked = still_open.update(status=SlotStatus.BLOCKED, block_source=BlockSource.COACH)
    return deleted + blocked


def _materialise_pattern(pattern_id: int, now: datetime, weeks_ahead: int) -> int:
    with transaction.atomic():
        pattern = (
            AvailabilityPattern.objects.select_for_update(of=("self",))
            .filter(pk=pattern_id, is_active=True, coach__coach_profile__isnull=False)
            .first()
        )
        if pattern is None:
            return 0
        tz = _pattern_tz(pattern)
        today = now.astimezone(tz).date()
        last = today + timedelta(weeks=weeks_ahead)
        if pattern.valid_until is not None:
            last = min(last, pattern.valid_until)
        first = max(pattern.valid_from, today)
        latest = TimeSlot.objects.filter(pattern=pattern).order_by("-start").first()
        if latest is not None:
            first = max(first, latest.start.astimezone(tz).date() + timedelta(days=1))
        if first > last:
            return 0
        created, _ = _insert_free(pattern, _pattern_times(pattern, first, last), now)
    return created


def availability_patterns_materialise(
    *, now: datetime | None = None, weeks_ahead: int | None = None
) -> int:
    """Create the missing OPEN slots of every active pattern up to `weeks_ahead` weeks ahead.

    `weeks_ahead` defaults to `settings.AVAILABILITY_WEEKS_AHEAD`. Only dates after the latest
    slot a pattern already made are filled, so running it twice (or concurrently: each pattern
    is locked while it is filled) creates nothing new, and a slot the coach removed stays
    removed. Times overlapping an existing slot are skipped. Returns how many slots were created.
    """
    now = now or timezone.now()
    if weeks_ahead is None:
        weeks_ahead = settings.AVAILABILITY_WEEKS_AHEAD
    pattern_ids = list(
        AvailabilityPattern.objects.filter(is_active=True)
        .exclude(valid_until__lt=(now - timedelta(days=1)).date())
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    created = sum(_materialise_pattern(pk, now, weeks_ahead) for pk in pattern_ids)
    if created:
        logger.info("availability_patterns_materialise created %d slot(s)", created)
    return created


# --- external calendars (busy times elsewhere block slots here) --------------------------------
#
# A coach adds the secret iCal addresses of their other calendars (Google, Outlook, Apple).
# Every sync fetches the coaches' active calendars (`calendars.sync`: guarded, several at a
# time, outside any transaction, least recently synced coaches first); as soon as all of one
# coach's calendars are fetched, it marks, in one transaction for that coach, OPEN future slots
# that overlap a busy time BLOCKED with block_source "external", and reopens slots it blocked
# earlier whose busy time went away. HELD and BOOKED slots, and slots the coach blocked, are never
# touched. A coach's calendars are synced together because a block can come from any of them:
# while one of them fails, new busy times from the others still block, but nothing is reopened
# for that coach (the failing calendar may still be busy then). A failure is recorded on the
# calendar (`last_error`, `last_error_at`) and never stops the other coaches.

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

    transaction.on_commit(send, robust=True)


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
    """What a sync did: calendars fetched and failed, slots blocked and reopened."""

    calendars: int
    failed: int
    blocked: int
    reopened: int
    errors: dict[int, str]

    def __str__(self) -> str:
        return (
            f"calendars={self.calendars} failed={self.failed} "
            f"blocked={self.blocked} reopened={self.reopened}"
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


def external_calendar_remove(
    *, calendar: ExternalCalendar, coach: User, now: datetime | None = None
) -> int | None:
    """Disconnect an external calendar and reopen the slots that only it kept blocked.

    With no other active calendar left, every future slot blocked by a calendar reopens at once
    and the count is returned. Otherwise a background sync of the remaining calendars is queued
    on commit (it reopens what none of them is busy for) and None is returned.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            ExternalCalendar.objects.select_for_update().filter(pk=calendar.pk, coach=coach).first()
        )
        if locked is None:
            raise PermissionDenied("That calendar is not yours.")
        locked.delete()
        others = ExternalCalendar.objects.filter(coach=coach, is_active=True).exists()
        if not others:
            return _external_blocks_reopen(coach_ids=[coach.pk], now=now)
        _queue_coach_sync(coach.pk)
    return None


def external_calendar_set_active(
    *, calendar: ExternalCalendar, coach: User, is_active: bool, now: datetime | None = None
) -> int | None:
    """Pause (`is_active=False`) or resume one of the coach's external calendars.

    A paused calendar is not fetched and blocks nothing. Pausing the coach's last active
    calendar reopens at once every future slot the calendars blocked and returns the count;
    otherwise (pausing one of several, or resuming) a background sync of the coach's active
    calendars is queued on commit and None is returned. A calendar already in that state is
    refused with `ExternalCalendarUnchanged` (nothing written, nothing queued).
    """
    now = now or timezone.now()
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
        others = ExternalCalendar.objects.filter(coach=coach, is_active=True).exists()
        if not is_active and not others:
            return _external_blocks_reopen(coach_ids=[coach.pk], now=now)
        _queue_coach_sync(coach.pk)
    return None


def external_calendars_sync(
    *, now: datetime | None = None, coach: User | None = None
) -> SyncResult:
    """Sync every active external calendar (or only `coach`'s): block and reopen slots.

    Coaches go least recently synced first, and each coach's slots are updated as soon as all
    of that coach's calendars are fetched, so a run cut short (the task's time limit) keeps the
    work it did and the next run starts with the coaches it missed. Safe to run twice or
    concurrently (each coach's slots are updated under a lock on their calendars, with
    conditional updates). Never raises for a bad feed: it is recorded on the calendar and
    reported in the result.
    """
    now = now or timezone.now()
    result = SyncResult(calendars=0, failed=0, blocked=0, reopened=0, errors={})
    # Blocks left by calendars that were removed or switched off (no fetch needed: first).
    stale = TimeSlot.objects.filter(
        status=SlotStatus.BLOCKED, block_source=BlockSource.EXTERNAL, start__gt=now
    ).exclude(coach__external_calendars__is_active=True)
    if coach is not None:
        stale = stale.filter(coach=coach)
    stale_coaches = list(stale.values_list("coach_id", flat=True).distinct())
    if stale_coaches:
        result.reopened += _external_blocks_reopen(coach_ids=stale_coaches, now=now)

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
    window_ends = _sync_window_ends(coach=coach, now=now)
    jobs = [
        {
            "calendar_id": calendar.pk,
            "url": calendar.url,
            "start": now,
            "end": window_ends.get(coach_id, window_ends[None]),
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
            blocked, reopened = _external_blocks_apply(
                coach_id, mine, now, window_ends.get(coach_id, window_ends[None])
            )
        except SoftTimeLimitExceeded:
            raise  # the task's time limit stops the run; what was applied stays
        except Exception:  # one coach's trouble must not stop the others
            logger.exception("external calendar sync failed for coach %s", coach_id)
            continue
        result.blocked += blocked
        result.reopened += reopened
        for outcome in mine:
            if not outcome.ok:
                result.failed += 1
                result.errors[outcome.calendar_id] = outcome.error
    logger.info("external calendar sync: %s", result)
    return result


def _sync_window_ends(*, coach: User | None, now: datetime) -> dict[int | None, datetime]:
    """How far ahead each coach's busy times are read (by coach id; None: the default).

    At least AVAILABILITY_WEEKS_AHEAD weeks, and up to the end of the coach's furthest future
    slot a sync may change (open, or blocked by a calendar), never beyond SLOT_HORIZON (the
    furthest a one-off or pattern slot can lie; about two years) or the ongoing patterns'
    AVAILABILITY_WEEKS_AHEAD, whichever is further. One query, for `coach` or for every coach
    with an active calendar.
    """
    least = now + timedelta(weeks=calendar_sync.weeks_ahead())
    most = max(least, now + SLOT_HORIZON)
    slots = TimeSlot.objects.filter(start__gt=now, start__lt=most).filter(
        Q(status=SlotStatus.OPEN) | Q(status=SlotStatus.BLOCKED, block_source=BlockSource.EXTERNAL)
    )
    if coach is not None:
        slots = slots.filter(coach=coach)
    else:
        slots = slots.filter(
            coach_id__in=ExternalCalendar.objects.filter(is_active=True).values("coach_id")
        )
    furthest = (
        slots.values("coach_id").annotate(last_end=Max("end")).values_list("coach_id", "last_end")
    )
    ends: dict[int | None, datetime] = {None: least}
    ends.update((coach_id, min(max(least, last_end), most)) for coach_id, last_end in furthest)
    return ends


def _external_blocks_reopen(*, coach_ids: list[int], now: datetime) -> int:
    return TimeSlot.objects.filter(
        coach_id__in=coach_ids,
        status=SlotStatus.BLOCKED,
        block_source=BlockSource.EXTERNAL,
        start__gt=now,
    ).update(status=SlotStatus.OPEN, block_source=BlockSource.NONE)


def _external_blocks_apply(
    coach_id: int, outcomes: list, now: datetime, window_end: datetime
) -> tuple[int, int]:
    """Record each calendar's outcome and bring the coach's future slots in line with the
    union of their busy times. Returns (blocked, reopened)."""
    busy = calendar_sync.merge(
        interval for outcome in outcomes if outcome.ok for interval in outcome.busy
    )
    all_ok = all(outcome.ok for outcome in outcomes)
    with transaction.atomic():
        # Serialises concurrent syncs of the same coach.
        list(ExternalCalendar.objects.select_for_update().filter(coach_id=coach_id))
        for outcome in outcomes:
            if outcome.ok:
                ExternalCalendar.objects.filter(pk=outcome.calendar_id).update(
                    last_synced_at=now, last_error="", last_error_at=None
                )
            else:
                ExternalCalendar.objects.filter(pk=outcome.calendar_id).update(
                    last_error=outcome.error[:2000], last_error_at=now
                )
        slots = TimeSlot.objects.filter(
            coach_id=coach_id,
            start__gt=now,
            start__lt=window_end,
            status__in=[SlotStatus.OPEN, SlotStatus.BLOCKED],
        ).values_list("pk", "start", "end", "status", "block_source")
        to_block, to_reopen = [], []
        for pk, start, end, status, source in slots:
            busy_now = calendar_sync.overlaps(busy, start, end)
            if status == SlotStatus.OPEN and busy_now:
                to_block.append(pk)
            elif (
                status == SlotStatus.BLOCKED
                and source == BlockSource.EXTERNAL
                and not busy_now
                and all_ok
            ):
                to_reopen.append(pk)
        blocked = reopened = 0
        for chunk in _chunks(to_block):
            blocked += TimeSlot.objects.filter(pk__in=chunk, status=SlotStatus.OPEN).update(
                status=SlotStatus.BLOCKED, block_source=BlockSource.EXTERNAL
            )
        for chunk in _chunks(to_reopen):
            reopened += TimeSlot.objects.filter(
                pk__in=chunk, status=SlotStatus.BLOCKED, block_source=BlockSource.EXTERNAL
            ).update(status=SlotStatus.OPEN, block_source=BlockSource.NONE)
    return blocked, reopened


def _chunks(ids: list[int], size: int = 500):
    for index in range(0, len(ids), size):
        yield ids[index : index + size]
