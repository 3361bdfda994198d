from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class SlotStatus(models.TextChoices):
    OPEN = "OPEN", "Open"
    HELD = "HELD", "Held"
    BOOKED = "BOOKED", "Booked"
    BLOCKED = "BLOCKED", "Blocked"


class BlockSource(models.TextChoices):
    NONE = "", "Not blocked"
    COACH = "coach", "Blocked by the coach"
    EXTERNAL = "external", "Busy in an external calendar"


class AvailabilityPattern(models.Model):
    """A weekly window of bookable time, in the coach's local time (DST-correct per date).

    Materialised into `TimeSlot`s of `slot_minutes` a rolling number of weeks ahead.
    """

    coach = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="availability_patterns"
    )
    weekday = models.PositiveSmallIntegerField(help_text="0 = Monday … 6 = Sunday")
    start_time = models.TimeField()
    end_time = models.TimeField()
    slot_minutes = models.PositiveSmallIntegerField(default=60)
    timezone = models.CharField(max_length=64, help_text="The coach's timezone when defined.")
    valid_from = models.DateField()
    valid_until = models.DateField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["coach_id", "weekday", "start_time"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(weekday__gte=0, weekday__lte=6), name="pattern_weekday_range"
            ),
            models.CheckConstraint(
                condition=models.Q(end_time__gt=models.F("start_time")),
                name="pattern_end_after_start",
            ),
            models.CheckConstraint(
                condition=models.Q(slot_minutes__gte=5), name="pattern_slot_minutes_min"
            ),
        ]

    def __str__(self) -> str:
        return f"weekday {self.weekday} {self.start_time:%H:%M}-{self.end_time:%H:%M}"


class ExternalCalendar(models.Model):
    """A coach's secret iCal address elsewhere (Google, Outlook); its busy times block slots."""

    coach = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_calendars"
    )
    name = models.CharField(max_length=80, blank=True)
    url = models.URLField(max_length=2000)
    is_active = models.BooleanField(default=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["coach_id", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["coach", "url"], name="external_calendar_unique_url"),
        ]

    def __str__(self) -> str:
        return self.name or self.url


class TimeSlot(models.Model):
    """A stretch of a coach's time that one session can take.

    A coach's slots never overlap: on PostgreSQL an exclusion constraint (added by migration
    0002, btree_gist) enforces it; on SQLite `calendars.services.slot_create` checks it inside an
    IMMEDIATE transaction.
    """

    coach = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="time_slots"
    )
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(max_length=8, choices=SlotStatus.choices, default=SlotStatus.OPEN)
    # Why a BLOCKED slot is blocked, so a calendar sync reopens only what it blocked itself.
    block_source = models.CharField(max_length=8, choices=BlockSource.choices, blank=True)
    pattern = models.ForeignKey(
        AvailabilityPattern, on_delete=models.SET_NULL, null=True, blank=True, related_name="slots"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["start"]
        indexes = [
            models.Index(fields=["coach", "start"]),
            models.Index(fields=["status", "start"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="timeslot_end_after_start"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=SlotStatus.values), name="timeslot_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} UTC ({self.get_status_display()})"

    def clean(self):
        if self.start and self.end and self.end <= self.start:
            raise ValidationError({"end": "The end must be after the start."})

    @property
    def duration_minutes(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)
