"""Reads for time slots and availability, scoped to the coach who asks."""

from datetime import datetime

from django.db.models import BigIntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from calendars.models import AvailabilityPattern, ExternalCalendar, SlotStatus, TimeSlot


def coach_future_slots(*, coach, now: datetime | None = None) -> QuerySet:
    """The coach's slots that have not ended yet (open, held, booked, blocked), soonest first.

    Each slot carries `holder_session_id`: the session that holds it (requested or confirmed) or
    has a pending proposal for it, else None. One query per page, whatever the number of rows.
    """
    from sessions_app.selectors import slot_active_holders

    now = now or timezone.now()
    sessions, proposals = slot_active_holders(slot=OuterRef("pk"))
    return (
        TimeSlot.objects.filter(coach=coach, end__gt=now)
        .annotate(
            holder_session_id=Coalesce(
                Subquery(sessions.values("pk")[:1]),
                Subquery(proposals.values("session_id")[:1]),
                output_field=BigIntegerField(),
            )
        )
        .order_by("start", "pk")
    )


def coach_slots_between(*, coach, start: datetime, end: datetime) -> QuerySet:
    """The coach's slots (any status) starting in [start, end), with only what a calendar
    shows (id, start, end, status, block_source)."""
    return TimeSlot.objects.filter(coach=coach, start__gte=start, start__lt=end).only(
        "id", "start", "end", "status", "block_source"
    )


def coach_slot(*, coach, pk) -> TimeSlot | None:
    """One of the coach's slots (None for anyone else's or an unknown id)."""
    return TimeSlot.objects.filter(coach=coach, pk=pk).first()


def coach_active_patterns(*, coach, now: datetime | None = None) -> QuerySet:
    """The coach's weekly patterns that are running or yet to end, by weekday and time."""
    today = timezone.localdate(now or timezone.now(), coach.tzinfo)
    return (
        AvailabilityPattern.objects.filter(coach=coach, is_active=True)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gte=today))
        .order_by("weekday", "start_time", "pk")
    )


def coach_pattern(*, coach, pk) -> AvailabilityPattern | None:
    """One of the coach's active patterns (None for anyone else's, an unknown or a stopped one)."""
    return AvailabilityPattern.objects.filter(coach=coach, pk=pk, is_active=True).first()


def coach_external_calendars(*, coach) -> list[ExternalCalendar]:
    """The coach's external calendars (active and paused), oldest first: one query."""
    return list(ExternalCalendar.objects.filter(coach=coach).order_by("created_at", "pk"))


def coach_external_calendar(*, coach, pk) -> ExternalCalendar | None:
    """One of the coach's external calendars (None for anyone else's or an unknown id)."""
    return ExternalCalendar.objects.filter(coach=coach, pk=pk).first()


# --- for sessions_app (booking and rescheduling pages, notification emails) ---------------------


def coach_open_slots(
    *, coach_id: int, not_before: datetime, exclude_pk: int | None = None
) -> QuerySet:
    """The coach's OPEN slots starting at or after `not_before` (without `exclude_pk`), soonest
    first."""
    slots = TimeSlot.objects.filter(
        coach_id=coach_id, status=SlotStatus.OPEN, start__gte=not_before
    )
    if exclude_pk is not None:
        slots = slots.exclude(pk=exclude_pk)
    return slots.order_by("start", "pk")


def coach_slot_by_id(*, coach_id: int, pk) -> TimeSlot | None:
    """The slot `pk` (any status) if it belongs to the coach `coach_id`, else None."""
    return TimeSlot.objects.filter(pk=pk, coach_id=coach_id).first()


def slots_by_id(*, ids) -> dict[int, TimeSlot]:
    """The slots with these ids, by id (one query; none for no ids)."""
    ids = {pk for pk in ids if pk is not None}
    return TimeSlot.objects.in_bulk(ids) if ids else {}
