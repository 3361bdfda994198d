from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

MAX_CREDIT_VALIDITY_DAYS = 1095


class Offering(models.Model):
    """A package a coach sells: N sessions of M minutes for a price."""

    coach = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="offerings"
    )
    title = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    session_count = models.PositiveSmallIntegerField()
    duration_minutes = models.PositiveSmallIntegerField()
    price_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="USD")
    is_active = models.BooleanField(default=True)
    # Unused credits of a package bought from this offering expire this many days after the
    # purchase; null: never (issue 15).
    credit_validity_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CREDIT_VALIDITY_DAYS)],
        help_text="Leave empty for credits that never expire.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The table the offerings have always lived in (they moved here from sessions_app
        # without copying a row: see migrations 0001 here and sessions_app 0004).
        db_table = "sessions_app_offering"
        ordering = ["coach_id", "price_cents", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(session_count__gte=1, session_count__lte=100),
                name="offering_session_count_range",
            ),
            models.CheckConstraint(
                condition=models.Q(duration_minutes__gte=5, duration_minutes__lte=600),
                name="offering_duration_range",
            ),
            models.CheckConstraint(
                condition=models.Q(credit_validity_days__isnull=True)
                | models.Q(
                    credit_validity_days__gte=1,
                    credit_validity_days__lte=MAX_CREDIT_VALIDITY_DAYS,
                ),
                name="offering_credit_validity_range",
            ),
        ]

    def __str__(self) -> str:
        return self.title
