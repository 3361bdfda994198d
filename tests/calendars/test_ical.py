"""The one event builder (calendars.ical): iTIP invitations (RFC 5546) for confirm, reschedule
and cancel, parsed back with icalendar; the feed's events from the same builder; the MIME parts
of an email carrying an invitation."""

import email
from datetime import UTC, datetime, timedelta
from email import policy
from zoneinfo import ZoneInfo

import icalendar
import pytest
import time_machine
from django.core import mail
from django.core.mail import EmailMultiAlternatives

from calendars import feeds, ical
from sessions_app import services
from tests.factories import (
    AvailabilityWindowFactory,
    CoachFactory,
    OfferingFactory,
    StudentFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("coaches_decide_refunds")]

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)  # a Monday
START = datetime(2025, 1, 8, 13, 0, tzinfo=UTC)  # Wednesday 14:00 in Berlin
NEW_START = datetime(2025, 1, 9, 13, 0, tzinfo=UTC)
MINUTES = 90
SENDER = "no-reply@coachbook.example"


@pytest.fixture(autouse=True)
def _settings(settings, celery_eager):
    settings.SITE_URL = "https://coachbook.example"
    settings.DEFAULT_FROM_EMAIL = f"Coachbook <{SENDER}>"


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def people(clock):
    coach = CoachFactory(
        timezone="Europe/Berlin", display_name="Carla Coach", email="carla@example.com"
    )
    student = StudentFactory(
        timezone="America/New_York", display_name="Sam Student", email="sam@example.com"
    )
    offering = OfferingFactory(coach=coach, title="Chess basics", duration_minutes=MINUTES)
    package = services.package_purchase(student=student, offering=offering)
    session = package.sessions.order_by("number").first()
    for start in (START, NEW_START):
        AvailabilityWindowFactory(coach=coach, start=start, end=start + timedelta(minutes=MINUTES))
    return coach, student, session


def _run(capture, action, **kwargs):
    """The emails `action` sent to the other side (the actor gets a copy of an invitation too,
    organized the same way as for that side; tests/notifications covers it)."""
    mail.outbox.clear()
    with capture(execute=True):
        action(**kwargs)
    actor = kwargs["actor"]
    return [message for message in mail.outbox if message.to != [actor.email]]


def _fresh(session):
    session.refresh_from_db()
    return session


def _invitation(message) -> icalendar.Calendar:
    """The calendar an email carries, wherever it is (an inline part or an attachment): every
    copy in one email must be the same calendar."""
    parsed = email.message_from_bytes(message.message().as_bytes(), policy=policy.default)
    bodies = {
        part.get_payload(decode=True).replace(b"\r\n", b"\n")
        for part in parsed.walk()
        if part.get_content_type() in ("text/calendar", "application/ics")
    }
    assert len(bodies) == 1, "an email carries one invitation (inline and attached copies agree)"
    return icalendar.Calendar.from_ical(bodies.pop())


def _event(calendar) -> icalendar.Event:
    [event] = calendar.walk("VEVENT")
    return event


def _addresses(event, name) -> list[tuple[str, dict]]:
    values = event.get(name)
    values = values if isinstance(values, list) else [values]
    return [(str(value), dict(value.params)) for value in values]


def _confirm(people, capture):
    coach, student, session = people
    services.session_book(session=session, start=START, actor=student)
    [message] = _run(capture, services.session_accept, session=_fresh(session), actor=coach)
    return message


# --- the invitations of confirm, reschedule and cancel ----------------------------------------


def test_confirmation_is_a_request_organized_by_the_coach_for_the_student(
    people, django_capture_on_commit_callbacks
):
    _coach, student, session = people

    message = _confirm(people, django_capture_on_commit_callbacks)

    assert message.to == [student.email]
    calendar = _invitation(message)
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(calendar["PRODID"]) == ical.PRODID
    assert str(calendar["VERSION"]) == "2.0"
    event = _event(calendar)
    assert str(event["UID"]) == f"session-{session.pk}@coachbook"
    assert int(event["SEQUENCE"]) == 0
    assert str(event["STATUS"]) == "CONFIRMED"
    assert _addresses(event, "ORGANIZER") == [
        ("mailto:carla@example.com", {"CN": "Carla Coach", "SENT-BY": f"mailto:{SENDER}"})
    ]
    assert _addresses(event, "ATTENDEE") == [
        (
            "mailto:sam@example.com",
            {
                "CN": "Sam Student",
                "CUTYPE": "INDIVIDUAL",
                "ROLE": "REQ-PARTICIPANT",
                "PARTSTAT": "ACCEPTED",
                "RSVP": "FALSE",
            },
        )
    ]
    # 90 minutes, in UTC (a Z time, no TZID), stamped when it was sent.
    assert (event.decoded("DTSTART"), event.decoded("DTEND")) == (
        START,
        START + timedelta(minutes=MINUTES),
    )
    assert event["DTSTART"].to_ical() == b"20250108T130000Z"
    assert event["DTEND"].to_ical() == b"20250108T143000Z"
    assert "TZID" not in event["DTSTART"].params
    assert event.decoded("DTSTAMP") == NOW


def test_an_agreed_new_time_is_a_request_with_the_same_uid_and_a_raised_sequence(
    people, django_capture_on_commit_callbacks
):
    coach, student, session = people
    first = _event(_invitation(_confirm(people, django_capture_on_commit_callbacks)))
    services.session_propose_reschedule(session=_fresh(session), start=NEW_START, actor=student)

    [message] = _run(
        django_capture_on_commit_callbacks,
        services.session_confirm_reschedule,
        session=_fresh(session),
        actor=coach,
    )

    assert message.to == [student.email]
    calendar = _invitation(message)
    assert str(calendar["METHOD"]) == "REQUEST"
    event = _event(calendar)
    assert str(event["UID"]) == str(first["UID"]) == f"session-{session.pk}@coachbook"
    assert int(event["SEQUENCE"]) == int(first["SEQUENCE"]) + 1 == _fresh(session).sequence
    assert (event.decoded("DTSTART"), event.decoded("DTEND")) == (
        NEW_START,
        NEW_START + timedelta(minutes=MINUTES),
    )
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["ORGANIZER"]) == "mailto:carla@example.com"
    assert [address for address, _ in _addresses(event, "ATTENDEE")] == ["mailto:sam@example.com"]


def test_the_coachs_own_copy_is_organized_by_the_site_with_the_coach_attending(
    people, django_capture_on_commit_callbacks
):
    coach, student, session = people
    _confirm(people, django_capture_on_commit_callbacks)
    services.session_propose_reschedule(session=_fresh(session), start=NEW_START, actor=coach)

    [message] = _run(
        django_capture_on_commit_callbacks,
        services.session_confirm_reschedule,
        session=_fresh(session),
        actor=student,
    )

    assert message.to == [coach.email]
    event = _event(_invitation(message))
    # A calendar does not add an invitation it organized itself: the site organizes this one.
    assert _addresses(event, "ORGANIZER") == [(f"mailto:{SENDER}", {"CN": "Coachbook"})]
    attendees = _addresses(event, "ATTENDEE")
    assert [address for address, _ in attendees] == [
        "mailto:carla@example.com",
        "mailto:sam@example.com",
    ]
    assert {params["RSVP"] for _, params in attendees} == {"FALSE"}
    assert (str(event["UID"]), int(event["SEQUENCE"])) == (f"session-{session.pk}@coachbook", 1)
    assert event.decoded("DTSTART") == NEW_START


def test_cancellation_is_a_cancel_with_the_same_uid_and_a_raised_sequence(
    people, django_capture_on_commit_callbacks
):
    coach, student, session = people
    first = _event(_invitation(_confirm(people, django_capture_on_commit_callbacks)))

    [message] = _run(
        django_capture_on_commit_callbacks,
        services.session_cancel,
        session=_fresh(session),
        actor=coach,
        refund="none",
    )

    assert message.to == [student.email]
    calendar = _invitation(message)
    assert str(calendar["METHOD"]) == "CANCEL"
    event = _event(calendar)
    assert str(event["UID"]) == str(first["UID"])
    assert int(event["SEQUENCE"]) == int(first["SEQUENCE"]) + 1
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["TRANSP"]) == "TRANSPARENT"
    assert str(event["ORGANIZER"]) == "mailto:carla@example.com"
    assert [address for address, _ in _addresses(event, "ATTENDEE")] == ["mailto:sam@example.com"]
    assert event.decoded("DTSTART") == START


def test_one_builder_the_feed_event_and_the_invitation_agree(
    people, django_capture_on_commit_callbacks
):
    _coach, student, _session = people
    invited = _event(_invitation(_confirm(people, django_capture_on_commit_callbacks)))

    calendar = feeds.feed_calendar(
        user=student, sessions=feeds.feed_sessions(user=student, now=NOW)
    )

    published = _event(calendar)
    for name in ("UID", "SEQUENCE", "DTSTART", "DTEND", "SUMMARY", "STATUS", "URL"):
        assert published[name].to_ical() == invited[name].to_ical(), name
    # The feed is a subscription snapshot: nobody is invited through it.
    assert "ORGANIZER" not in published
    assert "ATTENDEE" not in published
    assert str(calendar["METHOD"]) == "PUBLISH"


# --- the builder itself ------------------------------------------------------------------------


def _invitation_kwargs(**overrides):
    kwargs = {
        "session_id": 7,
        "start": START,
        "end": START + timedelta(minutes=MINUTES),
        "summary": "Chess basics with Carla Coach",
        "description": "Coachbook session 1.",
        "url": "https://coachbook.example/sessions/7/",
        "organizer": ("Carla Coach", "carla@example.com"),
        "attendees": [("Sam Student", "sam@example.com")],
        "sequence": 3,
        "method": "REQUEST",
    }
    return kwargs | overrides


def test_invitation_times_are_converted_to_utc(clock):
    berlin = START.astimezone(ZoneInfo("Europe/Berlin"))

    ics = ical.invitation_ics(
        **_invitation_kwargs(start=berlin, end=berlin + timedelta(minutes=MINUTES))
    )

    text = ics.decode()
    assert "DTSTART:20250108T130000Z\r\n" in text
    assert "DTEND:20250108T143000Z\r\n" in text
    assert "VTIMEZONE" not in text


def test_a_cancel_is_cancelled_and_the_method_is_checked(clock):
    event = _event(
        icalendar.Calendar.from_ical(ical.invitation_ics(**_invitation_kwargs(method="cancel")))
    )

    assert (str(event["STATUS"]), int(event["SEQUENCE"])) == ("CANCELLED", 3)
    with pytest.raises(ValueError, match="iTIP method"):
        ical.invitation_ics(**_invitation_kwargs(method="PUBLISH"))
    with pytest.raises(ValueError, match="attendee"):
        ical.invitation_ics(**_invitation_kwargs(attendees=[]))
    with pytest.raises(ValueError, match="aware"):
        ical.invitation_ics(**_invitation_kwargs(start=datetime(2025, 1, 8, 13)))


def test_names_are_one_line_and_quoted_and_the_site_signs_no_sent_by_for_itself(clock):
    event = _event(
        icalendar.Calendar.from_ical(
            ical.invitation_ics(
                **_invitation_kwargs(
                    organizer=("Coachbook", SENDER),
                    attendees=[('O\'Brien, "Sam":\nthe 2nd', "sam@example.com")],
                )
            )
        )
    )

    assert _addresses(event, "ORGANIZER") == [(f"mailto:{SENDER}", {"CN": "Coachbook"})]
    [(_, params)] = _addresses(event, "ATTENDEE")
    assert params["CN"] == 'O\'Brien, "Sam": the 2nd'


def _vevent_kwargs(**overrides):
    kwargs = {
        "session_id": 9,
        "start": START,
        "end": START + timedelta(minutes=MINUTES),
        "summary": "s",
        "description": "d",
        "url": "https://coachbook.example/sessions/9/",
        "sequence": 2,
    }
    return kwargs | overrides


def test_session_vevent_without_people_is_a_plain_event_stamped_as_asked(clock):
    stamp = NOW - timedelta(days=2)

    event = ical.session_vevent(**_vevent_kwargs(status="TENTATIVE", stamp=stamp))

    assert str(event["UID"]) == "session-9@coachbook"
    assert (int(event["SEQUENCE"]), str(event["STATUS"])) == (2, "TENTATIVE")
    assert str(event["TRANSP"]) == "OPAQUE"
    assert event.decoded("DTSTAMP") == stamp
    assert "ORGANIZER" not in event
    assert "ATTENDEE" not in event
    assert ical.session_vevent(**_vevent_kwargs()).decoded("DTSTAMP") == NOW
    with pytest.raises(ValueError, match="status"):
        ical.session_vevent(**_vevent_kwargs(status="MAYBE"))


# --- MIME --------------------------------------------------------------------------------------


def _message_with(method: str) -> tuple[EmailMultiAlternatives, bytes]:
    ics = ical.invitation_ics(**_invitation_kwargs(method=method))
    message = EmailMultiAlternatives(
        subject="Confirmed", body="Plain text", from_email=f"Coachbook <{SENDER}>", to=["s@x.org"]
    )
    message.attach_alternative("<p>HTML</p>", "text/html")
    ical.attach_invitation(message=message, ics=ics, method=method)
    return message, ics


@pytest.mark.parametrize("method", ["REQUEST", "CANCEL"])
def test_the_invitation_is_inline_in_the_alternatives_and_attached_as_invite_ics(clock, method):
    message, ics = _message_with(method)

    parsed = email.message_from_bytes(message.message().as_bytes(), policy=policy.default)

    assert parsed.get_content_type() == "multipart/mixed"
    alternative, attachment = parsed.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    plain, html, inline = alternative.get_payload()
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    # The inline part: text/calendar with the method and exactly one charset.
    header = inline["Content-Type"]
    assert header == f'text/calendar; method="{method}"; charset="utf-8"'
    assert header.lower().count("charset") == 1
    assert inline.get_content_type() == "text/calendar"
    assert inline.get_param("method") == method
    assert inline.get_content_charset() == "utf-8"
    assert inline.get_content_disposition() is None
    # The attached copy, for clients (and people) that open attachments.
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == "invite.ics"
    for part in (inline, attachment):
        body = part.get_payload(decode=True)
        calendar = icalendar.Calendar.from_ical(body)
        assert str(calendar["METHOD"]) == method
        assert body.replace(b"\r\n", b"\n") == ics.replace(b"\r\n", b"\n")


def test_attach_invitation_refuses_an_unknown_method(clock):
    message = EmailMultiAlternatives(subject="s", body="b", to=["s@x.org"])

    with pytest.raises(ValueError, match="iTIP method"):
        ical.attach_invitation(message=message, ics=b"BEGIN:VCALENDAR", method="PUBLISH")
    assert message.alternatives == [] and message.attachments == []
