"""Reads of coaches' policies."""

from django.conf import settings

from policies.models import CancellationPolicy


def policy_for_coach(*, coach) -> CancellationPolicy:
    """The coach's saved policy, or an unsaved one holding the defaults: the model's, with
    `settings.CANCELLATION_POLICY_DEFAULTS` over them (one query; none when
    `coach.cancellation_policy` is already loaded)."""
    try:
        return coach.cancellation_policy
    except CancellationPolicy.DoesNotExist:
        return CancellationPolicy(coach=coach, **settings.CANCELLATION_POLICY_DEFAULTS)
