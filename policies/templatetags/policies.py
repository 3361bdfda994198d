"""A coach's cancellation policy in plain language, for templates."""

from datetime import timedelta

from django import template

from policies.rules import policy_summary
from policies.selectors import policy_for_coach

register = template.Library()


@register.filter
def policy_lines(policy) -> list[str]:
    """Every rule of a `CancellationPolicy` as a sentence."""
    return policy_summary(policy)


@register.filter
def coach_policy_lines(coach) -> list[str]:
    """The coach's policy (saved or the defaults) as sentences."""
    return policy_summary(policy_for_coach(coach=coach))


@register.filter
def notice_hours(notice: timedelta) -> str:
    """How long before the start: "30 h", "18 h 30 min", "45 min"."""
    minutes = max(0, int(notice.total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
