"""The coach's policy page: the form, and a plain-language preview of what it means."""

from datetime import datetime, time, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from catalog.models import Offering
from core.errors import DomainError
from core.guards import coach_required
from policies import services
from policies.forms import PolicyForm
from policies.models import CancellationPolicy
from policies.rules import policy_preview
from policies.selectors import policy_for_coach
from sessions_app.services import split_price

PREVIEW_NAME = "Jamie"
PREVIEW_SHARE_CENTS = 5500  # without an offering: a $55 session


def _preview_session(coach) -> tuple[datetime, int, str]:
    """The example the preview cancels: next week's Wednesday at 12:00 in the coach's zone,
    priced as one session of the coach's first active offering."""
    zone = coach.tzinfo
    today = timezone.localdate(timezone=zone)
    wednesday = today + timedelta(days=(2 - today.weekday()) % 7 + 7)
    start = datetime.combine(wednesday, time(12, 0), tzinfo=zone)
    offering = Offering.objects.filter(coach=coach, is_active=True).order_by("price_cents").first()
    if offering is None:
        return start, PREVIEW_SHARE_CENTS, "USD"
    return start, split_price(offering.price_cents, offering.session_count)[0], offering.currency


def _preview(coach, policy: CancellationPolicy) -> dict:
    start, share, currency = _preview_session(coach)
    return {
        "preview_start": start,
        "preview_name": PREVIEW_NAME,
        "preview_lines": policy_preview(
            policy, name=PREVIEW_NAME, start=start, share_cents=share, currency=currency
        ),
    }


@login_required
@require_http_methods(["GET", "POST"])
@coach_required(
    message="Cancellation policies are for coaches. Become a coach on your profile first.",
    redirect_to="accounts:profile",
)
def edit(request):
    """Edit the policy; "Preview" shows what the typed values mean without saving them."""
    policy = policy_for_coach(coach=request.user)
    form = PolicyForm(request.POST or None, instance=policy)
    shown = policy
    if request.method == "POST" and form.is_valid():
        if "preview" in request.POST:
            shown = form.instance  # the typed values, not saved
        else:
            try:
                services.policy_update(
                    coach=request.user,
                    **{name: form.cleaned_data[name] for name in services.EDITABLE_FIELDS},
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(
                    request, "Policy saved: it applies to every cancellation from now on."
                )
                return redirect("policies:edit")
    elif request.method == "POST":
        shown = None
    context = {"form": form, "policy": shown, "saved": policy.pk is not None}
    if shown is not None:
        context.update(_preview(request.user, shown))
    return render(request, "policies/edit.html", context)
