"""Every write to offerings (what a coach sells). Each checks the terms, refuses another coach's
offering, and raises a `DomainError` whose message is fit to show a person."""

from django.db import transaction

from catalog.models import MAX_CREDIT_VALIDITY_DAYS, Offering
from core.errors import DomainError, PermissionDenied


class OfferingInvalid(DomainError):
    default_message = "That offering is not valid."


# ISO 4217 codes the offering form offers; all have two minor units (cents).
OFFERING_CURRENCIES = ("USD", "EUR", "GBP", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK")
MAX_OFFERING_PRICE_CENTS = 10_000_000  # 100,000.00


def _whole(value, low: int, high: int, message: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise OfferingInvalid(message)
    return value


def _offering_terms(
    *,
    title: str,
    description: str,
    session_count: int,
    duration_minutes: int,
    price_cents: int,
    currency: str,
) -> dict:
    """The offering's terms, checked and tidied, or `OfferingInvalid` with the reason."""
    title = (title or "").strip()
    if not title:
        raise OfferingInvalid("Give the offering a title.")
    if len(title) > 120:
        raise OfferingInvalid("A title has at most 120 characters.")
    currency = (currency or "").strip().upper()
    if currency not in OFFERING_CURRENCIES:
        raise OfferingInvalid(f"Choose one of these currencies: {', '.join(OFFERING_CURRENCIES)}.")
    return {
        "title": title,
        "description": (description or "").strip(),
        "session_count": _whole(session_count, 1, 100, "A package has 1 to 100 sessions."),
        "duration_minutes": _whole(duration_minutes, 5, 600, "A session lasts 5 to 600 minutes."),
        "price_cents": _whole(
            price_cents,
            0,
            MAX_OFFERING_PRICE_CENTS,
            f"The price must be between 0.00 and {MAX_OFFERING_PRICE_CENTS // 100:,}.00.",
        ),
        "currency": currency,
    }


def _credit_validity(days: int | None) -> int | None:
    """Days after purchase the credits expire (1..1095), or None for never."""
    if days is None:
        return None
    return _whole(
        days,
        1,
        MAX_CREDIT_VALIDITY_DAYS,
        f"Credits expire 1 to {MAX_CREDIT_VALIDITY_DAYS} days after purchase, or never "
        "(leave it empty).",
    )


# `offering_update` leaves the credits' validity as it is unless it is given.
UNCHANGED = object()


def _lock_own_offering(offering: Offering, coach) -> Offering:
    locked = Offering.objects.select_for_update().filter(pk=offering.pk, coach=coach).first()
    if locked is None:
        raise PermissionDenied("That offering is not yours.")
    return locked


def offering_lock(*, offering: Offering) -> Offering:
    """Re-read `offering` under a row lock, inside the caller's transaction: a purchase sees its
    committed terms, and concurrent purchases of it wait for each other."""
    return Offering.objects.select_for_update().get(pk=offering.pk)


def offering_create(
    *,
    coach,
    title: str,
    session_count: int,
    duration_minutes: int,
    price_cents: int,
    currency: str = "USD",
    description: str = "",
    credit_validity_days: int | None = None,
) -> Offering:
    """A coach puts a new package on sale: `session_count` sessions of `duration_minutes`.

    With `credit_validity_days` (1..1095), sessions not booked that many days after a
    purchase expire (`sessions_app.expiry`); None: they never do.
    """
    if not getattr(coach, "is_coach", False):
        raise PermissionDenied("Only coaches sell offerings. Become a coach on your profile.")
    terms = _offering_terms(
        title=title,
        description=description,
        session_count=session_count,
        duration_minutes=duration_minutes,
        price_cents=price_cents,
        currency=currency,
    )
    terms["credit_validity_days"] = _credit_validity(credit_validity_days)
    with transaction.atomic():
        return Offering.objects.create(coach=coach, **terms)


def offering_update(
    *,
    offering: Offering,
    coach,
    title: str,
    session_count: int,
    duration_minutes: int,
    price_cents: int,
    currency: str,
    description: str = "",
    credit_validity_days=UNCHANGED,
) -> Offering:
    """Change an offering's terms for future buyers (`credit_validity_days`: days, None for
    never, or left as it is when not given).

    Packages already bought keep the terms they were bought with (each `Package` copied them;
    its credits keep the expiry they got).
    """
    terms = _offering_terms(
        title=title,
        description=description,
        session_count=session_count,
        duration_minutes=duration_minutes,
        price_cents=price_cents,
        currency=currency,
    )
    if credit_validity_days is not UNCHANGED:
        terms["credit_validity_days"] = _credit_validity(credit_validity_days)
    with transaction.atomic():
        locked = _lock_own_offering(offering, coach)
        for field, value in terms.items():
            setattr(locked, field, value)
        locked.save(update_fields=list(terms))
    return locked


def offering_set_active(*, offering: Offering, coach, is_active: bool) -> Offering:
    """Take an offering off sale (students can no longer buy it) or put it back on sale.

    Packages already bought are not affected. Setting the state it already has is a no-op.
    """
    with transaction.atomic():
        locked = _lock_own_offering(offering, coach)
        if locked.is_active != bool(is_active):
            locked.is_active = bool(is_active)
            locked.save(update_fields=["is_active"])
    return locked
