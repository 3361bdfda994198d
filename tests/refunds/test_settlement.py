"""The refund lifecycle: created -> done or failed, through the gateway and the settle task."""

import logging

import pytest
from django.db import transaction

from refunds import services, tasks
from refunds.gateways import GatewayUnavailable
from refunds.models import Refund, RefundState
from refunds.selectors import session_refundable_cents
from sessions_app import services as session_services
from tests.factories import make_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """The settle tasks queued (refund ids), instead of sending them to a broker."""
    sent = []
    monkeypatch.setattr(tasks.settle_refund, "delay", lambda *, refund_id: sent.append(refund_id))
    return sent


@pytest.fixture
def deferred(deferred_gateway):
    return deferred_gateway


def _reference(refund) -> str:
    """The reference the deferred gateway gives `refund` when the settle task submits it."""
    return f"deferred-refund-{refund.pk}"


def _issue(session, **kwargs):
    return services.refund_issue(
        session=session,
        kind=kwargs.pop("kind", "partial"),
        amount_cents=kwargs.pop("amount_cents", 1250),
        issued_by=session.coach,
        idempotency_key=kwargs.pop("idempotency_key", f"test-{session.pk}"),
        **kwargs,
    )


def test_manual_gateway_refund_is_done_at_once_and_queues_no_settlement(
    queued, django_capture_on_commit_callbacks
):
    session = make_session("CONFIRMED")

    with django_capture_on_commit_callbacks(execute=True):
        refund = _issue(session)

    refund.refresh_from_db()
    assert (refund.state, refund.gateway) == (RefundState.DONE, "manual")
    assert refund.reference == f"manual-refund-{refund.pk}"
    assert refund.settled_at is not None
    assert queued == []


def test_deferred_gateway_refund_is_written_created_and_submitted_only_after_commit(
    deferred, queued, django_capture_on_commit_callbacks, monkeypatch
):
    session = make_session("CONFIRMED")
    submitted = []
    monkeypatch.setattr(deferred, "refund", lambda refund: submitted.append(refund.pk))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        refund = _issue(session)
    assert (queued, submitted) == ([], [])  # nothing leaves before the transaction commits
    for callback in callbacks:
        callback()

    refund.refresh_from_db()
    assert (refund.state, refund.gateway, refund.reference) == (
        RefundState.CREATED,
        "deferred",
        "",
    )
    assert refund.settled_at is None
    assert (queued, submitted) == ([refund.pk], [])  # the settle task submits it


def test_a_rolled_back_cancel_never_reaches_a_real_gateway(
    deferred, django_capture_on_commit_callbacks, monkeypatch
):
    session = make_session("CONFIRMED")
    calls = []
    monkeypatch.setattr(deferred, "refund", lambda refund: calls.append(("refund", refund.pk)))
    monkeypatch.setattr(deferred, "refund_status", lambda refund: calls.append(("status", 0)))

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        session_services.session_cancel(session=session, actor=session.coach, refund="full")
        raise RuntimeError("something later in the same transaction failed")

    session.refresh_from_db()
    assert (calls, callbacks, Refund.objects.count(), session.status) == ([], [], 0, "CONFIRMED")


def test_a_committed_cancel_is_submitted_and_settled_by_the_settle_task(
    deferred, django_capture_on_commit_callbacks, celery_eager, monkeypatch
):
    session = make_session("CONFIRMED")
    submitted = []
    real_refund = deferred.refund

    def counting_refund(refund):
        submitted.append(refund.pk)
        return real_refund(refund)

    monkeypatch.setattr(deferred, "refund", counting_refund)

    with django_capture_on_commit_callbacks(execute=True):
        session_services.session_cancel(session=session, actor=session.coach, refund="full")
    refund = session.refunds.get()
    tasks.settle_refund(refund_id=refund.pk)  # a redelivered task submits nothing twice

    refund.refresh_from_db()
    assert submitted == [refund.pk]
    assert (refund.state, refund.reference) == (RefundState.DONE, _reference(refund))
    assert refund.settled_at is not None


def test_settle_moves_created_refund_to_done(deferred, queued):
    refund = _issue(make_session("CONFIRMED"))

    settled = services.refund_settle(refund=refund)

    settled.refresh_from_db()
    assert (settled.state, settled.reference) == (RefundState.DONE, f"deferred-refund-{refund.pk}")
    assert settled.settled_at is not None


def test_settle_moves_created_refund_to_failed_with_the_gateway_reason(deferred, queued, caplog):
    session = make_session("CONFIRMED")
    refund = _issue(session)
    deferred.decide(_reference(refund), RefundState.FAILED, "Card account closed")

    with caplog.at_level(logging.ERROR, logger="refunds.services"):
        services.refund_settle(refund=refund)

    # Logged as an error, which operations alert on.
    assert f"refund {refund.pk} ($12.50, session {session.pk}) failed at deferred" in caplog.text

    refund.refresh_from_db()
    assert (refund.state, refund.failure_reason) == (RefundState.FAILED, "Card account closed")
    # A failed refund moved no money, so it no longer counts against the caps.
    assert session_refundable_cents(session=session) == session.price_share_cents


def test_settle_leaves_a_settled_refund_alone(deferred, queued):
    refund = _issue(make_session("CONFIRMED"))
    services.refund_settle(refund=refund)
    refund.refresh_from_db()
    settled_at = refund.settled_at
    deferred.decide(refund.reference, RefundState.FAILED, "too late")

    services.refund_settle(refund=refund)

    refund.refresh_from_db()
    assert (refund.state, refund.failure_reason, refund.settled_at) == (
        RefundState.DONE,
        "",
        settled_at,
    )


def test_settle_keeps_refund_created_while_the_gateway_has_no_outcome(deferred, queued):
    refund = _issue(make_session("CONFIRMED"))
    deferred.decide(_reference(refund), RefundState.CREATED)

    services.refund_settle(refund=refund)

    refund.refresh_from_db()
    assert (refund.state, refund.settled_at) == (RefundState.CREATED, None)


def test_refund_and_its_settlement_never_change_the_session_status(deferred, queued):
    confirmed = make_session("CONFIRMED")
    refund = _issue(confirmed)
    services.refund_settle(refund=refund)
    confirmed.refresh_from_db()
    assert confirmed.status == "CONFIRMED"
    assert list(confirmed.events.values_list("action", flat=True)) == [
        "create",
        "book",
        "accept",
    ]


def test_canceled_session_stays_canceled_when_its_refund_fails(deferred, queued):
    session = make_session("CONFIRMED")
    session_services.session_cancel(
        session=session, actor=session.coach, refund="full", reason="Coach ill"
    )
    refund = session.refunds.get()
    deferred.decide(_reference(refund), RefundState.FAILED, "declined")

    tasks.settle_refund(refund_id=refund.pk)

    session.refresh_from_db()
    refund.refresh_from_db()
    assert (session.status, refund.state) == ("CANCELED", RefundState.FAILED)


def test_settle_task_returns_the_outcome_and_is_safe_to_run_twice(deferred, queued):
    refund = _issue(make_session("CONFIRMED"))

    assert tasks.settle_refund(refund_id=refund.pk) == RefundState.DONE
    assert tasks.settle_refund(refund_id=refund.pk) == RefundState.DONE
    assert Refund.objects.filter(state=RefundState.DONE).count() == 1


def test_settle_task_for_a_missing_refund_logs_and_returns(caplog):
    assert tasks.settle_refund(refund_id=987654321) is None
    assert "987654321 no longer exists" in caplog.text


def test_settle_task_retries_with_backoff_and_acks_late():
    task = tasks.settle_refund
    assert task.autoretry_for == (tasks.RefundStillPending, GatewayUnavailable)
    assert (task.max_retries, task.retry_backoff, task.retry_backoff_max) == (8, 30, 600)
    assert task.acks_late is True


def test_settle_task_gives_up_after_its_retries_and_leaves_the_refund_created(deferred, queued):
    refund = _issue(make_session("CONFIRMED"))
    deferred.decide(_reference(refund), RefundState.CREATED)
    calls = []
    real_status = deferred.refund_status

    def counting_status(refund):
        calls.append(refund.pk)
        return real_status(refund)

    deferred.refund_status = counting_status
    try:
        # Run eagerly: Celery re-runs a retried eager task at once (no countdown, no sleep).
        result = tasks.settle_refund.apply(kwargs={"refund_id": refund.pk})
    finally:
        del deferred.refund_status

    assert isinstance(result.result, tasks.RefundStillPending)
    assert len(calls) == tasks.SETTLE_MAX_RETRIES + 1
    refund.refresh_from_db()
    assert refund.state == RefundState.CREATED


def test_settle_task_retries_when_the_gateway_is_unreachable_then_settles(deferred, queued):
    refund = _issue(make_session("CONFIRMED"))
    answers = [GatewayUnavailable("timeout"), GatewayUnavailable("timeout")]
    real_refund, real_status = deferred.refund, deferred.refund_status
    submissions = []

    def counting_refund(refund):
        submissions.append(refund.pk)
        return real_refund(refund)

    def flaky_status(refund):
        if answers:
            raise answers.pop(0)
        return real_status(refund)

    deferred.refund, deferred.refund_status = counting_refund, flaky_status
    try:
        result = tasks.settle_refund.apply(kwargs={"refund_id": refund.pk})
    finally:
        del deferred.refund, deferred.refund_status

    assert result.result == RefundState.DONE
    # The outage hit the status call: the submission and its reference were already committed,
    # so the retries only asked for the outcome again and never refunded a second time.
    assert submissions == [refund.pk]
    refund.refresh_from_db()
    assert (refund.state, refund.reference) == (RefundState.DONE, _reference(refund))


def test_pending_sweep_queues_only_refunds_created_long_enough_ago(deferred, queued, time_machine):
    time_machine.move_to("2030-01-06 10:00Z")
    old = _issue(make_session("CONFIRMED"), idempotency_key="old")
    time_machine.move_to("2030-01-06 10:20Z")
    _issue(make_session("CONFIRMED"), idempotency_key="young")
    done = _issue(make_session("CONFIRMED"), idempotency_key="done")
    services.refund_settle(refund=done)
    time_machine.move_to("2030-01-06 10:30Z")

    assert tasks.settle_pending_refunds() == 1
    assert queued == [old.pk]


def test_each_settlement_attempt_is_counted_even_when_the_gateway_is_down(
    deferred, queued, time_machine, monkeypatch
):
    time_machine.move_to("2030-01-06 10:00Z", tick=False)
    refund = _issue(make_session("CONFIRMED"))
    services.refund_settle(refund=refund)  # submitted, then the outcome is DONE
    refund = _issue(make_session("CONFIRMED"), idempotency_key="down")

    def unreachable(refund):
        raise GatewayUnavailable("timeout")

    monkeypatch.setattr(deferred, "refund", unreachable)
    time_machine.move_to("2030-01-06 10:05Z", tick=False)
    with pytest.raises(GatewayUnavailable):
        services.refund_settle(refund=refund)
    with pytest.raises(GatewayUnavailable):
        services.refund_settle(refund=refund)

    refund.refresh_from_db()
    assert (refund.state, refund.reference) == (RefundState.CREATED, "")
    assert (refund.settle_attempts, refund.last_attempt_at.isoformat()) == (
        2,
        "2030-01-06T10:05:00+00:00",
    )


def test_the_retry_chain_bound_adds_up_the_capped_backoff_upper_bounds():
    # retry_jitter draws each countdown between 0 and its bound: 30, 60, 120, 240, 480, then
    # capped at 600 three times.
    assert tasks.SETTLE_RETRY_CHAIN.total_seconds() == 2730


def test_pending_sweep_leaves_a_refund_whose_own_task_is_still_retrying(
    deferred, queued, time_machine
):
    time_machine.move_to("2030-01-06 10:00Z", tick=False)
    retrying = _issue(make_session("CONFIRMED"), idempotency_key="retrying")
    deferred.decide(_reference(retrying), RefundState.CREATED)
    services.refund_settle(refund=retrying)
    time_machine.move_to("2030-01-06 10:30Z", tick=False)  # created 30 min ago, chain not over
    services.refund_settle(refund=retrying)  # the task's latest retry
    time_machine.move_to("2030-01-06 11:15Z", tick=False)  # 45 min after that retry

    assert (tasks.settle_pending_refunds(), queued) == (0, [])


def test_pending_sweep_requeues_a_refund_once_its_retry_chain_is_over(
    deferred, queued, time_machine
):
    time_machine.move_to("2030-01-06 10:00Z", tick=False)
    stuck = _issue(make_session("CONFIRMED"), idempotency_key="stuck")
    deferred.decide(_reference(stuck), RefundState.CREATED)
    services.refund_settle(refund=stuck)
    time_machine.move_to("2030-01-06 10:45:30Z", tick=False)  # exactly the whole chain later

    assert (tasks.settle_pending_refunds(), queued) == (1, [stuck.pk])


def test_beat_runs_the_pending_refund_sweep_every_ten_minutes(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["settle-pending-refunds"]
    assert (entry["task"], entry["schedule"]) == (tasks.settle_pending_refunds.name, 600)
    assert tasks.settle_refund.name == "refunds.settle_refund"
