"""Emails about session changes: who hears about what, in which timezone, with which link and
calendar attachment; sent only after a commit, and only once."""

import smtplib
from datetime import UTC, datetime, timedelta

import icalendar
import pytest
import time_machine
from django.core import mail
from django.db import transaction

from sessions_app import notifications, services
from sessions_app.lifecycle import Action, PermissionDenied
from sessions_app.models import Session, SessionEvent
from tests.factories import (
    AvailabilityWindowFactory,
    CoachFactory,
    OfferingFactory,
    StudentFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)  # a Monday
START = datetime(2025, 1, 8, 13, 0, tzinfo=UTC)  # Wednesday 14:00 CET, 08:00 EST
SITE = "https://coachbook.example"


def _open(coach, start, minutes=60):
    """Make `start` bookable for a session of `minutes` with `coach` (a one-off window)."""
    AvailabilityWindowFactory(coach=coach, start=start, end=start + timedelta(minutes=minutes))
    return start


@pytest.fixture(autouse=True)
def eager_tasks(settings, celery_eager):
    """Run Celery tasks in-process for these unit tests only, with a clean claim cache."""
    settings.SITE_URL = SITE


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def people(clock):
    coach = CoachFactory(timezone="Europe/Berlin", display_name="Carla Coach")
    student = StudentFactory(timezone="America/New_York", display_name="Sam Student")
    offering = OfferingFactory(coach=coach, title="Chess basics", price_cents=30000)
    package = services.package_purchase(student=student, offering=offering)
    session = package.sessions.order_by("number").first()
    return coach, student, session, _open(coach, START)


def _run(django_capture_on_commit_callbacks, action, **kwargs):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = action(**kwargs)
    return result, callbacks


def _fresh(session):
    session.refresh_from_db()
    return session


def _requested(people, capture):
    _coach, student, session, start = people
    _run(capture, services.session_book, session=session, start=start, actor=student)
    mail.outbox.clear()
    return _fresh(session)


def _confirmed(people, capture):
    session = _requested(people, capture)
    _run(capture, services.session_accept, session=session, actor=people[0])
    mail.outbox.clear()
    return _fresh(session)


def _ics(message):
    (name, content, mimetype), *rest = message.attachments
    assert (name, mimetype, rest) == ("session.ics", "text/calendar; charset=utf-8", [])
    return icalendar.Calendar.from_ical(content).walk("VEVENT")[0]


def _html(message):
    (html, mimetype), *rest = message.alternatives
    assert (mimetype, rest) == ("text/html", [])
    return html


def test_book_emails_only_the_coach_in_the_coachs_timezone_with_a_link(
    people, django_capture_on_commit_callbacks
):
    coach, student, session, start = people

    _run(
        django_capture_on_commit_callbacks,
        services.session_book,
        session=session,
        start=start,
        actor=student,
    )

    [message] = mail.outbox
    assert message.to == [coach.email]
    assert message.subject == "New request from Sam Student, Wed 8 Jan, 14:00 CET"
    assert "Wed 8 Jan 2025, 14:00\u201315:00 CET (Europe/Berlin)" in message.body
    assert "Accept or decline it before Wed 8 Jan 2025, 10:00 CET, or it expires." in message.body
    assert f"Open the session: {SITE}/sessions/{session.pk}/" in message.body
    html = _html(message)
    assert f'href="{SITE}/sessions/{session.pk}/"' in html
    assert "14:00\u201315:00 CET (Europe/Berlin)" in html
    assert message.attachments == []
    assert message.extra_headers["Auto-Submitted"] == "auto-generated"


def test_accept_emails_the_student_an_ics_invitation_in_utc(
    people, django_capture_on_commit_callbacks
):
    coach, student, _, _ = people
    session = _requested(people, django_capture_on_commit_callbacks)

    _run(
        django_capture_on_commit_callbacks,
        services.session_accept,
        session=session,
        actor=coach,
    )

    [message] = mail.outbox
    assert message.to == [student.email]
    assert message.subject == "Confirmed: Chess basics with Carla Coach, Wed 8 Jan, 08:00 EST"
    assert "Wed 8 Jan 2025, 08:00\u201309:00 EST (America/New_York)" in message.body
    event = _ics(message)
    assert str(event["UID"]) == f"session-{session.pk}@coachbook"
    assert event["SEQUENCE"] == 0
    assert event.decoded("DTSTART") == START
    assert event["DTSTART"].to_ical() == b"20250108T130000Z"  # UTC, no TZID
    assert event.decoded("DTEND") == START + timedelta(hours=1)
    assert str(event["STATUS"]) == "CONFIRMED"


def test_confirmed_reschedule_invitation_carries_the_raised_sequence_to_the_proposer(
    people, django_capture_on_commit_callbacks
):
    coach, student, _, _ = people
    session = _confirmed(people, django_capture_on_commit_callbacks)
    new_start = _open(coach, START + timedelta(days=1))
    _run(
        django_capture_on_commit_callbacks,
        services.session_propose_reschedule,
        session=session,
        start=new_start,
        actor=coach,
    )
    [proposal_email] = mail.outbox
    mail.outbox.clear()

    _run(
        django_capture_on_commit_callbacks,
        services.session_confirm_reschedule,
        session=_fresh(session),
        actor=student,
    )

    assert proposal_email.to == [student.email]
    assert proposal_email.subject == "Carla Coach proposed a new time, Thu 9 Jan, 08:00 EST"
    assert (
        "Confirm the new time, propose another one or keep the current time before"
        in proposal_email.body
    )
    [message] = mail.outbox
    assert message.to == [coach.email]
    assert message.subject == "New time confirmed, Thu 9 Jan, 14:00 CET"
    event = _ics(message)
    assert (str(event["UID"]), event["SEQUENCE"]) == (f"session-{session.pk}@coachbook", 1)
    assert event.decoded("DTSTART") == START + timedelta(days=1)


def _withdraw(people, capture):
    session = _requested(people, capture)
    return lambda: services.session_withdraw(session=session, actor=people[1])


def _decline(people, capture):
    session = _requested(people, capture)
    return lambda: services.session_decline(session=session, actor=people[0], reason="Away")


def _propose_by_student(people, capture):
    session = _confirmed(people, capture)
    proposed = _open(people[0], START + timedelta(days=1))
    return lambda: services.session_propose_reschedule(
        session=session, start=proposed, actor=people[1]
    )


def _counter_by_coach(people, capture):
    session = _confirmed(people, capture)
    first = _open(people[0], START + timedelta(days=1))
    services.session_propose_reschedule(session=session, start=first, actor=people[1])
    second = _open(people[0], START + timedelta(days=2))
    return lambda: services.session_counter_propose(
        session=_fresh(session), start=second, actor=people[0]
    )


def _cancel_with_full_refund(people, capture):
    session = _confirmed(people, capture)
    return lambda: services.session_cancel(
        session=session, actor=people[0], refund="full", reason="Ill"
    )


def _expire(people, capture):
    _requested(people, capture)
    return lambda: services.sessions_expire_stale(now=NOW + timedelta(days=3))


def _proposed_by_coach(people, capture):
    session = _confirmed(people, capture)
    proposed = _open(people[0], START + timedelta(days=1))
    services.session_propose_reschedule(session=session, start=proposed, actor=people[0])
    return _fresh(session)


def _decline_reschedule(people, capture):
    session = _proposed_by_coach(people, capture)
    return lambda: services.session_decline_reschedule(session=session, actor=people[1])


def _withdraw_proposal(people, capture):
    session = _proposed_by_coach(people, capture)
    return lambda: services.session_withdraw_proposal(session=session, actor=people[0])


# Past the proposal's deadline (NOW + the 48 h window), before the agreed start.
PROPOSAL_EXPIRED = NOW + timedelta(hours=49)


def _expire_reschedule(people, capture):
    _proposed_by_coach(people, capture)
    return lambda: services.sessions_expire_stale(now=PROPOSAL_EXPIRED)


def _complete(people, capture):
    _confirmed(people, capture)
    return lambda: services.sessions_complete_past(now=START + timedelta(hours=2))


@pytest.mark.parametrize(
    ("arrange", "recipients", "subject", "says"),
    [
        (_withdraw, ["coach"], "Sam Student withdrew their request, Wed 8 Jan, 14:00 CET",
         "The time is open again."),
        (_decline, ["student"], "Carla Coach declined your request, Wed 8 Jan, 08:00 EST",
         "Their note: Away"),
        (_propose_by_student, ["coach"], "Sam Student proposed a new time, Thu 9 Jan, 14:00 CET",
         "Until a new time is agreed, the session stays at "
         "Wed 8 Jan 2025, 14:00\u201315:00 CET (Europe/Berlin)."),
        (_counter_by_coach, ["student"],
         "Carla Coach proposed another time, Fri 10 Jan, 08:00 EST",
         "Confirm the new time, propose another one or keep the current time"),
        (_decline_reschedule, ["coach"], "Sam Student kept the current time, Wed 8 Jan, 14:00 CET",
         "Sam Student kept the current time, "
         "Wed 8 Jan 2025, 14:00\u201315:00 CET (Europe/Berlin)."),
        (_withdraw_proposal, ["student"],
         "Carla Coach withdrew the proposed time, Wed 8 Jan, 08:00 EST",
         "Carla Coach withdrew the proposed time; the session stays at "
         "Wed 8 Jan 2025, 08:00\u201309:00 EST (America/New_York)."),
        (_cancel_with_full_refund, ["student"],
         "Session canceled: Chess basics, Wed 8 Jan, 08:00 EST", "Full refund: $100.00."),
        (_expire, ["coach", "student"], "Request expired, Wed 8 Jan, 14:00 CET",
         "The request from Sam Student expired before it was answered."),
        (_expire_reschedule, ["coach", "student"], "Proposed time expired, Wed 8 Jan, 14:00 CET",
         "The proposed time expired; the session stays at "
         "Wed 8 Jan 2025, 14:00\u201315:00 CET (Europe/Berlin)."),
        (_complete, ["coach", "student"], "Session completed: Chess basics",
         "Your session with Sam Student is marked as completed."),
    ],
)  # fmt: skip
def test_each_transition_tells_the_other_side_and_system_ones_tell_both(
    people, django_capture_on_commit_callbacks, arrange, recipients, subject, says
):
    coach, student, _, _ = people
    act = arrange(people, django_capture_on_commit_callbacks)
    mail.outbox.clear()

    _run(django_capture_on_commit_callbacks, act)

    who = {"coach": coach.email, "student": student.email}
    assert [message.to for message in mail.outbox] == [[who[role]] for role in recipients]
    first = mail.outbox[0]
    assert first.subject == subject
    assert says in first.body
    assert says in _html(first)


@pytest.mark.parametrize("arrange", [_decline_reschedule, _withdraw_proposal, _expire_reschedule])
def test_a_kept_time_is_told_as_confirmed_at_the_agreed_time_without_a_new_invitation(
    people, django_capture_on_commit_callbacks, arrange
):
    act = arrange(people, django_capture_on_commit_callbacks)
    mail.outbox.clear()

    _run(django_capture_on_commit_callbacks, act)

    for message in mail.outbox:
        assert message.attachments == []
        assert "Status:       Confirmed" in message.body
        assert "When:" in message.body
        assert "Thu 9 Jan" not in message.body  # the proposed time is gone


def test_the_expired_proposal_tells_the_student_in_their_own_zone(
    people, django_capture_on_commit_callbacks
):
    student = people[1]
    act = _expire_reschedule(people, django_capture_on_commit_callbacks)
    mail.outbox.clear()

    _run(django_capture_on_commit_callbacks, act)

    to_student = next(message for message in mail.outbox if message.to == [student.email])
    assert to_student.subject == "Proposed time expired, Wed 8 Jan, 08:00 EST"
    assert (
        "The proposed time expired; the session stays at "
        "Wed 8 Jan 2025, 08:00\u201309:00 EST (America/New_York)."
    ) in to_student.body


@pytest.fixture
def long_session(clock):
    """A confirmed 90-minute session of Carla's at START."""
    coach = CoachFactory(timezone="Europe/Berlin", display_name="Carla Coach")
    student = StudentFactory(timezone="America/New_York", display_name="Sam Student")
    offering = OfferingFactory(coach=coach, title="Deep dive", duration_minutes=90)
    session = services.package_purchase(student=student, offering=offering).sessions.first()
    services.session_book(session=session, start=_open(coach, START, 90), actor=student)
    services.session_accept(session=session, actor=coach)
    return _fresh(session)


def test_a_proposal_shows_the_proposed_and_the_agreed_time_with_their_real_length(
    long_session, django_capture_on_commit_callbacks
):
    coach = long_session.coach
    proposed = _open(coach, START + timedelta(days=1), 90)

    _run(
        django_capture_on_commit_callbacks,
        services.session_propose_reschedule,
        session=long_session,
        start=proposed,
        actor=coach,
    )

    [message] = mail.outbox
    assert message.subject == "Carla Coach proposed a new time, Thu 9 Jan, 08:00 EST"
    assert (
        "Carla Coach would like to move session 1 of \u201cDeep dive\u201d to "
        "Thu 9 Jan 2025, 08:00\u201309:30 EST (America/New_York)."
    ) in message.body
    assert "Proposed:     Thu 9 Jan 2025, 08:00\u201309:30 EST (America/New_York)" in message.body
    assert "Agreed time:  Wed 8 Jan 2025, 08:00\u201309:30 EST (America/New_York)" in message.body
    assert "Status:       Rescheduling" in message.body
    html = _html(message)
    assert ">Proposed</th>" in html and ">Agreed time</th>" in html
    assert message.attachments == []


def test_a_confirmed_new_time_invites_with_the_sessions_real_length(
    long_session, django_capture_on_commit_callbacks
):
    coach, student = long_session.coach, long_session.student
    proposed = _open(coach, START + timedelta(days=1), 90)
    services.session_propose_reschedule(session=long_session, start=proposed, actor=student)

    _run(
        django_capture_on_commit_callbacks,
        services.session_confirm_reschedule,
        session=_fresh(long_session),
        actor=coach,
    )

    [message] = mail.outbox
    assert message.to == [student.email]
    assert "When:         Thu 9 Jan 2025, 08:00\u201309:30 EST (America/New_York)" in message.body
    assert "Agreed time:" not in message.body
    event = _ics(message)
    assert (event.decoded("DTSTART"), event.decoded("DTEND")) == (
        proposed,
        proposed + timedelta(minutes=90),
    )
    assert event["SEQUENCE"] == 1


def test_student_hears_their_own_side_of_an_expired_request(
    people, django_capture_on_commit_callbacks
):
    _coach, student, _, _ = people
    _requested(people, django_capture_on_commit_callbacks)

    _run(django_capture_on_commit_callbacks, services.sessions_expire_stale, now=START)

    to_student = next(message for message in mail.outbox if message.to == [student.email])
    assert to_student.subject == "Request expired, Wed 8 Jan, 08:00 EST"
    assert "Carla Coach did not answer your request in time" in to_student.body
    assert "Your session credit is back" in to_student.body


def test_canceling_a_confirmed_session_attaches_a_canceled_invitation(
    people, django_capture_on_commit_callbacks
):
    session = _confirmed(people, django_capture_on_commit_callbacks)

    _run(
        django_capture_on_commit_callbacks,
        services.session_cancel,
        session=session,
        actor=people[0],
        refund="none",
    )

    [message] = mail.outbox
    assert "No refund was issued." in message.body
    event = _ics(message)
    assert (str(event["UID"]), str(event["STATUS"])) == (
        f"session-{session.pk}@coachbook",
        "CANCELLED",
    )


def test_purchase_sends_no_email(clock, django_capture_on_commit_callbacks):
    offering = OfferingFactory()

    _run(
        django_capture_on_commit_callbacks,
        services.package_purchase,
        student=StudentFactory(),
        offering=offering,
    )

    assert mail.outbox == []


def test_nothing_is_sent_for_a_rolled_back_change(people, django_capture_on_commit_callbacks):
    _coach, student, session, start = people

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.session_book(session=session, start=start, actor=student)
        raise RuntimeError("the request failed after the booking")

    assert (callbacks, mail.outbox) == ([], [])
    assert _fresh(session).status == "UNSCHEDULED"


def test_a_refused_action_sends_nothing(people, django_capture_on_commit_callbacks):
    session = _requested(people, django_capture_on_commit_callbacks)

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(PermissionDenied),
    ):
        services.session_accept(session=session, actor=people[1])

    assert (callbacks, mail.outbox) == ([], [])


def _booked_without_notifying(people):
    _coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)  # on_commit never runs


def test_notifying_the_same_event_twice_sends_once(people):
    _booked_without_notifying(people)
    event = SessionEvent.objects.get(action=Action.BOOK)

    first = notifications.events_notify(event_ids=[event.pk])
    second = notifications.events_notify(event_ids=[event.pk, event.pk])

    assert (first, second, len(mail.outbox)) == (1, 0, 1)


def test_a_missing_event_sends_nothing(db):
    assert notifications.events_notify(event_ids=[987654]) == 0
    assert mail.outbox == []


def test_a_failed_send_releases_its_claim_so_the_retry_sends_it(people, monkeypatch):
    _booked_without_notifying(people)
    event = SessionEvent.objects.get(action=Action.BOOK)
    original = notifications.EmailMultiAlternatives.send

    def broken(self, *args, **kwargs):
        raise smtplib.SMTPServerDisconnected("connection lost")

    monkeypatch.setattr(notifications.EmailMultiAlternatives, "send", broken)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        notifications.events_notify(event_ids=[event.pk])
    monkeypatch.setattr(notifications.EmailMultiAlternatives, "send", original)

    assert notifications.events_notify(event_ids=[event.pk]) == 1
    assert len(mail.outbox) == 1


def test_a_sweep_notifies_in_chunks_of_events(
    clock, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(services, "NOTIFY_CHUNK", 2)
    coach = CoachFactory()
    for hours in range(3):
        package = services.package_purchase(
            student=StudentFactory(), offering=OfferingFactory(coach=coach)
        )
        start = _open(coach, START + timedelta(hours=hours))
        services.session_book(session=package.sessions.first(), start=start, actor=package.student)

    _, callbacks = _run(
        django_capture_on_commit_callbacks,
        services.sessions_expire_stale,
        now=NOW + timedelta(days=3),
    )

    assert len(callbacks) == 2  # 3 events in chunks of 2
    assert len(mail.outbox) == 6  # both sides of each
    assert sorted(message.to[0] for message in mail.outbox).count(coach.email) == 3


def test_time_shown_follows_daylight_saving_in_the_recipients_zone(db):
    coach = CoachFactory(timezone="Europe/Berlin")
    summer = datetime(2025, 7, 2, 12, 0, tzinfo=UTC)

    text = notifications.format_when(summer, summer + timedelta(hours=1), coach)

    assert text == "Wed 2 Jul 2025, 14:00\u201315:00 CEST (Europe/Berlin)"


def test_a_broker_outage_never_fails_the_committed_change(
    people, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    from kombu.exceptions import OperationalError

    from sessions_app import tasks

    session = _requested(people, django_capture_on_commit_callbacks)

    def broker_down(**kwargs):
        raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(tasks.notify_event, "delay", broker_down)
    _run(
        django_capture_on_commit_callbacks,
        services.session_accept,
        session=session,
        actor=people[0],
    )

    assert (_fresh(session).status, mail.outbox) == ("CONFIRMED", [])
    assert "Connection refused" in caplog.text


# --- names that are not one line, and failures that retrying cannot fix ----------------------


def test_a_stored_name_with_a_newline_still_gives_a_one_line_subject(people):
    _coach, student, _session, _start = people
    # Stored before names were checked (or by another path): the email must still go.
    type(student).objects.filter(pk=student.pk).update(display_name="Sam\nBcc: x@evil.example")
    _booked_without_notifying(people)
    event = SessionEvent.objects.get(action=Action.BOOK)

    assert notifications.events_notify(event_ids=[event.pk]) == 1

    (message,) = mail.outbox
    assert message.subject == "New request from Sam Bcc: x@evil.example, Wed 8 Jan, 14:00 CET"
    assert "\n" not in message.message()["Subject"]


def test_an_email_that_cannot_be_sent_is_logged_and_skipped_and_the_chunk_goes_on(
    people, monkeypatch, caplog
):
    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=session, actor=coach)
    events = list(SessionEvent.objects.exclude(action=Action.CREATE).order_by("pk"))
    original = notifications.EmailMultiAlternatives.send

    def refuse_the_request_email(self, *args, **kwargs):
        if self.extra_headers.get("X-Coachbook-Event") == str(events[0].pk):
            raise ValueError("a header the mail library refuses")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(notifications.EmailMultiAlternatives, "send", refuse_the_request_email)

    sent = notifications.events_notify(event_ids=[event.pk for event in events])

    assert (sent, [message.to for message in mail.outbox]) == (1, [[student.email]])
    assert f"email for event {events[0].pk} to user {coach.pk} failed and is skipped" in (
        caplog.text
    )


def test_a_failed_reminder_to_one_side_is_resent_only_to_that_side(people, monkeypatch):
    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=session, actor=coach)
    mail.outbox.clear()
    original = notifications.EmailMultiAlternatives.send

    def student_server_down(self, *args, **kwargs):
        if self.to == [student.email]:
            raise smtplib.SMTPServerDisconnected("connection lost")
        return original(self, *args, **kwargs)

    with time_machine.travel(START - timedelta(minutes=50), tick=False):
        monkeypatch.setattr(notifications.EmailMultiAlternatives, "send", student_server_down)
        first = services.sessions_send_reminders()
        first_to = [message.to for message in mail.outbox]
        released = Session.objects.get(pk=session.pk).reminder_1h_sent_at
        monkeypatch.setattr(notifications.EmailMultiAlternatives, "send", original)
        mail.outbox.clear()
        second = services.sessions_send_reminders()
        third = services.sessions_send_reminders()

    assert (first, first_to, released) == (0, [[coach.email]], None)
    assert (second, [message.to for message in mail.outbox], third) == (1, [[student.email]], 0)
    assert Session.objects.get(pk=session.pk).reminder_1h_sent_at is not None


# --- failures while an email is built ----------------------------------------------------------


def _build_fails_for(monkeypatch, user):
    """Email.message() raises (as a template that does not render would) for `user` only."""
    from django.template import TemplateSyntaxError

    original = notifications.Email.message

    def message(self):
        if self.recipient.pk == user.pk:
            raise TemplateSyntaxError("Invalid block tag")
        return original(self)

    monkeypatch.setattr(notifications.Email, "message", message)
    return original


def test_an_email_that_cannot_be_built_is_skipped_its_claim_released_and_the_chunk_goes_on(
    people, monkeypatch, caplog
):
    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=session, actor=coach)
    book, accept = SessionEvent.objects.exclude(action=Action.CREATE).order_by("pk")
    original = _build_fails_for(monkeypatch, coach)

    sent = notifications.events_notify(event_ids=[book.pk, accept.pk])

    assert (sent, [message.to for message in mail.outbox]) == (1, [[student.email]])
    assert f"email for event {book.pk} to user {coach.pk} failed and is skipped" in caplog.text
    # The claim was released: once the template is fixed, the email goes.
    monkeypatch.setattr(notifications.Email, "message", original)
    mail.outbox.clear()
    assert notifications.events_notify(event_ids=[book.pk, accept.pk]) == 1
    assert [message.to for message in mail.outbox] == [[coach.email]]


def test_a_reminder_that_cannot_be_built_is_retried_for_that_side_only(people, monkeypatch):
    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=session, actor=coach)
    mail.outbox.clear()

    with time_machine.travel(START - timedelta(minutes=50), tick=False):
        original = _build_fails_for(monkeypatch, coach)
        first = services.sessions_send_reminders()
        first_to = [message.to for message in mail.outbox]
        monkeypatch.setattr(notifications.Email, "message", original)
        mail.outbox.clear()
        second = services.sessions_send_reminders()

    assert (first, first_to) == (0, [[student.email]])
    assert (second, [message.to for message in mail.outbox]) == (1, [[coach.email]])


def test_an_event_whose_emails_cannot_be_built_is_skipped_and_the_chunk_goes_on(
    people, monkeypatch, caplog
):
    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=session, actor=coach)
    book, accept = SessionEvent.objects.exclude(action=Action.CREATE).order_by("pk")

    def broken_invitation(**kwargs):
        raise ValueError("the calendar library refused a value")

    monkeypatch.setattr(notifications, "session_ics", broken_invitation)  # only accept attaches

    sent = notifications.events_notify(event_ids=[accept.pk, book.pk])

    assert (sent, [message.to for message in mail.outbox]) == (1, [[coach.email]])
    assert f"emails for event {accept.pk} could not be built and are skipped" in caplog.text


# --- Celery's soft time limit is an Exception too, and must never be swallowed -------------------


def _time_limit_on_send(monkeypatch, user):
    from celery.exceptions import SoftTimeLimitExceeded

    original = notifications.EmailMultiAlternatives.send

    def send(self, *args, **kwargs):
        if self.to == [user.email]:
            raise SoftTimeLimitExceeded()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(notifications.EmailMultiAlternatives, "send", send)
    return original


def test_the_soft_time_limit_stops_event_emails_and_releases_the_claim(people, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    coach, _student, _session, _start = people
    _booked_without_notifying(people)
    event = SessionEvent.objects.get(action=Action.BOOK)
    original = _time_limit_on_send(monkeypatch, coach)

    with pytest.raises(SoftTimeLimitExceeded):
        notifications.events_notify(event_ids=[event.pk])
    monkeypatch.setattr(notifications.EmailMultiAlternatives, "send", original)

    assert notifications.events_notify(event_ids=[event.pk]) == 1  # the retry sends it
    assert [message.to for message in mail.outbox] == [[coach.email]]


def test_the_soft_time_limit_stops_reminders_and_hands_the_chunk_to_the_next_run(
    people, monkeypatch
):
    from celery.exceptions import SoftTimeLimitExceeded

    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=session, actor=coach)
    other_coach, other_student = CoachFactory(), StudentFactory()
    package = services.package_purchase(
        student=other_student, offering=OfferingFactory(coach=other_coach)
    )
    other = package.sessions.order_by("number").first()
    later = _open(other_coach, START + timedelta(minutes=5))
    services.session_book(session=other, start=later, actor=other_student)
    services.session_accept(session=other, actor=other_coach)
    mail.outbox.clear()

    with time_machine.travel(START - timedelta(minutes=50), tick=False):
        original = _time_limit_on_send(monkeypatch, coach)
        with pytest.raises(SoftTimeLimitExceeded):
            services.sessions_send_reminders()
        first_to = [message.to for message in mail.outbox]
        claimed = list(
            Session.objects.filter(pk__in=[session.pk, other.pk]).values_list(
                "reminder_1h_sent_at", flat=True
            )
        )
        monkeypatch.setattr(notifications.EmailMultiAlternatives, "send", original)
        mail.outbox.clear()
        second = services.sessions_send_reminders()

    # Stopped at once (the student was not tried) and nothing is left claimed but unsent.
    assert (first_to, claimed) == ([], [None, None])
    assert second == 2
    assert sorted(message.to[0] for message in mail.outbox) == sorted(
        [coach.email, student.email, other_coach.email, other_student.email]
    )
