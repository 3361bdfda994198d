"""The profile page: display name and timezone for everyone, becoming a coach, and the coach
profile (headline, bio and session windows) for coaches. Every change goes through one service in
`accounts.services`; bad input is shown on the page and changes nothing."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts import selectors, services
from accounts.forms import CoachProfileForm, ProfileForm
from core.errors import DomainError


def _profile_form(user, data=None) -> ProfileForm:
    initial = {"display_name": user.display_name, "timezone": user.timezone}
    return ProfileForm(data=data, initial=initial, current_timezone=user.timezone, prefix="me")


def _page(request, *, status: int = 200, profile_form=None, coach_form=None):
    user = request.user
    if user.is_coach and coach_form is None:
        coach_form = CoachProfileForm.for_profile(user.coach_profile)
    context = {"profile_form": profile_form or _profile_form(user), "coach_form": coach_form}
    return render(request, "accounts/profile.html", context, status=status)


@login_required
@require_GET
def profile(request):
    return _page(request)


@login_required
@require_POST
def profile_update(request):
    """Save the display name and timezone."""
    user = request.user
    form = _profile_form(user, data=request.POST)
    if form.is_valid():
        try:
            services.user_update_profile(
                user=user,
                display_name=form.cleaned_data["display_name"],
                timezone=form.cleaned_data["timezone"],
            )
        except ValidationError as exc:
            user.refresh_from_db(fields=["display_name", "timezone"])  # undo the unsaved change
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Profile saved. Times are shown in {user.timezone}.")
            return redirect("accounts:profile")
    return _page(request, status=400, profile_form=form)


@login_required
@require_POST
def coach_become(request):
    """Make the user a coach (safe to submit twice)."""
    if request.user.is_coach:
        messages.info(request, "You are already a coach.")
        return redirect("accounts:profile")
    services.coach_profile_create(user=request.user)
    messages.success(
        request,
        "You are a coach now. Fill in your coach profile, then add your availability and an "
        "offering so students can find you.",
    )
    return redirect("accounts:profile")


@login_required
@require_POST
def coach_update(request):
    """Save the coach profile: headline, bio, and the request, reschedule and notice windows."""
    if not request.user.is_coach:
        messages.info(request, "Only coaches have a coach profile. Become a coach first.")
        return redirect("accounts:profile")
    form = CoachProfileForm.for_profile(request.user.coach_profile, data=request.POST)
    if form.is_valid():
        try:
            services.coach_profile_update(user=request.user, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Coach profile saved.")
            return redirect("accounts:profile")
    return _page(request, status=400, coach_form=form)


@login_required
@require_GET
def get_started(request):
    """A new coach's checklist (profile, weekly hours, first offering, calendar, booking link),
    each step linking to where it is done; it stays in the navigation until all are done."""
    if not request.user.is_coach:
        messages.info(request, "Get started is for coaches. Become a coach on your profile.")
        return redirect("accounts:profile")
    checklist = selectors.coach_get_started(coach=request.user, site_url=settings.SITE_URL)
    return render(request, "accounts/get_started.html", {"checklist": checklist})
