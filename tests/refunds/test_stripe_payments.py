"""Card payments through Stripe, against a real localstripe server driven by the real SDK.

A package bought with the `stripe` gateway waits for its payment: its sessions (the credits)
appear only once Stripe says the PaymentIntent succeeded, exactly once whoever learns of it
first (the card call itself, the return page, a webhook or the reconciliation sweep). A
refused or abandoned attempt is replaced by a new PaymentIntent (the old one is canceled on
the server). The views answer the payment page's card form in JSON and say what happened.
"""

import logging
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from notifications.models import Delivery, DeliveryKind
from refunds import services, tasks
from refunds.gateways import GatewayUnavailable, StripeGateway, get_gateway
from refunds.models import Payment, PaymentState, ProcessorEvent
from refunds.services import PaymentNotPossible
from sessions_app.models import Session
from tests.conftest import messages_of
from tests.factories import OfferingFactory, StudentFactory, make_card_package
from tests.stripe_support import (
    CARD_3DS,
    CARD_DECLINED,
    CARD_OK,
    PUBLISHABLE_KEY,
    event_body,
    free_port,
    signed_headers,
)

pytestmark = pytest.mark.django_db

# A fixed instant, well inside any booking horizon; no test depends on the hour it runs.
NOW = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)
DECLINED_REASON = "Your card was declined."
AUTH_FAILED_REASON = "The provided PaymentMethod has failed authentication."
WEBHOOK = reverse("payments:stripe_webhook")


@pytest.fixture(autouse=True)
def _stripe(stripe_settings):
    return stripe_settings


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def awaiting(localstripe, student=None, **offering_fields):
    """A package bought with the Stripe gateway and not paid yet (no PaymentIntent yet)."""
    fields = {"session_count": 3, "price_cents": 30000, "title": "Three strong sessions"}
    fields.update(offering_fields)
    return make_card_package(localstripe, card="", student=student, **fields)


def server_intent(localstripe, intent_id: str) -> dict:
    return localstripe.api("GET", f"/v1/payment_intents/{intent_id}")


def credits(package) -> list[int]:
    return list(Session.objects.filter(package=package).order_by("number").values_list("pk"))


def receipts(package) -> int:
    return Delivery.objects.filter(
        kind=DeliveryKind.PURCHASE_RECEIPT, recipient=package.student
    ).count()


def sold_notices(package) -> int:
    return Delivery.objects.filter(kind=DeliveryKind.PACKAGE_SOLD, recipient=package.coach).count()


def pay(localstripe, payment, card: str):
    return services.payment_pay_with_card(payment=payment, card_token=localstripe.card_token(card))


def fresh(payment) -> Payment:
    return Payment.objects.get(pk=payment.pk)


def pay_url(payment) -> str:
    return reverse("payments:pay", args=[payment.pk])


def card_url(payment) -> str:
    return reverse("payments:pay_card", args=[payment.pk])


def return_url(payment) -> str:
    return reverse("payments:pay_return", args=[payment.pk])


def authenticated_on_server(localstripe, payment, *, success: bool = True):
    """A 3-D Secure payment the student completed in the page: paid (or refused) on the server,
    while Coachbook has not heard of it yet."""
    intent = pay(localstripe, payment, CARD_3DS)
    assert (intent.status, intent.state) == ("requires_action", PaymentState.CREATED)
    answer = localstripe.authenticate(intent.id, intent.client_secret, success=success)
    assert answer["status"] == ("succeeded" if success else "requires_payment_method")
    return intent


# --- awaiting payment: no credits, one PaymentIntent --------------------------------------------


def test_a_card_purchase_awaits_payment_with_no_credits_and_nothing_at_stripe_yet(localstripe):
    package = awaiting(localstripe)
    payment = package.payment

    assert (payment.gateway, payment.state, payment.reference) == ("stripe", "CREATED", "")
    assert (payment.amount_cents, payment.currency, payment.attempts) == (30000, "USD", 0)
    assert payment.paid_at is None
    assert credits(package) == []
    assert receipts(package) == 0


def test_the_payment_page_makes_one_payment_intent_for_the_price_however_often_it_opens(
    localstripe,
):
    package = awaiting(localstripe)

    intent = services.payment_prepare(payment=package.payment)
    again = services.payment_prepare(payment=package.payment)

    payment = fresh(package.payment)
    assert intent.id.startswith("pi_") and again.id == intent.id
    assert (payment.reference, payment.attempts, payment.state) == (intent.id, 1, "CREATED")
    assert intent.client_secret.startswith(f"{intent.id}_secret_")
    on_server = server_intent(localstripe, intent.id)
    assert (on_server["amount"], on_server["currency"], on_server["status"]) == (
        30000,
        "usd",
        "requires_payment_method",
    )
    assert on_server["metadata"] == {
        "coachbook_payment": str(payment.pk),
        "package": str(package.pk),
    }
    assert credits(package) == []


def test_a_package_paid_outside_stripe_cannot_be_paid_by_card(localstripe, settings):
    settings.PAYMENT_GATEWAY = "manual"
    package = make_card_package(localstripe, card="")  # the manual gateway: paid at once

    with pytest.raises(PaymentNotPossible):
        services.payment_prepare(payment=package.payment)
    with pytest.raises(PaymentNotPossible):
        pay(localstripe, package.payment, CARD_OK)


# --- paid: credits exactly once -----------------------------------------------------------------


def test_a_good_card_pays_and_only_then_creates_the_credits_and_the_receipt(localstripe, frozen):
    package = awaiting(localstripe, price_cents=10000)
    services.payment_prepare(payment=package.payment)
    assert credits(package) == [] and receipts(package) == 0

    intent = pay(localstripe, package.payment, CARD_OK)

    payment = fresh(package.payment)
    assert (intent.state, intent.status, intent.id) == ("DONE", "succeeded", payment.reference)
    assert (payment.state, payment.paid_at, payment.attempts) == ("DONE", NOW, 1)
    assert payment.failure_reason == ""
    sessions = Session.objects.filter(package=package).order_by("number")
    # 100.00 over three sessions: the remainder cent goes to the first.
    assert [s.price_share_cents for s in sessions] == [3334, 3333, 3333]
    assert {s.status for s in sessions} == {"UNSCHEDULED"}
    assert (receipts(package), sold_notices(package)) == (1, 1)
    assert server_intent(localstripe, intent.id)["status"] == "succeeded"
    summary = StripeGateway().charge_summary(payment)
    assert (summary.paid_cents, summary.refunded_cents, summary.currency) == (10000, 0, "USD")


def test_paying_again_once_paid_charges_nothing_and_creates_nothing(localstripe):
    package = make_card_package(localstripe)
    payment = fresh(package.payment)
    before = credits(package)
    charge = server_intent(localstripe, payment.reference)["latest_charge"]

    again = pay(localstripe, payment, CARD_OK)

    assert (again.id, again.state) == (payment.reference, "DONE")
    after = fresh(payment)
    assert (after.reference, after.attempts) == (payment.reference, 1)
    assert credits(package) == before and len(before) == 3
    assert receipts(package) == 1
    # The same single charge: the PaymentIntent was not confirmed again.
    assert server_intent(localstripe, payment.reference)["latest_charge"] == charge
    assert localstripe.api("GET", f"/v1/charges/{charge['id']}")["amount"] == 30000


def test_return_page_then_webhook_then_more_refreshes_create_the_credits_once(
    localstripe, student, student_client, celery_eager, django_capture_on_commit_callbacks
):
    package = awaiting(localstripe, student=student)
    services.payment_prepare(payment=package.payment)
    intent = authenticated_on_server(localstripe, package.payment)
    # Paid on the server; Coachbook has not heard yet, so there are no credits.
    assert fresh(package.payment).state == "CREATED" and credits(package) == []

    page = student_client.get(return_url(package.payment))

    assert page.status_code == 302 and page.url == reverse("sessions:my_sessions")
    assert messages_of(page) == [
        "Payment received for “Three strong sessions”: 3 sessions ready to book."
    ]
    first = credits(package)
    assert len(first) == 3 and receipts(package) == 1

    body = event_body("evt_paid_late", "payment_intent.succeeded", {"id": intent.id})
    with django_capture_on_commit_callbacks(execute=True):
        hook = Client().post(WEBHOOK, body, content_type="application/json", **signed_headers(body))
    assert hook.status_code == 200
    assert ProcessorEvent.objects.get(event_id="evt_paid_late").processed_at is not None
    services.payment_refresh(payment=package.payment)
    services.payment_refresh(payment=fresh(package.payment))

    assert credits(package) == first
    assert (receipts(package), sold_notices(package)) == (1, 1)


def test_webhook_first_then_the_return_page_create_the_credits_once(
    localstripe, student, student_client
):
    package = awaiting(localstripe, student=student)
    services.payment_prepare(payment=package.payment)
    intent = authenticated_on_server(localstripe, package.payment)

    event = ProcessorEvent.objects.create(
        gateway="stripe", event_id="evt_first", type="payment_intent.succeeded", object_id=intent.id
    )
    outcome = services.processor_event_process(event=event)
    assert outcome == f"payment {package.payment.pk} DONE"
    first = credits(package)
    assert len(first) == 3

    page = student_client.get(return_url(package.payment))

    assert page.url == reverse("sessions:my_sessions")
    assert messages_of(page)[0].startswith("Payment received for “Three strong sessions”")
    assert credits(package) == first and receipts(package) == 1


def test_two_stale_copies_learning_of_the_same_success_create_the_credits_once(localstripe):
    """The return page and a webhook each loaded the payment while it still awaited Stripe."""
    package = awaiting(localstripe)
    services.payment_prepare(payment=package.payment)
    authenticated_on_server(localstripe, package.payment)
    return_page_copy, webhook_copy = fresh(package.payment), fresh(package.payment)
    assert return_page_copy.state == webhook_copy.state == "CREATED"

    with time_machine.travel(NOW, tick=False):
        assert services.payment_refresh(payment=return_page_copy).state == "DONE"
    with time_machine.travel(NOW + timedelta(minutes=1), tick=False):
        assert services.payment_refresh(payment=webhook_copy).state == "DONE"

    assert fresh(package.payment).paid_at == NOW  # the second learned nothing new
    assert len(credits(package)) == 3
    assert (receipts(package), sold_notices(package)) == (1, 1)


def test_stripe_reporting_another_amount_leaves_the_package_awaiting_payment(localstripe, caplog):
    package = awaiting(localstripe)
    services.payment_prepare(payment=package.payment)
    gateway = StripeGateway()
    # A PaymentIntent of 1.00 (not the package's 300.00), paid on the server.
    other = gateway._client().v1.payment_intents.create(
        params={"amount": 100, "currency": "usd", "payment_method_types": ["card"]}
    )
    paid = gateway.intent_pay_with_card(other.id, card_token=localstripe.card_token(CARD_OK))
    assert paid.state == "DONE"
    Payment.objects.filter(pk=package.payment.pk).update(reference=other.id)

    with caplog.at_level(logging.ERROR, logger="refunds.services"):
        services.payment_refresh(payment=fresh(package.payment))

    assert fresh(package.payment).state == "CREATED"
    assert credits(package) == [] and receipts(package) == 0
    assert "the processor received 100, not 30000" in caplog.text


# --- declined: no credits, a retry is a new PaymentIntent --------------------------------------


def test_a_declined_card_fails_with_its_reason_and_creates_nothing(localstripe):
    package = awaiting(localstripe)
    services.payment_prepare(payment=package.payment)

    intent = pay(localstripe, package.payment, CARD_DECLINED)

    payment = fresh(package.payment)
    assert (intent.state, intent.failure_reason) == ("FAILED", DECLINED_REASON)
    assert (payment.state, payment.failure_reason, payment.attempts) == (
        "FAILED",
        DECLINED_REASON,
        1,
    )
    assert payment.paid_at is None
    assert credits(package) == [] and receipts(package) == 0
    on_server = server_intent(localstripe, intent.id)
    assert on_server["status"] == "requires_payment_method"
    assert on_server["last_payment_error"]["code"] == "card_declined"
    # The return page (or a webhook) reading it again changes nothing.
    assert services.payment_refresh(payment=payment).state == "FAILED"
    assert credits(package) == []


def test_after_a_decline_a_good_card_pays_on_a_new_payment_intent_and_the_old_is_canceled(
    localstripe, frozen
):
    package = awaiting(localstripe)
    services.payment_prepare(payment=package.payment)
    declined = pay(localstripe, package.payment, CARD_DECLINED)

    paid = pay(localstripe, package.payment, CARD_OK)

    payment = fresh(package.payment)
    assert paid.id != declined.id and paid.state == "DONE"
    assert (payment.reference, payment.attempts, payment.state) == (paid.id, 2, "DONE")
    assert (payment.failure_reason, payment.paid_at) == ("", NOW)
    assert server_intent(localstripe, declined.id)["status"] == "canceled"
    assert server_intent(localstripe, paid.id)["status"] == "succeeded"
    assert len(credits(package)) == 3 and receipts(package) == 1
    # A late event about the old PaymentIntent is no longer this payment's.
    event = ProcessorEvent.objects.create(
        gateway="stripe", event_id="evt_old", type="payment_intent.canceled", object_id=declined.id
    )
    assert services.processor_event_process(event=event) == "no such payment"


def test_two_declines_then_success_take_three_payment_intents(localstripe):
    package = awaiting(localstripe)
    first = pay(localstripe, package.payment, CARD_DECLINED)
    second = pay(localstripe, package.payment, CARD_DECLINED)
    third = pay(localstripe, package.payment, CARD_OK)

    assert len({first.id, second.id, third.id}) == 3
    assert fresh(package.payment).attempts == 3
    assert [server_intent(localstripe, i.id)["status"] for i in (first, second, third)] == [
        "canceled",
        "canceled",
        "succeeded",
    ]
    assert len(credits(package)) == 3


def test_a_package_takes_no_more_cards_after_its_last_allowed_attempt(localstripe, monkeypatch):
    monkeypatch.setattr(services, "MAX_CARD_ATTEMPTS", 2)
    package = awaiting(localstripe)
    pay(localstripe, package.payment, CARD_DECLINED)
    last = pay(localstripe, package.payment, CARD_DECLINED)

    with pytest.raises(services.PaymentNotPossible, match="2 payment attempts, the most we allow"):
        pay(localstripe, package.payment, CARD_OK)

    payment = fresh(package.payment)
    assert (payment.attempts, payment.reference, payment.state) == (2, last.id, "FAILED")
    assert credits(package) == []


def test_an_attempt_stripe_will_not_cancel_is_never_replaced(localstripe, monkeypatch):
    """Another tab finished 3-D Secure and the first PaymentIntent is being paid: Stripe refuses
    to cancel it, so no second PaymentIntent is made (that would lose the payment or charge
    twice); the student is asked to wait."""
    from refunds.gateways import StripeGateway

    package = awaiting(localstripe)
    first = pay(localstripe, package.payment, CARD_3DS)
    assert first.status == "requires_action"
    monkeypatch.setattr(StripeGateway, "intent_cancel", lambda self, reference: None)

    with pytest.raises(services.PaymentNotPossible, match="still being processed"):
        pay(localstripe, package.payment, CARD_OK)

    payment = fresh(package.payment)
    assert (payment.reference, payment.attempts) == (first.id, 1)
    assert server_intent(localstripe, first.id)["status"] == "requires_action"


# --- 3-D Secure ---------------------------------------------------------------------------------


def test_a_3ds_card_asks_for_authentication_and_creates_nothing_until_then(localstripe):
    package = awaiting(localstripe)
    services.payment_prepare(payment=package.payment)

    intent = pay(localstripe, package.payment, CARD_3DS)

    payment = fresh(package.payment)
    assert (intent.status, intent.state, intent.id) == (
        "requires_action",
        "CREATED",
        payment.reference,
    )
    assert intent.client_secret == server_intent(localstripe, intent.id)["client_secret"]
    assert (payment.state, payment.failure_reason) == ("CREATED", "")
    assert credits(package) == []
    # The return page before the student authenticated: still awaiting, nothing created.
    assert services.payment_refresh(payment=payment).state == "CREATED"
    assert credits(package) == []


def test_a_3ds_card_authenticated_is_paid_on_refresh(localstripe, frozen):
    package = awaiting(localstripe)
    intent = authenticated_on_server(localstripe, package.payment, success=True)

    payment = services.payment_refresh(payment=fresh(package.payment))

    assert (payment.state, payment.reference, payment.paid_at) == ("DONE", intent.id, NOW)
    assert len(credits(package)) == 3 and receipts(package) == 1


def test_a_3ds_authentication_refused_is_not_paid_and_a_retry_pays_on_a_new_intent(localstripe):
    package = awaiting(localstripe)
    refused = authenticated_on_server(localstripe, package.payment, success=False)

    payment = services.payment_refresh(payment=fresh(package.payment))

    assert (payment.state, payment.failure_reason) == ("FAILED", AUTH_FAILED_REASON)
    assert credits(package) == []

    paid = pay(localstripe, payment, CARD_OK)

    payment = fresh(payment)
    assert paid.id != refused.id
    assert (payment.state, payment.attempts, payment.reference) == ("DONE", 2, paid.id)
    assert server_intent(localstripe, refused.id)["status"] == "canceled"
    assert len(credits(package)) == 3


def test_an_abandoned_3ds_step_is_canceled_when_the_student_tries_another_card(localstripe):
    package = awaiting(localstripe)
    abandoned = pay(localstripe, package.payment, CARD_3DS)

    paid = pay(localstripe, package.payment, CARD_OK)

    assert paid.id != abandoned.id and paid.state == "DONE"
    assert server_intent(localstripe, abandoned.id)["status"] == "canceled"
    assert fresh(package.payment).attempts == 2
    # The abandoned step can no longer be completed (and so never charges twice).
    answer = localstripe.authenticate(abandoned.id, abandoned.client_secret, success=True)
    assert "error" in answer
    assert server_intent(localstripe, abandoned.id)["status"] == "canceled"


# --- reconciliation of payments whose return page never ran ------------------------------------


def test_the_sweep_settles_a_payment_paid_on_the_server_whose_page_was_closed(localstripe):
    with time_machine.travel(NOW, tick=False):
        package = awaiting(localstripe)
        authenticated_on_server(localstripe, package.payment)
        too_young = services.payments_reconcile_awaiting(now=NOW + timedelta(minutes=4))
        assert too_young == 0 and credits(package) == []

    with time_machine.travel(NOW + timedelta(minutes=6), tick=False):
        paid = services.payments_reconcile_awaiting()

    assert paid == 1
    payment = fresh(package.payment)
    assert (payment.state, payment.paid_at) == ("DONE", NOW + timedelta(minutes=6))
    assert len(credits(package)) == 3 and receipts(package) == 1
    # Running it again finds nothing more to do.
    with time_machine.travel(NOW + timedelta(minutes=7), tick=False):
        assert services.payments_reconcile_awaiting() == 0
    assert len(credits(package)) == 3


def test_the_sweep_leaves_unpaid_and_week_old_payments_and_survives_an_outage(
    localstripe, settings
):
    with time_machine.travel(NOW - timedelta(days=8), tick=False):
        old = awaiting(localstripe)
        authenticated_on_server(localstripe, old.payment)  # paid, but far too long ago to sweep
    with time_machine.travel(NOW, tick=False):
        unpaid = awaiting(localstripe)
        services.payment_prepare(payment=unpaid.payment)
        paid = awaiting(localstripe)
        authenticated_on_server(localstripe, paid.payment)
        never_opened = awaiting(localstripe)  # no PaymentIntent: nothing to ask

    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        assert tasks.reconcile_awaiting_payments() == 1

    assert [fresh(p.payment).state for p in (old, unpaid, paid, never_opened)] == [
        "CREATED",
        "CREATED",
        "DONE",
        "CREATED",
    ]
    assert credits(unpaid) == [] and credits(old) == [] and len(credits(paid)) == 3

    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"
    with time_machine.travel(NOW + timedelta(minutes=20), tick=False):
        assert services.payments_reconcile_awaiting() == 0  # logged, not raised
    assert fresh(unpaid.payment).state == "CREATED"


def test_the_sweep_queues_stored_events_whose_task_never_ran(localstripe, celery_eager):
    with time_machine.travel(NOW, tick=False):
        package = awaiting(localstripe)
        intent = authenticated_on_server(localstripe, package.payment)
        event = ProcessorEvent.objects.create(
            gateway="stripe",
            event_id="evt_lost",
            type="payment_intent.succeeded",
            object_id=intent.id,
        )
    with time_machine.travel(NOW + timedelta(minutes=3), tick=False):
        tasks.reconcile_awaiting_payments()

    event.refresh_from_db()
    assert event.processed_at == NOW + timedelta(minutes=3)
    assert fresh(package.payment).state == "DONE" and len(credits(package)) == 3


# --- views: the payment page ---------------------------------------------------------------------


def test_the_payment_page_shows_the_package_stripe_js_and_the_publishable_key(
    localstripe, student, student_client
):
    package = awaiting(localstripe, student=student, price_cents=25000, session_count=5)

    page = student_client.get(pay_url(package.payment))

    assert page.status_code == 200
    html = page.content.decode()
    assert f'<script src="{localstripe.js_url}"></script>' in html
    assert f'data-stripe-key="{PUBLISHABLE_KEY}"' in html
    assert f'action="{card_url(package.payment)}"' in html
    assert f'data-return-url="{return_url(package.payment)}"' in html
    assert "Three strong sessions" in html and "$250.00" in html
    assert fresh(package.payment).reference.startswith("pi_")  # the page made its intent


def test_the_payment_page_is_only_for_its_student(localstripe, client):
    package = awaiting(localstripe)

    anonymous = client.get(pay_url(package.payment))
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous.url
    client.force_login(StudentFactory())
    assert client.get(pay_url(package.payment)).status_code == 404
    assert client.post(card_url(package.payment), {"card_token": "tok_x"}).status_code == 404
    assert client.get(return_url(package.payment)).status_code == 404
    client.force_login(package.coach)
    assert client.get(pay_url(package.payment)).status_code == 404
    # Nothing was asked of Stripe for them.
    assert fresh(package.payment).reference == ""


def test_the_payment_page_of_a_paid_package_goes_to_my_sessions(
    localstripe, student, student_client
):
    package = make_card_package(localstripe, student=student)

    page = student_client.get(pay_url(package.payment))

    assert page.status_code == 302 and page.url == reverse("sessions:my_sessions")


def test_the_payment_page_after_a_decline_says_why_and_offers_the_form_again(
    localstripe, student, student_client
):
    package = awaiting(localstripe, student=student)
    pay(localstripe, package.payment, CARD_DECLINED)

    html = student_client.get(pay_url(package.payment)).content.decode()

    assert f"Your last payment did not go through: {DECLINED_REASON}" in html
    assert "Payment failed" in html
    assert 'id="card-form"' in html


def test_pay_card_answers_paid_for_a_good_card(localstripe, student, student_client):
    package = awaiting(localstripe, student=student)
    student_client.get(pay_url(package.payment))

    answer = student_client.post(
        card_url(package.payment), {"card_token": localstripe.card_token(CARD_OK)}
    )

    assert answer.status_code == 200
    assert answer.json() == {"state": "paid", "next": return_url(package.payment)}
    assert fresh(package.payment).state == "DONE" and len(credits(package)) == 3


def test_pay_card_answers_failed_with_the_reason_for_a_declined_card(
    localstripe, student, student_client
):
    package = awaiting(localstripe, student=student)

    answer = student_client.post(
        card_url(package.payment), {"card_token": localstripe.card_token(CARD_DECLINED)}
    )

    assert answer.status_code == 200
    assert answer.json() == {
        "state": "failed",
        "message": f"{DECLINED_REASON} Nothing was charged. Try another card.",
    }
    assert fresh(package.payment).state == "FAILED" and credits(package) == []


def test_pay_card_answers_action_with_the_client_secret_for_a_3ds_card(
    localstripe, student, student_client
):
    package = awaiting(localstripe, student=student)

    answer = student_client.post(
        card_url(package.payment), {"card_token": localstripe.card_token(CARD_3DS)}
    )

    payment = fresh(package.payment)
    assert answer.status_code == 200
    assert answer.json() == {
        "state": "action",
        "client_secret": server_intent(localstripe, payment.reference)["client_secret"],
        "next": return_url(payment),
    }
    assert payment.state == "CREATED" and credits(package) == []


@pytest.mark.parametrize(
    "token",
    ["", "t" * 256, "tok_é"],
    ids=["empty", "too long", "not ascii"],
)
def test_pay_card_refuses_a_malformed_token_without_asking_stripe(
    localstripe, student, student_client, token
):
    package = awaiting(localstripe, student=student)

    answer = student_client.post(card_url(package.payment), {"card_token": token})

    assert answer.status_code == 400
    assert answer.json() == {"state": "error", "message": "Enter your card details."}
    assert fresh(package.payment).reference == ""  # Stripe was not asked


def test_pay_card_refuses_a_token_stripe_does_not_know_with_a_clear_message(
    localstripe, student, student_client
):
    package = awaiting(localstripe, student=student)

    answer = student_client.post(card_url(package.payment), {"card_token": "tok_unknown"})

    assert answer.status_code == 400
    assert answer.json() == {
        "state": "error",
        "message": "That card could not be read. Enter it again.",
    }
    payment = fresh(package.payment)
    assert payment.state == "CREATED" and credits(package) == []
    assert server_intent(localstripe, payment.reference)["status"] == "requires_payment_method"


def test_pay_card_takes_only_post(localstripe, student, student_client):
    package = awaiting(localstripe, student=student)

    assert student_client.get(card_url(package.payment)).status_code == 405


def test_the_card_form_needs_its_csrf_token(localstripe, student):
    package = awaiting(localstripe, student=student)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(student)

    answer = browser.post(card_url(package.payment), {"card_token": localstripe.card_token()})

    assert answer.status_code == 403
    assert fresh(package.payment).state == "CREATED"


# --- views: the return page ---------------------------------------------------------------------


def test_the_return_page_of_a_paid_card_says_so_and_goes_to_my_sessions(
    localstripe, student, student_client
):
    package = make_card_package(localstripe, student=student, session_count=1, title="One talk")

    page = student_client.get(return_url(package.payment))

    assert page.url == reverse("sessions:my_sessions")
    assert messages_of(page) == ["Payment received for “One talk”: 1 session ready to book."]


def test_the_return_page_of_a_refused_authentication_sends_back_to_pay_with_the_reason(
    localstripe, student, student_client
):
    package = awaiting(localstripe, student=student)
    authenticated_on_server(localstripe, package.payment, success=False)

    page = student_client.get(return_url(package.payment))

    assert page.url == pay_url(package.payment)
    assert messages_of(page) == [
        f"Your payment did not go through: {AUTH_FAILED_REASON} Try again."
    ]
    assert credits(package) == []


def test_the_return_page_before_authentication_says_the_payment_is_not_complete(
    localstripe, student, student_client
):
    package = awaiting(localstripe, student=student)
    pay(localstripe, package.payment, CARD_3DS)

    page = student_client.get(return_url(package.payment))

    assert page.url == pay_url(package.payment)
    assert messages_of(page) == [
        "Your payment is not complete yet. Finish it below; nothing is charged twice."
    ]


# --- views: buying with Stripe, and My sessions -------------------------------------------------


def test_buying_goes_to_the_payment_page_and_my_sessions_lists_it_awaiting_payment(
    localstripe, student, student_client
):
    offering = OfferingFactory(title="Five talks", session_count=5, price_cents=25000)
    buy = reverse("catalog:offering_buy", args=[offering.pk])
    confirm = student_client.get(buy)
    assert "By card on the next page, through Stripe." in confirm.content.decode()
    token = confirm.context["form"]["token"].value()

    bought = student_client.post(buy, {"token": token})

    payment = Payment.objects.get(package__offering=offering, package__student=student)
    assert bought.status_code == 302 and bought.url == pay_url(payment)
    assert (payment.gateway, payment.state) == ("stripe", "CREATED")
    assert payment.idempotency_key == f"purchase-{payment.package.purchase_token}"
    assert Session.objects.filter(package=payment.package).count() == 0

    # A double submission of the same confirmation buys once and goes to the same payment.
    twice = student_client.post(buy, {"token": token})
    assert twice.url == pay_url(payment)
    assert messages_of(twice) == ["This package is already bought and waits for its payment."]
    assert Payment.objects.filter(package__offering=offering).count() == 1

    mine = student_client.get(reverse("sessions:my_sessions")).content.decode()
    assert '<h2 id="payment-title">Awaiting payment</h2>' in mine
    assert f'href="{pay_url(payment)}">Pay now' in mine
    assert "Five talks" in mine and "$250.00" in mine
    assert Session.objects.filter(student=student).count() == 0


def test_my_sessions_offers_try_again_after_a_decline_and_drops_the_package_once_paid(
    localstripe, student, student_client
):
    package = awaiting(localstripe, student=student)
    pay(localstripe, package.payment, CARD_DECLINED)

    mine = student_client.get(reverse("sessions:my_sessions")).content.decode()
    assert f'href="{pay_url(package.payment)}">Try again' in mine
    assert f"Payment failed: {DECLINED_REASON}" in mine

    pay(localstripe, package.payment, CARD_OK)

    mine = student_client.get(reverse("sessions:my_sessions")).content.decode()
    assert "Awaiting payment" not in mine
    assert pay_url(package.payment) not in mine


# --- Stripe unreachable -------------------------------------------------------------------------


@pytest.fixture
def unreachable(settings):
    """Stripe's API address points at a closed loopback port."""
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"


def test_the_payment_page_says_stripe_cannot_be_reached_and_writes_nothing(
    localstripe, student, student_client, unreachable
):
    package = awaiting(localstripe, student=student)

    page = student_client.get(pay_url(package.payment))

    assert page.status_code == 503
    html = page.content.decode()
    assert "The card processor cannot be reached just now. Nothing was charged." in html
    assert 'id="card-form"' not in html and localstripe.js_url not in html
    payment = fresh(package.payment)
    assert (payment.state, payment.reference, payment.attempts) == ("CREATED", "", 0)


def test_pay_card_answers_503_when_stripe_cannot_be_reached(
    localstripe, student, student_client, settings
):
    package = awaiting(localstripe, student=student)
    services.payment_prepare(payment=package.payment)
    token = localstripe.card_token(CARD_OK)
    reference = fresh(package.payment).reference
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"

    answer = student_client.post(card_url(package.payment), {"card_token": token})

    assert answer.status_code == 503
    assert answer.json() == {
        "state": "error",
        "message": "The card processor did not answer in time. Reload this page in a minute: "
        "if your payment went through your sessions are ready, otherwise you can try again "
        "(nothing is charged twice).",
    }
    payment = fresh(package.payment)
    assert (payment.state, payment.reference, payment.attempts) == ("CREATED", reference, 1)
    assert server_intent(localstripe, reference)["status"] == "requires_payment_method"
    assert credits(package) == []


def test_pay_card_before_any_intent_with_stripe_unreachable_writes_nothing(
    localstripe, student, student_client, unreachable
):
    package = awaiting(localstripe, student=student)

    answer = student_client.post(card_url(package.payment), {"card_token": "tok_anything"})

    assert answer.status_code == 503 and answer.json()["state"] == "error"
    payment = fresh(package.payment)
    assert (payment.state, payment.reference, payment.attempts) == ("CREATED", "", 0)


def test_the_return_page_with_stripe_unreachable_says_the_sessions_will_appear(
    localstripe, student, student_client, settings
):
    package = awaiting(localstripe, student=student)
    authenticated_on_server(localstripe, package.payment)
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"

    page = student_client.get(return_url(package.payment))

    assert page.url == reverse("sessions:my_sessions")
    assert messages_of(page) == [
        "We could not check your payment with the card processor just now. If it went "
        "through, your sessions appear here within a few minutes."
    ]
    assert fresh(package.payment).state == "CREATED" and credits(package) == []


def test_the_gateway_raises_unavailable_for_every_call_when_stripe_cannot_be_reached(
    localstripe, unreachable
):
    package = awaiting(localstripe)
    gateway = get_gateway("stripe")

    with pytest.raises(GatewayUnavailable, match="Stripe could not be reached"):
        gateway.intent_create(package.payment, idempotency_key="k")
    with pytest.raises(GatewayUnavailable):
        services.payment_prepare(payment=package.payment)
    assert fresh(package.payment).attempts == 0


def test_a_wrong_secret_key_is_an_outage_not_a_refusal_shown_to_the_student(
    localstripe, student, student_client, settings
):
    settings.STRIPE_SECRET_KEY = "pk_not_a_secret_key"
    package = awaiting(localstripe, student=student)

    page = student_client.get(pay_url(package.payment))

    assert page.status_code == 503
    assert fresh(package.payment).reference == ""
