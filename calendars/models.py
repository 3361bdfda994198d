from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class SlotStatus(models.TextChoices):
    OPEN = "OPEN", "Open"
    HELD = "HELD", "Held"
    BOOKED = "BOOKED", "Booked"
    BLOCKED = "BLOCKED", "Blocked"


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
