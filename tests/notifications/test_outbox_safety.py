"""The outbox's failure paths: greylisting is retried, the claim's fence survives "Send
again", an email the server took is never sent twice for a failed mark, an unexpected error
is a failed attempt, the retry budget is time, the sweep is bounded, and the previous
release's task names still deliver."""

import smtplib
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import OperationalError
from django.db.models.query import QuerySet

from notifications import services as outbox
from notifications import tasks
from notifications.models import Delivery, DeliveryStatus
from sessions_app import services
from sessions_app.lifecycle import Action
from tests.factories import SuperuserFactory
from tests.notifications.helpers import NOW, fresh

pytestmark = pytest.mark.django_db


def _booked(people) -> Delivery:
    """Book (the on-commit send never runs); the booking's one delivery, to the coach."""
    _coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    return Delivery.objects.get(event__action=Action.BOOK)


@pytest.mark.parametrize(
    "codes", [{"a@example.com": (450, b"Greylisted")}, {"a@x": (451, b"Later"), "b@x": (550, b"")}]
)
def test_a_temporary_recipient_refusal_is_retried(people, monkeypatch, codes):
    delivery = _booked(people)

    def greylisted(self, *args, **kwargs):
        raise smtplib.SMTPRecipientsRefused(codes)

    monkeypatch.setattr(EmailMultiAlternatives, "send", greylisted)

    assert outbox.delivery_send(delivery_id=delivery.pk) == "retry"
    assert (fresh(delivery).status, delivery.next_attempt_at) == (
        DeliveryStatus.PENDING,
        NOW + timedelta(minutes=1),
    )


class WorkerKilled(BaseException):
    """A worker that dies mid-send (nothing of it runs after)."""


def test_a_late_worker_cannot_overwrite_a_claim_taken_after_send_again(people, monkeypatch):
    delivery = _booked(people)
    admin = SuperuserFactory()
    later = NOW + timedelta(hours=1)  # the first worker's lease has run out
    calls = []

    def slow_then_down(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 1:  # the first worker, stuck: meanwhile the row fails, is sent again
            Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED)
            outbox.delivery_resend(delivery=delivery, actor=admin, now=later)
            with pytest.raises(WorkerKilled):  # a new worker claims it (attempts is 1 again)
                outbox.delivery_send(delivery_id=delivery.pk, now=later)
            raise smtplib.SMTPServerDisconnected("the first worker's connection dropped")
        raise WorkerKilled

    monkeypatch.setattr(EmailMultiAlternatives, "send", slow_then_down)

    assert outbox.delivery_send(delivery_id=delivery.pk, now=NOW) == "retry"

    fresh(delivery)
    # The newer claim stands: its lease, not the late worker's error and retry time.
    assert delivery.claimed_until == later + outbox.claim_lease()
    assert (delivery.status, delivery.attempts, delivery.claim_seq) == ("PENDING", 1, 2)
    assert "first worker" not in delivery.last_error


def _failing_sent_mark(monkeypatch, error, times):
    original = QuerySet.update
    failures = []

    def update(self, **kwargs):
        if kwargs.get("status") == DeliveryStatus.SENT and len(failures) < times:
            failures.append(kwargs)
            raise error
        return original(self, **kwargs)

    monkeypatch.setattr(QuerySet, "update", update)
    monkeypatch.setattr(outbox.time, "sleep", lambda seconds: None)
    return failures


def test_a_failed_sent_mark_is_retried_and_the_email_is_not_sent_again(people, monkeypatch):
    delivery = _booked(people)
    failures = _failing_sent_mark(monkeypatch, OperationalError("server closed the connection"), 1)

    assert outbox.delivery_send(delivery_id=delivery.pk) == "sent"

    assert (len(failures), fresh(delivery).status, len(mail.outbox)) == (1, "SENT", 1)
    assert outbox.deliveries_send_due(now=NOW + timedelta(hours=1)) == 0
    assert len(mail.outbox) == 1


def test_a_sent_mark_that_keeps_failing_is_logged_and_never_counted_as_a_failure(
    people, monkeypatch, caplog
):
    delivery = _booked(people)
    _failing_sent_mark(monkeypatch, OperationalError("the database is gone"), 99)

    assert outbox.delivery_send(delivery_id=delivery.pk) == "sent"

    fresh(delivery)
    assert (delivery.status, delivery.last_error, len(mail.outbox)) == ("PENDING", "", 1)
    assert delivery.claimed_until is not None  # not handed back: no copy before the lease ends
    assert any(
        record.levelname == "ERROR" and "could not be marked sent" in record.getMessage()
        for record in caplog.records
    )


def test_a_time_limit_after_the_send_does_not_hand_the_row_back(people, monkeypatch):
    delivery = _booked(people)
    _failing_sent_mark(monkeypatch, SoftTimeLimitExceeded(), 1)

    with pytest.raises(SoftTimeLimitExceeded):
        outbox.delivery_send(delivery_id=delivery.pk)

    assert (fresh(delivery).status, len(mail.outbox)) == (DeliveryStatus.SENT, 1)
    assert outbox.deliveries_send_due(now=NOW + timedelta(hours=1)) == 0


def test_an_unexpected_error_is_a_failed_attempt_and_never_leaves_the_sweep(people, monkeypatch):
    delivery = _booked(people)

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(outbox, "stale_reason", broken)

    assert outbox.deliveries_send_due() == 0

    fresh(delivery)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        DeliveryStatus.PENDING,
        1,
        "RuntimeError: a bug",
    )
    assert (delivery.claimed_until, delivery.next_attempt_at) == (None, NOW + timedelta(minutes=1))


def test_send_again_starts_a_fresh_retry_window(people, monkeypatch, settings):
    settings.NOTIFICATIONS_GIVE_UP_HOURS = 1
    delivery = _booked(people)
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, attempts=9)
    resent_at = NOW + timedelta(days=2)  # long after the first window closed
    outbox.delivery_resend(delivery=delivery, actor=SuperuserFactory(), now=resent_at)

    def down(self, *args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(EmailMultiAlternatives, "send", down)

    assert outbox.delivery_send(delivery_id=delivery.pk, now=resent_at) == "retry"
    assert (fresh(delivery).resent_at, delivery.attempts) == (resent_at, 1)


def test_a_sweep_run_is_bounded_and_leaves_the_rest_to_the_next_run(people, settings):
    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=fresh(session), actor=coach)  # 3 due in all

    settings.NOTIFICATIONS_SWEEP_SECONDS = 0
    assert outbox.deliveries_send_due() == 0  # its time is up at once
    settings.NOTIFICATIONS_SWEEP_SECONDS = 50
    settings.NOTIFICATIONS_SWEEP_MAX_ROWS = 2
    assert outbox.deliveries_send_due() == 2
    assert outbox.deliveries_send_due() == 1
    assert len(mail.outbox) == 3


def test_the_previous_releases_task_names_write_and_send_what_is_missing(
    people, django_capture_on_commit_callbacks
):
    from config.celery import app

    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=fresh(session), actor=coach)
    book, accept = (session.events.get(action=action) for action in (Action.BOOK, Action.ACCEPT))
    Delivery.objects.filter(event=accept).delete()  # written by the old release: no rows
    assert {"sessions.notify_event", "sessions.notify_events"} <= set(app.tasks)

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.notify_event.delay(event_id=accept.pk).get() == 2
    with django_capture_on_commit_callbacks(execute=True):  # the booking's is still to send
        assert tasks.notify_events.delay(event_ids=[book.pk, accept.pk]).get() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.notify_event.delay(event_id=accept.pk).get() == 0  # written once, by key

    assert sorted(message.to[0] for message in mail.outbox) == sorted(
        [coach.email, coach.email, student.email]
    )
    assert Delivery.objects.filter(event=accept).count() == 2
