"""Reads for time slots and availability, scoped to the coach who asks."""

from datetime import datetime

from django.db.models import BigIntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from calendars.models import AvailabilityPattern, ExternalCalendar, TimeSlot


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
