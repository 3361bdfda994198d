"""Template filters for showing refunds to the people of a session.

{% load refund_display %}
{% with retry=refund|retry_in:session.refunds.all %}...{% endwith %}
    -> the refund (among the session's prefetched refunds) that retries `refund`, or None:
       found in the list at hand, so a page of sessions makes no query per refund.
"""

from django import template

register = template.Library()


@register.filter
def retry_in(refund, refunds):
    """The refund in `refunds` whose `retry_of` is `refund`, or None (no query)."""
    if refund is None or not refunds:
        return None
    return next((other for other in refunds if other.retry_of_id == refund.pk), None)
