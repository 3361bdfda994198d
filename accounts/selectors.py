"""Reads for accounts."""

from dataclasses import dataclass, fields

from accounts.models import CoachProfile


@dataclass(frozen=True)
class CoachWindows:
    request_window_hours: int
    reschedule_window_hours: int
    minimum_notice_hours: int
    buffer_before_minutes: int
    buffer_after_minutes: int
    start_interval_minutes: int
    booking_horizon_days: int


def _field_default(name: str) -> int:
    return CoachProfile._meta.get_field(name).default


def coach_windows(*, coach) -> CoachWindows:
    """The windows that govern `coach`'s sessions: their profile's, or the defaults when the
    user has no coach profile (any more). Uses the profile already loaded with
    `select_related("coach__coach_profile")`, so it costs no query then.
    """
    profile = getattr(coach, "coach_profile", None)  # a missing profile raises AttributeError
    names = [field.name for field in fields(CoachWindows)]
    if profile is None:
        return CoachWindows(*(_field_default(name) for name in names))
    return CoachWindows(*(getattr(profile, name) for name in names))


def coach_booking_horizon_days(*, coach_ids) -> dict[int, int]:
    """Each coach's booking horizon in days, by user id (the default for a user without a
    coach profile): one query."""
    default = _field_default("booking_horizon_days")
    days = dict(
        CoachProfile.objects.filter(user_id__in=coach_ids).values_list(
            "user_id", "booking_horizon_days"
        )
    )
    return {coach_id: days.get(coach_id, default) for coach_id in coach_ids}
