"""The coach's Availability page: weekly hours, one-off windows, time off, external calendars.

Thin views: each POST parses a form and calls one service in `calendars.services`; reads go
through `calendars.selectors`. A refusal (`DomainError`) is shown on the page and writes nothing.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from calendars import selectors
from calendars import sync as calendar_sync


def _coach_only(request):
    if not request.user.is_coach:
        messages.info(
            request, "Availability is for coaches. Become a coach on your profile page first."
        )
        return redirect("accounts:profile")
    return None


@login_required
@require_GET
def availability(request):
    """The coach's weekly hours, one-off windows, time off and external calendars."""
    if refusal := _coach_only(request):
        return refusal
    coach = request.user
    context = {
        "rules": selectors.coach_rules(coach=coach),
        "windows": list(selectors.coach_upcoming_windows(coach=coach)),
        "time_off": list(selectors.coach_upcoming_time_off(coach=coach)),
        "external_calendars": selectors.coach_external_calendars(coach=coach),
        "calendar_sync_every": calendar_sync.sync_every_words(),
        "timezone_name": coach.tzinfo.key,
    }
    return render(request, "calendars/availability.html", context)
