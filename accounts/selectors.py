"""Reads for accounts."""

from dataclasses import dataclass

from accounts.models import CoachProfile


@dataclass(frozen=True)
class CoachWindows:
    request_window_hours: int
    reschedule_window_hours: int
    minimum_notice_hours: int


def _field_default(name: str) -> int:
    return CoachProfile._meta.get_field(name).default


def coach_windows(*, coach) -> CoachWindows:
    """The windows that govern `coach`'s sessions: their profile's, or the defaults when the
    user has no coach profile (any more). Uses the profile already loaded with
    `select_related("coach__coach_profile")`, so it costs no query then.
    """
    profile = getattr(coach, "coach_profile", None)  # a missing profile raises AttributeError
    names = ("request_window_hours", "reschedule_window_hours", "minimum_notice_hours")
    if profile is None:
        return CoachWindows(*(_field_default(name) for name in names))
    return CoachWindows(*(getattr(profile, name) for name in names))
