"""Paying for a package by card, and the processor's webhook.

The payment page (`pay`) shows what is paid and takes the card with Stripe.js: the card element
makes a token, which the page posts to `pay_card`; that confirms the PaymentIntent on the
server and answers JSON. When the bank asks for 3-D Secure the page completes it with
`confirmCardPayment` and then opens `pay_return`, which asks Stripe for the outcome, whichever
of it and the webhook comes first (the credits are created once either way).
"""

import json
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from core.errors import DomainError
from core.transactions import on_commit
from refunds import selectors, services
from refunds.gateways import GatewayUnavailable, get_gateway
from refunds.models import PaymentState

logger = logging.getLogger(__name__)

# A Stripe.js token id ("tok_" and 24 or so characters); anything longer is refused unread.
MAX_CARD_TOKEN_LENGTH = 255
# Stripe's events are a few kilobytes; a larger body is not one of them.
MAX_WEBHOOK_BYTES = 256 * 1024
UNREACHABLE = (
    "The card processor cannot be reached just now. Nothing was charged; try again in a minute."
)
# After a card was sent the outcome is unknown: the return page and the webhook will tell.
CARD_UNREACHABLE = (
    "The card processor did not answer in time. Reload this page in a minute: if your payment "
    "went through your sessions are ready, otherwise you can try again (nothing is charged twice)."
)


def _own_payment(request, pk: int):
    payment = selectors.payment_for_student(student=request.user, pk=pk)
    if payment is None:
        raise Http404("No such payment.")
    return payment


def _paid_message(request, payment) -> None:
    package = payment.package
    messages.success(
        request,
        f"Payment received for “{package.title}”: {package.session_count} "
        f"session{'' if package.session_count == 1 else 's'} ready to book.",
    )


@login_required
@require_GET
def pay(request, pk: int):
    """The payment page of one awaiting package: what is paid, and the card form."""
    payment = _own_payment(request, pk)
    if payment.state == PaymentState.DONE:
        return redirect("sessions:my_sessions")
    intent, unavailable = None, False
    try:
        intent = services.payment_prepare(payment=payment)
    except GatewayUnavailable:
        logger.warning("payment page %s: the processor is unreachable", payment.pk, exc_info=True)
        unavailable = True
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("sessions:my_sessions")
    if intent is None and not unavailable:  # it turned out paid
        payment.refresh_from_db()
        _paid_message(request, payment)
        return redirect("sessions:my_sessions")
    payment.refresh_from_db()
    context = {
        "payment": payment,
        "package": payment.package,
        "unavailable": unavailable,
        "stripe_js_url": settings.STRIPE_JS_URL,
        "stripe_publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "card_url": reverse("payments:pay_card", args=[payment.pk]),
        "return_url": reverse("payments:pay_return", args=[payment.pk]),
    }
    return render(request, "refunds/pay.html", context, status=503 if unavailable else 200)


@login_required
@require_POST
def pay_card(request, pk: int):
    """Pay with the posted card token; JSON: {state, message, client_secret, next}."""
    payment = _own_payment(request, pk)
    token = request.POST.get("card_token", "")
    if not token or len(token) > MAX_CARD_TOKEN_LENGTH or not token.isascii():
        return JsonResponse({"state": "error", "message": "Enter your card details."}, status=400)
    try:
        intent = services.payment_pay_with_card(payment=payment, card_token=token)
    except GatewayUnavailable:
        logger.warning("card payment %s: the processor is unreachable", payment.pk, exc_info=True)
        return JsonResponse({"state": "error", "message": CARD_UNREACHABLE}, status=503)
    except DomainError as exc:
        return JsonResponse({"state": "error", "message": exc.message}, status=400)
    return_url = reverse("payments:pay_return", args=[payment.pk])
    if intent.state == PaymentState.DONE:
        return JsonResponse({"state": "paid", "next": return_url})
    if intent.state == PaymentState.FAILED:
        return JsonResponse(
            {
                "state": "failed",
                "message": f"{intent.failure_reason} Nothing was charged. Try another card.",
            }
        )
    if intent.status == "requires_action":
        # The bank asks the student to authenticate (3-D Secure): the page does it.
        return JsonResponse(
            {"state": "action", "client_secret": intent.client_secret, "next": return_url}
        )
    return JsonResponse({"state": "pending", "next": return_url})


@login_required
@require_GET
def pay_return(request, pk: int):
    """Where the page goes after the card step: ask the processor, say what happened."""
    payment = _own_payment(request, pk)
    try:
        payment = services.payment_refresh(payment=payment)
    except GatewayUnavailable:
        messages.warning(
            request,
            "We could not check your payment with the card processor just now. If it went "
            "through, your sessions appear here within a few minutes.",
        )
        return redirect("sessions:my_sessions")
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("sessions:my_sessions")
    if payment.state == PaymentState.DONE:
        _paid_message(request, payment)
        return redirect("sessions:my_sessions")
    if payment.state == PaymentState.FAILED:
        messages.error(
            request, f"Your payment did not go through: {payment.failure_reason} Try again."
        )
        return redirect("payments:pay", pk=payment.pk)
    messages.info(
        request,
        "Your payment is not complete yet. Finish it below; nothing is charged twice.",
    )
    return redirect("payments:pay", pk=payment.pk)


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """Stripe's events: signature checked, each event id stored once, the work queued.

    Anything unsigned, signed with another secret, tampered with or older than the tolerance
    is a 400 and changes nothing. A known event id (a replay, a re-send) is acknowledged and
    not processed again; an event of a type Coachbook does not use is acknowledged too.
    """
    gateway = get_gateway("stripe")
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > MAX_WEBHOOK_BYTES:
        return HttpResponse("Payload too large.", status=413)
    try:
        info = gateway.event_verify(request.body, request.headers.get("Stripe-Signature", ""))
    except (ValueError, json.JSONDecodeError) as exc:
        logger.warning("stripe webhook refused: %s", exc)
        return HttpResponse(f"Refused: {exc}", status=400, content_type="text/plain")
    event = services.processor_event_record(gateway=gateway.name, info=info)
    if event is None:
        return HttpResponse("Already received.", content_type="text/plain")
    from refunds.tasks import process_processor_event  # tasks import the services

    event_pk = event.pk
    on_commit(lambda: process_processor_event.delay(event_id=event_pk))
    return HttpResponse("Received.", content_type="text/plain")
