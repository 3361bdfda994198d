"""Writes for accounts: profile changes and becoming a coach."""

from django.db import transaction

from accounts.models import MAX_WINDOW_HOURS, CoachProfile, User, new_calendar_token
from sessions_app.lifecycle import DomainError, PermissionDenied


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
def calendar_token_regenerate(*, user: User) -> User:
    """Give `user` a new secret calendar feed URL; the old URL stops working at once."""
    user.calendar_token = new_calendar_token()
    user.save(update_fields=["calendar_token"])
    return user


class CoachProfileInvalid(DomainError):
    default_message = "That coach profile is not valid."


def _hours(value, low: int, label: str) -> int:
    whole = isinstance(value, int) and not isinstance(value, bool)
    if not whole or not low <= value <= MAX_WINDOW_HOURS:
        raise CoachProfileInvalid(f"{label} must be {low} to {MAX_WINDOW_HOURS} hours.")
    return value


@transaction.atomic
def coach_profile_update(
    *,
    user: User,
    headline: str,
    bio: str,
    request_window_hours: int,
    reschedule_window_hours: int,
    minimum_notice_hours: int,
) -> CoachProfile:
    """Change a coach's public headline and bio and the windows that govern their sessions.

    New windows apply to requests and proposals made from now on; pending ones keep the expiry
    they were given.
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
    profile.save(
        update_fields=[
            "headline",
            "bio",
            "request_window_hours",
            "reschedule_window_hours",
            "minimum_notice_hours",
        ]
    )
    return profile
