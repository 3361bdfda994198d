"""Forms for the profile page: who you are, your timezone, and (for coaches) your coach profile."""

import zoneinfo
from functools import cache

from django import forms

from accounts.models import validate_display_name
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

    @classmethod
    def for_profile(cls, profile, data=None):
        initial = {
            field: getattr(profile, field)
            for field in (
                "headline",
                "bio",
                "request_window_hours",
                "reschedule_window_hours",
                "minimum_notice_hours",
            )
        }
        return cls(data=data, initial=initial, prefix="coach")
