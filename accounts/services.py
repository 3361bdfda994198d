"""Writes for accounts: profile changes and becoming a coach."""

from django.db import transaction

from accounts.models import (
    MAX_BOOKING_HORIZON_DAYS,
    MAX_BUFFER_MINUTES,
    MAX_START_INTERVAL_MINUTES,
    MAX_WINDOW_HOURS,
    MIN_START_INTERVAL_MINUTES,
    CoachProfile,
    User,
    new_calendar_token,
)
from core.errors import DomainError, PermissionDenied


@transaction.atomic
def coach_profile_create(*, user: User, headline: str = "", bio: str = "") -> CoachProfile:
    """Make `user` a coach (idempotent: an existing profile is returned unchanged)."""
    profile, _ = CoachProfile.objects.get_or_create(
        user=user, defaults={"headline": headline, "bio": bio}
    )
    return profile


@transaction.atomic
def user_update_profile(*, user: User, display_name: str, timezone: str) -> User:
    """Change a user's display name and timezone.

    Raises `ValidationError` (nothing saved) for an unknown timezone or a display name that is
    not one line of text (newlines or other control characters would break email subjects).
    """
    user.display_name = display_name.strip()
    user.timezone = timezone
    user.full_clean(exclude=["password"])
    user.save(update_fields=["display_name", "timezone"])
    return user


@transaction.atomic
def user_sign_up(*, user: User, display_name: str, timezone: str, is_coach: bool) -> User:
    """Finish a new account from the sign-up form: its display name and timezone, and, for
    someone who coaches, their (empty) coach profile, so they land on Get started.

    Raises `ValidationError` (nothing saved) for an unknown timezone or a display name that is
    not one line of visible text.
    """
    user_update_profile(user=user, display_name=display_name, timezone=timezone)
    if is_coach:
        coach_profile_create(user=user)
    return user


@transaction.atomic
def calendar_token_regenerate(*, user: User) -> User:
    """Give `user` a new secret calendar feed URL; the old URL stops working at once."""
    user.calendar_token = new_calendar_token()
    user.save(update_fields=["calendar_token"])
    return user


class CoachProfileInvalid(DomainError):
    default_message = "That coach profile is not valid."


def _whole(value, low: int, high: int, label: str, unit: str) -> int:
    whole = isinstance(value, int) and not isinstance(value, bool)
    if not whole or not low <= value <= high:
        raise CoachProfileInvalid(f"{label} must be {low} to {high} {unit}.")
    return value


def _hours(value, low: int, label: str) -> int:
    return _whole(value, low, MAX_WINDOW_HOURS, label, "hours")


# The booking rules: (field, lowest, highest, label, unit).
BOOKING_RULES = (
    ("buffer_before_minutes", 0, MAX_BUFFER_MINUTES, "The buffer before a session", "minutes"),
    ("buffer_after_minutes", 0, MAX_BUFFER_MINUTES, "The buffer after a session", "minutes"),
    (
        "start_interval_minutes",
        MIN_START_INTERVAL_MINUTES,
        MAX_START_INTERVAL_MINUTES,
        "The start interval",
        "minutes",
    ),
    ("booking_horizon_days", 1, MAX_BOOKING_HORIZON_DAYS, "The booking horizon", "days"),
)


@transaction.atomic
def coach_profile_update(
    *,
    user: User,
    headline: str,
    bio: str,
    request_window_hours: int,
    reschedule_window_hours: int,
    minimum_notice_hours: int,
    buffer_before_minutes: int | None = None,
    buffer_after_minutes: int | None = None,
    start_interval_minutes: int | None = None,
    booking_horizon_days: int | None = None,
) -> CoachProfile:
    """Change a coach's public headline and bio, the windows that govern their sessions and
    their booking rules (buffers, start interval, booking horizon; None keeps a rule as it is).

    New windows and rules apply to requests and proposals made from now on; pending ones keep
    the expiry and the time they were given. Refused (nothing saved) when a value is out of
    bounds or the minimum notice reaches past the booking horizon (nothing could be booked).
    """
    profile = CoachProfile.objects.select_for_update().filter(user=user).first()
    if profile is None:
        raise PermissionDenied("Only coaches have a coach profile. Become a coach first.")
    headline = (headline or "").strip()
    if len(headline) > 160:
        raise CoachProfileInvalid("A headline has at most 160 characters.")
    profile.headline = headline
    profile.bio = (bio or "").strip()
    profile.request_window_hours = _hours(request_window_hours, 1, "The request window")
    profile.reschedule_window_hours = _hours(reschedule_window_hours, 1, "The reschedule window")
    profile.minimum_notice_hours = _hours(minimum_notice_hours, 0, "The minimum notice")
    given = {
        "buffer_before_minutes": buffer_before_minutes,
        "buffer_after_minutes": buffer_after_minutes,
        "start_interval_minutes": start_interval_minutes,
        "booking_horizon_days": booking_horizon_days,
    }
    for name, low, high, label, unit in BOOKING_RULES:
        if given[name] is not None:
            setattr(profile, name, _whole(given[name], low, high, label, unit))
    if profile.minimum_notice_hours >= profile.booking_horizon_days * 24:
        raise CoachProfileInvalid(
            f"The minimum notice ({profile.minimum_notice_hours} hours) must be shorter than "
            f"the booking horizon ({profile.booking_horizon_days} days), or nothing could be "
            "booked."
        )
    profile.save(
        update_fields=[
            "headline",
            "bio",
            "request_window_hours",
            "reschedule_window_hours",
            "minimum_notice_hours",
            *(name for name, *_ in BOOKING_RULES),
        ]
    )
    return profile
