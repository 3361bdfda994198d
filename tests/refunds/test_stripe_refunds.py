"""Refunds of card payments as Stripe Refunds, against a real localstripe server.

A canceled session's refund is written CREATED in the cancel's transaction and submitted to
Stripe only after it commits (the settle task), once: a double submission, a repeated idempotency
key or a second settlement never makes a second Stripe Refund (localstripe ignores idempotency
keys, so only Coachbook's own locks and keys stand between a retry and a double refund). The
caps are Coachbook's: Stripe is never asked for more than the session's share. A refund Stripe
leaves pending is settled by the sweep; one Stripe fails is retried as a new refund.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from refunds import gateways, services, tasks
from refunds.gateways import GatewayResult, GatewayUnavailable, StripeGateway
from refunds.models import Refund, RefundState
from refunds.selectors import session_refundable_cents
from refunds.services import RefundNotAllowed
from sessions_app import services as session_services
from sessions_app.lifecycle import TransitionNotAllowed
from tests.conftest import messages_of
from tests.factories import StaffFactory, make_card_package, next_free_start
from tests.stripe_support import free_port

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("coaches_decide_refunds")]

NOW = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _stripe(stripe_settings, celery_eager):
    return stripe_settings


def confirmed(localstripe, **offering_fields):
    """The first session of a package paid by card (250.00 for five sessions), confirmed."""
    fields = {"session_count": 5, "price_cents": 25000}
    fields.update(offering_fields)
    package = make_card_package(localstripe, **fields)
    assert package.payment.state == "DONE"
    session = package.sessions.order_by("number").first()
    session_services.session_book(
        session=session,
        start=next_free_start(package.coach, package.duration_minutes),
        actor=package.student,
    )
    session_services.session_accept(session=session, actor=package.coach)
    session.refresh_from_db()
    return session


def cancel(session, capture, **kwargs):
    """The coach cancels; the settle task runs when the cancel commits (Celery eager)."""
    kwargs.setdefault("refund", "partial")
    with capture(execute=True):
        return session_services.session_cancel(session=session, actor=session.coach, **kwargs)


def issue(session, capture, *, key: str, kind: str = "partial", amount_cents=None):
    with capture(execute=True):
        return services.refund_issue(
            session=session,
            kind=kind,
            amount_cents=amount_cents,
            issued_by=session.coach,
            idempotency_key=key,
        )


def on_server(localstripe, session) -> list[tuple[str, int, str]]:
    """The Stripe Refunds of the session's package: (id, amount, status), oldest first."""
    refunds = localstripe.refunds_of(session.package.payment.reference)
    return [(r["id"], r["amount"], r["status"]) for r in sorted(refunds, key=lambda r: r["date"])]


def amounts_on_server(localstripe, session) -> list[int]:
    return [amount for _, amount, _ in on_server(localstripe, session)]


# --- partial and full refunds land on the server -----------------------------------------------


def test_a_partial_refund_of_12_50_lands_on_the_server_and_settles_done(
    localstripe, django_capture_on_commit_callbacks
):
    with time_machine.travel(NOW, tick=False):
        session = confirmed(localstripe)
        assert session.price_share_cents == 5000

        canceled = cancel(
            session, django_capture_on_commit_callbacks, amount_cents=1250, reason="Ill"
        )

    assert canceled.status == "CANCELED"
    refund = session.refunds.get()
    [(refund_id, amount, status)] = on_server(localstripe, session)
    assert (amount, status) == (1250, "succeeded")
    assert (refund.reference, refund.state, refund.kind) == (refund_id, RefundState.DONE, "partial")
    assert (refund.amount_cents, refund.currency, refund.gateway) == (1250, "USD", "stripe")
    assert (refund.settled_at, refund.settle_attempts, refund.failure_reason) == (NOW, 1, "")
    server = localstripe.api("GET", f"/v1/refunds/{refund_id}")
    assert server["metadata"] == {"coachbook_refund": str(refund.pk), "session": str(session.pk)}
    assert server["payment_intent"] == session.package.payment.reference
    summary = StripeGateway().charge_summary(session.package.payment)
    assert (summary.paid_cents, summary.refunded_cents, summary.remaining_cents) == (
        25000,
        1250,
        23750,
    )
    assert session_refundable_cents(session=session) == 3750


def test_a_full_refund_returns_the_sessions_share_and_no_more(
    localstripe, django_capture_on_commit_callbacks
):
    session = confirmed(localstripe)

    cancel(session, django_capture_on_commit_callbacks, refund="full")

    refund = session.refunds.get()
    assert (refund.kind, refund.amount_cents, refund.state) == ("full", 5000, RefundState.DONE)
    assert on_server(localstripe, session) == [(refund.reference, 5000, "succeeded")]
    assert session_refundable_cents(session=session) == 0


def test_a_full_refund_of_an_uneven_split_returns_the_first_sessions_extra_cent(
    localstripe, django_capture_on_commit_callbacks
):
    session = confirmed(localstripe, session_count=3, price_cents=10000)
    assert session.price_share_cents == 3334

    cancel(session, django_capture_on_commit_callbacks, refund="full")

    assert amounts_on_server(localstripe, session) == [3334]


def test_a_full_refund_after_a_partial_one_returns_only_the_rest_of_the_share(
    localstripe, django_capture_on_commit_callbacks
):
    session = confirmed(localstripe)
    cancel(session, django_capture_on_commit_callbacks, amount_cents=1250)

    issue(session, django_capture_on_commit_callbacks, key="top-up", kind="full")

    assert amounts_on_server(localstripe, session) == [1250, 3750]
    assert sorted(session.refunds.values_list("amount_cents", "state")) == [
        (1250, RefundState.DONE),
        (3750, RefundState.DONE),
    ]
    summary = StripeGateway().charge_summary(session.package.payment)
    assert (summary.refunded_cents, summary.remaining_cents) == (5000, 20000)


def test_refunds_of_two_sessions_of_one_package_land_on_its_one_payment_intent(
    localstripe, django_capture_on_commit_callbacks
):
    session = confirmed(localstripe)
    second = session.package.sessions.get(number=2)

    cancel(session, django_capture_on_commit_callbacks, refund="full")
    with django_capture_on_commit_callbacks(execute=True):
        session_services.session_cancel(
            session=second, actor=second.coach, refund="partial", amount_cents=999
        )

    assert amounts_on_server(localstripe, session) == [5000, 999]
    references = set(Refund.objects.values_list("reference", flat=True))
    assert references == {refund_id for refund_id, _, _ in on_server(localstripe, session)}


# --- exactly one refund per cancel ---------------------------------------------------------------


def test_a_double_submitted_cancel_refunds_once(localstripe, django_capture_on_commit_callbacks):
    session = confirmed(localstripe)
    cancel(session, django_capture_on_commit_callbacks, amount_cents=1250)

    with pytest.raises(TransitionNotAllowed):
        cancel(session, django_capture_on_commit_callbacks, amount_cents=1250)
    # The first request's stale copy of the session (loaded before it was canceled).
    stale = type(session).objects.get(pk=session.pk)
    stale.status = "CONFIRMED"
    with pytest.raises(TransitionNotAllowed):
        cancel(stale, django_capture_on_commit_callbacks, refund="full")

    assert amounts_on_server(localstripe, session) == [1250]
    assert session.refunds.count() == 1
    assert session.events.filter(action="cancel").count() == 1


def test_the_cancel_form_posted_twice_refunds_once(
    localstripe, client, django_capture_on_commit_callbacks
):
    session = confirmed(localstripe)
    client.force_login(session.coach)
    url = reverse("sessions:cancel", args=[session.pk])
    form = {"refund": "partial", "amount": "12.50", "reason": "", "seen_status": "CONFIRMED"}

    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(url, form)
    with django_capture_on_commit_callbacks(execute=True):
        second = client.post(url, form)

    assert first.status_code == second.status_code == 302
    assert "is under Canceled; a partial refund of $12.50." in messages_of(first)[0]
    assert messages_of(second)[-1:] == [
        "This session changed since the page was loaded: it is now Canceled. "
        "Nothing was done; check it and try again if needed."
    ]
    refund = session.refunds.get()
    assert on_server(localstripe, session) == [(refund.reference, 1250, "succeeded")]


def test_refund_issue_with_the_same_idempotency_key_returns_the_first_refund(
    localstripe, django_capture_on_commit_callbacks
):
    session = confirmed(localstripe)

    first = issue(session, django_capture_on_commit_callbacks, key="goodwill", amount_cents=700)
    again = issue(session, django_capture_on_commit_callbacks, key="goodwill", amount_cents=700)
    other_amount = issue(
        session, django_capture_on_commit_callbacks, key="goodwill", amount_cents=900
    )

    assert first.pk == again.pk == other_amount.pk
    assert amounts_on_server(localstripe, session) == [700]
    assert Refund.objects.get().state == RefundState.DONE


def test_settling_a_refund_again_never_submits_it_again(
    localstripe, django_capture_on_commit_callbacks
):
    session = confirmed(localstripe)
    cancel(session, django_capture_on_commit_callbacks, amount_cents=1250)
    refund = session.refunds.get()

    assert tasks.settle_refund(refund_id=refund.pk) == RefundState.DONE
    assert services.refund_settle(refund=refund).state == RefundState.DONE
    assert tasks.settle_refund(refund_id=refund.pk + 1000) is None

    assert amounts_on_server(localstripe, session) == [1250]
    refund.refresh_from_db()
    assert refund.settle_attempts == 1


def test_a_cancel_that_rolls_back_never_reaches_stripe(
    localstripe, django_capture_on_commit_callbacks, monkeypatch
):
    session = confirmed(localstripe)

    def calendar_down(**kwargs):
        raise RuntimeError("calendar store unavailable")

    monkeypatch.setattr(session_services.calendar_services, "reservations_release", calendar_down)
    with pytest.raises(RuntimeError):
        cancel(session, django_capture_on_commit_callbacks, refund="full")

    assert amounts_on_server(localstripe, session) == []
    assert Refund.objects.count() == 0
    session.refresh_from_db()
    assert session.status == "CONFIRMED"


# --- caps: Coachbook refuses before Stripe is asked ------------------------------------------


def test_a_partial_refund_above_the_share_is_refused_and_stripe_is_not_asked(
    localstripe, django_capture_on_commit_callbacks
):
    session = confirmed(localstripe)

    with pytest.raises(RefundNotAllowed) as refused:
        cancel(session, django_capture_on_commit_callbacks, amount_cents=5001)

    assert refused.value.message == "At most $50.00 can be refunded for this session."
    assert amounts_on_server(localstripe, session) == []
    assert Refund.objects.count() == 0
    session.refresh_from_db()
    assert session.status == "CONFIRMED"  # the cancel rolled back with it


def test_a_partial_refund_above_what_is_left_of_the_share_is_refused(
    localstripe, django_capture_on_commit_callbacks
):
    session = confirmed(localstripe)
    cancel(session, django_capture_on_commit_callbacks, amount_cents=1250)

    with pytest.raises(RefundNotAllowed, match=r"At most \$37\.50 can be refunded"):
        issue(session, django_capture_on_commit_callbacks, key="more", amount_cents=3751)
    issue(session, django_capture_on_commit_callbacks, key="rest", amount_cents=3750)
    with pytest.raises(RefundNotAllowed, match=r"Nothing is left to refund for this session\."):
        issue(session, django_capture_on_commit_callbacks, key="again", kind="full")

    assert amounts_on_server(localstripe, session) == [1250, 3750]


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (0, "A partial refund must be at least 0.01."),
        (-5, "A partial refund must be at least 0.01."),
        (None, "Enter the amount to refund."),
        (True, "Enter the amount to refund."),
    ],
)
def test_a_partial_refund_needs_a_real_amount(
    localstripe, django_capture_on_commit_callbacks, amount, message
):
    session = confirmed(localstripe)

    with pytest.raises(RefundNotAllowed) as refused:
        issue(session, django_capture_on_commit_callbacks, key="bad", amount_cents=amount)

    assert refused.value.message == message
    assert amounts_on_server(localstripe, session) == []


def test_the_cancel_form_refuses_an_amount_above_the_share_without_asking_stripe(
    localstripe, client, django_capture_on_commit_callbacks
):
    session = confirmed(localstripe)
    client.force_login(session.coach)
    url = reverse("sessions:cancel", args=[session.pk])

    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(
            url, {"refund": "partial", "amount": "50.01", "seen_status": "CONFIRMED"}
        )

    assert page.status_code == 200
    assert amounts_on_server(localstripe, session) == []
    session.refresh_from_db()
    assert session.status == "CONFIRMED"


# --- Stripe unreachable: the refund waits, then lands once ----------------------------------


def test_a_refund_submitted_while_stripe_is_unreachable_waits_and_later_lands_once(
    localstripe, django_capture_on_commit_callbacks, settings
):
    session = confirmed(localstripe)
    reachable = settings.STRIPE_API_BASE
    with django_capture_on_commit_callbacks(execute=False):  # its task is run by hand below
        session_services.session_cancel(
            session=session, actor=session.coach, refund="partial", amount_cents=1250
        )
    refund = session.refunds.get()
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(GatewayUnavailable):
        services.refund_settle(refund=refund)

    refund.refresh_from_db()
    assert (refund.state, refund.reference, refund.settle_attempts) == ("CREATED", "", 1)
    assert amounts_on_server(localstripe, session) == []
    assert session_refundable_cents(session=session) == 3750  # pending still counts

    settings.STRIPE_API_BASE = reachable
    assert services.refund_settle(refund=refund).state == RefundState.DONE
    assert on_server(localstripe, session) == [(Refund.objects.get().reference, 1250, "succeeded")]


def test_a_refund_stripe_refuses_outright_fails_visibly_instead_of_waiting_forever(
    localstripe, django_capture_on_commit_callbacks
):
    """Stripe refuses the request itself (here: a PaymentIntent it does not know, as after the
    keys were switched to another account); asking again would be refused again."""
    with time_machine.travel(NOW, tick=False):
        session = confirmed(localstripe)
        payment = session.package.payment
        type(payment).objects.filter(pk=payment.pk).update(reference="pi_unknown_here")

        cancel(session, django_capture_on_commit_callbacks, amount_cents=1250)

    refund = session.refunds.get()
    assert (refund.state, refund.reference, refund.settled_at) == (RefundState.FAILED, "", NOW)
    assert refund.failure_reason == "The payment processor refused the refund: Not Found"
    with time_machine.travel(NOW + timedelta(days=1), tick=False):
        assert tasks.settle_pending_refunds() == 0  # not pending: the sweep leaves it
    assert tasks.settle_refund(refund_id=refund.pk) == RefundState.FAILED


# --- reconciliation: a pending refund whose webhook never came ---------------------------------


@pytest.fixture
def stripe_leaves_refunds_pending(monkeypatch):
    """Stripe takes the refund (it is created on the server) but answers `pending`, and keeps
    answering so while this fixture's `pending` is True; the refund's outcome then comes from
    the server again (localstripe sends no refund webhooks)."""
    real_refund, real_status = StripeGateway.refund, StripeGateway.refund_status
    state = {"pending": True, "asked": 0}

    def refund(self, refund):
        result = real_refund(self, refund)
        assert result.state == RefundState.DONE  # localstripe settles at once
        return GatewayResult(state=RefundState.CREATED, reference=result.reference)

    def refund_status(self, refund):
        state["asked"] += 1
        if state["pending"]:
            return GatewayResult(state=RefundState.CREATED, reference=refund.reference)
        return real_status(self, refund)

    monkeypatch.setattr(StripeGateway, "refund", refund)
    monkeypatch.setattr(StripeGateway, "refund_status", refund_status)
    return state


def test_the_sweep_settles_a_refund_left_pending_after_its_task_gave_up(
    localstripe, django_capture_on_commit_callbacks, stripe_leaves_refunds_pending
):
    with time_machine.travel(NOW, tick=False):
        session = confirmed(localstripe)
        with django_capture_on_commit_callbacks(execute=False):
            session_services.session_cancel(
                session=session, actor=session.coach, refund="partial", amount_cents=1250
            )
        refund = session.refunds.get()
        # Its task's last try: submitted, still pending at Stripe.
        assert services.refund_settle(refund=refund).state == RefundState.CREATED
    refund.refresh_from_db()
    [(refund_id, amount, _)] = on_server(localstripe, session)
    assert (refund.state, refund.reference, amount) == ("CREATED", refund_id, 1250)
    assert refund.last_attempt_at == NOW

    # While its task could still be retrying, the sweep leaves it alone.
    with time_machine.travel(NOW + tasks.SETTLE_RETRY_CHAIN - timedelta(minutes=1), tick=False):
        assert tasks.settle_pending_refunds() == 0
    # Stripe settled it meanwhile, and no webhook came.
    stripe_leaves_refunds_pending["pending"] = False
    later = NOW + tasks.SETTLE_RETRY_CHAIN + timedelta(minutes=1)
    with time_machine.travel(later, tick=False):
        assert tasks.settle_pending_refunds() == 1

    refund.refresh_from_db()
    assert (refund.state, refund.settled_at, refund.settle_attempts) == ("DONE", later, 2)
    assert amounts_on_server(localstripe, session) == [1250]  # never submitted again
    with time_machine.travel(later + timedelta(hours=1), tick=False):
        assert tasks.settle_pending_refunds() == 0


def test_the_sweep_submits_a_refund_whose_task_was_lost_before_it_reached_stripe(
    localstripe, django_capture_on_commit_callbacks
):
    with time_machine.travel(NOW, tick=False):
        session = confirmed(localstripe)
        with django_capture_on_commit_callbacks(execute=False):  # the task never ran
            session_services.session_cancel(session=session, actor=session.coach, refund="full")
    assert amounts_on_server(localstripe, session) == []

    with time_machine.travel(NOW + tasks.PENDING_SWEEP_AGE - timedelta(minutes=1), tick=False):
        assert tasks.settle_pending_refunds() == 0
    with time_machine.travel(NOW + tasks.PENDING_SWEEP_AGE + timedelta(minutes=1), tick=False):
        assert tasks.settle_pending_refunds() == 1

    refund = session.refunds.get()
    assert (refund.state, refund.settle_attempts) == (RefundState.DONE, 1)
    assert on_server(localstripe, session) == [(refund.reference, 5000, "succeeded")]


def test_the_settle_task_retries_a_pending_refund_until_stripe_settles_it(
    localstripe, django_capture_on_commit_callbacks, stripe_leaves_refunds_pending, monkeypatch
):
    session = confirmed(localstripe)
    real_status = StripeGateway.refund_status

    def pending_twice(self, refund):
        if stripe_leaves_refunds_pending["asked"] >= 2:
            stripe_leaves_refunds_pending["pending"] = False
        return real_status(self, refund)

    monkeypatch.setattr(StripeGateway, "refund_status", pending_twice)
    # Eager Celery runs each retry at once when it does not propagate the Retry.
    from config.celery import app

    app.conf.task_eager_propagates = False  # the celery_eager fixture restores it

    cancel(session, django_capture_on_commit_callbacks, amount_cents=1250)

    refund = session.refunds.get()
    # Pending, pending, then done: three attempts, one submission.
    assert (refund.state, refund.settle_attempts) == (RefundState.DONE, 3)
    assert stripe_leaves_refunds_pending["asked"] == 3
    assert amounts_on_server(localstripe, session) == [1250]


# --- a refund Stripe fails, and its retry -------------------------------------------------------


@pytest.fixture
def stripe_fails_refunds(monkeypatch):
    """Stripe answers every new refund `failed` with `failure_reason` (nothing moves), as it
    does for an expired card; `codes` lists the codes still to answer, then refunds pass."""
    real_refund = StripeGateway.refund
    codes = ["expired_or_canceled_card"]

    def refund(self, refund):
        if not codes:
            return real_refund(self, refund)
        return gateways._refund_result(
            {"id": f"re_failed_{refund.pk}", "status": "failed", "failure_reason": codes.pop(0)}
        )

    monkeypatch.setattr(StripeGateway, "refund", refund)
    return codes


def test_a_refund_stripe_fails_is_visible_with_its_reason_and_no_longer_counts(
    localstripe, django_capture_on_commit_callbacks, stripe_fails_refunds
):
    with time_machine.travel(NOW, tick=False):
        session = confirmed(localstripe)
        cancel(session, django_capture_on_commit_callbacks, amount_cents=1250)

    refund = session.refunds.get()
    assert (refund.state, refund.failure_reason, refund.reference) == (
        RefundState.FAILED,
        "The card has expired or was canceled.",
        f"re_failed_{refund.pk}",
    )
    assert refund.settled_at == NOW
    assert amounts_on_server(localstripe, session) == []
    assert session_refundable_cents(session=session) == 5000  # a failed refund moved nothing
    session.refresh_from_db()
    assert session.status == "CANCELED"  # a refund never changes its session


def test_a_failed_refund_is_retried_as_a_new_refund_that_lands_on_the_server(
    localstripe, django_capture_on_commit_callbacks, stripe_fails_refunds
):
    session = confirmed(localstripe)
    cancel(session, django_capture_on_commit_callbacks, amount_cents=1250, reason="Ill")
    failed = session.refunds.get()
    staff = StaffFactory()

    with django_capture_on_commit_callbacks(execute=True):
        retry = services.refund_retry(refund=failed, issued_by=staff)
    again = services.refund_retry(refund=failed, issued_by=staff)

    retry.refresh_from_db()
    failed.refresh_from_db()
    assert again.pk == retry.pk
    assert (retry.retry_of_id, retry.idempotency_key) == (
        failed.pk,
        f"{failed.idempotency_key}-retry",
    )
    assert (retry.amount_cents, retry.kind, retry.issued_by) == (1250, "partial", staff)
    assert retry.reason == f"Retry of refund {failed.pk}: Ill"
    assert retry.state == RefundState.DONE
    assert on_server(localstripe, session) == [(retry.reference, 1250, "succeeded")]
    assert failed.state == RefundState.FAILED  # the audit keeps both
    assert session.refunds.count() == 2


def test_a_retry_that_stripe_fails_again_can_itself_be_retried(
    localstripe, django_capture_on_commit_callbacks, stripe_fails_refunds
):
    stripe_fails_refunds.append("declined")
    session = confirmed(localstripe)
    cancel(session, django_capture_on_commit_callbacks, refund="full")
    staff = StaffFactory()

    with django_capture_on_commit_callbacks(execute=True):
        first_retry = services.refund_retry(refund=session.refunds.get(), issued_by=staff)
    first_retry.refresh_from_db()
    assert (first_retry.state, first_retry.failure_reason) == (
        RefundState.FAILED,
        "The card's bank declined the refund.",
    )
    with django_capture_on_commit_callbacks(execute=True):
        second_retry = services.refund_retry(refund=first_retry, issued_by=staff)

    second_retry.refresh_from_db()
    assert second_retry.retry_of_id == first_retry.pk
    assert second_retry.idempotency_key.endswith("-retry-retry")
    assert on_server(localstripe, session) == [(second_retry.reference, 5000, "succeeded")]


def test_only_a_failed_refund_can_be_retried(localstripe, django_capture_on_commit_callbacks):
    session = confirmed(localstripe)
    cancel(session, django_capture_on_commit_callbacks, amount_cents=1250)
    done = session.refunds.get()
    assert done.state == RefundState.DONE

    with pytest.raises(RefundNotAllowed, match=r"Only a failed refund can be retried\."):
        services.refund_retry(refund=done, issued_by=StaffFactory())

    assert amounts_on_server(localstripe, session) == [1250]
    assert session.refunds.count() == 1


def test_a_retry_is_refused_when_the_share_was_refunded_meanwhile(
    localstripe, django_capture_on_commit_callbacks, stripe_fails_refunds
):
    session = confirmed(localstripe)
    cancel(session, django_capture_on_commit_callbacks, amount_cents=1250)
    failed = session.refunds.get()
    issue(session, django_capture_on_commit_callbacks, key="whole-share", kind="full")

    with pytest.raises(RefundNotAllowed, match=r"At most \$0\.00 can be refunded"):
        services.refund_retry(refund=failed, issued_by=StaffFactory())

    assert amounts_on_server(localstripe, session) == [5000]


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        ("failed", "lost_or_stolen_card", "The card was reported lost or stolen."),
        ("failed", "", "The card's bank could not take the refund back."),
        ("failed", "brand_new_code", "Stripe could not refund (brand_new_code)."),
        ("canceled", "", "The refund was canceled."),
    ],
)
def test_stripe_refund_failures_read_as_a_person_should(status, code, reason):
    result = gateways._refund_result({"id": "re_x", "status": status, "failure_reason": code})

    assert (result.state, result.reference, result.failure_reason) == ("FAILED", "re_x", reason)


# --- concurrency on PostgreSQL: two cancels, two settlements at once ---------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_cancels_of_one_session_make_one_stripe_refund(localstripe):
    from tests.refunds.test_concurrency import run_together

    session = confirmed(localstripe)
    coach = session.coach

    outcomes = run_together(
        *(
            lambda: session_services.session_cancel(
                session=session, actor=coach, refund="partial", amount_cents=1250
            )
            for _ in range(2)
        )
    )

    assert sorted(type(o).__name__ for o in outcomes) == ["Session", "TransitionNotAllowed"]
    refund = Refund.objects.get()
    assert refund.state == RefundState.DONE
    assert on_server(localstripe, session) == [(refund.reference, 1250, "succeeded")]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_settlements_of_one_refund_submit_it_once(localstripe, monkeypatch):
    from tests.refunds.test_concurrency import run_together

    session = confirmed(localstripe)
    monkeypatch.setattr(tasks.settle_refund, "delay", lambda **kwargs: None)  # settled below
    session_services.session_cancel(session=session, actor=session.coach, refund="full")
    refund = Refund.objects.get()
    assert refund.reference == ""

    outcomes = run_together(*(lambda: services.refund_settle(refund=refund) for _ in range(3)))

    assert [o.state for o in outcomes] == [RefundState.DONE] * 3
    refund.refresh_from_db()
    assert on_server(localstripe, session) == [(refund.reference, 5000, "succeeded")]


def test_a_student_canceling_18_hours_before_gets_half_back_on_the_card(
    localstripe, django_capture_on_commit_callbacks
):
    """The issue's example under the default policy (24 h free, 12-24 h half, later used)."""
    with time_machine.travel(NOW, tick=False):
        session = confirmed(localstripe)
    start = session.slot.start
    with (
        time_machine.travel(start - timedelta(hours=18), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        session_services.session_cancel(session=session, actor=session.student, refund="partial")

    refund = session.refunds.get()
    [(refund_id, amount, status)] = on_server(localstripe, session)
    assert (amount, status) == (2500, "succeeded")
    assert (refund.reference, refund.state, refund.issued_by) == (
        refund_id,
        RefundState.DONE,
        session.student,
    )
    assert session.events.get(action="cancel").details["rule"] == "student_partial"
