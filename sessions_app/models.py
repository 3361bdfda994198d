from django.conf import settings
from django.db import models

import core.lookups  # noqa: F401  (registers __in_constants, for the partial indexes below)
from sessions_app.lifecycle import (
    ENDED_STATUSES,
    HOLDING_STATUSES,
    UPCOMING_STATUSES,
    Action,
    Attendance,
    Status,
)


class Package(models.Model):
    """One purchase of an offering by a student; its sessions are the credits."""

    offering = models.ForeignKey(
        "catalog.Offering", on_delete=models.PROTECT, related_name="packages"
    )
    coach = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="packages_sold"
    )
    student = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="packages"
    )
    title = models.CharField(max_length=120)
    session_count = models.PositiveSmallIntegerField()
    duration_minutes = models.PositiveSmallIntegerField()
    price_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    purchased_at = models.DateTimeField(auto_now_add=True)
    # The one-time nonce of the confirmation page this package was bought from: a second
    # submission of that page finds this package instead of buying another.
    purchase_token = models.CharField(max_length=64, unique=True, null=True, blank=True)
    # When its unused credits expire (the offering's `credit_validity_days` after purchase; a
    # coach may extend it); null: they never do.
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-purchased_at", "-id"]
        indexes = [
            models.Index(
                fields=["expires_at", "id"],
                condition=models.Q(expires_at__isnull=False),
                name="package_expiring",
            )
        ]

    def __str__(self) -> str:
        return f"{self.title} for {self.student}"


class Session(models.Model):
    """One session of a package, moving through the lifecycle in `sessions_app.lifecycle`."""

    package = models.ForeignKey(Package, on_delete=models.PROTECT, related_name="sessions")
    coach = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="coached_sessions"
    )
    student = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="student_sessions"
    )
    number = models.PositiveSmallIntegerField(help_text="Position within its package, from 1.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UNSCHEDULED)
    # The agreed (or, while requested, the asked-for) reservation: null while unscheduled; kept
    # BOOKED while rescheduling, until a new time is agreed.
    slot = models.ForeignKey(
        "calendars.TimeSlot",
        on_delete=models.PROTECT,
        related_name="sessions",
        null=True,
        blank=True,
    )
    # Copies of `slot.start` / `slot.end` (null with it), written with the slot by
    # `services._transition`: the lists order and filter by them through the session's own
    # indexes, with no join to the reservation (issue 14).
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    price_share_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    request_expires_at = models.DateTimeField(null=True, blank=True)
    # iCalendar SEQUENCE: raised whenever the session's calendar entry changes (new time,
    # cancellation, back on calendars after an expiry).
    sequence = models.PositiveIntegerField(default=0)
    # Each reminder is sent once per agreed time; a reschedule clears them.
    reminder_24h_sent_at = models.DateTimeField(null=True, blank=True)
    reminder_1h_sent_at = models.DateTimeField(null=True, blank=True)
    # A make-up credit: the canceled session it replaces (at most one each). Its price share
    # is what that session had left to refund, so credits never exceed what was paid.
    makeup_for = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="makeup_credit",
    )
    # The student may still take this make-up credit as a full refund instead (the coach
    # canceled under "the student's choice").
    makeup_refundable = models.BooleanField(default=False)
    attendance = models.CharField(
        max_length=24, choices=Attendance.choices, blank=True, default=Attendance.UNRECORDED
    )
    attendance_recorded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["package_id", "number"]
        # Each list walks one of these in the order it shows and stops after a page: Tasks
        # (requests by expiry), Completed and Canceled (newest first, read backwards), Upcoming
        # (partial: the two statuses it shows), a student's active and past sessions, and the
        # completion sweep (issue 14).
        indexes = [
            models.Index(
                fields=["coach", "status", "request_expires_at", "id"],
                name="session_coach_status_expiry",
            ),
            models.Index(
                fields=["coach", "status", "starts_at", "id"], name="session_coach_status_start"
            ),
            models.Index(
                fields=["coach", "status", "updated_at", "id"], name="session_coach_status_changed"
            ),
            models.Index(
                fields=["student", "status", "starts_at", "id"],
                name="session_student_status_start",
            ),
            models.Index(
                fields=["coach", "starts_at", "id"],
                condition=models.Q(status__in=UPCOMING_STATUSES),
                name="session_coach_upcoming",
            ),
            models.Index(
                fields=["student", "starts_at", "id"],
                condition=models.Q(status__in=HOLDING_STATUSES),
                name="session_student_holding",
            ),
            models.Index(
                fields=["student", "updated_at", "id"],
                condition=models.Q(status__in=ENDED_STATUSES),
                name="session_student_past",
            ),
            models.Index(fields=["status", "request_expires_at"]),
            # Coach no-shows the student reported, for the coach's Tasks and the admin.
            models.Index(
                fields=["coach", "attendance_recorded_at", "id"],
                condition=models.Q(attendance=Attendance.COACH_NO_SHOW_REPORTED),
                name="session_coach_no_show_reported",
            ),
            models.Index(
                fields=["ends_at", "id"],
                condition=models.Q(status=Status.CONFIRMED),
                name="session_confirmed_by_end",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=Status.values), name="session_status_valid"
            ),
            models.UniqueConstraint(
                fields=["slot"],
                condition=models.Q(status__in=HOLDING_STATUSES),
                name="session_one_active_holder_per_slot",
            ),
            models.UniqueConstraint(fields=["package", "number"], name="session_number_unique"),
            models.CheckConstraint(
                condition=~models.Q(status__in=HOLDING_STATUSES) | models.Q(slot__isnull=False),
                name="session_holding_status_has_slot",
            ),
            models.CheckConstraint(
                condition=models.Q(attendance__in=Attendance.values),
                name="session_attendance_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Session {self.pk} ({self.get_status_display()})"


class ProposalStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    ACCEPTED = "ACCEPTED", "Accepted"
    SUPERSEDED = "SUPERSEDED", "Superseded"
    DECLINED = "DECLINED", "Declined"
    WITHDRAWN = "WITHDRAWN", "Withdrawn"
    EXPIRED = "EXPIRED", "Expired"
    CANCELED = "CANCELED", "Canceled"


class RescheduleProposal(models.Model):
    """A new time one side proposed for a confirmed session; the other side answers it."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="proposals")
    slot = models.ForeignKey(
        "calendars.TimeSlot", on_delete=models.PROTECT, related_name="proposals"
    )
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reschedule_proposals"
    )
    status = models.CharField(
        max_length=10, choices=ProposalStatus.choices, default=ProposalStatus.PENDING
    )
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "expires_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=ProposalStatus.values), name="proposal_status_valid"
            ),
            models.UniqueConstraint(
                fields=["slot"],
                condition=models.Q(status=ProposalStatus.PENDING),
                name="proposal_one_pending_per_slot",
            ),
            models.UniqueConstraint(
                fields=["session"],
                condition=models.Q(status=ProposalStatus.PENDING),
                name="proposal_one_pending_per_session",
            ),
        ]

    def __str__(self) -> str:
        return f"Proposal {self.pk} for session {self.session_id} ({self.status})"


class SessionEvent(models.Model):
    """The audit row every status change writes: who did what, from what, to what, when."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="session_events",
    )
    action = models.CharField(max_length=24, choices=Action.choices)
    from_status = models.CharField(max_length=12, choices=Status.choices, blank=True)
    to_status = models.CharField(max_length=12, choices=Status.choices)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["session", "created_at"]),
            models.Index(fields=["action", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} ({self.from_status or '-'} -> {self.to_status})"


class CoachDailyTally(models.Model):
    """Per coach and UTC day: bookings made and bookings the coach canceled.

    The cancellation rate sums at most its window's days of these rows (one index range),
    instead of counting a coach's events, which grow with their history (issue 14). Written by
    `session_book` and `session_cancel` in the same transaction as the change.
    """

    coach = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="daily_tallies"
    )
    day = models.DateField()
    booked = models.PositiveIntegerField(default=0)
    coach_canceled = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["coach", "day"], name="coach_daily_tally_unique")
        ]

    def __str__(self) -> str:
        return f"{self.coach_id} on {self.day}: {self.coach_canceled} of {self.booked} canceled"
