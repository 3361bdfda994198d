"""Forms for a coach's availability. Times are entered in the coach's own timezone."""

from datetime import date, datetime, time, timedelta

from django import forms
from django.utils import timezone

from calendars.services import (
    MAX_PATTERN_SLOT_MINUTES,
    MAX_PATTERN_START_DAYS,
    MAX_PATTERN_WEEKS,
    MAX_SLOT_DAYS_AHEAD,
    MIN_PATTERN_SLOT_MINUTES,
    local_time_exists,
    local_to_utc,
)

WEEKDAYS = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%d", **kwargs)


class TimeInput(forms.TimeInput):
    input_type = "time"

    def __init__(self, **kwargs):
        super().__init__(format="%H:%M", **kwargs)


def _local_today(tz) -> date:
    return timezone.now().astimezone(tz).date()


def _bound_date_widget(field: forms.Field, first: date, last: date) -> None:
    field.widget.attrs.update(min=first.isoformat(), max=last.isoformat())


def _gap_error(day, wall: time) -> str:
    return (
        f"{wall:%H:%M} does not exist on {day:%-d %B %Y} in your timezone: the clocks "
        "change that night. Pick another time."
    )


class SlotForm(forms.Form):
    """One slot: a date and a start and end time, wall-clock in `tz`.

    `cleaned_data` gains aware `start` and `end`. An end of 00:00 means midnight at the end of
    that day. The date must lie between yesterday and MAX_SLOT_DAYS_AHEAD days ahead (in `tz`);
    past and overlapping slots are refused by `calendars.services.slot_create`.
    """

    prefix = "slot"
    date = forms.DateField(widget=DateInput(), error_messages={"invalid": "Enter a valid date."})
    start_time = forms.TimeField(
        label="Start", widget=TimeInput(), error_messages={"invalid": "Enter a valid time."}
    )
    end_time = forms.TimeField(
        label="End",
        widget=TimeInput(),
        help_text="00:00 means midnight at the end of the day.",
        error_messages={"invalid": "Enter a valid time."},
    )

    def __init__(self, *args, tz, **kwargs):
        super().__init__(*args, **kwargs)
        self.tz = tz
        today = _local_today(tz)
        # Yesterday stays allowed so that a past time gets the service's own message.
        self.first_date = today - timedelta(days=1)
        self.last_date = today + timedelta(days=MAX_SLOT_DAYS_AHEAD)
        _bound_date_widget(self.fields["date"], self.first_date, self.last_date)

    def clean_date(self):
        day = self.cleaned_data["date"]
        if not self.first_date <= day <= self.last_date:
            raise forms.ValidationError(
                f"Pick a date between {self.first_date:%-d %B %Y} and {self.last_date:%-d %B %Y}."
            )
        return day

    def clean(self):
        data = super().clean()
        day, start, end = data.get("date"), data.get("start_time"), data.get("end_time")
        if day is None or start is None or end is None:
            return data
        end_day = day + timedelta(days=1) if end == time(0, 0) else day
        if datetime.combine(end_day, end) <= datetime.combine(day, start):
            raise forms.ValidationError("The end must be after the start.")
        for when, wall in ((day, start), (end_day, end)):
            if not local_time_exists(when, wall, self.tz):
                raise forms.ValidationError(_gap_error(when, wall))
        data["start"] = local_to_utc(day, start, self.tz)
        data["end"] = local_to_utc(end_day, end, self.tz)
        return data


class PatternForm(forms.Form):
    """A weekly pattern: weekdays, a daily window, the slot length and how many weeks.

    The start date must lie between the coach's today (in `tz`) and a year ahead."""

    prefix = "pattern"
    weekdays = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one weekday."},
    )
    start_time = forms.TimeField(
        label="From", widget=TimeInput(), error_messages={"invalid": "Enter a valid time."}
    )
    end_time = forms.TimeField(
        label="Until", widget=TimeInput(), error_messages={"invalid": "Enter a valid time."}
    )
    slot_minutes = forms.IntegerField(
        label="Slot length (minutes)",
        initial=60,
        min_value=MIN_PATTERN_SLOT_MINUTES,
        max_value=MAX_PATTERN_SLOT_MINUTES,
    )
    weeks = forms.IntegerField(
        label="Number of weeks", initial=4, min_value=1, max_value=MAX_PATTERN_WEEKS
    )
    valid_from = forms.DateField(
        label="Starting",
        required=False,
        widget=DateInput(),
        help_text="Leave empty to start today.",
        error_messages={"invalid": "Enter a valid date."},
    )
    ongoing = forms.BooleanField(
        label="Keep repeating after these weeks",
        required=False,
        help_text="New weeks are added every night so that your slots always reach a few "
        "weeks ahead, until you stop the pattern.",
    )

    def __init__(self, *args, tz, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = _local_today(tz)
        self.last_date = self.today + timedelta(days=MAX_PATTERN_START_DAYS)
        _bound_date_widget(self.fields["valid_from"], self.today, self.last_date)

    def clean_valid_from(self):
        # The same limits as `availability_patterns_create`, checked before any date arithmetic.
        day = self.cleaned_data["valid_from"]
        if day is not None and day < self.today:
            raise forms.ValidationError("A pattern cannot start in the past.")
        if day is not None and day > self.last_date:
            raise forms.ValidationError("A pattern must start within a year.")
        return day

    def clean(self):
        data = super().clean()
        start, end = data.get("start_time"), data.get("end_time")
        if start is not None and end is not None and end <= start:
            raise forms.ValidationError(
                "The end must be after the start (a window cannot cross midnight)."
            )
        return data
