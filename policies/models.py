"""A coach's cancellation, reschedule and no-show rules (issue 15).

One row per coach, created when the coach first saves the policy form; until then the defaults
below apply (`policies.selectors.policy_for_coach` returns an unsaved row with them). What a
rule produces for a given session and moment is computed in `policies.rules`, nowhere else.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models

# Notice is bounded like the coach's other windows (accounts.models.MAX_WINDOW_HOURS).
MAX_NOTICE_HOURS = 720
MAX_RESCHEDULE_LIMIT = 20


class CoachSideRule(models.TextChoices):
    """What the student gets when the coach cancels, or when the coach did not show."""

    STUDENT_CHOICE = "student_choice", "Full refund or make-up credit, the student's choice"
    FULL_REFUND = "full_refund", "Full refund"
    MAKEUP_CREDIT = "makeup_credit", "Make-up credit (or a full refund, if the coach prefers)"
    # What Coachbook did before policies: the coach picks in the refund drawer each time.
    COACH_DECIDES = "coach_decides", "What the coach decides each time (full, partial or no refund)"


class CancellationPolicy(models.Model):
    """Notice tiers for a student's cancellation, the coach-side rule, and reschedule limits.

    A student who cancels at least `free_notice_hours` before the start gets a full refund or
    a make-up credit (their choice); at least `partial_notice_hours` before, `partial_percent`
    of the session's price back; later, the session is used. Notice is real elapsed time, so
    "24 h" is 24 hours across a change of clocks too.
    """

    coach = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cancellation_policy"
    )
    free_notice_hours = models.PositiveSmallIntegerField(
        default=24,
        validators=[MaxValueValidator(MAX_NOTICE_HOURS)],
        help_text="Cancel at least this long before: full refund or make-up credit.",
    )
    partial_notice_hours = models.PositiveSmallIntegerField(
        default=12,
        validators=[MaxValueValidator(MAX_NOTICE_HOURS)],
        help_text="Cancel at least this long before: the partial refund below. Later: used.",
    )
    partial_percent = models.PositiveSmallIntegerField(
        default=50,
        validators=[MaxValueValidator(100)],
        help_text="Share of the session's price returned in the partial tier.",
    )
    coach_cancel_rule = models.CharField(
        max_length=16, choices=CoachSideRule.choices, default=CoachSideRule.STUDENT_CHOICE
    )
    coach_no_show_rule = models.CharField(
        max_length=16, choices=CoachSideRule.choices, default=CoachSideRule.STUDENT_CHOICE
    )
    student_reschedule_limit = models.PositiveSmallIntegerField(
        default=2,
        validators=[MaxValueValidator(MAX_RESCHEDULE_LIMIT)],
        help_text="How many new times a student may propose for one session.",
    )
    reschedule_notice_hours = models.PositiveSmallIntegerField(
        default=12,
        validators=[MaxValueValidator(MAX_NOTICE_HOURS)],
        help_text="Students cannot propose a new time this close to the start.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "cancellation policies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    free_notice_hours__lte=MAX_NOTICE_HOURS,
                    partial_notice_hours__lte=models.F("free_notice_hours"),
                    partial_percent__lte=100,
                    student_reschedule_limit__lte=MAX_RESCHEDULE_LIMIT,
                    reschedule_notice_hours__lte=MAX_NOTICE_HOURS,
                ),
                name="cancellation_policy_ranges",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    coach_cancel_rule__in=CoachSideRule.values,
                    coach_no_show_rule__in=CoachSideRule.values,
                ),
                name="cancellation_policy_rules_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Cancellation policy of {self.coach}"
