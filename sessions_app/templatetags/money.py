"""Template filters for money (integer minor units) and stored ISO timestamps.

{% load money %}
{{ session.price_share_cents|money:session.currency }}   -> "$33.34" (core.money.format_money)
{{ event.details.start|isodatetime|date:"D j M Y, H:i T" }}
"""

from datetime import datetime

from django import template

from core.money import format_money

register = template.Library()


@register.filter
def money(cents, currency: str = "") -> str:
    """Minor units as money; an empty string for a missing or unreadable amount."""
    if cents is None or cents == "":
        return ""
    try:
        return format_money(int(cents), currency)
    except (TypeError, ValueError):
        return ""


@register.filter
def isodatetime(value):
    """An ISO 8601 string (as stored in event details) as an aware datetime, else None."""
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
