"""The iCalendar subscription feed: a user's sessions as an RFC 5545 calendar.

Reads only, through `sessions_app.selectors`, plus the builder that turns a user's sessions
into a calendar. Every query is scoped to the user it is for, and the number of queries does
not grow with the number of sessions. (The week view is `calendars.week`.)

A session's UID is `session-<id>@coachbook` everywhere (this feed and the .ics files attached to
emails), so a calendar that got an invitation by email and also subscribes to the feed shows
one event, updated in place: `SEQUENCE` is `Session.sequence`, raised whenever the entry
changes (a confirmed new time, a cancellation, a return to calendars after leaving them).
"""

from datetime import UTC, datetime, timedelta

import icalendar
from django.conf import settings
from django.urls import reverse

from accounts.models import User
from sessions_app import selectors as session_selectors
from sessions_app.lifecycle import Status
from sessions_app.models import Session

PRODID = "-//Coachbook//Coachbook sessions//EN"


def session_uid(session_id: int) -> str:
    """The iCalendar UID of a session, shared by the feed and emailed invitations."""
    return f"session-{session_id}@coachbook"


def session_url(session_id: int) -> str:
    return f"{settings.SITE_URL}{reverse('sessions:detail', args=[session_id])}"


# --- feed selectors ---------------------------------------------------------------------------


def user_by_calendar_token(*, token: str) -> User | None:
    """The active user whose feed URL carries `token`, or None (unknown, revoked, inactive)."""
    if not token:
        return None
    return User.objects.filter(calendar_token=token, is_active=True).first()


def feed_sessions(*, user: User, now: datetime | None = None) -> list[Session]:
    """The sessions `user`'s feed publishes, in one query (sessions_app's selector decides:
    confirmed, rescheduling, recently completed and recently canceled after publication)."""
    return session_selectors.sessions_for_calendar_feed(user=user, now=now)


# --- the feed -----------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _session_event(session: Session, user: User) -> icalendar.Event:
    other = session.student if session.coach_id == user.pk else session.coach
    role = "student" if session.coach_id == user.pk else "coach"
    url = session_url(session.pk)
    event = icalendar.Event()
    event.add("uid", session_uid(session.pk))
    event.add("sequence", session.sequence)
    event.add("dtstamp", _utc(session.updated_at))
    event.add("last-modified", _utc(session.updated_at))
    event.add("created", _utc(session.created_at))
    event.add("dtstart", _utc(session.slot.start))
    event.add("dtend", _utc(session.slot.end))
    event.add("summary", f"{session.package.title} with {other.name}")
    lines = [f"Coachbook session {session.number} of {session.package.title}."]
    lines.append(f"Your {role}: {other.name} <{other.email}>.")
    if session.status == Status.RESCHEDULING:
        event.add("status", "TENTATIVE")
        lines.append("A new time has been proposed; this is the last agreed time.")
    elif session.status == Status.CANCELED:
        event.add("status", "CANCELLED")
        lines.append("This session was canceled.")
    else:
        event.add("status", "CONFIRMED")
    lines.append(f"Details: {url}")
    event.add("description", "\n".join(lines))
    event.add("url", url)
    event.add("transp", "TRANSPARENT" if session.status == Status.CANCELED else "OPAQUE")
    return event


def feed_calendar(*, user: User, sessions: list[Session]) -> icalendar.Calendar:
    """The RFC 5545 calendar for `user`'s feed, all times in UTC."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", f"Coachbook: {user.name}")
    calendar.add("x-wr-caldesc", "Your Coachbook sessions. Keep this address secret.")
    # How often subscribers should refetch (Outlook and Apple honour these; Google decides).
    calendar.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")
    for session in sessions:
        calendar.add_component(_session_event(session, user))
    return calendar


def feed_ics(*, user: User, now: datetime | None = None) -> bytes:
    """The serialized feed for `user` (one query for the sessions)."""
    return feed_calendar(user=user, sessions=feed_sessions(user=user, now=now)).to_ical()
