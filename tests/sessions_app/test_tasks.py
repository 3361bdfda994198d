"""The background jobs, each with a frozen clock: what they change, the events they write, the
emails they send (once), a second run that does nothing, and the operators' commands."""

import threading
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection, transaction

from calendars import tasks as calendar_tasks
from calendars.models import SlotStatus, TimeSlot
from calendars.services import availability_window_add
from sessions_app import services, tasks
from sessions_app.lifecycle import Action, Status
from sessions_app.models import ProposalStatus, Session, SessionEvent
from tests.factories import CoachFactory, OfferingFactory, StudentFactory

# Celery tasks run in-process for these unit tests only, with a clean claim cache.
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("coaches_decide_refunds"),
    pytest.mark.usefixtures("celery_eager"),
]

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
START = datetime(2025, 3, 7, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _open(coach, start, minutes=60):
    """Make `start` bookable: a one-off window of the coach's availability there."""
    availability_window_add(coach=coach, start=start, end=start + timedelta(minutes=minutes))
    return start


def _session(coach=None, student=None):
    coach = coach or CoachFactory()
    package = services.package_purchase(
        student=student or StudentFactory(), offering=OfferingFactory(coach=coach)
    )
    return package.sessions.order_by("number").first()


def _requested(start=START, coach=None, student=None):
    session = _session(coach, student)
    _open(session.coach, start)
    services.session_book(session=session, start=start, actor=session.student)
    session.refresh_from_db()
    return session


def _confirmed(start=START, coach=None, student=None):
    session = _requested(start, coach, student)
    services.session_accept(session=session, actor=session.coach)
    session.refresh_from_db()
    return session


def _orphan(session, start, status):
    """A reservation row no session or proposal holds (written past the services)."""
    return TimeSlot.objects.create(
        coach=session.coach,
        student=session.student,
        session=session,
        start=start,
        end=start + timedelta(hours=1),
        reserved_start=start,
        reserved_end=start + timedelta(hours=1),
        status=status,
    )


def _run_task(task, capture, **kwargs):
    with capture(execute=True):
        return task.delay(**kwargs).get()


def _recipients():
    return sorted(address for message in mail.outbox for address in message.to)


# --- expire -------------------------------------------------------------------------------------


def test_expire_task_expires_request_releases_its_time_logs_event_and_emails_both_sides(
    clock, django_capture_on_commit_callbacks
):
    session = _requested()
    slot = session.slot
    clock.move_to(session.request_expires_at + timedelta(seconds=1))

    expired = _run_task(tasks.expire_stale, django_capture_on_commit_callbacks)

    slot.refresh_from_db()
    session.refresh_from_db()
    assert (expired, session.status, session.slot_id, slot.status) == (
        1,
        Status.UNSCHEDULED,
        None,
        SlotStatus.RELEASED,
    )
    event = session.events.get(action=Action.EXPIRE)
    assert (event.actor, event.from_status, event.to_status) == (None, "REQUESTED", "UNSCHEDULED")
    assert _recipients() == sorted([session.coach.email, session.student.email])


def test_expire_task_second_run_changes_nothing_and_sends_nothing(
    clock, django_capture_on_commit_callbacks
):
    session = _requested()
    clock.move_to(session.request_expires_at + timedelta(seconds=1))
    _run_task(tasks.expire_stale, django_capture_on_commit_callbacks)
    events, emails = SessionEvent.objects.count(), len(mail.outbox)

    again = _run_task(tasks.expire_stale, django_capture_on_commit_callbacks)

    assert (again, SessionEvent.objects.count(), len(mail.outbox)) == (0, events, emails)


def test_expire_task_leaves_requests_inside_their_window(clock, django_capture_on_commit_callbacks):
    session = _requested()
    clock.move_to(session.request_expires_at - timedelta(seconds=1))

    assert _run_task(tasks.expire_stale, django_capture_on_commit_callbacks) == 0
    session.refresh_from_db()
    assert (session.status, mail.outbox) == (Status.REQUESTED, [])


def test_expire_task_expires_a_stale_reschedule_proposal_back_to_the_agreed_time(
    clock, django_capture_on_commit_callbacks
):
    session = _confirmed()
    agreed = session.slot
    proposed = _open(session.coach, START + timedelta(days=1))
    proposal = services.session_propose_reschedule(
        session=session, start=proposed, actor=session.coach
    )
    clock.move_to(proposal.expires_at)

    expired = _run_task(tasks.expire_stale, django_capture_on_commit_callbacks)

    session.refresh_from_db()
    proposal.refresh_from_db()
    agreed.refresh_from_db()
    assert (expired, session.status, session.slot, agreed.status) == (
        1,
        Status.CONFIRMED,
        agreed,
        SlotStatus.BOOKED,
    )
    assert (proposal.status, proposal.slot.status) == (ProposalStatus.EXPIRED, SlotStatus.RELEASED)
    assert session.events.filter(action=Action.EXPIRE_RESCHEDULE).count() == 1
    assert _recipients() == sorted([session.coach.email, session.student.email])


def test_expire_command_prints_what_it_did(clock, django_capture_on_commit_callbacks):
    session = _requested()
    clock.move_to(session.request_expires_at)
    out = StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("expire_stale", stdout=out)

    assert out.getvalue() == "Expired 1 stale request(s) and reschedule proposal(s).\n"
    assert len(mail.outbox) == 2


# --- complete -----------------------------------------------------------------------------------


def test_complete_task_completes_past_confirmed_sessions_once(
    clock, django_capture_on_commit_callbacks
):
    past = _confirmed(start=START)
    future = _confirmed(start=START + timedelta(days=2), coach=past.coach)
    clock.move_to(START + timedelta(hours=1))

    first = _run_task(tasks.complete_past, django_capture_on_commit_callbacks)
    second = _run_task(tasks.complete_past, django_capture_on_commit_callbacks)

    past.refresh_from_db()
    future.refresh_from_db()
    assert (first, second) == (1, 0)
    assert (past.status, future.status) == (Status.COMPLETED, Status.CONFIRMED)
    assert past.events.filter(action=Action.COMPLETE, actor=None).count() == 1
    assert _recipients() == sorted([past.coach.email, past.student.email])


def test_complete_command_prints_what_it_did(clock):
    _confirmed()
    clock.move_to(START + timedelta(hours=2))
    out = StringIO()

    call_command("complete_past", stdout=out)

    assert out.getvalue() == "Completed 1 past session(s).\n"


# --- reopen -------------------------------------------------------------------------------------


def test_reopen_task_releases_reservations_without_holder_and_logs_the_count(
    clock, caplog, django_capture_on_commit_callbacks
):
    held = _requested()
    credit = _session(coach=held.coach)
    orphan_held = _orphan(credit, START + timedelta(days=1), SlotStatus.HELD)
    orphan_booked = _orphan(credit, START + timedelta(days=2), SlotStatus.BOOKED)
    past_orphan = _orphan(credit, NOW - timedelta(hours=3), SlotStatus.HELD)
    caplog.set_level("INFO", logger="calendars.tasks")

    first = _run_task(calendar_tasks.reopen_freed_slots, django_capture_on_commit_callbacks)
    second = _run_task(calendar_tasks.reopen_freed_slots, django_capture_on_commit_callbacks)

    statuses = dict(
        TimeSlot.objects.filter(
            pk__in=[held.slot_id, orphan_held.pk, orphan_booked.pk, past_orphan.pk]
        ).values_list("pk", "status")
    )
    assert (first, second) == (3, 0)
    assert statuses == {
        held.slot_id: SlotStatus.HELD,
        orphan_held.pk: SlotStatus.RELEASED,
        orphan_booked.pk: SlotStatus.RELEASED,
        past_orphan.pk: SlotStatus.RELEASED,
    }
    assert [r.getMessage() for r in caplog.records if r.name == "calendars.tasks"] == [
        "reopen_freed_slots: 3 reservation(s) released",
        "reopen_freed_slots: 0 reservation(s) released",
    ]
    assert mail.outbox == []


def test_reopen_command_prints_what_it_did(clock):
    _orphan(_session(), START, SlotStatus.BOOKED)
    out = StringIO()

    call_command("reopen_freed_slots", stdout=out)

    assert out.getvalue() == "Released 1 reservation(s) with no active holder.\n"


# --- reminders ----------------------------------------------------------------------------------


def test_reminders_go_24h_and_1h_before_to_both_sides_once_each(clock):
    session = _confirmed()
    both = sorted([session.coach.email, session.student.email])

    clock.move_to(START - timedelta(hours=25))
    too_early = tasks.send_reminders.delay().get()
    clock.move_to(START - timedelta(hours=23, minutes=58))
    day_before = tasks.send_reminders.delay().get()
    day_emails = _recipients()
    day_subjects = sorted(message.subject for message in mail.outbox)
    day_again = tasks.send_reminders.delay().get()
    mail.outbox.clear()
    clock.move_to(START - timedelta(minutes=59))
    hour_before = tasks.send_reminders.delay().get()
    hour_again = tasks.send_reminders.delay().get()

    assert (too_early, day_before, day_again, hour_before, hour_again) == (0, 1, 0, 1, 0)
    assert day_emails == both
    assert day_subjects[0].endswith("in about 24 hours")
    assert _recipients() == both
    assert mail.outbox[0].subject.endswith("in about an hour")
    session.refresh_from_db()
    assert session.reminder_24h_sent_at == START - timedelta(hours=23, minutes=58)
    assert session.reminder_1h_sent_at == START - timedelta(minutes=59)


def test_a_session_confirmed_in_its_last_hour_gets_only_the_1h_reminder(clock):
    session = _confirmed(start=NOW + timedelta(minutes=45))

    reminded = tasks.send_reminders.delay().get()
    again = tasks.send_reminders.delay().get()

    assert (reminded, again, len(mail.outbox)) == (1, 0, 2)
    assert mail.outbox[0].subject.endswith("in 45 minutes")
    session.refresh_from_db()
    assert session.reminder_24h_sent_at == session.reminder_1h_sent_at == NOW


def test_reminders_skip_sessions_that_are_not_confirmed(clock):
    _requested(start=NOW + timedelta(hours=5))
    canceled = _confirmed(start=NOW + timedelta(hours=6))
    services.session_cancel(session=canceled, actor=canceled.coach, refund="none")

    assert tasks.send_reminders.delay().get() == 0
    assert mail.outbox == []


def test_a_confirmed_new_time_is_reminded_again(clock):
    session = _confirmed(start=NOW + timedelta(hours=20))
    tasks.send_reminders.delay().get()
    new_start = _open(session.coach, NOW + timedelta(hours=22))
    services.session_propose_reschedule(session=session, start=new_start, actor=session.coach)
    services.session_confirm_reschedule(session=session, actor=session.student)
    mail.outbox.clear()

    assert tasks.send_reminders.delay().get() == 1
    assert _recipients() == sorted([session.coach.email, session.student.email])


def test_a_failed_reminder_stays_in_the_outbox_and_its_sweep_sends_it(clock, monkeypatch):
    from django.core.mail import EmailMultiAlternatives

    from notifications import tasks as notification_tasks

    session = _confirmed(start=NOW + timedelta(hours=3))
    original = EmailMultiAlternatives.send

    def mail_server_down(self, *args, **kwargs):
        raise OSError("mail server down")

    monkeypatch.setattr(EmailMultiAlternatives, "send", mail_server_down)
    reminded = services.sessions_send_reminders()
    session.refresh_from_db()
    monkeypatch.setattr(EmailMultiAlternatives, "send", original)

    # The reminder was claimed once, with its emails in the outbox; the retry is theirs.
    assert (reminded, session.reminder_24h_sent_at, mail.outbox) == (1, NOW, [])
    assert services.sessions_send_reminders() == 0
    clock.move_to(NOW + timedelta(minutes=1))  # the first retry's backoff
    notification_tasks.send_due.delay().get()  # (also what the arrangement never sent)
    reminded_to = [m.to[0] for m in mail.outbox if m.subject.startswith("Reminder:")]
    assert sorted(reminded_to) == sorted([session.coach.email, session.student.email])


def test_send_reminders_command_prints_what_it_did(clock):
    _confirmed(start=NOW + timedelta(hours=2))
    out = StringIO()

    call_command("send_reminders", stdout=out)

    assert out.getvalue() == "Sent reminders for 1 session(s).\n"


# --- notifications through the task -----------------------------------------------------------


def test_send_delivery_task_for_a_missing_delivery_sends_nothing(clock):
    from notifications import tasks as notification_tasks

    assert notification_tasks.send_delivery.delay(delivery_id=10**9).get() == "not_due"
    assert mail.outbox == []


def test_nothing_is_sent_when_the_sweep_transaction_rolls_back(
    clock, django_capture_on_commit_callbacks
):
    session = _requested()
    clock.move_to(session.request_expires_at)

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        tasks.expire_stale.delay().get()
        raise RuntimeError("the worker died before the commit")

    session.refresh_from_db()
    assert (callbacks, mail.outbox, session.status) == ([], [], Status.REQUESTED)


# --- concurrency (PostgreSQL) -------------------------------------------------------------------


def _concurrently(function, workers=2):
    barrier = threading.Barrier(workers)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(function())
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_reminder_runs_send_each_reminder_once(clock):
    coach = CoachFactory()
    now = NOW
    for hours in range(12):
        _confirmed(start=now + timedelta(hours=3 + hours), coach=coach)
    mail.outbox.clear()

    results = _concurrently(lambda: services.sessions_send_reminders(now=now))

    assert sum(results) == 12
    assert len(mail.outbox) == 24
    assert Session.objects.filter(reminder_24h_sent_at=now).count() == 12


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_expiry_runs_expire_each_request_once(clock):
    coach = CoachFactory()
    now = NOW
    for hours in range(12):
        _requested(start=now + timedelta(days=3, hours=hours), coach=coach)
    later = now + timedelta(days=2, hours=1)  # past the 48 h window, before every start

    results = _concurrently(lambda: services.sessions_expire_stale(now=later))

    assert sum(results) == 12
    assert SessionEvent.objects.filter(action=Action.EXPIRE).count() == 12
    assert TimeSlot.objects.filter(status=SlotStatus.RELEASED).count() == 12
    assert Session.objects.filter(status=Status.REQUESTED).count() == 0
