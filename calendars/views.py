"""The coach's availability page: one-off slots, weekly patterns, and the slots to come.

Thin views: each POST parses a form and calls one service in `calendars.services`; reads go
through `calendars.selectors`. A refusal (`DomainError`) is shown on the page and writes nothing.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.formats import date_format
from django.views.decorators.http import require_GET, require_POST

from calendars import selectors, services
from calendars import sync as calendar_sync
from calendars.forms import WEEKDAYS, PatternForm, SlotForm
from sessions_app.lifecycle import DomainError

SLOTS_PER_PAGE = 50
TIME_FORMAT = "D j M Y, H:i T"
WEEKDAY_NAMES = dict(WEEKDAYS)


def _coach_only(request):
    if not request.user.is_coach:
        messages.info(
            request, "Availability is for coaches. Become a coach on your profile page first."
        )
        return redirect("accounts:profile")
    return None


def _local(value) -> str:
    return date_format(timezone.localtime(value), TIME_FORMAT)


def _page(request, status: int = 200, slot_form=None, pattern_form=None):
    coach = request.user
    slots = Paginator(selectors.coach_future_slots(coach=coach), SLOTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    patterns = list(selectors.coach_active_patterns(coach=coach))
    for pattern in patterns:
        pattern.weekday_name = WEEKDAY_NAMES[pattern.weekday]
    context = {
        "slot_form": slot_form or SlotForm(tz=coach.tzinfo),
        "pattern_form": pattern_form or PatternForm(tz=coach.tzinfo),
        "slots": slots,
        "patterns": patterns,
        "external_calendars": selectors.coach_external_calendars(coach=coach),
        "calendar_sync_every": calendar_sync.sync_every_words(),
        "timezone_name": coach.tzinfo.key,
    }
    return render(request, "calendars/availability.html", context, status=status)


@login_required
@require_GET
def availability(request):
    """Open, held, booked and blocked future slots by day, the weekly patterns, and the forms."""
    return _coach_only(request) or _page(request)


@login_required
@require_POST
def slot_add(request):
    """Add one slot, entered in the coach's timezone; past or overlapping ones are refused."""
    if refusal := _coach_only(request):
        return refusal
    form = SlotForm(request.POST, tz=request.user.tzinfo)
    if form.is_valid():
        try:
            slot = services.slot_create(
                coach=request.user, start=form.cleaned_data["start"], end=form.cleaned_data["end"]
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Slot added: {_local(slot.start)}.")
            return redirect("calendars:availability")
    return _page(request, status=400, slot_form=form)


@login_required
@require_POST
def pattern_add(request):
    """Add a weekly pattern for N weeks; times overlapping existing slots are skipped."""
    if refusal := _coach_only(request):
        return refusal
    form = PatternForm(request.POST, tz=request.user.tzinfo)
    if form.is_valid():
        data = form.cleaned_data
        try:
            result = services.availability_patterns_create(
                coach=request.user,
                weekdays=data["weekdays"],
                start_time=data["start_time"],
                end_time=data["end_time"],
                slot_minutes=data["slot_minutes"],
                weeks=data["weeks"],
                valid_from=data["valid_from"],
                ongoing=data["ongoing"],
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _pattern_message(result))
            return redirect("calendars:availability")
    return _page(request, status=400, pattern_form=form)


def _pattern_message(result: services.PatternsResult) -> str:
    made = f"{result.created} slot{'' if result.created == 1 else 's'} created"
    if not result.skipped:
        return f"Weekly availability added: {made}."
    skipped = (
        f"{result.skipped} skipped because "
        f"{'it overlaps' if result.skipped == 1 else 'they overlap'} slots you already have"
    )
    return f"Weekly availability added: {made}, {skipped}."


@login_required
@require_POST
def slot_remove(request, pk: int):
    """Remove one open slot (another coach's or an unknown slot is a 404)."""
    if refusal := _coach_only(request):
        return refusal
    slot = selectors.coach_slot(coach=request.user, pk=pk)
    if slot is None:
        raise Http404("No such slot.")
    try:
        services.slot_delete(slot=slot, coach=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Slot removed: {_local(slot.start)}.")
    return redirect("calendars:availability")


@login_required
@require_POST
def pattern_stop(request, pk: int):
    """Stop a weekly pattern: its open future slots go away, taken ones stay."""
    if refusal := _coach_only(request):
        return refusal
    pattern = selectors.coach_pattern(coach=request.user, pk=pk)
    if pattern is None:
        raise Http404("No such pattern.")
    try:
        removed = services.availability_pattern_delete(pattern=pattern, coach=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Weekly pattern stopped; {removed} open slot{'' if removed == 1 else 's'} removed. "
            "Requested and booked times stay.",
        )
    return redirect("calendars:availability")
