"""What a user's calendar shows: the iCalendar subscription feed and the week view.

Reads only, through `sessions_app.selectors` (the sessions and proposals) and
`calendars.selectors` (the slots), plus the builder that turns a user's sessions into an
RFC 5545 calendar. Every query is scoped to the user it is for, and the number
of queries does not grow with the number of sessions or slots.

A session's UID is `session-<id>@coachbook` everywhere (this feed and the .ics files attached to
emails), so a calendar that got an invitation by email and also subscribes to the feed shows
one event, updated in place: `SEQUENCE` is `Session.sequence`, raised whenever the entry
changes (a confirmed new time, a cancellation, a return to calendars after leaving them).
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
from django.conf import settings
from django.urls import reverse

from accounts.models import User
from calendars import selectors as calendar_selectors
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


# --- the week view ------------------------------------------------------------------------------


@dataclass
class WeekEntry:
    start: datetime
    end: datetime
    kind: str  # open, held, booked, blocked, requested, confirmed, rescheduling, proposed, ...
    label: str
    detail: str = ""
    session_id: int | None = None
    status: str = ""


@dataclass
class WeekDay:
    date: date
    entries: list[WeekEntry] = field(default_factory=list)


@dataclass
class Week:
    monday: date
    tz: ZoneInfo
    days: list[WeekDay]
    is_coach: bool

    @property
    def previous(self) -> date | None:
        """The Monday before, or None when that week lies wholly before `FIRST_WEEK_DAY`."""
        return self.monday - timedelta(days=7) if self.monday > FIRST_WEEK_DAY else None

    @property
    def next(self) -> date | None:
        """The Monday after, or None when that week lies wholly after `LAST_WEEK_DAY`."""
        following = self.monday + timedelta(days=7)
        return following if following <= LAST_WEEK_DAY else None

    @property
    def sunday(self) -> date:
        return self.monday + timedelta(days=6)

    @property
    def is_empty(self) -> bool:
        return not any(day.entries for day in self.days)


# The dates the week view shows: far enough from date.min/date.max that a week's bounds, its
# neighbours and their conversion to UTC in any timezone never overflow.
FIRST_WEEK_DAY = date(1971, 1, 1)
LAST_WEEK_DAY = date(9998, 12, 31)


def week_day_in_range(day: date) -> bool:
    """Whether the week view can show the week of `day` (FIRST_WEEK_DAY..LAST_WEEK_DAY)."""
    return FIRST_WEEK_DAY <= day <= LAST_WEEK_DAY


def week_monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def week_bounds(monday: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Local Monday 00:00 to the next Monday 00:00 in `tz` (167 to 169 hours across DST)."""
    start = datetime.combine(monday, datetime.min.time(), tzinfo=tz)
    end = datetime.combine(monday + timedelta(days=7), datetime.min.time(), tzinfo=tz)
    return start, end


_SESSION_KINDS = {
    Status.REQUESTED: "requested",
    Status.CONFIRMED: "confirmed",
    Status.RESCHEDULING: "rescheduling",
    Status.COMPLETED: "completed",
}


def week_for_user(*, user: User, monday: date) -> Week:
    """One week of `user`'s calendar in their timezone: a constant number of queries (3).

    An entry belongs to the day (in the viewer's timezone) on which it starts.

    A coach sees every slot (open, held, booked, blocked) labelled with the session holding it,
    plus sessions they attend as a student; a student sees their sessions and the new times
    proposed for them.
    """
    tz = user.tzinfo
    start, end = week_bounds(monday, tz)
    is_coach = user.is_coach
    entries: list[WeekEntry] = []

    sessions = session_selectors.sessions_for_calendar_week(user=user, start=start, end=end)
    proposals = session_selectors.proposals_for_calendar_week(user=user, start=start, end=end)
    # A coach's slot held by one of their sessions or proposals is shown once, as that session.
    by_slot: dict[int, WeekEntry] = {}
    for session in sessions:
        coaching = session.coach_id == user.pk
        other = session.student if coaching else session.coach
        label = Status(session.status).label
        if session.status == Status.RESCHEDULING:
            label = "Rescheduling: last agreed time, a new one is proposed"
        entry = WeekEntry(
            start=session.slot.start,
            end=session.slot.end,
            kind=_SESSION_KINDS[Status(session.status)],
            label=label,
            detail=f"{session.package.title} with {other.name}",
            session_id=session.pk,
            status=session.status,
        )
        if coaching and is_coach and session.status != Status.RESCHEDULING:
            by_slot[session.slot_id] = entry
        else:
            entries.append(entry)
    for proposal in proposals:
        session = proposal.session
        coaching = session.coach_id == user.pk
        other = session.student if coaching else session.coach
        waiting = "waiting for an answer" if proposal.proposed_by_id == user.pk else "answer it"
        entry = WeekEntry(
            start=proposal.slot.start,
            end=proposal.slot.end,
            kind="proposed",
            label=f"Proposed new time ({waiting})",
            detail=f"{session.package.title} with {other.name}",
            session_id=session.pk,
            status=session.status,
        )
        if coaching and is_coach:
            by_slot[proposal.slot_id] = entry
        else:
            entries.append(entry)

    entries.extend(by_slot.values())
    if is_coach:
        for begin, finish in calendar_selectors.coach_availability_between(
            coach=user, start=start, end=end
        ):
            entries.append(
                WeekEntry(begin, finish, "available", "Available", "Students can book this time")
            )
        for begin, finish in calendar_selectors.coach_busy_between(
            coach=user, start=start, end=end
        ):
            entries.append(
                WeekEntry(
                    max(begin, start),
                    min(finish, end),
                    "busy",
                    "Busy",
                    "Busy in one of your external calendars",
                )
            )
        for away in calendar_selectors.coach_time_off_between(coach=user, start=start, end=end):
            entries.append(
                WeekEntry(
                    max(away.start, start),
                    min(away.end, end),
                    "timeoff",
                    "Time off",
                    away.reason,
                )
            )

    days = [WeekDay(date=monday + timedelta(days=offset)) for offset in range(7)]
    for entry in sorted(entries, key=lambda e: (e.start, e.end, e.label)):
        entry.start, entry.end = entry.start.astimezone(tz), entry.end.astimezone(tz)
        days[(entry.start.date() - monday).days].entries.append(entry)
    return Week(monday=monday, tz=tz, days=days, is_coach=is_coach)
