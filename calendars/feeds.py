"""The iCalendar subscription feed: a user's sessions as an RFC 5545 calendar.

Reads only, through `sessions_app.selectors`, plus the builder that turns a user's sessions
into a calendar. Every query is scoped to the user it is for, and the number of queries does
not grow with the number of sessions. (The week view is `calendars.week`.)

A session's UID is `session-<id>@coachbook` everywhere (this feed and the .ics files attached to
emails), so a calendar that got an invitation by email and also subscribes to the feed shows
one event, updated in place: `SEQUENCE` is `Session.sequence`, raised whenever the entry
changes (a confirmed new time, a cancellation, a return to calendars after leaving them). The
events come from `calendars.ical.session_vevent`, the one builder the invitations use too.
"""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import icalendar
from django.conf import settings
from django.urls import reverse

from accounts.models import User
from calendars.ical import (
    PRODID,
    session_vevent,
)
from sessions_app import selectors as session_selectors
from sessions_app.lifecycle import Status
from sessions_app.models import Session


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
    lines = [f"Coachbook session {session.number} of {session.package.title}."]
    lines.append(f"Your {role}: {other.name} <{other.email}>.")
    if session.status == Status.RESCHEDULING:
        status = "TENTATIVE"
        lines.append("A new time has been proposed; this is the last agreed time.")
    elif session.status == Status.CANCELED:
        status = "CANCELLED"
        lines.append("This session was canceled.")
    else:
        status = "CONFIRMED"
    lines.append(f"Details: {url}")
    event = session_vevent(
        session_id=session.pk,
        start=session.slot.start,
        end=session.slot.end,
        summary=f"{session.package.title} with {other.name}",
        description="\n".join(lines),
        url=url,
        sequence=session.sequence,
        status=status,
        stamp=session.updated_at,  # stable bytes between changes: the ETag depends on them
    )
    event.add("last-modified", _utc(session.updated_at))
    event.add("created", _utc(session.created_at))
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


@dataclass(frozen=True)
class FeedDocument:
    """A serialized feed with its validators: `etag` (strong, quoted) and `last_modified`."""

    body: bytes
    etag: str
    last_modified: datetime


def feed_document(*, user: User, now: datetime | None = None) -> FeedDocument:
    """`user`'s feed with the validators for conditional GETs, in the feed's one query.

    The ETag is a hash of the bytes, so it changes exactly when the feed does (a new time, a
    cancellation, a session dropping out after its days, a renamed coach). Last-Modified is the
    latest change of a session in it (else when the user joined): it cannot see a session that
    dropped out or a renamed person, so clients sending If-None-Match (Google, Outlook, Apple
    do) get the exact answer, and those sending only If-Modified-Since may keep such an entry
    until the next change.
    """
    sessions = feed_sessions(user=user, now=now)
    body = feed_calendar(user=user, sessions=sessions).to_ical()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    last_modified = max((session.updated_at for session in sessions), default=user.date_joined)
    return FeedDocument(body=body, etag=etag, last_modified=last_modified)
