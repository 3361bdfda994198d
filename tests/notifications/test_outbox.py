"""The transactional outbox: a delivery is written with its event and rolled back with it,
claimed by a conditional UPDATE with a lease, sent once, retried, skipped when no longer true,
and sent again only when it failed."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from core.errors import PermissionDenied
from notifications import services as outbox
from notifications import tasks
from notifications.models import Delivery, DeliveryKind, DeliveryStatus
from sessions_app import services
from sessions_app.lifecycle import Action
from tests.conftest import race
from tests.factories import StaffFactory, SuperuserFactory
from tests.notifications.helpers import NOW, START, fresh, run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("coaches_decide_refunds")]


def _booked(people, capture=None):
    _coach, student, session, start = people
    if capture is None:
        services.session_book(session=session, start=start, actor=student)  # not sent
    else:
        run(capture, services.session_book, session=session, start=start, actor=student)
    return Delivery.objects.get(event__action=Action.BOOK)


def test_an_event_writes_its_delivery_in_its_transaction_with_the_facts_of_that_moment(
    people, django_capture_on_commit_callbacks
):
    coach, student, session, start = people

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.session_book(session=session, start=start, actor=student)
        delivery = Delivery.objects.get(event__action=Action.BOOK)
        written = (delivery.status, delivery.attempts, mail.outbox)

    event = session.events.get(action=Action.BOOK)
    assert written == (DeliveryStatus.PENDING, 0, [])
    assert (delivery.recipient, delivery.kind, delivery.session_id, delivery.event) == (
        coach,
        DeliveryKind.SESSION_EVENT,
        session.pk,
        event,
    )
    assert delivery.key == f"event:{event.pk}:to:{coach.pk}"
    assert {key: delivery.facts[key] for key in ("action", "start", "end", "expires_at")} == {
        "action": "book",
        "start": START.isoformat(),
        "end": (START + timedelta(hours=1)).isoformat(),
        "expires_at": (NOW + timedelta(hours=48)).isoformat(),
    }
    assert (delivery.facts["student"], delivery.facts["status_label"]) == (
        "Sam Student",
        "Requested",
    )
    assert len(callbacks) == 1  # the send task, queued for after the commit

    callbacks[0]()

    fresh(delivery)
    assert (delivery.status, delivery.attempts, delivery.sent_at) == (DeliveryStatus.SENT, 1, NOW)
    assert delivery.subject == "New request from Sam Student, Wed 8 Jan, 14:00 CET"
    assert [message.to for message in mail.outbox] == [[coach.email]]


def test_a_sweeps_events_write_their_deliveries_in_the_sweeps_transaction(people):
    _booked(people)
    before = Delivery.objects.count()

    with pytest.raises(RuntimeError), transaction.atomic():
        services.sessions_expire_stale(now=NOW + timedelta(days=3))
        assert Delivery.objects.count() == before + 2  # both sides
        raise RuntimeError("the sweep's transaction rolls back")

    assert Delivery.objects.count() == before


def test_a_unique_key_makes_writing_the_same_delivery_twice_a_no_op(people):
    delivery = _booked(people)

    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.create(
            recipient=delivery.recipient, kind=delivery.kind, key=delivery.key, facts={}
        )

    assert Delivery.objects.filter(key=delivery.key).count() == 1


def test_sending_twice_or_concurrently_sends_once(people):
    delivery = _booked(people)

    outcomes = [outbox.delivery_send(delivery_id=delivery.pk) for _ in range(3)]
    swept = outbox.deliveries_send_due()

    assert (outcomes, swept, len(mail.outbox)) == (["sent", "not_due", "not_due"], 0, 1)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_racing_for_one_delivery_send_it_once(clock):
    from tests.factories import CoachFactory, OfferingFactory, StudentFactory
    from tests.notifications.helpers import open_window

    coach, student = CoachFactory(), StudentFactory()
    session = services.package_purchase(
        student=student, offering=OfferingFactory(coach=coach)
    ).sessions.first()
    services.session_book(session=session, start=open_window(coach, START), actor=student)
    delivery = Delivery.objects.get(event__action=Action.BOOK)
    # As if its on-commit task had been lost (here it ran at once, eagerly).
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.PENDING, attempts=0, sent_at=None
    )
    mail.outbox.clear()

    outcomes = race(8, lambda _: outbox.delivery_send(delivery_id=delivery.pk))

    assert sorted(outcomes) == ["not_due"] * 7 + ["sent"]
    assert len([m for m in mail.outbox if m.to == [coach.email]]) == 1
    assert fresh(delivery).attempts == 1


# --- a worker killed mid-send: the lease ---------------------------------------------------------


def _claimed_by_a_worker_that_died(delivery, settings):
    """What a worker leaves when it is killed between its claim and its outcome."""
    lease = timedelta(seconds=settings.NOTIFICATIONS_CLAIM_LEASE_SECONDS)
    Delivery.objects.filter(pk=delivery.pk).update(claimed_until=NOW + lease, attempts=1)
    return lease


def test_a_claimed_delivery_is_left_to_its_worker_until_the_lease_runs_out_then_sent_once(
    people, settings
):
    delivery = _booked(people)
    lease = _claimed_by_a_worker_that_died(delivery, settings)

    during = outbox.deliveries_send_due(now=NOW + lease - timedelta(seconds=1))
    after = outbox.deliveries_send_due(now=NOW + lease)
    again = outbox.deliveries_send_due(now=NOW + lease + timedelta(hours=1))

    assert (during, after, again, len(mail.outbox)) == (0, 1, 0, 1)
    fresh(delivery)
    assert (delivery.status, delivery.attempts, delivery.claimed_until) == ("SENT", 2, None)


def test_a_worker_whose_lease_ran_out_cannot_overwrite_the_attempt_that_replaced_it(
    people, settings, monkeypatch
):
    """The slow worker's send finishes after another worker re-claimed and sent the row: the
    slow one's outcome is dropped (the attempt count is the claim's fencing token)."""
    delivery = _booked(people)
    lease = timedelta(seconds=settings.NOTIFICATIONS_CLAIM_LEASE_SECONDS)
    original = outbox.emails.Email.message
    seen = []

    def slow_then_overtaken(self):
        message = original(self)
        if not seen:
            seen.append(True)
            # Meanwhile the lease ran out and the sweep sent it (the mail server then failed
            # the slow worker's copy).
            assert outbox.deliveries_send_due(now=NOW + lease) == 1
            monkeypatch.setattr(message, "send", lambda: (_ for _ in ()).throw(OSError("late")))
        return message

    monkeypatch.setattr(outbox.emails.Email, "message", slow_then_overtaken)

    assert outbox.delivery_send(delivery_id=delivery.pk) == "retry"

    fresh(delivery)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("SENT", 2, "")


# --- no longer true when its turn comes ----------------------------------------------------------


def test_a_reminder_of_a_session_canceled_before_it_went_is_skipped(
    people, django_capture_on_commit_callbacks, clock
):
    coach, student, session, start = people
    capture = django_capture_on_commit_callbacks
    run(capture, services.session_book, session=session, start=start, actor=student)
    run(capture, services.session_accept, session=fresh(session), actor=coach)
    clock.move_to(START - timedelta(minutes=50))
    with django_capture_on_commit_callbacks(execute=False):
        tasks_to_send = outbox.deliveries_for_reminders(
            sessions=[fresh(session)], which="1h", now=START - timedelta(minutes=50)
        )
    services.session_cancel(session=fresh(session), actor=coach, refund="none")
    mail.outbox.clear()

    outcomes = [outbox.delivery_send(delivery_id=pk) for pk in tasks_to_send]

    assert (outcomes, mail.outbox) == (["skipped", "skipped"], [])
    reminder = Delivery.objects.filter(kind=DeliveryKind.REMINDER).first()
    assert (reminder.status, reminder.last_error) == (
        DeliveryStatus.SKIPPED,
        "Not sent: the session is no longer confirmed.",
    )


def test_an_inactive_recipient_is_skipped(people):
    delivery = _booked(people)
    type(delivery.recipient).objects.filter(pk=delivery.recipient_id).update(is_active=False)

    assert outbox.delivery_send(delivery_id=delivery.pk) == "skipped"
    assert mail.outbox == []


# --- sending again -------------------------------------------------------------------------------


def _failed(people):
    delivery = _booked(people)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.FAILED, attempts=8, last_error="SMTPServerDisconnected: gone"
    )
    return fresh(delivery)


def test_a_failed_delivery_sent_again_goes_once_after_the_commit(
    people, django_capture_on_commit_callbacks
):
    delivery = _failed(people)

    resent, callbacks = run(
        django_capture_on_commit_callbacks,
        outbox.delivery_resend,
        delivery=delivery,
        actor=SuperuserFactory(),
    )

    assert (resent.status, len(callbacks)) == (DeliveryStatus.PENDING, 1)
    assert (fresh(delivery).status, delivery.attempts) == (DeliveryStatus.SENT, 1)
    assert [message.to for message in mail.outbox] == [[people[0].email]]
    assert outbox.deliveries_send_due() == 0


def test_only_a_failed_delivery_can_be_sent_again(people):
    delivery = _booked(people)

    with pytest.raises(outbox.DeliveryNotResendable, match="this one is Pending"):
        outbox.delivery_resend(delivery=delivery, actor=SuperuserFactory())


def test_sending_again_needs_the_permission(people):
    delivery = _failed(people)

    with pytest.raises(PermissionDenied):
        outbox.delivery_resend(delivery=delivery, actor=StaffFactory())
    with pytest.raises(PermissionDenied):
        outbox.delivery_resend(delivery=delivery, actor=people[0])
    assert fresh(delivery).status == DeliveryStatus.FAILED


# --- the tasks -----------------------------------------------------------------------------------


def test_the_sweep_task_sends_what_a_dead_broker_left_pending_oldest_first(people):
    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=fresh(session), actor=coach)

    assert tasks.send_due.delay().get() == 3

    # The booking to the coach, then the acceptance to both (its invitation moves both).
    assert [message.to for message in mail.outbox] == [
        [coach.email],
        [coach.email],
        [student.email],
    ]
    assert tasks.send_due.delay().get() == 0


def test_the_send_tasks_take_ids_and_send_each_once(people):
    delivery = _booked(people)

    first = tasks.send_deliveries.delay(delivery_ids=[delivery.pk, delivery.pk]).get()
    second = tasks.send_delivery.delay(delivery_id=delivery.pk).get()

    assert (first, second, len(mail.outbox)) == (1, "not_due", 1)


def test_a_mail_server_that_cannot_be_reached_is_recorded_on_each_delivery_and_retried(
    people, settings
):
    from scripts.pgcluster import free_port

    delivery = _booked(people)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listens

    assert outbox.deliveries_send_due() == 0

    fresh(delivery)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    assert delivery.last_error.startswith("ConnectionRefusedError")
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert outbox.deliveries_send_due(now=NOW + timedelta(minutes=1)) == 1
