"""When a coach can be booked (availability), what is taken (reservations) and what is busy
elsewhere (external calendars). Nothing is pre-cut: bookable start times are computed by
`calendars.selectors.bookable_starts` from these rows."""

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class SlotStatus(models.TextChoices):
    HELD = "HELD", "Held"  # a request or a pending reschedule proposal
    BOOKED = "BOOKED", "Booked"  # an agreed time
    RELEASED = "RELEASED", "Released"  # history: the time is free again


ACTIVE_SLOT_STATUSES = (SlotStatus.HELD, SlotStatus.BOOKED)
MIDNIGHT = dt.time(0, 0)


class AvailabilityRule(models.Model):
    """A weekly window of bookable time ("Mondays 09:00-17:00") in the coach's wall-clock time.

    Expanded date by date in the coach's timezone (DST-correct). An `end_time` of 00:00 means
    midnight at the end of the day.
    """

    coach = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="availability_rules"
    )
    weekday = models.PositiveSmallIntegerField(help_text="0 = Monday … 6 = Sunday")
    start_time = models.TimeField()
    end_time = models.TimeField(help_text="00:00 means midnight at the end of the day.")
    valid_from = models.DateField(null=True, blank=True)
    valid_until = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["coach_id", "weekday", "start_time", "id"]
        indexes = [models.Index(fields=["coach", "weekday"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(weekday__gte=0, weekday__lte=6), name="rule_weekday_range"
            ),
            models.CheckConstraint(
                condition=models.Q(end_time__gt=models.F("start_time"))
                | models.Q(end_time=MIDNIGHT),
                name="rule_end_after_start",
            ),
        ]

    def __str__(self) -> str:
        end = "24:00" if self.end_time == MIDNIGHT else f"{self.end_time:%H:%M}"
        return f"{_WEEKDAY_NAMES[self.weekday]} {self.start_time:%H:%M}\u2013{end}"


_WEEKDAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


class _Interval(models.Model):
    """An aware [start, end) interval of one coach's time."""

    start = models.DateTimeField()
    end = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return _local_range(self.start, self.end, self.coach)

    def clean(self):
        if self.start and self.end and self.end <= self.start:
            raise ValidationError({"end": "The end must be after the start."})


def _local_range(start: dt.datetime, end: dt.datetime, coach) -> str:
    """'Thu 03 Dec 2026 10:00-11:30 GMT' (with an en dash) in `coach`'s own timezone."""
    tz = coach.tzinfo
    begin, finish = timezone.localtime(start, tz), timezone.localtime(end, tz)
    same_day = begin.date() == finish.date()
    tail = f"{finish:%H:%M}" if same_day else f"{finish:%a %d %b %Y %H:%M}"
    return f"{begin:%a %d %b %Y %H:%M}\u2013{tail} {finish.tzname()}"


class AvailabilityWindow(_Interval):
    """A one-off extra window of bookable time (aware datetimes)."""

    coach = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="availability_windows"
    )

    class Meta:
        ordering = ["coach_id", "start", "id"]
        indexes = [models.Index(fields=["coach", "end"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="window_end_after_start"
            ),
        ]


class TimeOff(_Interval):
    """Time the coach is away: subtracted from availability, whatever the rules say."""

    coach = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="time_off"
    )
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["coach_id", "start", "id"]
        indexes = [models.Index(fields=["coach", "end"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="timeoff_end_after_start"
            ),
        ]


class ExternalCalendar(models.Model):
    """A coach's secret iCal address elsewhere (Google, Outlook); its busy times are not
    bookable here."""

    coach = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_calendars"
    )
    name = models.CharField(max_length=80, blank=True)
    url = models.URLField(max_length=2000)
    is_active = models.BooleanField(default=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    # When a sync last began fetching it (whatever came of it): the sync's order of work.
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # What the last good read skipped or repaired, for the coach (sentences, bounded).
    last_sync_notes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["coach_id", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["coach", "url"], name="external_calendar_unique_url"),
        ]

    def __str__(self) -> str:
        return self.name or self.url

    @property
    def sync_deferred(self) -> bool:
        """Whether the last error only says the last run did not get to it (no fault of the
        calendar's)."""
        return self.last_error.startswith(("Not reached in this run", "Not finished in this run"))


class BusyTime(_Interval):
    """A busy interval read from one of the coach's external calendars (kept in step by the
    sync). `calendar` is null for busy times carried over from before calendars were tracked."""

    coach = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="busy_times"
    )
    calendar = models.ForeignKey(
        ExternalCalendar,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="busy_times",
    )

    class Meta:
        ordering = ["coach_id", "start", "id"]
        indexes = [models.Index(fields=["coach", "end"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="busytime_end_after_start"
            ),
        ]


class TimeSlot(models.Model):
    """A reservation: one interval of a coach's time, exactly the session's length, held by one
    session (its agreed time, `Session.slot`) or by one pending reschedule proposal.

    `reserved_start`/`reserved_end` add the coach's buffers. Active (HELD or BOOKED) reservations
    never overlap, neither a coach's (buffers included) nor a student's, except those of one and
    the same session (a proposal may overlap the agreed time it would replace). On PostgreSQL two
    exclusion constraints (migration 0005, btree_gist) enforce it; on SQLite
    `calendars.services.reservation_hold` checks inside an IMMEDIATE transaction.
    """

    coach = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="time_slots"
    )
    student = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="reserved_slots",
    )
    session = models.ForeignKey(
        "sessions_app.Session",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reservations",
    )
    start = models.DateTimeField()
    end = models.DateTimeField()
    reserved_start = models.DateTimeField()
    reserved_end = models.DateTimeField()
    status = models.CharField(max_length=8, choices=SlotStatus.choices, default=SlotStatus.HELD)
    # The coach chose to keep this agreed time although an external busy time overlaps it; a
    # busy time first seen after this moment is a new conflict.
    conflict_kept_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["start"]
        indexes = [
            # Availability reads ask for active reservations ending after a moment: history
            # (ended long ago) stays out of the scanned range.
            models.Index(
                fields=["coach", "status", "reserved_end"], name="timeslot_coach_active_end"
            ),
            models.Index(fields=["student", "status", "end"], name="timeslot_student_active_end"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="timeslot_end_after_start"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    reserved_start__lte=models.F("start"), reserved_end__gte=models.F("end")
                ),
                name="timeslot_reserved_covers_time",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=SlotStatus.values), name="timeslot_status_valid"
            ),
            # The exclusion constraints compare session ids; a null would never conflict.
            models.CheckConstraint(
                condition=~models.Q(status__in=ACTIVE_SLOT_STATUSES)
                | models.Q(session__isnull=False),
                name="timeslot_active_has_session",
            ),
        ]

    def __str__(self) -> str:
        return f"{_local_range(self.start, self.end, self.coach)} ({self.get_status_display()})"

    def clean(self):
        if self.start and self.end and self.end <= self.start:
            raise ValidationError({"end": "The end must be after the start."})

    @property
    def duration_minutes(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_SLOT_STATUSES
