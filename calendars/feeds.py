"""The iCalendar subscription feed: a user's sessions as an RFC 5545 calendar.

Reads only, through `sessions_app.selectors`, plus the writer that turns a user's sessions
into a calendar. Every query is scoped to the user it is for, and the number of queries does
not grow with the number of sessions. (The week view is `calendars.week`.)

A session's UID is `session-<id>@coachbook` everywhere (this feed and the .ics files attached to
emails), so a calendar that got an invitation by email and also subscribes to the feed shows
one event, updated in place: `SEQUENCE` is `Session.sequence`, raised whenever the entry
changes (a confirmed new time, a cancellation, a return to calendars after leaving them). The
events are written by `calendars.ical.session_vevent_lines`, which gives the bytes of the
event `calendars.ical.session_vevent` (the invitations' builder) would (a test holds them
equal).

What a poll costs. Calendar apps poll every feed every few minutes to hours, nearly always to
hear that nothing changed, so the feed is built around its version (`feed_version`): one small
aggregate over the user's sessions (their count, latest and summed `updated_at`), the day the
window is counted from, the user's name, the site's URL and FEED_FORMAT. The ETag is a hash of
that version, so a poll answers 304 from the token lookup and that one query, without building
or reading the feed; a changed feed is built once and kept in Django's cache under the
version, for every later fetch until the next change.

Known limitation: a change of the *other* person's name or email (shown in the title and the
description) moves no session's `updated_at`, so it reaches the feed at the next change of
one of the user's sessions or, at the latest, the next UTC day, when the window (and with it
the version) moves.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import icalendar
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from accounts.models import User, one_line
from calendars.ical import PRODID, ics_lines, session_vevent_lines
from sessions_app import selectors as session_selectors
from sessions_app.lifecycle import Status
from sessions_app.selectors import CalendarFeedEntry

# Raise when the feed's bytes change for unchanged sessions (a new property, new wording): the
# ETags and cache keys of every feed change with it, so no client keeps the old text.
FEED_FORMAT = 2
# A cached feed is only ever read on the day its version names; two days cover a fetch just
# before midnight and let the cache drop the rest.
FEED_CACHE_SECONDS = 2 * 24 * 60 * 60
CACHE_PREFIX = "calendars:feed"


def session_url(session_id: int) -> str:
    """The absolute address of a session's page (SITE_URL based): the feed's and the emails'
    link to it."""
    return f"{settings.SITE_URL}{reverse('sessions:detail', args=[session_id])}"


# Stands in for the session id in the one reversed URL; each real id replaces it.
_URL_SENTINEL = 987654321


def _session_url_maker() -> Callable[[int], str]:
    """`session_url` with one `reverse()` per feed instead of one per event (a feed has
    thousands): the URL of an id that no path contains, with that id swapped for each one."""
    pattern = session_url(_URL_SENTINEL)
    head, tail = pattern.rsplit(str(_URL_SENTINEL), 1)
    return lambda session_id: f"{head}{session_id}{tail}"


# --- feed selectors ---------------------------------------------------------------------------


def user_by_calendar_token(*, token: str) -> User | None:
    """The active user whose feed URL carries `token`, or None (unknown, revoked, inactive)."""
    if not token:
        return None
    return User.objects.filter(calendar_token=token, is_active=True).first()


def feed_day(*, now: datetime | None = None) -> datetime:
    """The start (00:00 UTC) of the day the feed's window is counted from.

    The window (COMPLETED_VISIBLE_DAYS and CANCELED_VISIBLE_DAYS back, FEED_HORIZON_DAYS ahead)
    moves in whole days, so a feed depends only on its version, which names this day: a cached
    feed is never one whose window has moved on.
    """
    now = (now or timezone.now()).astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def feed_sessions(*, user: User, now: datetime | None = None) -> list[CalendarFeedEntry]:
    """The sessions `user`'s feed publishes on the day of `now`, in one query
    (sessions_app's selector decides: confirmed, rescheduling, recently completed and recently
    canceled after publication, up to FEED_HORIZON_DAYS ahead)."""
    return session_selectors.sessions_for_calendar_feed(user=user, now=feed_day(now=now))


@dataclass(frozen=True)
class FeedVersion:
    """What a feed is a function of, summed up: `etag` (strong, quoted) and `last_modified`
    for conditional GETs, `day` (the window's day) and `cache_key` for its cached body."""

    etag: str
    last_modified: datetime
    day: datetime
    cache_key: str


def feed_version(*, user: User, now: datetime | None = None) -> FeedVersion:
    """The version of `user`'s feed, in one query (the stamp of all the user's sessions).

    Any change to a session in the feed moves the stamp (see
    `sessions_for_calendar_feed_stamp`); a session entering or leaving the window as days pass
    moves `day`; the user's own name is the calendar's name. Last-Modified is the latest change
    of a session (else when the user joined), or the window's day if later, so a client that
    only sends If-Modified-Since also hears, once a day, of sessions the window dropped.
    """
    day = feed_day(now=now)
    stamp = session_selectors.sessions_for_calendar_feed_stamp(user=user)
    latest = stamp.latest.isoformat() if stamp.latest else "-"
    key = "|".join(
        [
            str(FEED_FORMAT),
            str(user.pk),
            day.date().isoformat(),
            str(stamp.count),
            latest,
            stamp.stamps,
            user.name,
            settings.SITE_URL,
        ]
    )
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return FeedVersion(
        etag=f'"{digest}"',
        last_modified=max(stamp.latest or user.date_joined, day),
        day=day,
        cache_key=f"{CACHE_PREFIX}:{FEED_FORMAT}:{user.pk}:{digest}",
    )


# --- the feed -----------------------------------------------------------------------------------


def feed_event_fields(
    session: CalendarFeedEntry, user: User, *, url_for: Callable[[int], str] = session_url
) -> dict:
    """The event of `session` in `user`'s feed, as the keyword arguments of
    `calendars.ical.session_vevent_lines` (the other person, the status in iCalendar terms, and
    stamps that stay put between changes, so the bytes do too)."""
    mine = session.coach_id == user.pk
    other = session.student if mine else session.coach
    url = url_for(session.pk)
    lines = [f"Coachbook session {session.number} of {session.title}."]
    lines.append(f"Your {'student' if mine else 'coach'}: {other.name} <{other.email}>.")
    if session.status == Status.RESCHEDULING:
        status = "TENTATIVE"
        lines.append("A new time has been proposed; this is the last agreed time.")
    elif session.status == Status.CANCELED:
        status = "CANCELLED"
        lines.append("This session was canceled.")
    else:
        status = "CONFIRMED"
    lines.append(f"Details: {url}")
    return {
        "session_id": session.pk,
        "start": session.start,
        "end": session.end,
        "summary": f"{session.title} with {other.name}",
        "description": "\n".join(lines),
        "url": url,
        "sequence": session.sequence,
        "status": status,
        "stamp": session.updated_at,
        "created": session.created_at,
        "last_modified": session.updated_at,
    }


def feed_body(*, user: User, sessions: list[CalendarFeedEntry]) -> bytes:
    """The RFC 5545 calendar for `user`'s feed (all times in UTC), serialized: the properties,
    order and folding icalendar would give it."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "X-WR-CALDESC:Your Coachbook sessions. Keep this address secret.",
        # An X- property, written as is (as icalendar writes and reads it back); one line.
        f"X-WR-CALNAME:Coachbook: {one_line(user.name)}",
        # How often subscribers should refetch (Outlook and Apple honour these; Google decides).
        "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        "X-PUBLISHED-TTL:PT1H",
    ]
    url_for = _session_url_maker()
    for session in sessions:
        lines += session_vevent_lines(**feed_event_fields(session, user, url_for=url_for))
    lines.append("END:VCALENDAR")
    return ics_lines(lines)


def feed_calendar(*, user: User, sessions: list[CalendarFeedEntry]) -> icalendar.Calendar:
    """`feed_body` parsed back by icalendar: the feed as objects, for tests and debugging."""
    return icalendar.Calendar.from_ical(feed_body(user=user, sessions=sessions))


@dataclass(frozen=True)
class FeedDocument:
    """A serialized feed with its validators: `etag` (strong, quoted) and `last_modified`."""

    body: bytes
    etag: str
    last_modified: datetime


def feed_document(
    *, user: User, version: FeedVersion | None = None, now: datetime | None = None
) -> FeedDocument:
    """`user`'s feed with its validators: from the cache when this version was built before
    (no query), else built (one query) and cached. `version` is `feed_version`'s (one query
    when not given).

    The cache may lose anything (Redis evicts, or is down and fails open): then the feed is
    built again, the same bytes for the same version.
    """
    version = version or feed_version(user=user, now=now)
    body = cache.get(version.cache_key)
    if body is None:
        sessions = session_selectors.sessions_for_calendar_feed(user=user, now=version.day)
        body = feed_body(user=user, sessions=sessions)
        cache.set(version.cache_key, body, FEED_CACHE_SECONDS)
    return FeedDocument(body=body, etag=version.etag, last_modified=version.last_modified)
