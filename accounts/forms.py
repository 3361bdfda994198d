"""Forms for the profile page: who you are, your timezone, and (for coaches) your coach profile."""

import zoneinfo
from functools import cache

from allauth.account.forms import LoginForm as AllauthLoginForm
from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms

from accounts.models import (
    MAX_BOOKING_HORIZON_DAYS,
    MAX_BUFFER_MINUTES,
    MAX_START_INTERVAL_MINUTES,
    MIN_START_INTERVAL_MINUTES,
    normalize_email_address,
    validate_display_name,
)
from accounts.services import MAX_WINDOW_HOURS

# Legacy aliases ("US/Eastern", "Cuba", "Etc/GMT+5") are left out of the list; UTC stays.
_SKIPPED_PREFIXES = ("Etc/", "SystemV/", "US/", "posix", "right/")


@cache
def timezone_names() -> tuple[str, ...]:
    names = {
        name
        for name in zoneinfo.available_timezones()
        if "/" in name and not name.startswith(_SKIPPED_PREFIXES)
    }
    return ("UTC", *sorted(names))


class NormalizedEmailInputMixin:
    """Normalises the typed email address (`normalize_email_address`) before any validation, so
    a look-alike (a pasted zero-width space, full-width letters, a Unicode domain) is checked,
    looked up and shown again as the one address it stands for."""

    email_field_names: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            return
        data = self.data.copy()
        for name in self.email_field_names:
            key = self.add_prefix(name)
            if isinstance(data.get(key), str):
                data[key] = normalize_email_address(data[key])
        self.data = data


ROLE_COACH, ROLE_STUDENT = "coach", "student"


def _timezone_choices() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in timezone_names()]


class SignupForm(NormalizedEmailInputMixin, AllauthSignupForm):
    """allauth's sign-up (ACCOUNT_FORMS): an address that is an existing account's once
    normalised counts as that account's, which allauth's enumeration rules then handle.

    It also asks who the person is: a display name, whether they coach or learn (no default),
    and their timezone, which static/js/timezone.js preselects from the browser (UTC without
    JavaScript). `custom_signup` saves all three through `services.user_sign_up`."""

    email_field_names = ("email", "email2")

    display_name = forms.CharField(
        label="Your name",
        max_length=120,
        validators=[validate_display_name],
        help_text="What coaches and students see, for example “Ana Pérez”.",
        error_messages={"required": "Enter your name."},
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    role = forms.ChoiceField(
        label="How will you use Coachbook?",
        choices=[(ROLE_COACH, "I coach"), (ROLE_STUDENT, "I'm a student")],
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose “I coach” or “I'm a student”.",
            "invalid_choice": "Choose “I coach” or “I'm a student”.",
        },
    )
    timezone = forms.ChoiceField(
        label="Your timezone",
        initial="UTC",
        help_text="Detected from your browser; change it if it is wrong. Every time is shown "
        "to you in this timezone.",
        error_messages={
            "required": "Choose your timezone from the list.",
            "invalid_choice": "Choose your timezone from the list.",
        },
        widget=forms.Select(attrs={"data-detect-timezone": "", "autocomplete": "off"}),
    )

    FIELD_ORDER = ("display_name", "email", "email2", "role", "timezone", "password1", "password2")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["timezone"].choices = _timezone_choices()
        if self.is_bound:  # sent back with errors: keep the person's choice over the browser's
            self.fields["timezone"].widget.attrs["data-chosen"] = ""
        order = [name for name in self.FIELD_ORDER if name in self.fields]
        self.order_fields(order)

    def clean_display_name(self) -> str:
        return self.cleaned_data["display_name"].strip()

    def custom_signup(self, request, user) -> None:
        from accounts import services

        services.user_sign_up(
            user=user,
            display_name=self.cleaned_data["display_name"],
            timezone=self.cleaned_data["timezone"],
            is_coach=self.cleaned_data["role"] == ROLE_COACH,
        )


class LoginForm(NormalizedEmailInputMixin, AllauthLoginForm):
    """allauth's login (ACCOUNT_FORMS): the owner can log in with a pasted invisible character,
    and every spelling of one address shares its failed-login limits."""

    email_field_names = ("login",)


class ProfileForm(forms.Form):
    display_name = forms.CharField(
        label="Display name",
        max_length=120,
        required=False,
        validators=[validate_display_name],
        help_text="What coaches and students see. Leave empty to use the start of your email.",
    )
    timezone = forms.ChoiceField(
        label="Timezone",
        help_text="Every time is shown to you in this timezone.",
        error_messages={"invalid_choice": "Choose a timezone from the list."},
    )

    def __init__(self, *args, current_timezone: str = "UTC", **kwargs):
        super().__init__(*args, **kwargs)
        names = timezone_names()
        if current_timezone not in names and current_timezone in zoneinfo.available_timezones():
            names = (current_timezone, *names)
        self.fields["timezone"].choices = [(name, name.replace("_", " ")) for name in names]


def _bounded(label: str, low: int, high: int, unit: str, help_text: str) -> forms.IntegerField:
    """A whole number between `low` and `high`, with messages that say the range."""
    out_of_range = f"Use {low} to {high} {unit}."
    return forms.IntegerField(
        label=label,
        min_value=low,
        max_value=high,
        help_text=help_text,
        widget=forms.NumberInput(attrs={"step": 1}),
        error_messages={
            "min_value": out_of_range,
            "max_value": out_of_range,
            "invalid": f"Enter a whole number of {unit}.",
            "required": f"Enter a number of {unit} ({low} to {high}).",
        },
    )


class CoachProfileForm(forms.Form):
    headline = forms.CharField(
        max_length=160, required=False, help_text="One line under your name in the directory."
    )
    bio = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 5}))
    request_window_hours = forms.IntegerField(
        label="Request window (hours)",
        min_value=1,
        max_value=MAX_WINDOW_HOURS,
        help_text="How long a booking request waits for you before it expires.",
    )
    reschedule_window_hours = forms.IntegerField(
        label="Reschedule window (hours)",
        min_value=1,
        max_value=MAX_WINDOW_HOURS,
        help_text="How long a proposed new time waits for an answer.",
    )
    minimum_notice_hours = forms.IntegerField(
        label="Minimum notice (hours)",
        min_value=0,
        max_value=MAX_WINDOW_HOURS,
        help_text="Students cannot book a time that starts sooner than this.",
    )
    buffer_before_minutes = _bounded(
        "Buffer before each session (minutes)",
        0,
        MAX_BUFFER_MINUTES,
        "minutes",
        "Free time kept before every session, e.g. to prepare. It may reach outside your hours.",
    )
    buffer_after_minutes = _bounded(
        "Buffer after each session (minutes)",
        0,
        MAX_BUFFER_MINUTES,
        "minutes",
        "Free time kept after every session, e.g. for notes or a break.",
    )
    start_interval_minutes = _bounded(
        "Start times every (minutes)",
        MIN_START_INTERVAL_MINUTES,
        MAX_START_INTERVAL_MINUTES,
        "minutes",
        "Sessions start on this grid from the start of each window: 30 offers 09:00, 09:30, 10:00…",
    )
    booking_horizon_days = _bounded(
        "Booking horizon (days)",
        1,
        MAX_BOOKING_HORIZON_DAYS,
        "days",
        "Students can book at most this many days ahead.",
    )

    # The fields in the groups the profile page shows them in.
    GROUPS = (
        ("About you", ("headline", "bio")),
        ("Requests and changes", ("request_window_hours", "reschedule_window_hours")),
        (
            "Booking rules",
            (
                "minimum_notice_hours",
                "booking_horizon_days",
                "start_interval_minutes",
                "buffer_before_minutes",
                "buffer_after_minutes",
            ),
        ),
    )

    @classmethod
    def for_profile(cls, profile, data=None):
        initial = {name: getattr(profile, name) for _, names in cls.GROUPS for name in names}
        return cls(data=data, initial=initial, prefix="coach")

    def groups(self) -> list[tuple[str, list]]:
        """[(legend, [bound fields])] in the page's order."""
        return [(legend, [self[name] for name in names]) for legend, names in self.GROUPS]
