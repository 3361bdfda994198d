"""Writes for time slots. Sessions hold, book and release slots only through these functions."""

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.models import User
from calendars.models import SlotStatus, TimeSlot
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
