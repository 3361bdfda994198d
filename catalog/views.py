"""The catalog: the coaches directory, a coach's page, buying a package, a coach's offerings.

Thin views: reads through `catalog.selectors`, every write through one service in
`catalog.services` (buying: `sessions_app.services.package_purchase`). A refusal
(`DomainError`) is shown on the page and changes nothing.

Buying acts once: the confirmation page carries a signed one-time token (user, offering, nonce,
valid for an hour). `package_purchase` stores the nonce on the package in the purchase's own
transaction (a unique column), so a double click, a reload or the back button finds the package
already bought instead of buying a second one, across processes and servers; a purchase that
fails stores nothing, so the same page can be submitted again.

A fresh page (a new token) for an offering the student still has unbooked sessions of, or an
unpaid package of, asks for "Yes, buy another package" first; without it the POST shows the
page again with the warning and buys nothing. So Back, reload and Buy never buys a second
package silently, whether the browser resends the old page or fetches a new one.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from catalog import selectors, services
from catalog.forms import OfferingForm, PurchaseForm, purchase_token_issue
from core.errors import DomainError
from core.guards import coach_required
from refunds import selectors as refund_selectors
from refunds.gateways import get_gateway
from refunds.models import PaymentState
from sessions_app import selectors as sessions_selectors
from sessions_app import services as sessions_services

COACHES_PER_PAGE = 20
OFFERINGS_PER_PAGE = 50


coach_only = coach_required(
    message="Offerings are for coaches. Become a coach on your profile page first.",
    redirect_to="accounts:profile",
)


# --- the directory and buying --------------------------------------------------------------


@login_required
@require_GET
def coaches(request):
    """Coaches with something on sale, with their active offerings."""
    page = Paginator(selectors.coaches_directory(), COACHES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "catalog/coaches.html", {"coaches": page})


@login_required
@require_GET
def coach_detail(request, coach_id: int):
    """A coach's headline, bio and active offerings, each with its next free times (in the
    viewer's timezone) and Buy."""
    coach = selectors.coach_page(coach_id=coach_id, viewer=request.user)
    if coach is None:
        raise Http404("No such coach.")
    selectors.offerings_price_facts(coach.active_offerings)
    context = {
        "coach": coach,
        "can_buy": coach.pk != request.user.pk,
        "free_weeks": selectors.FREE_TIMES_WEEKS,
        "policy": selectors.coach_booking_policy(coach=coach),
    }
    return render(request, "catalog/coach_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def offering_buy(request, pk: int):
    """GET: what is bought and how it is paid. POST: buy it, once, and go to My sessions."""
    offering = selectors.offering_for_sale(pk=pk)
    if offering is None:
        raise Http404("This offering is not on sale.")
    own = offering.coach_id == request.user.pk
    unused = (
        sessions_selectors.student_unused_credits(student=request.user, offering=offering)
        if not own
        else None
    )
    if request.method == "POST" and not own:
        form = PurchaseForm(request.POST, user=request.user, offering=offering, unused=unused)
        if not form.is_valid():
            if "again" in form.errors and "token" not in form.errors:
                # Nothing is bought: the page again, with the warning and the checkbox.
                return _buy_page(request, offering, unused=unused, form=form, status=400)
            messages.error(request, " ".join(form.errors.get("token", ["Please confirm again."])))
            return redirect("catalog:offering_buy", pk=offering.pk)
        try:
            package = sessions_services.package_purchase(
                student=request.user, offering=offering, purchase_token=form.nonce
            )
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("catalog:coach_detail", coach_id=offering.coach_id)
        if package.already_purchased:
            payment = refund_selectors.package_payment(package=package)
            if payment.state != PaymentState.DONE:
                messages.info(request, "This package is already bought and waits for its payment.")
                return redirect("payments:pay", pk=payment.pk)
            messages.info(
                request,
                f"You already bought “{package.title}” from this page, so it was bought only "
                "once. Its sessions are below.",
            )
            return redirect("sessions:my_sessions")
        payment = refund_selectors.package_payment(package=package)
        if payment.state != PaymentState.DONE:
            # A card processor: the package waits for its payment, made on the next page.
            return redirect("payments:pay", pk=payment.pk)
        messages.success(
            request,
            f"You bought “{package.title}”: {package.session_count} "
            f"session{'' if package.session_count == 1 else 's'} ready to book. "
            f"You'll settle the payment with {offering.coach.name} directly.",
        )
        return redirect("sessions:my_sessions")
    return _buy_page(request, offering, unused=unused, own=own)


def _buy_page(request, offering, *, unused, own=False, form=None, status=None):
    """The Buy confirmation page: terms, per-session price, the policy and a fresh one-time
    token (a re-shown page gets a new one: the old one was never spent)."""
    fresh = PurchaseForm(
        initial={"token": purchase_token_issue(user=request.user, offering=offering)},
        user=request.user,
        offering=offering,
        unused=unused,
    )
    context = {
        "offering": selectors.offering_with_price_facts(offering=offering),
        "own": own,
        "card_payment": getattr(get_gateway(), "takes_cards", False),
        "form": fresh,
        "unused": unused,
        "again_error": " ".join(form.errors.get("again", [])) if form is not None else "",
        "policy": selectors.coach_booking_policy(coach=offering.coach),
    }
    status = status or (403 if own else 200)
    return render(request, "catalog/buy_confirm.html", context, status=status)


# --- a coach's own offerings ------------------------------------------------------------------


@login_required
@require_GET
@coach_only
def offerings(request):
    """The coach's offerings, on sale first, with edit and deactivate/reactivate."""
    page = Paginator(selectors.coach_offerings(coach=request.user), OFFERINGS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "catalog/offerings.html", {"offerings": page})


@login_required
@require_http_methods(["GET", "POST"])
@coach_only
def offering_create(request):
    """A new offering; bad input shows the form again and creates nothing."""
    form = OfferingForm(_posted(request), initial={"currency": "USD"})
    if request.method == "POST" and form.is_valid():
        try:
            offering = services.offering_create(coach=request.user, **form.terms())
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"“{offering.title}” is on sale.")
            return redirect("catalog:offerings")
    status = 400 if request.method == "POST" else 200
    return render(request, "catalog/offering_form.html", {"form": form}, status=status)


def _posted(request):
    return request.POST if request.method == "POST" else None


def _own_offering(request, pk: int):
    offering = selectors.coach_offering(coach=request.user, pk=pk)
    if offering is None:
        raise Http404("No such offering.")
    return offering


@login_required
@require_http_methods(["GET", "POST"])
@coach_only
def offering_edit(request, pk: int):
    """Change an offering for future buyers; packages already bought keep their terms."""
    offering = _own_offering(request, pk)
    form = OfferingForm.for_offering(offering, data=_posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            offering = services.offering_update(
                offering=offering, coach=request.user, **form.terms()
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"“{offering.title}” was updated.")
            return redirect("catalog:offerings")
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "offering": offering}
    return render(request, "catalog/offering_form.html", context, status=status)


@login_required
@require_POST
@coach_only
def offering_set_active(request, pk: int):
    """Take an offering off sale (`active=0`) or put it back on sale (`active=1`)."""
    offering = _own_offering(request, pk)
    choice = request.POST.get("active")
    if choice not in ("0", "1"):
        messages.error(request, "Choose whether the offering is on sale.")
        return redirect("catalog:offerings")
    try:
        offering = services.offering_set_active(
            offering=offering, coach=request.user, is_active=choice == "1"
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        if offering.is_active:
            messages.success(request, f"“{offering.title}” is on sale again.")
        else:
            messages.success(
                request,
                f"“{offering.title}” is off sale. Packages already bought are not affected.",
            )
    return redirect("catalog:offerings")
