"""Writes of coaches' policies."""

from django.core.exceptions import ValidationError
from django.db import transaction

from core.errors import DomainError
from policies.models import CancellationPolicy

EDITABLE_FIELDS = (
    "free_notice_hours",
    "partial_notice_hours",
    "partial_percent",
    "coach_cancel_rule",
    "coach_no_show_rule",
    "student_reschedule_limit",
    "reschedule_notice_hours",
)


class PolicyInvalid(DomainError):
    default_message = "This policy is not valid."


def policy_update(*, coach, **fields) -> CancellationPolicy:
    """Save the coach's policy with `fields` (any of EDITABLE_FIELDS), creating it on first
    save. Values out of range raise `PolicyInvalid`; nothing is saved then. Applies to every
    cancellation from now on; events already written keep the rule they recorded."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise PolicyInvalid(f"Unknown policy fields: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        policy, _ = CancellationPolicy.objects.select_for_update().get_or_create(coach=coach)
        for name, value in fields.items():
            setattr(policy, name, value)
        if policy.partial_notice_hours > policy.free_notice_hours:
            raise PolicyInvalid("The partial-refund notice must not exceed the free notice.")
        try:
            policy.full_clean(exclude=["coach"])
        except ValidationError as exc:
            raise PolicyInvalid(" ".join(exc.messages)) from exc
        policy.save()
    return policy
