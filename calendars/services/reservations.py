"""Reservations (`TimeSlot`): a session's agreed time or a proposal's time, exactly the
session's length. Sessions hold, book and release time only through these functions."""

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from calendars.models import ACTIVE_SLOT_STATUSES, SlotStatus, TimeSlot
from calendars.selectors import bookable_starts, booking_bounds, start_refusal
from calendars.services.errors import SlotInvalid, SlotUnavailable
from core.bulk import update_rows
from core.errors import PermissionDenied

logger = logging.getLogger(__name__)

# The PostgreSQL exclusion constraint over a student's reservations (migration 0005).
STUDENT_EXCLUSION = "timeslot_student_no_overlap"
DEADLOCK_STATES = ("40P01", "40001")  # deadlock detected, serialization failure


def reservation_hold(
    *, coach, student, session, start: datetime, duration_minutes: int, now: datetime
) -> TimeSlot:
    """Reserve [start, start + duration) of `coach`'s time for `session` (HELD).

    `start` must be one of `bookable_starts` for the session's length now (the session's own
    reservations do not count against it). The database refuses an overlap that a concurrent
    booking created meanwhile (PostgreSQL's exclusion constraints; on SQLite the IMMEDIATE
    transaction serialises the check and the insert). Either way: `SlotUnavailable`.
    """
    if timezone.is_naive(start):
        raise SlotInvalid("A time must carry a timezone.")
    length = timedelta(minutes=duration_minutes)
    bounds = booking_bounds(coach=coach, now=now)
    if not bounds.earliest <= start <= bounds.latest:
        # Refused before any arithmetic on `start` (which could lie near datetime.max).
        raise SlotUnavailable(start_refusal(coach=coach, start=start, now=now))
    free = bookable_starts(
        coach=coach,
        duration_minutes=duration_minutes,
        start=start,
        end=start + timedelta(microseconds=1),
        student=student,
        now=now,
        session=session,
    )
    if free != [start]:
        raise SlotUnavailable(start_refusal(coach=coach, start=start, now=now))
    try:
        with transaction.atomic():
            return TimeSlot.objects.create(
                coach=coach,
                student=student,
                session=session,
                start=start,
                end=start + length,
                reserved_start=start - bounds.before,
                reserved_end=start + length + bounds.after,
                status=SlotStatus.HELD,
            )
    except IntegrityError as exc:
        # An exclusion constraint on PostgreSQL: a concurrent booking took an overlapping time
        # after the availability check above.
        logger.info("reservation refused by the database: %s", exc)
        if STUDENT_EXCLUSION in str(exc):
            raise SlotUnavailable("You already have a session at that time.") from exc
        raise SlotUnavailable() from exc
    except OperationalError as exc:
        # Two overlapping inserts can deadlock on the exclusion index; anything else (a lost
        # connection, a timeout) is not a refusal and propagates.
        if getattr(getattr(exc, "__cause__", None), "sqlstate", None) not in DEADLOCK_STATES:
            raise
        logger.info("reservation refused by the database (deadlock): %s", exc)
        raise SlotUnavailable() from exc


def reservation_book(*, slot: TimeSlot) -> None:
    """HELD -> BOOKED for a reservation its holder just agreed."""
    if (
        TimeSlot.objects.filter(pk=slot.pk, status=SlotStatus.HELD).update(status=SlotStatus.BOOKED)
        != 1
    ):
        raise SlotUnavailable("That time is no longer held for this session.")


def reservations_release(*, slot_ids: Iterable[int | None], now: datetime | None = None) -> int:
    """HELD/BOOKED -> RELEASED (the time is bookable again; the row stays as history).

    One statement however many ids (a sweep's chunk releases a thousand): on PostgreSQL the
    ids go as one array parameter (`core.bulk.update_rows`)."""
    now = now or timezone.now()
    ids = [pk for pk in slot_ids if pk is not None]
    if not ids:
        return 0
    return update_rows(
        model=TimeSlot,
        pks=ids,
        values={"status": SlotStatus.RELEASED, "released_at": now},
        where={"status": tuple(ACTIVE_SLOT_STATUSES)},
    )


def slots_reopen_freed(*, now: datetime | None = None) -> int:
    """HELD/BOOKED reservations with no active holder (neither a session holding it as its
    time nor a pending proposal) become RELEASED; returns how many."""
    from sessions_app.selectors import slot_active_holders

    now = now or timezone.now()
    holding_sessions, pending_proposals = slot_active_holders(slot=OuterRef("pk"))
    released = (
        TimeSlot.objects.filter(status__in=ACTIVE_SLOT_STATUSES)
        .filter(~Exists(holding_sessions), ~Exists(pending_proposals))
        .update(status=SlotStatus.RELEASED, released_at=now)
    )
    if released:
        logger.info("slots_reopen_freed released %d reservation(s)", released)
    return released


def reservation_keep_despite_busy(
    *, slot: TimeSlot, coach, now: datetime | None = None
) -> TimeSlot:
    """The coach keeps an agreed time that an external busy time overlaps: the conflict leaves
    Tasks until a busy time first seen later overlaps it."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = TimeSlot.objects.select_for_update().filter(pk=slot.pk, coach=coach).first()
        if locked is None:
            raise PermissionDenied("That session is not yours.")
        if locked.status != SlotStatus.BOOKED:
            raise SlotUnavailable("That time is no longer booked.")
        locked.conflict_kept_at = now
        locked.save(update_fields=["conflict_kept_at"])
    return locked
