"""Reads for accounts."""

from dataclasses import dataclass, fields

from django.db.models import Exists, OuterRef
from django.urls import reverse

from accounts.models import CoachProfile, User


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


# --- Get started (issue 13): a new coach's checklist -----------------------------------------


def _user_has(relation: str, **filters) -> Exists:
    """Whether the outer user has a row through `relation` (a reverse relation of User), asked
    through User itself so that accounts reads no other app's model directly."""
    return Exists(
        User.objects.filter(pk=OuterRef("pk"), **{f"{relation}__isnull": False}, **filters)
    )


def get_started_annotations() -> dict[str, Exists]:
    """The five Get started steps as `Exists` annotations on a User queryset (by step key)."""
    return {
        "gs_profile": Exists(
            CoachProfile.objects.filter(user=OuterRef("pk")).exclude(headline="").exclude(bio="")
        ),
        "gs_hours": _user_has("availability_rules"),
        "gs_offering": _user_has("offerings", offerings__is_active=True),
        "gs_calendar": _user_has("external_calendars"),
        "gs_share": _user_has("packages_sold"),
    }


GET_STARTED_KEYS = tuple(get_started_annotations())


@dataclass(frozen=True)
class GetStartedStep:
    key: str
    title: str
    text: str
    url: str  # where the step is done
    action: str  # the link's words
    done: bool


@dataclass(frozen=True)
class GetStarted:
    steps: tuple[GetStartedStep, ...]
    booking_url: str  # the coach's public page, to share

    @property
    def done_count(self) -> int:
        return sum(step.done for step in self.steps)

    @property
    def total(self) -> int:
        return len(self.steps)

    @property
    def complete(self) -> bool:
        return self.done_count == self.total


def get_started_flags(*, coach) -> dict[str, bool]:
    """Which Get started steps `coach` has done, by key: one query."""
    values = (
        User.objects.filter(pk=coach.pk)
        .annotate(**get_started_annotations())
        .values_list(*GET_STARTED_KEYS)
        .first()
    )
    return dict(zip(GET_STARTED_KEYS, values or (False,) * len(GET_STARTED_KEYS), strict=True))


def coach_get_started_complete(*, coach) -> bool:
    """Whether `coach` has done every Get started step (one query)."""
    return all(get_started_flags(coach=coach).values())


# The steps without which students cannot book at all; the other two only help.
BOOKABLE_KEYS = ("gs_profile", "gs_hours", "gs_offering")


def coach_is_bookable(*, coach) -> bool:
    """Whether students can find and book `coach`: profile, weekly hours and an offering on
    sale (one query). A coach lands on Get started until then, and on Tasks afterwards."""
    flags = get_started_flags(coach=coach)
    return all(flags[key] for key in BOOKABLE_KEYS)


def coach_get_started(*, coach, site_url: str = "") -> GetStarted:
    """A coach's Get started checklist, computed from their data in one query.

    - profile: the coach profile has a headline and a bio;
    - weekly hours: at least one weekly availability rule;
    - first offering: an offering on sale;
    - calendar: an external calendar added (subscribing to the Coachbook feed leaves no trace,
      so only adding a calendar counts);
    - share: the booking link has brought a first package sold (the only honest evidence that
      it was shared; the page shows the link with a copy button meanwhile).
    """
    done = get_started_flags(coach=coach)
    booking_url = site_url + reverse("catalog:coach_detail", args=[coach.pk])
    steps = (
        GetStartedStep(
            "gs_profile",
            "Fill in your coach profile",
            "A headline and a short bio tell students who you are.",
            reverse("accounts:profile") + "#coach",
            "Edit your profile",
            done["gs_profile"],
        ),
        GetStartedStep(
            "gs_hours",
            "Set your weekly hours",
            "Students can only book times inside your weekly hours.",
            reverse("calendars:availability"),
            "Set weekly hours",
            done["gs_hours"],
        ),
        GetStartedStep(
            "gs_offering",
            "Put your first offering on sale",
            "A package of sessions with a length and a price that students can buy.",
            reverse("catalog:offering_create"),
            "Create an offering",
            done["gs_offering"],
        ),
        GetStartedStep(
            "gs_calendar",
            "Connect your calendar",
            "Add your other calendar so its busy times are never offered to students.",
            reverse("calendars:availability") + "#external-calendars",
            "Connect a calendar",
            done["gs_calendar"],
        ),
        GetStartedStep(
            "gs_share",
            "Share your booking link",
            "Send your page to students. This step is done when your first student buys a package.",
            reverse("catalog:coach_detail", args=[coach.pk]),
            "Open your public page",
            done["gs_share"],
        ),
    )
    return GetStarted(steps=steps, booking_url=booking_url)
