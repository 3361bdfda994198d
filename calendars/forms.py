"""Forms for the Availability page: the weekly-hours grid, a one-off window and time off.

Every time is wall-clock in the coach's own timezone (`tz`); the forms turn dates and times into
aware datetimes, refuse a time the clocks skip that day, and keep dates within the bounds of
`calendars.services` (two years ahead, at most MAX_WINDOWS_PER_DAY windows a day...), so that
the services' own checks are the last word and no input can reach an overflow.
"""

from dataclasses import dataclass, field
from datetime import date, time, timedelta

from django import forms
from django.utils import timezone

from calendars.intervals import MIDNIGHT, local_time_exists, local_to_utc
from calendars.services import (
    MAX_DAYS_AHEAD,
    MAX_TIME_OFF,
    MAX_WINDOWS_PER_DAY,
    WEEKDAY_NAMES,
    AvailabilityInvalid,
    Week,
    availability_week_check,
)

WEEKDAYS = list(enumerate(WEEKDAY_NAMES))
TIME_HINT = "Enter a time like 09:00."


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%d", **kwargs)


class TimeInput(forms.TimeInput):
    input_type = "time"

    def __init__(self, **kwargs):
        super().__init__(format="%H:%M", **kwargs)


class EndTimeField(forms.TimeField):
    """A time that ends a window: 00:00 (or 24:00, typed by hand) means midnight at the end of
    the day."""

    def to_python(self, value):
        if isinstance(value, str) and value.strip() in ("24:00", "24:00:00"):
            return MIDNIGHT
        return super().to_python(value)


def _date_field(label: str, **kwargs) -> forms.DateField:
    return forms.DateField(
        label=label,
        widget=DateInput(),
        error_messages={"invalid": "Enter a valid date.", "required": "Choose a date."},
        **kwargs,
    )


def local_today(tz) -> date:
    return timezone.now().astimezone(tz).date()


def gap_error(day: date, wall: time, tz) -> str:
    return (
        f"{wall:%H:%M} does not exist on {day.day} {day:%B %Y} in your timezone "
        f"({tz.key}): the clocks go forward that night. Pick another time."
    )


class _DatedForm(forms.Form):
    """A form whose date fields accept the coach's today up to the last date a service takes.

    `date_fields` maps each date field to the days it may reach past `last_date` (the last day
    of time off may lie beyond the last first day). `last_date` is one day short of
    MAX_DAYS_AHEAD, so that any time on it starts within the services' two years.
    """

    date_fields: dict[str, int] = {}

    def __init__(self, *args, tz, **kwargs):
        super().__init__(*args, **kwargs)
        self.tz = tz
        self.first_date = local_today(tz)
        self.last_date = self.first_date + timedelta(days=MAX_DAYS_AHEAD - 1)
        for name, extra in self.date_fields.items():
            self.fields[name].widget.attrs.update(
                min=self.first_date.isoformat(),
                max=(self.last_date + timedelta(days=extra)).isoformat(),
            )

    def _check_date(self, name: str) -> date | None:
        day = self.cleaned_data.get(name)
        last = self.last_date + timedelta(days=self.date_fields[name])
        if day is not None and not self.first_date <= day <= last:
            raise forms.ValidationError(
                f"Pick a date between {self.first_date.day} {self.first_date:%B %Y} and "
                f"{last.day} {last:%B %Y}."
            )
        return day


class WindowForm(_DatedForm):
    """A one-off extra window: a date, a start and an end in the coach's timezone.

    `cleaned_data` gains aware `start` and `end`; an end of 00:00 means midnight at the end of
    that date. A time the clocks skip that day is refused with a message.
    """

    prefix = "window"
    date_fields = {"date": 0}
    date = _date_field("Date")
    start_time = forms.TimeField(
        label="From",
        widget=TimeInput(),
        error_messages={"invalid": TIME_HINT, "required": "Enter a start time."},
    )
    end_time = EndTimeField(
        label="Until",
        widget=TimeInput(),
        help_text="00:00 means midnight at the end of the day.",
        error_messages={"invalid": TIME_HINT, "required": "Enter an end time."},
    )

    def clean_date(self):
        return self._check_date("date")

    def clean(self):
        data = super().clean()
        day, start, end = data.get("date"), data.get("start_time"), data.get("end_time")
        if day is None or start is None or end is None:
            return data
        end_day = day + timedelta(days=1) if end == MIDNIGHT else day
        if (end_day, end) <= (day, start):
            raise forms.ValidationError(
                "The end must be after the start (00:00 means midnight at the end of the day)."
            )
        for when, wall in ((day, start), (end_day, end)):
            if not local_time_exists(when, wall, self.tz):
                raise forms.ValidationError(gap_error(when, wall, self.tz))
        data["start"] = local_to_utc(day, start, self.tz)
        data["end"] = local_to_utc(end_day, end, self.tz)
        return data


class TimeOffForm(_DatedForm):
    """Whole days away, first to last (inclusive) in the coach's timezone, with an optional
    note. `cleaned_data` gains aware `start` (the first day's midnight) and `end` (the midnight
    after the last day)."""

    prefix = "off"
    date_fields = {"first_day": 0, "last_day": MAX_TIME_OFF.days - 1}
    first_day = _date_field("First day")
    last_day = _date_field("Last day", required=False, help_text="Leave empty for a single day.")
    reason = forms.CharField(
        label="Note (optional)",
        required=False,
        max_length=200,
        help_text="Only you see it.",
    )

    def clean_first_day(self):
        return self._check_date("first_day")

    def clean_last_day(self):
        return self._check_date("last_day")

    def clean(self):
        data = super().clean()
        first = data.get("first_day")
        if first is None or "last_day" in self.errors:
            return data
        last = data.get("last_day") or first
        if last < first:
            self.add_error("last_day", "The last day must not be before the first day.")
            return data
        if (last - first).days + 1 > MAX_TIME_OFF.days:
            self.add_error(
                "last_day", f"Time off can last at most {MAX_TIME_OFF.days} days; split it up."
            )
            return data
        data["last_day"] = last
        data["start"] = local_to_utc(first, MIDNIGHT, self.tz)
        data["end"] = local_to_utc(last + timedelta(days=1), MIDNIGHT, self.tz)
        return data


# --- the weekly-hours grid ------------------------------------------------------------------


@dataclass
class GridDay:
    """One weekday's row of the grid, for the template."""

    weekday: int
    name: str
    pairs: list = field(default_factory=list)  # [(start BoundField, end BoundField)]
    errors: list[str] = field(default_factory=list)

    @property
    def error_id(self) -> str:
        return f"week-day-{self.weekday}-errors"


class WeekForm(forms.Form):
    """The coach's weekly hours: for each weekday up to MAX_WINDOWS_PER_DAY windows (a start
    and an end time; end 00:00 means midnight), plus "copy one day's hours to other days".

    A pair left empty is no window, so clearing a pair removes it. `cleaned_data["week"]` is
    the checked grid {weekday: [(start, end)]} that `availability_week_set` takes; with
    `copying=True` the copy is applied to it (and the copy fields are required).
    """

    prefix = "week"
    copy_from = forms.TypedChoiceField(
        label="Copy the hours of",
        choices=[("", "Choose a day"), *WEEKDAYS],
        coerce=int,
        empty_value=None,
        required=False,
    )
    copy_to = forms.TypedMultipleChoiceField(
        label="to",
        choices=WEEKDAYS,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "Choose days from the list."},
    )

    def __init__(self, *args, week: Week | None = None, copying: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.copying = copying
        self.copied: tuple[int, list[int]] | None = None  # (from, to) once a copy is applied
        self.day_errors: dict[int, list[str]] = {weekday: [] for weekday in range(7)}
        week = week or {}
        for weekday, name in WEEKDAYS:
            windows = list(week.get(weekday, ()))
            for index in range(MAX_WINDOWS_PER_DAY):
                begin, finish = windows[index] if index < len(windows) else (None, None)
                number = f"window {index + 1}" if index else "first window"
                self.fields[self.start_name(weekday, index)] = forms.TimeField(
                    label=f"{name}, {number}, from",
                    required=False,
                    initial=begin,
                    widget=TimeInput(),
                    error_messages={"invalid": TIME_HINT},
                )
                self.fields[self.end_name(weekday, index)] = EndTimeField(
                    label=f"{name}, {number}, until",
                    required=False,
                    initial=finish,
                    widget=TimeInput(),
                    error_messages={"invalid": TIME_HINT},
                )
        self.initial_counts = {weekday: len(week.get(weekday, ())) for weekday in range(7)}

    @staticmethod
    def start_name(weekday: int, index: int) -> str:
        return f"d{weekday}_{index}_start"

    @staticmethod
    def end_name(weekday: int, index: int) -> str:
        return f"d{weekday}_{index}_end"

    def _shown(self, weekday: int) -> int:
        """How many pairs the row shows: every pair up to the last one in use, and one blank
        pair to add a window (when the day has room)."""
        if not self.is_bound:
            used = self.initial_counts[weekday]
        else:
            used = 0
            for index in range(MAX_WINDOWS_PER_DAY):
                for name in (self.start_name(weekday, index), self.end_name(weekday, index)):
                    if str(self.data.get(self.add_prefix(name), "")).strip():
                        used = index + 1
        return min(used + 1, MAX_WINDOWS_PER_DAY)

    @property
    def days(self) -> list[GridDay]:
        rows = []
        for weekday, name in WEEKDAYS:
            row = GridDay(weekday=weekday, name=name, errors=list(self.day_errors[weekday]))
            for index in range(self._shown(weekday)):
                pair = (
                    self[self.start_name(weekday, index)],
                    self[self.end_name(weekday, index)],
                )
                for bound in pair:
                    row.errors += [f"{bound.label}: {error}" for error in bound.errors]
                row.pairs.append(pair)
            rows.append(row)
        return rows

    def clean(self):
        data = super().clean()
        week: Week = {}
        for weekday, name in WEEKDAYS:
            windows, broken = [], False
            for index in range(MAX_WINDOWS_PER_DAY):
                start_name = self.start_name(weekday, index)
                end_name = self.end_name(weekday, index)
                if start_name in self.errors or end_name in self.errors:
                    broken = True
                    continue
                begin, finish = data.get(start_name), data.get(end_name)
                if begin is None and finish is None:
                    continue
                if begin is None or finish is None:
                    self.day_errors[weekday].append(
                        f"{name}, window {index + 1}: enter both a start and an end, or clear "
                        "both to remove the window."
                    )
                    broken = True
                    continue
                windows.append((begin, finish))
            if not broken:
                try:
                    windows = availability_week_check(week={weekday: windows})[weekday]
                except AvailabilityInvalid as refusal:
                    self.day_errors[weekday].append(refusal.message)
                    broken = True
            if broken:
                self._mark_day_invalid(weekday)
            week[weekday] = windows
        failing = [name for weekday, name in WEEKDAYS if self._day_has_errors(weekday)]
        if failing:
            raise forms.ValidationError(
                f"Check the hours of {and_list(failing)}: nothing was saved.",
                code="grid",
            )
        if self.copying:
            week = self._copy(week)
        data["week"] = week
        return data

    def _copy(self, week: Week) -> Week:
        source = self.cleaned_data.get("copy_from")
        targets = [day for day in self.cleaned_data.get("copy_to", []) if day != source]
        if source is None:
            self.add_error("copy_from", "Choose the day to copy.")
            return week
        if "copy_to" in self.errors:
            return week
        if not targets:
            self.add_error(
                "copy_to", f"Choose the days to copy {WEEKDAY_NAMES[source]}\u2019s hours to."
            )
            return week
        copied = dict(week)
        for day in targets:
            copied[day] = list(week.get(source, []))
        self.copied = (source, targets)
        return copied

    def _day_has_errors(self, weekday: int) -> bool:
        if self.day_errors[weekday]:
            return True
        return any(
            name in self.errors
            for index in range(MAX_WINDOWS_PER_DAY)
            for name in (self.start_name(weekday, index), self.end_name(weekday, index))
        )

    def _mark_day_invalid(self, weekday: int) -> None:
        """Point the day's inputs at the day's error text (screen readers announce it)."""
        for index in range(MAX_WINDOWS_PER_DAY):
            for name in (self.start_name(weekday, index), self.end_name(weekday, index)):
                self.fields[name].widget.attrs.update(
                    {"aria-invalid": "true", "aria-describedby": f"week-day-{weekday}-errors"}
                )


def and_list(words: list[str]) -> str:
    """'Monday', 'Monday and Friday', 'Monday, Tuesday and Friday'."""
    if len(words) < 2:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


class ExternalCalendarForm(forms.Form):
    """Connect an external calendar. The address is refused here with the sync's own messages
    (`calendars.sync.normalize_url`: scheme, form, length); `external_calendar_add` then
    resolves its host and refuses a private or loopback one, with the sync's message too."""

    # No max_length here: an over-long address gets the sync's message, not Django's.
    url = forms.CharField(label="Secret iCal address", required=False)
    name = forms.CharField(label="Name (optional)", max_length=80, required=False)

    def clean_url(self) -> str:
        from calendars import sync

        try:
            return sync.normalize_url(self.cleaned_data["url"])
        except sync.CalendarFetchError as exc:
            raise forms.ValidationError(exc.message) from exc
