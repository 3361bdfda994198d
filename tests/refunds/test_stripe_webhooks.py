"""Stripe's webhook: only signed, recent events are stored, each once, and none is trusted.

Posted raw bytes as Stripe sends them, signed with `tests.stripe_support.signed_headers`. A
stored event is processed by re-reading its PaymentIntent (or Refund) from the localstripe
server, so a forged body changes nothing even when it is validly signed. The last test has
localstripe itself deliver the event to the running app (pytest-django's live server).
"""

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from refunds import services, tasks
from refunds.gateways import GatewayResult, StripeGateway
from refunds.models import Payment, PaymentState, ProcessorEvent, RefundState
from sessions_app import services as session_services
from sessions_app.models import Session
from tests.factories import make_card_package, next_free_start
from tests.stripe_support import CARD_3DS, CARD_OK, event_body, signed_headers

pytestmark = pytest.mark.django_db

NOW = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)
WEBHOOK = reverse("payments:stripe_webhook")


@pytest.fixture(autouse=True)
def _stripe(stripe_settings, celery_eager):
    return stripe_settings


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def processed(monkeypatch):
    """The outcome of each stored event the task processed, in order."""
    outcomes = []
    real = tasks.processor_event_process

    def spy(*, event):
        outcome = real(event=event)
        outcomes.append((event.event_id, outcome))
        return outcome

    monkeypatch.setattr(tasks, "processor_event_process", spy)
    return outcomes


def post(body: bytes, capture, headers: dict | None = None, **extra):
    """POST `body` as Stripe does (no CSRF token, which the webhook does not need), running
    what it queues on commit."""
    stripe_client = Client(enforce_csrf_checks=True)
    with capture(execute=True):
        return stripe_client.post(
            WEBHOOK,
            body,
            content_type="application/json",
            **(signed_headers(body) if headers is None else headers),
            **extra,
        )


def paid_on_server(localstripe):
    """A package whose PaymentIntent succeeded on the server (3-D Secure completed in the page)
    while Coachbook has not heard of it: still awaiting payment, no credits."""
    package = make_card_package(localstripe, card="")
    intent = services.payment_pay_with_card(
        payment=package.payment, card_token=localstripe.card_token(CARD_3DS)
    )
    localstripe.authenticate(intent.id, intent.client_secret, success=True)
    assert localstripe.api("GET", f"/v1/payment_intents/{intent.id}")["status"] == "succeeded"
    assert Payment.objects.get(pk=package.payment.pk).state == PaymentState.CREATED
    return package, intent.id


def unpaid_on_server(localstripe):
    """A package whose PaymentIntent exists on the server and was never paid."""
    package = make_card_package(localstripe, card="")
    intent = services.payment_prepare(payment=package.payment)
    return package, intent.id


def succeeded(event_id: str, intent_id: str, **obj) -> bytes:
    return event_body(
        event_id,
        "payment_intent.succeeded",
        {"id": intent_id, "object": "payment_intent", "status": "succeeded", **obj},
    )


def state_of(package) -> tuple[str, int]:
    payment = Payment.objects.get(pk=package.payment.pk)
    return payment.state, Session.objects.filter(package=package).count()


# --- a valid event -----------------------------------------------------------------------------


def test_a_signed_succeeded_event_marks_the_package_paid_from_stripes_own_answer(
    localstripe, frozen, django_capture_on_commit_callbacks, processed
):
    package, intent_id = paid_on_server(localstripe)

    response = post(succeeded("evt_paid", intent_id), django_capture_on_commit_callbacks)

    assert (response.status_code, response.content) == (200, b"Received.")
    event = ProcessorEvent.objects.get()
    assert (event.gateway, event.event_id, event.type, event.object_id) == (
        "stripe",
        "evt_paid",
        "payment_intent.succeeded",
        intent_id,
    )
    assert (event.received_at, event.processed_at) == (NOW, NOW)
    assert processed == [("evt_paid", f"payment {package.payment.pk} DONE")]
    assert state_of(package) == ("DONE", 3)
    assert Payment.objects.get(pk=package.payment.pk).paid_at == NOW


def test_a_signed_failed_event_records_the_reason_stripe_gives(
    localstripe, django_capture_on_commit_callbacks
):
    package = make_card_package(localstripe, card="")
    intent = services.payment_pay_with_card(
        payment=package.payment, card_token=localstripe.card_token(CARD_3DS)
    )
    localstripe.authenticate(intent.id, intent.client_secret, success=False)
    body = event_body(
        "evt_failed", "payment_intent.payment_failed", {"id": intent.id, "object": "payment_intent"}
    )

    assert post(body, django_capture_on_commit_callbacks).status_code == 200

    payment = Payment.objects.get(pk=package.payment.pk)
    assert (payment.state, payment.failure_reason) == (
        "FAILED",
        "The provided PaymentMethod has failed authentication.",
    )
    assert state_of(package) == ("FAILED", 0)


def test_the_webhook_needs_no_csrf_token_and_takes_only_post(
    localstripe, django_capture_on_commit_callbacks
):
    stripe_client = Client(enforce_csrf_checks=True)

    assert stripe_client.get(WEBHOOK).status_code == 405
    assert stripe_client.put(WEBHOOK, b"{}", content_type="application/json").status_code == 405
    assert ProcessorEvent.objects.count() == 0


# --- invalid: 400, nothing stored, nothing changed ---------------------------------------------


def _missing(body, now):
    return {}


def _wrong_secret(body, now):
    return signed_headers(body, secret="whsec_someone_else")


def _garbage(body, now):
    return {"HTTP_STRIPE_SIGNATURE": "nonsense"}


def _other_scheme(body, now):
    header = signed_headers(body)["HTTP_STRIPE_SIGNATURE"].replace("v1=", "v0=")
    return {"HTTP_STRIPE_SIGNATURE": header}


def _stale(body, now):
    from django.conf import settings

    return signed_headers(body, timestamp=now - settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS - 1)


@pytest.mark.parametrize(
    "headers",
    [_missing, _wrong_secret, _garbage, _other_scheme, _stale],
    ids=["missing", "wrong secret", "garbage header", "v0 scheme only", "stale timestamp"],
)
def test_an_event_without_a_valid_recent_signature_is_refused_and_changes_nothing(
    localstripe, frozen, django_capture_on_commit_callbacks, processed, headers
):
    package, intent_id = paid_on_server(localstripe)
    body = succeeded("evt_unsigned", intent_id)

    response = post(body, django_capture_on_commit_callbacks, headers(body, int(time.time())))

    assert response.status_code == 400
    assert response.content.startswith(b"Refused: ")
    assert ProcessorEvent.objects.count() == 0 and processed == []
    assert state_of(package) == ("CREATED", 0)


def test_a_tampered_body_is_refused(localstripe, django_capture_on_commit_callbacks):
    package, intent_id = paid_on_server(localstripe)
    _, other_intent = unpaid_on_server(localstripe)
    signed = succeeded("evt_genuine", other_intent)
    tampered = signed.replace(other_intent.encode(), intent_id.encode())
    assert tampered != signed and len(tampered) == len(signed)

    response = post(tampered, django_capture_on_commit_callbacks, signed_headers(signed))

    assert response.status_code == 400
    assert ProcessorEvent.objects.count() == 0
    assert state_of(package) == ("CREATED", 0)


def test_the_tolerance_setting_decides_how_old_a_signature_may_be(
    localstripe, frozen, django_capture_on_commit_callbacks, settings
):
    settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS = 60
    now = int(time.time())
    body = event_body("evt_ping", "customer.created", {"id": "cus_1", "object": "customer"})

    late = post(body, django_capture_on_commit_callbacks, signed_headers(body, timestamp=now - 61))
    in_time = post(
        body, django_capture_on_commit_callbacks, signed_headers(body, timestamp=now - 59)
    )

    assert (late.status_code, in_time.status_code) == (400, 200)
    assert list(ProcessorEvent.objects.values_list("event_id", flat=True)) == ["evt_ping"]


def test_without_a_webhook_secret_configured_every_event_is_refused(
    localstripe, django_capture_on_commit_callbacks, settings
):
    package, intent_id = paid_on_server(localstripe)
    body = succeeded("evt_any", intent_id)
    headers = signed_headers(body)
    settings.STRIPE_WEBHOOK_SECRET = ""

    response = post(body, django_capture_on_commit_callbacks, headers)

    assert response.status_code == 400
    assert ProcessorEvent.objects.count() == 0
    assert state_of(package) == ("CREATED", 0)


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"[]",
        b'"a string"',
        b"\xff\xfe\x00",
        b'{"object": "event", "type": "payment_intent.succeeded", "data": {}}',
        b'{"id": 42, "type": "payment_intent.succeeded"}',
    ],
    ids=["not json", "json array", "json string", "not utf-8", "no id", "id not a string"],
)
def test_a_validly_signed_body_that_is_not_an_event_is_refused(
    localstripe, django_capture_on_commit_callbacks, body
):
    headers = (
        signed_headers(body)
        if body != b"\xff\xfe\x00"
        else {"HTTP_STRIPE_SIGNATURE": f"t={int(time.time())},v1=00"}
    )

    response = post(body, django_capture_on_commit_callbacks, headers)

    assert response.status_code == 400
    assert ProcessorEvent.objects.count() == 0


def test_an_oversize_body_is_refused_before_it_is_read(
    localstripe, django_capture_on_commit_callbacks
):
    body = succeeded("evt_big", "pi_x", padding="x" * (256 * 1024))
    assert len(body) > 256 * 1024

    response = post(body, django_capture_on_commit_callbacks)

    assert response.status_code == 413
    assert ProcessorEvent.objects.count() == 0


# --- stored once, processed once ---------------------------------------------------------------


def test_a_replayed_event_is_stored_once_and_processed_once(
    localstripe, frozen, django_capture_on_commit_callbacks, processed
):
    package, intent_id = paid_on_server(localstripe)
    body = succeeded("evt_replayed", intent_id)
    headers = signed_headers(body)

    first = post(body, django_capture_on_commit_callbacks, headers)
    replay = post(body, django_capture_on_commit_callbacks, headers)
    frozen.shift(timedelta(minutes=1))
    resent = post(body, django_capture_on_commit_callbacks)  # Stripe's re-send: a new signature

    assert [r.status_code for r in (first, replay, resent)] == [200, 200, 200]
    assert (first.content, replay.content, resent.content) == (
        b"Received.",
        b"Already received.",
        b"Already received.",
    )
    assert ProcessorEvent.objects.filter(event_id="evt_replayed").count() == 1
    assert processed == [("evt_replayed", f"payment {package.payment.pk} DONE")]
    assert ProcessorEvent.objects.get().processed_at == NOW
    assert state_of(package) == ("DONE", 3)


def test_processing_a_stored_event_again_changes_nothing(localstripe, frozen):
    package, intent_id = paid_on_server(localstripe)
    event = ProcessorEvent.objects.create(
        gateway="stripe", event_id="evt_twice", type="payment_intent.succeeded", object_id=intent_id
    )

    first = tasks.process_processor_event(event_id=event.pk)
    frozen.shift(timedelta(minutes=5))
    second = tasks.process_processor_event(event_id=event.pk)

    assert first == second == f"payment {package.payment.pk} DONE"
    event.refresh_from_db()
    assert event.processed_at == NOW  # stamped by the first run only
    assert state_of(package) == ("DONE", 3)
    assert tasks.process_processor_event(event_id=event.pk + 1000) is None


def test_an_event_of_a_type_coachbook_does_not_use_is_acknowledged_and_ignored(
    localstripe, frozen, django_capture_on_commit_callbacks, processed
):
    package, intent_id = paid_on_server(localstripe)
    # About the very PaymentIntent, but of a type that is not a payment's outcome.
    body = event_body(
        "evt_other", "payment_intent.created", {"id": intent_id, "object": "payment_intent"}
    )

    response = post(body, django_capture_on_commit_callbacks)

    assert (response.status_code, response.content) == (200, b"Received.")
    assert processed == [("evt_other", "ignored")]
    assert ProcessorEvent.objects.get().processed_at == NOW
    assert state_of(package) == ("CREATED", 0)


# --- the body is never trusted -------------------------------------------------------------------


def test_a_forged_success_for_an_unpaid_payment_intent_creates_no_credits(
    localstripe, django_capture_on_commit_callbacks, processed
):
    """Validly signed (the secret leaked, say) but false: Stripe says the intent is unpaid."""
    package, intent_id = unpaid_on_server(localstripe)
    body = succeeded(
        "evt_forged", intent_id, amount=30000, amount_received=30000, latest_charge="ch_fake"
    )

    response = post(body, django_capture_on_commit_callbacks)

    assert response.status_code == 200
    assert processed == [("evt_forged", f"payment {package.payment.pk} CREATED")]
    assert state_of(package) == ("CREATED", 0)
    status = localstripe.api("GET", f"/v1/payment_intents/{intent_id}")["status"]
    assert status == "requires_payment_method"


def test_a_forged_failure_for_a_paid_payment_intent_still_pays_the_package(
    localstripe, django_capture_on_commit_callbacks
):
    package, intent_id = paid_on_server(localstripe)
    body = event_body(
        "evt_forged_failure",
        "payment_intent.payment_failed",
        {
            "id": intent_id,
            "object": "payment_intent",
            "status": "requires_payment_method",
            "last_payment_error": {"message": "Your card was declined."},
        },
    )

    assert post(body, django_capture_on_commit_callbacks).status_code == 200

    assert state_of(package) == ("DONE", 3)


def test_an_event_about_a_payment_intent_that_is_not_ours_changes_nothing(
    localstripe, django_capture_on_commit_callbacks, processed
):
    package, _ = paid_on_server(localstripe)

    response = post(
        succeeded("evt_stranger", "pi_someone_else"), django_capture_on_commit_callbacks
    )

    assert response.status_code == 200
    assert processed == [("evt_stranger", "no such payment")]
    assert state_of(package) == ("CREATED", 0)


# --- refund events -------------------------------------------------------------------------------


def test_a_refund_event_settles_a_pending_refund_from_stripes_answer(
    localstripe, django_capture_on_commit_callbacks, monkeypatch, processed
):
    package = make_card_package(localstripe, card=CARD_OK)
    session = package.sessions.order_by("number").first()
    session_services.session_book(
        session=session,
        start=next_free_start(package.coach, package.duration_minutes),
        actor=package.student,
    )
    session_services.session_accept(session=session, actor=package.coach)
    real_refund, real_status = StripeGateway.refund, StripeGateway.refund_status

    def accepted_pending(self, refund):
        return GatewayResult(
            state=RefundState.CREATED, reference=real_refund(self, refund).reference
        )

    monkeypatch.setattr(StripeGateway, "refund", accepted_pending)
    monkeypatch.setattr(
        StripeGateway,
        "refund_status",
        lambda self, refund: GatewayResult(state=RefundState.CREATED, reference=refund.reference),
    )
    with django_capture_on_commit_callbacks(execute=False):
        session_services.session_cancel(session=session, actor=package.coach, refund="full")
    refund = session.refunds.get()
    services.refund_settle(refund=refund)
    refund.refresh_from_db()
    assert (refund.state, refund.reference[:3]) == (RefundState.CREATED, "re_")
    monkeypatch.setattr(StripeGateway, "refund_status", real_status)
    # The body says it failed; Stripe, asked again, says it succeeded.
    body = event_body(
        "evt_refund",
        "charge.refund.updated",
        {"id": refund.reference, "object": "refund", "status": "failed"},
    )

    assert post(body, django_capture_on_commit_callbacks).status_code == 200

    refund.refresh_from_db()
    assert processed == [("evt_refund", f"refund {refund.pk} DONE")]
    assert refund.state == RefundState.DONE
    assert [r["amount"] for r in localstripe.refunds_of(package.payment.reference)] == [10000]


def test_a_refund_event_about_an_unknown_refund_changes_nothing(
    localstripe, django_capture_on_commit_callbacks, processed
):
    body = event_body("evt_refund_x", "refund.updated", {"id": "re_unknown", "object": "refund"})

    assert post(body, django_capture_on_commit_callbacks).status_code == 200
    assert processed == [("evt_refund_x", "no such refund")]


def test_a_refund_event_without_an_object_id_submits_no_unsubmitted_refund(
    localstripe, django_capture_on_commit_callbacks, processed
):
    package = make_card_package(localstripe, card=CARD_OK)
    session = package.sessions.order_by("number").first()
    with django_capture_on_commit_callbacks(execute=False):  # its settle task has not run yet
        session_services.session_cancel(session=session, actor=package.coach, refund="full")
    refund = session.refunds.get()
    assert (refund.state, refund.reference) == (RefundState.CREATED, "")
    body = event_body("evt_no_object", "refund.updated", {"object": "refund"})

    assert post(body, django_capture_on_commit_callbacks).status_code == 200

    assert processed == [("evt_no_object", "no object")]
    refund.refresh_from_db()
    assert (refund.state, refund.reference, refund.settle_attempts) == ("CREATED", "", 0)
    assert localstripe.refunds_of(package.payment.reference) == []


# --- localstripe itself delivers the event to the running app ---------------------------------


@pytest.mark.django_db(transaction=True)
def test_localstripe_delivers_payment_intent_succeeded_to_the_live_app(localstripe, live_server):
    package = make_card_package(localstripe, card="")
    intent = services.payment_pay_with_card(
        payment=package.payment, card_token=localstripe.card_token(CARD_3DS)
    )
    assert intent.status == "requires_action"
    localstripe.register_webhook(live_server.url + WEBHOOK)
    try:
        # The student completes 3-D Secure in the page, then closes it: only the webhook,
        # which localstripe sends about a second later, tells Coachbook.
        localstripe.authenticate(intent.id, intent.client_secret, success=True)
        assert state_of(package) == ("CREATED", 0)
        processed = ProcessorEvent.objects.filter(
            type="payment_intent.succeeded", object_id=intent.id, processed_at__isnull=False
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not processed.exists():
            time.sleep(0.1)
    finally:
        localstripe.unregister_webhook()

    assert state_of(package) == ("DONE", 3)
    event = ProcessorEvent.objects.get(type="payment_intent.succeeded", object_id=intent.id)
    assert event.event_id.startswith("evt_") and event.processed_at is not None


def test_an_event_whose_object_stripe_refuses_to_show_is_finished_not_retried(
    localstripe, monkeypatch, caplog
):
    """A refusal (not an outage) would be refused again: the task marks the event processed and
    logs why, so the sweep does not queue it forever."""
    from refunds.gateways import GatewayRefused

    package = make_card_package(localstripe, card="")
    services.payment_prepare(payment=package.payment)
    package.payment.refresh_from_db()
    event = ProcessorEvent.objects.create(
        gateway="stripe",
        event_id="evt_refused",
        type="payment_intent.succeeded",
        object_id=package.payment.reference,
    )

    def refuse(self, reference):
        raise GatewayRefused("No such payment_intent")

    monkeypatch.setattr(StripeGateway, "intent_retrieve", refuse)

    assert tasks.process_processor_event(event_id=event.pk) == "refused: No such payment_intent"
    event.refresh_from_db()
    assert event.processed_at is not None
    assert "processor event evt_refused (payment_intent.succeeded) refused" in caplog.text
    assert Session.objects.filter(package=package).count() == 0
