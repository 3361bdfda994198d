from django.conf import settings
from django.db import models

from sessions_app.lifecycle import HOLDING_STATUSES, Action, Status


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

    class Meta:
        ordering = ["-purchased_at", "-id"]

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
    price_share_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    request_expires_at = models.DateTimeField(null=True, blank=True)
    # iCalendar SEQUENCE: raised whenever the session's calendar entry changes (new time,
    # cancellation, back on calendars after an expiry).
    sequence = models.PositiveIntegerField(default=0)
    # Each reminder is sent once per agreed time; a reschedule clears them.
    reminder_24h_sent_at = models.DateTimeField(null=True, blank=True)
    reminder_1h_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["package_id", "number"]
        indexes = [
            models.Index(fields=["coach", "status"]),
            models.Index(fields=["student", "status"]),
            models.Index(fields=["status", "request_expires_at"]),
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
