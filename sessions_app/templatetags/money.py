"""Template filters for money (integer minor units) and stored ISO timestamps.

{% load money %}
{{ session.price_share_cents|money:session.currency }}   -> "33.34 USD"
{{ event.details.start|isodatetime|date:"D j M Y, H:i T" }}
"""

from datetime import datetime

from django import template

register = template.Library()


def cents_to_units(cents: int) -> str:
    """12345 -> "123.45" (integer arithmetic, no floats)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(int(cents)), 100)
    return f"{sign}{whole}.{part:02d}"


@register.filter
def money(cents, currency: str = "") -> str:
    if cents is None or cents == "":
        return ""
    try:
        amount = cents_to_units(int(cents))
    except (TypeError, ValueError):
        return ""
    return f"{amount} {currency}".strip()


@register.filter
def isodatetime(value):
    """An ISO 8601 string (as stored in event details) as an aware datetime, else None."""
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
