"""Writes for accounts: profile changes and becoming a coach."""

from django.db import transaction

from accounts.models import CoachProfile, User, new_calendar_token


@transaction.atomic
def coach_profile_create(*, user: User, headline: str = "", bio: str = "") -> CoachProfile:
    """Make `user` a coach (idempotent: an existing profile is returned unchanged)."""
    profile, _ = CoachProfile.objects.get_or_create(
        user=user, defaults={"headline": headline, "bio": bio}
    )
    return profile


@transaction.atomic
def user_update_profile(*, user: User, display_name: str, timezone: str) -> User:
    """Change a user's display name and timezone, validating the timezone."""
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
