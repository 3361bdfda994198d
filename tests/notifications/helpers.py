"""Shared arrangements for the outbox tests: a Berlin coach and a New York student, a fixed
clock, one-off availability, and readers for the emails' parts."""

import email
from datetime import UTC, datetime, timedelta
from email import policy

import icalendar

from tests.factories import AvailabilityWindowFactory

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)  # a Monday
START = datetime(2025, 1, 8, 13, 0, tzinfo=UTC)  # Wednesday 14:00 CET, 08:00 EST
SITE = "https://coachbook.example"


def open_window(coach, start, minutes=60):
    """Make `start` bookable for a session of `minutes` with `coach` (a one-off window)."""
    AvailabilityWindowFactory(coach=coach, start=start, end=start + timedelta(minutes=minutes))
    return start


def run(capture, action, **kwargs):
    """Call `action` and run what it queued on commit (the send tasks, eagerly)."""
    with capture(execute=True) as callbacks:
        result = action(**kwargs)
    return result, callbacks


def fresh(obj):
    obj.refresh_from_db()
    return obj


def html_of(message) -> str:
    html = [content for content, mimetype in message.alternatives if mimetype == "text/html"]
    assert len(html) == 1
    return html[0]


def invitation(message) -> icalendar.Calendar | None:
    """The calendar an email carries (inline and attached copies agree), or None."""
    parsed = email.message_from_bytes(message.message().as_bytes(), policy=policy.default)
    bodies = {
        part.get_payload(decode=True).replace(b"\r\n", b"\n")
        for part in parsed.walk()
        if part.get_content_type() in ("text/calendar", "application/ics")
    }
    if not bodies:
        return None
    assert len(bodies) == 1, "one invitation per email"
    return icalendar.Calendar.from_ical(bodies.pop())


def vevent(message) -> icalendar.Event:
    [event] = invitation(message).walk("VEVENT")
    return event


def recipients(outbox) -> list[str]:
    return sorted(address for message in outbox for address in message.to)
