"""Emails about session changes, built from the outbox: who hears about what, in which
timezone, with which link and calendar invitation; written with their event, sent only after
its commit, and only once."""

import smtplib
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import transaction

from notifications import emails
from notifications import services as outbox
from notifications.models import Delivery, DeliveryStatus
from sessions_app import services
from sessions_app.lifecycle import Action, PermissionDenied
from tests.factories import CoachFactory, OfferingFactory, StudentFactory
from tests.notifications.helpers import NOW, SITE, START, fresh, html_of, invitation, vevent
from tests.notifications.helpers import open_window as _open
from tests.notifications.helpers import run as _run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("coaches_decide_refunds")]


def _fresh(session):
    return fresh(session)


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


def _html(message):
    return html_of(message)


def _to(user, messages=None):
    """The one email in `messages` (the outbox by default) to `user`."""
    [message] = [each for each in (messages or mail.outbox) if each.to == [user.email]]
    return message


def _send_all(now=None) -> int:
    """The outbox sweep, as beat runs it."""
    return outbox.deliveries_send_due(now=now)


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


def test_accept_emails_both_sides_an_ics_invitation_in_utc(
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

    assert sorted(message.to[0] for message in mail.outbox) == sorted([coach.email, student.email])
    own = _to(coach)  # the coach who accepted: their calendar moves in place too
    assert own.subject == "Confirmed: Chess basics with Sam Student, Wed 8 Jan, 14:00 CET"
    assert "The attached invitation updates your calendar." in own.body
    assert (str(invitation(own)["METHOD"]), vevent(own)["SEQUENCE"]) == ("REQUEST", 0)
    message = _to(student)
    assert message.subject == "Confirmed: Chess basics with Carla Coach, Wed 8 Jan, 08:00 EST"
    assert "Wed 8 Jan 2025, 08:00\u201309:00 EST (America/New_York)" in message.body
    assert str(invitation(message)["METHOD"]) == "REQUEST"
    event = vevent(message)
    assert str(event["UID"]) == f"session-{session.pk}@coachbook"
    assert event["SEQUENCE"] == 0
    assert event.decoded("DTSTART") == START
    assert event["DTSTART"].to_ical() == b"20250108T130000Z"  # UTC, no TZID
    assert event.decoded("DTEND") == START + timedelta(hours=1)
    assert str(event["STATUS"]) == "CONFIRMED"


def test_coach_proposes_student_confirms_both_get_a_request_with_sequence_1(
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
    assert len(mail.outbox) == 2
    message = _to(coach)
    assert message.subject == "New time confirmed, Thu 9 Jan, 14:00 CET"
    own = _to(student)  # the student who confirmed: their calendar moves too
    assert own.subject == "New time confirmed: Chess basics with Carla Coach, Thu 9 Jan, 08:00 EST"
    assert "The attached invitation updates your calendar." in own.body
    for each in (message, own):
        assert str(invitation(each)["METHOD"]) == "REQUEST"
        event = vevent(each)
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

    message = _to(student)
    assert "When:         Thu 9 Jan 2025, 08:00\u201309:30 EST (America/New_York)" in message.body
    assert "Agreed time:" not in message.body
    event = vevent(message)
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


def test_coach_cancels_a_confirmed_session_both_get_a_cancel_invitation(
    people, django_capture_on_commit_callbacks
):
    coach, student, _, _ = people
    session = _confirmed(people, django_capture_on_commit_callbacks)

    _run(
        django_capture_on_commit_callbacks,
        services.session_cancel,
        session=session,
        actor=coach,
        refund="full",
        reason="Ill",
    )

    assert len(mail.outbox) == 2
    message = _to(student)
    assert message.subject == "Session canceled: Chess basics, Wed 8 Jan, 08:00 EST"
    assert "Full refund: $100.00." in message.body and "Full refund: $100.00." in _html(message)
    assert "Their note: Ill" in message.body
    own = _to(coach)
    assert own.subject == "Canceled: Chess basics with Sam Student, Wed 8 Jan, 14:00 CET"
    for each in (message, own):
        assert "The attached cancellation removes it from your calendar." in each.body
        assert str(invitation(each)["METHOD"]) == "CANCEL"
        event = vevent(each)
        assert (str(event["UID"]), str(event["STATUS"]), event["SEQUENCE"]) == (
            f"session-{session.pk}@coachbook",
            "CANCELLED",
            1,
        )


def test_canceling_a_request_sends_no_invitation(people, django_capture_on_commit_callbacks):
    session = _requested(people, django_capture_on_commit_callbacks)

    _run(
        django_capture_on_commit_callbacks,
        services.session_cancel,
        session=session,
        actor=people[0],
        refund="none",
    )

    [message] = mail.outbox
    assert (message.to, invitation(message)) == ([people[1].email], None)


def test_nothing_is_written_or_sent_for_a_rolled_back_change(
    people, django_capture_on_commit_callbacks
):
    _coach, student, session, start = people
    before = Delivery.objects.count()

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.session_book(session=session, start=start, actor=student)
        assert Delivery.objects.count() == before + 1  # written with the event...
        raise RuntimeError("the request failed after the booking")

    assert (callbacks, mail.outbox) == ([], [])
    assert Delivery.objects.count() == before  # ...and rolled back with it
    assert _fresh(session).status == "UNSCHEDULED"


def test_a_refused_action_writes_and_sends_nothing(people, django_capture_on_commit_callbacks):
    session = _requested(people, django_capture_on_commit_callbacks)
    before = Delivery.objects.count()

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(PermissionDenied),
    ):
        services.session_accept(session=session, actor=people[1])

    assert (callbacks, mail.outbox, Delivery.objects.count()) == ([], [], before)


def _booked_without_sending(people) -> Delivery:
    """Book (the on-commit send never runs); the booking's one delivery, to the coach."""
    _coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    return Delivery.objects.get(event__action=Action.BOOK)


def test_sending_the_same_delivery_twice_sends_once(people):
    delivery = _booked_without_sending(people)

    first = outbox.delivery_send(delivery_id=delivery.pk)
    second = outbox.delivery_send(delivery_id=delivery.pk)

    assert (first, second, len(mail.outbox)) == ("sent", "not_due", 1)
    assert (fresh(delivery).status, delivery.attempts) == (DeliveryStatus.SENT, 1)


def test_a_missing_delivery_sends_nothing(db):
    assert outbox.delivery_send(delivery_id=987654) == "not_due"
    assert mail.outbox == []


def test_a_failed_send_is_retried_after_its_backoff_and_then_sent_once(people, monkeypatch):
    delivery = _booked_without_sending(people)
    original = EmailMultiAlternatives.send

    def broken(self, *args, **kwargs):
        raise smtplib.SMTPServerDisconnected("connection lost")

    monkeypatch.setattr(EmailMultiAlternatives, "send", broken)
    assert outbox.delivery_send(delivery_id=delivery.pk) == "retry"
    monkeypatch.setattr(EmailMultiAlternatives, "send", original)

    fresh(delivery)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (
        DeliveryStatus.PENDING,
        1,
        NOW + timedelta(minutes=1),
    )
    assert delivery.last_error == "SMTPServerDisconnected: connection lost"
    assert (_send_all(), mail.outbox) == (0, [])  # not before its time
    assert _send_all(now=NOW + timedelta(minutes=1)) == 1
    assert _send_all(now=NOW + timedelta(minutes=2)) == 0
    assert len(mail.outbox) == 1
    assert (fresh(delivery).status, delivery.attempts, delivery.last_error) == ("SENT", 2, "")


def test_a_sweep_sends_its_events_emails_in_chunks(
    clock, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(outbox, "SEND_CHUNK", 2)
    coach = CoachFactory()
    for hours in range(3):
        package = services.package_purchase(
            student=StudentFactory(), offering=OfferingFactory(coach=coach)
        )
        start = _open(coach, START + timedelta(hours=hours))
        services.session_book(session=package.sessions.first(), start=start, actor=package.student)

    from notifications import tasks

    sent_in = []
    send = tasks.send_deliveries.delay
    monkeypatch.setattr(
        tasks.send_deliveries,
        "delay",
        lambda **kwargs: (sent_in.append(len(kwargs["delivery_ids"])), send(**kwargs))[1],
    )

    _, callbacks = _run(
        django_capture_on_commit_callbacks,
        services.sessions_expire_stale,
        now=NOW + timedelta(days=3),
    )

    # 3 events, both sides of each: 6 deliveries, one after-commit hook for the sweep's chunk,
    # which queues them in tasks of 2.
    assert (len(callbacks), sent_in) == (1, [2, 2, 2])
    assert len(mail.outbox) == 6
    assert sorted(message.to[0] for message in mail.outbox).count(coach.email) == 3


def test_time_shown_follows_daylight_saving_in_the_recipients_zone(db):
    coach = CoachFactory(timezone="Europe/Berlin")
    summer = datetime(2025, 7, 2, 12, 0, tzinfo=UTC)

    text = emails.format_when(summer, summer + timedelta(hours=1), coach)

    assert text == "Wed 2 Jul 2025, 14:00\u201315:00 CEST (Europe/Berlin)"


def test_a_broker_outage_never_fails_the_committed_change_and_the_sweep_sends_it(
    people, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    from kombu.exceptions import OperationalError

    from notifications import tasks

    session = _requested(people, django_capture_on_commit_callbacks)

    def broker_down(**kwargs):
        raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(tasks.send_delivery, "delay", broker_down)
    monkeypatch.setattr(tasks.send_deliveries, "delay", broker_down)
    _run(
        django_capture_on_commit_callbacks,
        services.session_accept,
        session=session,
        actor=people[0],
    )

    assert (_fresh(session).status, mail.outbox) == ("CONFIRMED", [])
    assert "Connection refused" in caplog.text
    deliveries = Delivery.objects.filter(event__action=Action.ACCEPT)
    assert {(each.status, each.attempts) for each in deliveries} == {(DeliveryStatus.PENDING, 0)}

    assert _send_all() == 2

    assert str(invitation(_to(people[1]))["METHOD"]) == "REQUEST"


# --- the facts of the moment --------------------------------------------------------------------


def test_a_late_email_tells_the_facts_of_its_event_not_the_sessions_later_state(
    people, django_capture_on_commit_callbacks
):
    coach, student, _, _ = people
    session = _confirmed(people, django_capture_on_commit_callbacks)
    new_start = _open(coach, START + timedelta(days=1))
    # The broker is down for both: nothing is sent until the sweep runs.
    services.session_propose_reschedule(session=session, start=new_start, actor=coach)
    services.session_confirm_reschedule(session=_fresh(session), actor=student)

    assert _send_all() == 3

    proposal, *confirmations = mail.outbox
    confirmed = _to(coach, confirmations)
    assert proposal.to == [student.email]
    assert proposal.subject == "Carla Coach proposed a new time, Thu 9 Jan, 08:00 EST"
    assert "Agreed time:  Wed 8 Jan 2025, 08:00\u201309:00 EST (America/New_York)" in (
        proposal.body
    )
    assert "Status:       Rescheduling" in proposal.body
    assert confirmed.to == [coach.email]
    assert confirmed.subject == "New time confirmed, Thu 9 Jan, 14:00 CET"
    assert vevent(confirmed)["SEQUENCE"] == 1
    assert vevent(_to(student, confirmations))["SEQUENCE"] == 1


def test_a_late_confirmation_does_not_put_a_time_already_changed_back_on_the_calendar(
    people, django_capture_on_commit_callbacks
):
    coach = people[0]
    session = _requested(people, django_capture_on_commit_callbacks)
    services.session_accept(session=session, actor=coach)  # not sent yet
    services.session_cancel(session=_fresh(session), actor=coach, refund="full")

    # The coach's own copy of the acceptance only existed for their calendar, since moved on.
    assert _send_all() == 3
    own_accept = Delivery.objects.get(event__action=Action.ACCEPT, recipient=coach)
    assert own_accept.status == DeliveryStatus.SKIPPED

    student = people[1]
    accepted, canceled = [m for m in mail.outbox if m.to == [student.email]]
    assert _to(coach).subject == "Canceled: Chess basics with Sam Student, Wed 8 Jan, 14:00 CET"
    assert accepted.subject == "Confirmed: Chess basics with Carla Coach, Wed 8 Jan, 08:00 EST"
    assert (invitation(accepted), "attached invitation" in accepted.body) == (None, False)
    assert "Status:       Confirmed" in accepted.body  # as it was then
    assert str(invitation(canceled)["METHOD"]) == "CANCEL"
    assert "Full refund: $100.00." in canceled.body


def test_the_snapshot_keeps_the_names_and_refund_of_the_moment(
    people, django_capture_on_commit_callbacks
):
    coach = people[0]
    session = _confirmed(people, django_capture_on_commit_callbacks)
    services.session_cancel(session=session, actor=coach, refund="partial", amount_cents=2500)
    type(coach).objects.filter(pk=coach.pk).update(display_name="Carla Renamed")

    _send_all()

    message = _to(people[1])
    assert message.body.count("Carla Coach canceled session 1 of \u201cChess basics\u201d.") == 1
    assert "Partial refund: $25.00." in message.body
    delivery = Delivery.objects.get(event__action=Action.CANCEL, recipient=people[1])
    assert (delivery.facts["refund"], delivery.facts["refund_amount_cents"]) == ("partial", 2500)
    assert (delivery.facts["start"], delivery.facts["sequence"]) == (START.isoformat(), 1)


# --- names that are not one line, and failures that retrying cannot fix ----------------------


def test_a_stored_name_with_a_newline_still_gives_a_one_line_subject(people):
    _coach, student, _session, _start = people
    # Stored before names were checked (or by another path): the email must still go.
    type(student).objects.filter(pk=student.pk).update(display_name="Sam\nBcc: x@evil.example")
    student.refresh_from_db()
    delivery = _booked_without_sending(people)

    assert outbox.delivery_send(delivery_id=delivery.pk) == "sent"

    (message,) = mail.outbox
    assert message.subject == "New request from Sam Bcc: x@evil.example, Wed 8 Jan, 14:00 CET"
    assert "\n" not in message.message()["Subject"]


def test_an_email_that_cannot_be_sent_fails_at_once_with_its_reason_and_the_rest_go(
    people, monkeypatch, caplog
):
    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=session, actor=coach)
    book = Delivery.objects.get(event__action=Action.BOOK)
    original = EmailMultiAlternatives.send

    def refuse_the_request_email(self, *args, **kwargs):
        if self.extra_headers.get("X-Coachbook-Delivery") == str(book.pk):
            raise ValueError("a header the mail library refuses")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EmailMultiAlternatives, "send", refuse_the_request_email)

    sent = _send_all()

    assert (sent, sorted(message.to[0] for message in mail.outbox)) == (
        2,
        sorted([coach.email, student.email]),
    )
    fresh(book)
    assert (book.status, book.attempts) == (DeliveryStatus.FAILED, 1)
    assert book.last_error == "ValueError: a header the mail library refuses"
    assert f"delivery {book.pk} failed after 1 attempt(s)" in caplog.text


def test_a_recipient_the_server_refuses_for_good_fails_at_once(people, monkeypatch):
    delivery = _booked_without_sending(people)

    def refused(self, *args, **kwargs):
        raise smtplib.SMTPRecipientsRefused({self.to[0]: (550, b"No such user")})

    monkeypatch.setattr(EmailMultiAlternatives, "send", refused)

    assert outbox.delivery_send(delivery_id=delivery.pk) == "failed"
    assert fresh(delivery).status == DeliveryStatus.FAILED


def test_a_send_that_keeps_failing_gives_up_once_its_next_attempt_falls_past_the_window(
    people, monkeypatch, settings
):
    settings.NOTIFICATIONS_RETRY_BASE_SECONDS = 3600  # 1 h, 2 h, 4 h ... at most 8 h
    settings.NOTIFICATIONS_RETRY_MAX_SECONDS = 8 * 3600
    settings.NOTIFICATIONS_GIVE_UP_HOURS = 2
    delivery = _booked_without_sending(people)

    def down(self, *args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(EmailMultiAlternatives, "send", down)
    outcomes = [outbox.delivery_send(delivery_id=delivery.pk, now=NOW)]
    retries = [fresh(delivery).next_attempt_at]
    outcomes.append(outbox.delivery_send(delivery_id=delivery.pk, now=retries[-1]))
    retries.append(fresh(delivery).next_attempt_at)
    later = retries[-1] + timedelta(days=1)

    # Backoff doubles: 1 h after the first failure; the next, 2 h later, would fall 3 h after
    # the delivery was written, past the 2 h window: given up.
    assert outcomes == ["retry", "failed"]
    assert retries == [NOW + timedelta(hours=1), NOW + timedelta(hours=1)]
    assert (fresh(delivery).status, delivery.attempts) == (DeliveryStatus.FAILED, 2)
    assert "Connection refused" in delivery.last_error
    assert (_send_all(now=later), mail.outbox) == (0, [])  # given up: the admin sends it again


def test_a_failed_reminder_to_one_side_is_retried_only_to_that_side(people, monkeypatch):
    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=session, actor=coach)
    Delivery.objects.update(status=DeliveryStatus.SENT, sent_at=NOW)  # the earlier emails went
    original = EmailMultiAlternatives.send

    def student_server_down(self, *args, **kwargs):
        if self.to == [student.email]:
            raise smtplib.SMTPServerDisconnected("connection lost")
        return original(self, *args, **kwargs)

    with time_machine.travel(START - timedelta(minutes=50), tick=False):
        monkeypatch.setattr(EmailMultiAlternatives, "send", student_server_down)
        first = services.sessions_send_reminders()
        first_to = [message.to for message in mail.outbox]
        monkeypatch.setattr(EmailMultiAlternatives, "send", original)
        mail.outbox.clear()
        again = services.sessions_send_reminders()
    with time_machine.travel(START - timedelta(minutes=49), tick=False):
        retried = _send_all()

    assert (first, first_to, again) == (1, [[coach.email]], 0)
    assert (retried, [message.to for message in mail.outbox]) == (1, [[student.email]])
    assert mail.outbox[0].subject == "Reminder: Chess basics with Carla Coach in 49 minutes"
    assert fresh(session).reminder_1h_sent_at == START - timedelta(minutes=50)


# --- failures while an email is built ----------------------------------------------------------


def _build_fails_for(monkeypatch, user):
    """Email.message() raises (as a template that does not render would) for `user` only."""
    from django.template import TemplateSyntaxError

    original = emails.Email.message

    def message(self):
        if self.recipient.pk == user.pk:
            raise TemplateSyntaxError("Invalid block tag")
        return original(self)

    monkeypatch.setattr(emails.Email, "message", message)
    return original


def test_an_email_that_cannot_be_built_fails_with_its_reason_and_can_be_sent_again(
    people, monkeypatch
):
    from tests.factories import SuperuserFactory

    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=session, actor=coach)
    book = Delivery.objects.get(event__action=Action.BOOK)
    original = _build_fails_for(monkeypatch, coach)

    sent = _send_all()

    assert (sent, [message.to for message in mail.outbox]) == (1, [[student.email]])
    fresh(book)
    assert (book.status, book.last_error) == (
        DeliveryStatus.FAILED,
        "TemplateSyntaxError: Invalid block tag",
    )
    # Once the template is fixed, the admin sends it again and it goes, once.
    monkeypatch.setattr(emails.Email, "message", original)
    mail.outbox.clear()
    outbox.delivery_resend(delivery=book, actor=SuperuserFactory())
    assert (_send_all(), [message.to for message in mail.outbox]) == (1, [[coach.email]])
    assert _send_all() == 0


def test_a_reminder_that_cannot_be_built_fails_for_that_side_only(people, monkeypatch):
    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=session, actor=coach)
    Delivery.objects.update(status=DeliveryStatus.SENT, sent_at=NOW)

    with time_machine.travel(START - timedelta(minutes=50), tick=False):
        _build_fails_for(monkeypatch, coach)
        first = services.sessions_send_reminders()

    assert (first, [message.to for message in mail.outbox]) == (1, [[student.email]])
    failed = Delivery.objects.get(kind="session_reminder", recipient=coach)
    assert failed.status == DeliveryStatus.FAILED


def test_an_invitation_that_cannot_be_built_fails_that_email_and_the_others_go(
    people, monkeypatch, caplog
):
    from calendars import ical

    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=session, actor=coach)
    accept = Delivery.objects.get(event__action=Action.ACCEPT, recipient=student)

    def broken_invitation(**kwargs):
        raise ValueError("the calendar library refused a value")

    monkeypatch.setattr(ical, "invitation_ics", broken_invitation)  # only accept invites

    sent = _send_all()

    assert (sent, [message.to for message in mail.outbox]) == (1, [[coach.email]])
    assert fresh(accept).last_error == "ValueError: the calendar library refused a value"


# --- Celery's soft time limit is an Exception too, and must never be swallowed -------------------


def _time_limit_on_send(monkeypatch, user):
    from celery.exceptions import SoftTimeLimitExceeded

    original = EmailMultiAlternatives.send

    def send(self, *args, **kwargs):
        if self.to == [user.email]:
            raise SoftTimeLimitExceeded()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EmailMultiAlternatives, "send", send)
    return original


def test_the_soft_time_limit_stops_a_send_and_hands_the_delivery_back(people, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    coach, _student, _session, _start = people
    delivery = _booked_without_sending(people)
    original = _time_limit_on_send(monkeypatch, coach)

    with pytest.raises(SoftTimeLimitExceeded):
        outbox.delivery_send(delivery_id=delivery.pk)
    monkeypatch.setattr(EmailMultiAlternatives, "send", original)

    fresh(delivery)
    assert (delivery.status, delivery.claimed_until, delivery.next_attempt_at) == (
        DeliveryStatus.PENDING,
        None,
        NOW,
    )
    assert _send_all() == 1  # the next sweep sends it
    assert [message.to for message in mail.outbox] == [[coach.email]]


def test_the_soft_time_limit_stops_reminders_and_the_outbox_sends_the_rest(people, monkeypatch):
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
    Delivery.objects.update(status=DeliveryStatus.SENT, sent_at=NOW)

    with time_machine.travel(START - timedelta(minutes=50), tick=False):
        original = _time_limit_on_send(monkeypatch, coach)
        with pytest.raises(SoftTimeLimitExceeded):
            services.sessions_send_reminders()
        first_to = [message.to for message in mail.outbox]
        monkeypatch.setattr(EmailMultiAlternatives, "send", original)
        mail.outbox.clear()
        again = services.sessions_send_reminders()
        swept = _send_all()

    # Stopped at once; every reminder is in the outbox and the sweep sends each once.
    assert (first_to, again, swept) == ([], 0, 4)
    assert sorted(message.to[0] for message in mail.outbox) == sorted(
        [coach.email, student.email, other_coach.email, other_student.email]
    )
