from django.conf import settings
from django.db import models


class PaymentState(models.TextChoices):
    # CREATED: the package waits for its payment (no credits yet). FAILED: the last attempt was
    # refused (the student may try again). DONE: paid; its sessions are credits.
    CREATED = "CREATED", "Awaiting payment"
    DONE = "DONE", "Paid"
    FAILED = "FAILED", "Payment failed"


class RefundState(models.TextChoices):
    # CREATED: asked for, the processor has not settled it yet.
    CREATED = "CREATED", "Pending"
    DONE = "DONE", "Succeeded"
    FAILED = "FAILED", "Failed"


class RefundKind(models.TextChoices):
    FULL = "full", "Full refund"
    PARTIAL = "partial", "Partial refund"


class Payment(models.Model):
    """The money a student paid for one package, as recorded by a gateway."""

    package = models.OneToOneField(
        "sessions_app.Package", on_delete=models.PROTECT, related_name="payment"
    )
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    gateway = models.CharField(max_length=32)
    reference = models.CharField(max_length=128, blank=True)
    state = models.CharField(
        max_length=8, choices=PaymentState.choices, default=PaymentState.CREATED
    )
    idempotency_key = models.CharField(max_length=128, unique=True)
    # The processor's reason for the last refused attempt, shown to the student.
    failure_reason = models.CharField(max_length=255, blank=True)
    # Card attempts so far; a new processor payment (PaymentIntent) per retry after a refusal.
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=PaymentState.values), name="payment_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Payment {self.pk}: {self.amount_cents} {self.currency}"


class Refund(models.Model):
    """Money returned for one session. Never edited: a correction is a new entry.

    A refund has its own states (created, done, failed); it never changes a session's status by
    itself. Canceling does, through the lifecycle.
    """

    session = models.ForeignKey(
        "sessions_app.Session", on_delete=models.PROTECT, related_name="refunds"
    )
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    kind = models.CharField(max_length=8, choices=RefundKind.choices)
    state = models.CharField(max_length=8, choices=RefundState.choices, default=RefundState.CREATED)
    gateway = models.CharField(max_length=32)
    reference = models.CharField(max_length=128, blank=True)
    failure_reason = models.CharField(max_length=255, blank=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="refunds_issued",
        null=True,
        blank=True,
    )
    reason = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=128, unique=True)
    # A staff retry of a failed refund is a new refund pointing at the one it retries.
    retry_of = models.OneToOneField(
        "self", on_delete=models.PROTECT, related_name="retry", null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    # Each settlement attempt (`refunds.services.refund_settle`) counts itself and stamps the
    # time, so the pending sweep leaves a refund alone while its own task is still retrying.
    settle_attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount_cents__gte=1), name="refund_amount_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=RefundKind.values), name="refund_kind_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=RefundState.values), name="refund_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Refund {self.pk}: {self.amount_cents} {self.currency} ({self.kind})"


class ProcessorEvent(models.Model):
    """One webhook event from the payment processor, stored once by its id: a replayed or
    re-sent event finds its row and is not processed again."""

    gateway = models.CharField(max_length=32)
    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=100)
    # The payment or refund the event is about, by the processor's id (re-read from the
    # processor when processed, so a forged or stale body never decides a state).
    object_id = models.CharField(max_length=255, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "event_id"], name="processor_event_once"),
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.type} {self.event_id}"
