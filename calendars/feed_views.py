"""Calendar pages: the secret subscription feed, the week view, and external busy calendars.

Thin views: reads through `calendars.feeds` / `calendars.selectors`, writes through
`accounts.services` and `calendars.services`; domain errors become messages, never a 500.
"""

from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.http import http_date
from django.views.decorators.http import require_POST, require_safe

from accounts.services import calendar_token_regenerate
from calendars import feeds
from calendars import selectors as calendar_selectors
from calendars import services as calendar_services
from calendars import week as calendar_week
from calendars.forms import ExternalCalendarForm
from core.errors import DomainError
from core.guards import safe_next_url

# --- the subscription feed ----------------------------------------------------------------------


@require_safe
def feed(request, token: str):
    """The user's sessions as an iCalendar feed; the token in the URL is the only credential.

    Conditional GETs: a strong ETag (from the feed's version, `feeds.feed_version`) and
    Last-Modified (the latest change of one of the user's sessions, or the window's day); a
    matching If-None-Match (or, without one, If-Modified-Since) gets a 304 with no body from
    the token lookup and the version's query, before any feed is built or read from the cache.
    Otherwise the body comes from the cache, or is built once for this version (one more
    query). The token is checked first: an unknown token is a 404 whatever validators it sends.
    """
    user = feeds.user_by_calendar_token(token=token)
    if user is None:
        raise Http404("No calendar feed at this address.")
    version = feeds.feed_version(user=user)
    response = HttpResponse(content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="coachbook.ics"'
    response["Cache-Control"] = "private, max-age=300"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    response["ETag"] = version.etag
    last_modified = int(version.last_modified.timestamp())
    response["Last-Modified"] = http_date(last_modified)
    # A 304 (or 412) copies the validators and Cache-Control from `response`; any other answer
    # is `response` itself, which then gets the body.
    answer = get_conditional_response(
        request, etag=version.etag, last_modified=last_modified, response=response
    )
    if answer is not response:
        return answer
    response.content = feeds.feed_document(user=user, version=version).body
    return response


def _back(request, default: str):
    return redirect(safe_next_url(request, default))


@login_required
@require_POST
def feed_regenerate(request):
    """A new secret feed URL; the old one answers 404 from now on."""
    calendar_token_regenerate(user=request.user)
    messages.success(
        request,
        "Your calendar feed has a new address. The old address no longer works: "
        "subscribe again with the new one in each calendar app.",
    )
    return _back(request, reverse("accounts:profile") + "#calendar-feed")


# --- the week view ------------------------------------------------------------------------------


@login_required
@require_safe
def week(request):
    """One week (Monday first) of the viewer's calendar as a time grid, in their timezone.

    ?week=YYYY-MM-DD picks the week of that date, and that day for a narrow screen, which
    shows one day at a time; without it, today.
    """
    user = request.user
    now = timezone.now()
    today = now.astimezone(user.tzinfo).date()
    asked = request.GET.get("week", "").strip()
    day = today
    if asked:
        try:
            day = date.fromisoformat(asked)
        except ValueError:
            messages.warning(
                request, f"“{asked[:40]}” is not a date (use YYYY-MM-DD); showing this week."
            )
        else:
            if not calendar_week.week_day_in_range(day):
                messages.warning(
                    request,
                    f"The calendar covers {calendar_week.FIRST_WEEK_DAY.year} to "
                    f"{calendar_week.LAST_WEEK_DAY.year}; showing this week.",
                )
                day = today
    return render(
        request,
        "calendars/week.html",
        {
            "week": calendar_week.week_for_user(user=user, day=day, now=now),
            "tz_name": user.tzinfo.key,
            "first_day": calendar_week.FIRST_WEEK_DAY,
            "last_day": calendar_week.LAST_WEEK_DAY,
        },
    )


# --- external busy calendars (on the coach's availability page) ---------------------------------

AVAILABILITY = "calendars:availability"


def _availability():
    return redirect(reverse(AVAILABILITY) + "#external-calendars")


def _stopped_blocking(count: int) -> str:
    """ "2 busy times it had stopped blocking your availability", or that it had none."""
    if not count:
        return "it had no busy times blocking your availability"
    noun = "busy time" if count == 1 else "busy times"
    return f"{count} {noun} it had stopped blocking your availability"


@login_required
@require_POST
def external_calendar_add(request):
    """Connect an external calendar; its first sync runs in the background right away."""
    form = ExternalCalendarForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return _availability()
    try:
        calendar = calendar_services.external_calendar_add(
            coach=request.user, url=form.cleaned_data["url"], name=form.cleaned_data["name"]
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return _availability()
    messages.success(
        request,
        f"Added “{calendar}”. Syncing it now: refresh this page in a minute to see when it "
        "synced, or why it could not be read.",
    )
    return _availability()


@login_required
@require_POST
def external_calendar_remove(request, pk: int):
    """Disconnect a calendar; its busy times stop blocking at once."""
    calendar = calendar_selectors.coach_external_calendar(coach=request.user, pk=pk)
    if calendar is None:
        messages.error(request, "That calendar is not connected (any more).")
        return _availability()
    try:
        removed = calendar_services.external_calendar_remove(calendar=calendar, coach=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
        return _availability()
    messages.success(request, f"Removed “{calendar}”; {_stopped_blocking(removed)}.")
    return _availability()


def _set_active(request, pk: int, active: bool):
    calendar = calendar_selectors.coach_external_calendar(coach=request.user, pk=pk)
    if calendar is None:
        messages.error(request, "That calendar is not connected (any more).")
        return _availability()
    try:
        removed = calendar_services.external_calendar_set_active(
            calendar=calendar, coach=request.user, is_active=active
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return _availability()
    if active:
        messages.success(
            request,
            f"Resumed “{calendar}”. Syncing it now: refresh this page in a minute to see when "
            "it synced.",
        )
    else:
        messages.success(
            request,
            f"Paused “{calendar}”; {_stopped_blocking(removed or 0)}. It blocks "
            "nothing until you resume it.",
        )
    return _availability()


@login_required
@require_POST
def external_calendar_pause(request, pk: int):
    """Stop reading a calendar without removing it; its busy times stop blocking at once."""
    return _set_active(request, pk, False)


@login_required
@require_POST
def external_calendar_resume(request, pk: int):
    """Read a paused calendar again; its first sync runs in the background."""
    return _set_active(request, pk, True)


@login_required
@require_POST
def external_calendars_sync(request):
    """ "Sync now": queue a background sync (refused within a minute of the last one)."""
    if not request.user.is_coach:
        messages.error(request, "Only coaches connect external calendars.")
        return redirect("home")
    try:
        calendar_services.external_calendars_sync_queue(coach=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Syncing now; refresh this page in a minute to see the result.")
    return _availability()
