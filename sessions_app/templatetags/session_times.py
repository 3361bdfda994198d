"""Template filters for session times, in the viewer's timezone (`core.times`).

{% load session_times %}
{{ session.slot|span }}            -> "Thu 3 Dec, 11:00-12:30 GMT"
{{ proposal.expires_at|moment }}   -> "Tue 1 Dec, 23:30 GMT"
{{ day|day_label }}                -> "Thursday 3 December"
"""

from datetime import date, datetime

from django import template

from core import times
from sessions_app.rows import STATUS_ICONS

register = template.Library()


@register.filter
def span(slot) -> str:
    """A reservation (with `start` and `end`) as its start-end; "" for none."""
    if not slot or getattr(slot, "start", None) is None:
        return ""
    return times.slot_label(slot)


@register.filter
def moment(value) -> str:
    """One moment as "Thu 3 Dec, 11:00 GMT"; "" for anything that is not a datetime."""
    return times.moment_label(value) if isinstance(value, datetime) else ""


@register.filter
def day_label(value) -> str:
    """A day heading: "Thursday 3 December" (with the year when not this year)."""
    if not isinstance(value, date):
        return ""
    return times.day_label(value, long=True)


@register.filter
def iso_span(details) -> str:
    """An event's stored "start"/"end" (ISO 8601 strings) as a range; "" when absent."""
    try:
        start = datetime.fromisoformat(str(details.get("start")))
    except (AttributeError, TypeError, ValueError):
        return ""
    try:
        end = datetime.fromisoformat(str(details.get("end")))
    except (TypeError, ValueError):
        end = None
    return times.range_label(start, end)


@register.filter
def relative_to(value, now) -> str:
    """A deadline relative to the page's `now`: "in 11 h", "in 40 min", "overdue"."""
    if not isinstance(value, datetime) or not isinstance(now, datetime):
        return ""
    return times.relative_label(value, now)


@register.filter
def urgency_to(value, now) -> str:
    """ "overdue", "urgent", "soon" or "" for a deadline, against the page's `now`."""
    if not isinstance(value, datetime) or not isinstance(now, datetime):
        return ""
    return times.urgency(value, now)


@register.filter
def clock_span(slot) -> str:
    """Only the clock times of a reservation, for a row under a day heading: "11:00-12:00"."""
    if not slot or getattr(slot, "start", None) is None:
        return ""
    return times.clock_range(slot.start, slot.end)


@register.filter
def status_icon(status) -> str:
    """The symbol shown beside a status word ("✓" for "CONFIRMED"; any case)."""
    return STATUS_ICONS.get(str(status).upper(), "○")
