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
from core.prepared import PreparedQuery

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
    """A coach's public page: profile, cancellation policy (when saved) and
    `active_offerings` (None if no such coach)."""
    return (
        _coaches()
        .select_related("cancellation_policy")
        .prefetch_related(_active_offerings())
        .filter(pk=coach_id)
        .first()
    )


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
        Offering.objects.select_related("coach__coach_profile", "coach__cancellation_policy")
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


@dataclass(frozen=True)
class OfferingChoice:
    pk: int
    title: str


def _offering_choices_query(*, coach_id) -> QuerySet:
    return (
        Offering.objects.filter(coach=coach_id).order_by("title", "pk").values_list("pk", "title")
    )


# Compiled once per process: the filter form of every coach list reads it.
_OFFERING_CHOICES = PreparedQuery(_offering_choices_query, coach_id="int")


def coach_offering_choices(*, coach) -> list[OfferingChoice]:
    """The coach's offerings by title (ids and titles), for a session list's filter."""
    return [OfferingChoice(pk, title) for pk, title in _OFFERING_CHOICES.rows(coach_id=coach.pk)]


def coach_offering(*, coach, pk: int) -> Offering | None:
    """One of the coach's own offerings (None for anyone else's or an unknown id)."""
    return Offering.objects.filter(coach=coach, pk=pk).first()


# --- prices, savings, the policy and repeat purchases (the coach page and the Buy page) -------


def per_session_cents(*, price_cents: int, session_count: int) -> int:
    """The price of one session of a package, in whole cents, half a cent rounded up."""
    return (2 * price_cents + session_count) // (2 * session_count)


@dataclass(frozen=True)
class Savings:
    """What a package saves against buying its sessions one by one."""

    cents: int
    percent: int  # rounded half up; 0 means "less than 1 %"


def bundle_savings(*, offering, single) -> Savings | None:
    """`offering`'s saving against `single` (a one-session offering of the same length and
    currency) bought `session_count` times; None without a single or without a saving.
    Integer cents only."""
    if single is None or offering.session_count < 2 or single.currency != offering.currency:
        return None
    singly = single.price_cents * offering.session_count
    saved = singly - offering.price_cents
    if saved <= 0 or singly <= 0:
        return None
    return Savings(cents=saved, percent=(200 * saved + singly) // (2 * singly))


def offerings_price_facts(offerings, *, singles=None) -> None:
    """Set `per_session_cents` and `savings` on each offering. `singles` (default: the same
    list) are the offerings compared against: the cheapest one-session offering of each
    length and currency is the "buying singly" price. No query."""
    offerings = list(offerings)
    cheapest: dict[tuple[int, str], Offering] = {}
    for single in offerings if singles is None else singles:
        if single.session_count != 1:
            continue
        key = (single.duration_minutes, single.currency)
        if key not in cheapest or single.price_cents < cheapest[key].price_cents:
            cheapest[key] = single
    for offering in offerings:
        offering.per_session_cents = per_session_cents(
            price_cents=offering.price_cents, session_count=offering.session_count
        )
        offering.savings = bundle_savings(
            offering=offering,
            single=cheapest.get((offering.duration_minutes, offering.currency)),
        )


def offering_with_price_facts(*, offering) -> Offering:
    """`offerings_price_facts` for one offering against its coach's offerings on sale (one
    query)."""
    singles = Offering.objects.filter(coach_id=offering.coach_id, is_active=True, session_count=1)
    offerings_price_facts([offering], singles=list(singles))
    return offering


def _hours(hours: int) -> str:
    if hours and hours % 24 == 0:
        days = hours // 24
        return f"{days} day{'' if days == 1 else 's'}"
    return f"{hours} hour{'' if hours == 1 else 's'}"


@dataclass(frozen=True)
class BookingPolicy:
    """What happens when a session is canceled or moved, in words, from a coach's windows
    (`templates/catalog/_policy.html`). A per-coach written policy can replace this later."""

    request_window: str  # how long a booking request waits for the coach
    reschedule_window: str  # how long a proposed new time waits for an answer
    minimum_notice: str  # "" when students can book up to the last moment
    booking_horizon_days: int


def coach_booking_policy(*, coach) -> BookingPolicy:
    """`coach`'s policy, from the profile already loaded (no query with `coach_profile`)."""
    from accounts.selectors import coach_windows

    windows = coach_windows(coach=coach)
    return BookingPolicy(
        request_window=_hours(windows.request_window_hours),
        reschedule_window=_hours(windows.reschedule_window_hours),
        minimum_notice=_hours(windows.minimum_notice_hours) if windows.minimum_notice_hours else "",
        booking_horizon_days=windows.booking_horizon_days,
    )
