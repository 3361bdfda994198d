"""The transactional outbox: one `Delivery` row per email someone must get.

A delivery is written in the transaction of the event it tells about (a status change, a
purchase, a reminder or warning a sweep decided on, a busy time the calendar sync found), so it
exists exactly when its event does. It carries `facts`, a JSON snapshot of what was true at that
moment (times, the agreed and proposed time, the refund, who acted), and the email is built from
those facts when it is sent, in the recipient's timezone. `key` is unique: writing the same
delivery twice (a sweep that runs twice, a retried task) is a no-op.

Sending claims the row with a conditional UPDATE that takes a lease (`claimed_until`) and counts
the attempt. `claim_seq`, raised by every claim and never reset (unlike `attempts`, which "Send
again" resets), is the claim's fencing token, so a worker whose lease ran out cannot mark a row
another worker has since claimed. A row whose lease expired (its worker was killed) is due
again. Retries stop by time (NOTIFICATIONS_GIVE_UP_HOURS after `created_at`, or after
`resent_at` once sent again), not by a count.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class DeliveryKind(models.TextChoices):
    SESSION_EVENT = "session_event", "Session change"
    REMINDER = "session_reminder", "Session reminder"
    PURCHASE_RECEIPT = "purchase_receipt", "Purchase receipt"
    PACKAGE_SOLD = "package_sold", "Package sold"
    REQUEST_EXPIRING = "request_expiring", "Request about to expire"
    PROPOSAL_EXPIRING = "proposal_expiring", "Proposal about to expire"
    CALENDAR_CONFLICT = "calendar_conflict", "Calendar conflict"
    CREDITS_EXPIRING = "credits_expiring", "Credits about to expire"


class DeliveryStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"  # not sent yet (first try, or a retry is scheduled)
    SENT = "SENT", "Sent"
    FAILED = "FAILED", "Failed"  # gave up: retrying cannot help or the attempts ran out
    SKIPPED = "SKIPPED", "Not needed"  # no longer true when its turn came (a stale reminder)


class Delivery(models.Model):
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="deliveries"
    )
    kind = models.CharField(max_length=24, choices=DeliveryKind.choices)
    session = models.ForeignKey(
        "sessions_app.Session",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    event = models.ForeignKey(
        "sessions_app.SessionEvent",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    key = models.CharField(max_length=200, unique=True)
    status = models.CharField(
        max_length=8, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    facts = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The claim's fencing token: raised by every claim, never reset.
    claim_seq = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Set while a worker is sending; a lease that has run out means its worker died.
    claimed_until = models.DateTimeField(null=True, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # When "Send again" last put it back in the queue: its retry window starts again there.
    resent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["recipient", "created_at"], name="delivery_recipient"),
            models.Index(fields=["created_at"], name="delivery_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=DeliveryStatus.values),
                name="delivery_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=DeliveryKind.values), name="delivery_kind_valid"
            ),
            models.CheckConstraint(
                condition=~models.Q(status=DeliveryStatus.SENT) | models.Q(sent_at__isnull=False),
                name="delivery_sent_has_sent_at",
            ),
        ]
        permissions = [("resend_delivery", "Can send a failed delivery again")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.recipient_id} ({self.get_status_display()})"
