"""Reads for the catalog: the coaches directory, a coach's page (with each offering's next free
times), what is for sale, and a coach's own offerings. Each keeps its page's query count
constant as rows grow."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet
from django.utils import timezone

from accounts.models import User
from calendars.selectors import (
    booking_bounds,
    coach_schedule,
    starts_in_schedule,
)
from catalog.models import Offering

FREE_TIMES_SHOWN = 6  # per offering, on the coach's page
FREE_TIMES_WEEKS = 12  # how far ahead the coach's page looks


def _active_offerings() -> Prefetch:
    return Prefetch(
        "offerings",
        queryset=Offering.objects.filter(is_active=True).order_by("price_cents", "pk"),
        to_attr="active_offerings",
    )


def _coaches() -> QuerySet:
    return User.objects.filter(is_active=True, coach_profile__isnull=False).select_related(
        "coach_profile"
    )


def coaches_directory() -> QuerySet:
    """Coaches with at least one offering on sale, by name, each with `active_offerings`."""
    on_sale = Offering.objects.filter(coach=OuterRef("pk"), is_active=True)
    return (
        _coaches()
        .filter(Exists(on_sale))
        .prefetch_related(_active_offerings())
        .order_by("display_name", "email", "pk")
    )


def coach_public(*, coach_id: int) -> User | None:
    """A coach's public page: profile and `active_offerings` (None if no such coach)."""
    return _coaches().prefetch_related(_active_offerings()).filter(pk=coach_id).first()


@dataclass(frozen=True)
class FreeTime:
    """A time a session of one offering's length could be booked: [start, end)."""

    start: datetime
    end: datetime


def coach_free_times(
    *,
    coach,
    durations: Iterable[int],
    student=None,
    now: datetime | None = None,
    limit: int = FREE_TIMES_SHOWN,
) -> dict[int, list[FreeTime]]:
    """The coach's next `limit` bookable times for each session length in `durations` (minutes),
    within FREE_TIMES_WEEKS weeks, by length: the starts `calendars.selectors.bookable_starts`
    allows (availability, minus reservations with buffers, busy times and `student`'s own
    reservations, between now + minimum notice and the booking horizon, on the coach's grid).

    The coach's schedule is read once for every length: six queries (five without `student`)
    however many offerings, reservations or busy times there are, and none for no length. Each
    length then walks the shared schedule a week at a time until it has `limit` times.
    """
    lengths = sorted({int(minutes) for minutes in durations})
    if not lengths:
        return {}
    bounds = booking_bounds(coach=coach, now=now or timezone.now())
    low = bounds.earliest
    high = min(
        bounds.latest + timedelta(microseconds=1),
        bounds.earliest + timedelta(weeks=FREE_TIMES_WEEKS),
    )
    if low >= high:
        return {minutes: [] for minutes in lengths}
    pad = timedelta(minutes=lengths[-1]) + bounds.before + bounds.after + timedelta(days=1)
    schedule = coach_schedule(coach=coach, start=low - pad, end=high + pad, student=student)
    times = {}
    for minutes in lengths:
        length, found, cursor = timedelta(minutes=minutes), [], low
        while cursor < high and len(found) < limit:
            week_end = min(cursor + timedelta(weeks=1), high)
            found += starts_in_schedule(
                schedule, bounds=bounds, length=length, low=cursor, high=week_end
            )
            cursor = week_end
        times[minutes] = [FreeTime(start, start + length) for start in found[:limit]]
    return times


def coach_page(*, coach_id: int, viewer, now: datetime | None = None) -> User | None:
    """`coach_public`, with each active offering's `free_times`: the next times `viewer` could
    book a session of its length (a coach looking at their own page sees what a student with no
    other sessions would). None if no such coach."""
    coach = coach_public(coach_id=coach_id)
    if coach is None:
        return None
    times = coach_free_times(
        coach=coach,
        durations=[offering.duration_minutes for offering in coach.active_offerings],
        student=None if viewer.pk == coach.pk else viewer,
        now=now,
    )
    for offering in coach.active_offerings:
        offering.free_times = times[offering.duration_minutes]
    return coach


def offering_for_sale(*, pk: int) -> Offering | None:
    """An offering a student can buy now: on sale, from an active coach (else None)."""
    return (
        Offering.objects.select_related("coach__coach_profile")
        .filter(pk=pk, is_active=True, coach__is_active=True, coach__coach_profile__isnull=False)
        .first()
    )


def coach_offerings(*, coach) -> QuerySet:
    """All of the coach's offerings, on sale first, each with `packages_sold`."""
    return (
        Offering.objects.filter(coach=coach)
        .annotate(packages_sold=Count("packages"))
        .order_by("-is_active", "price_cents", "pk")
    )


def coach_offering(*, coach, pk: int) -> Offering | None:
    """One of the coach's own offerings (None for anyone else's or an unknown id)."""
    return Offering.objects.filter(coach=coach, pk=pk).first()
