"""External busy calendars, fetched from a local HTTP server: each calendar's busy times are
stored (and diffed) per coach, subtracted from bookable times with the coach's buffers, and a
busy time on an agreed session is a task for the coach, never a moved session."""

import http.server
import socket
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.urls import reverse

from accounts.models import MAX_BOOKING_HORIZON_DAYS, CoachProfile
from calendars import ics_import, services, sync
from calendars.models import BusyTime, ExternalCalendar, TimeSlot
from calendars.selectors import bookable_starts
from calendars.services import ExternalCalendarInvalid, external_calendars_sync
from calendars.services import external as external_services
from calendars.tasks import sync_external_calendars
from sessions_app.lifecycle import PermissionDenied
from sessions_app.models import SessionEvent
from sessions_app.selectors import coach_navigation, coach_tasks
from sessions_app.services import session_accept, session_book, session_propose_reschedule
from tests.conftest import messages_of, race
from tests.factories import (
    AvailabilityWindowFactory,
    CoachFactory,
    ExternalCalendarFactory,
    OfferingFactory,
    make_package,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)  # a Tuesday


class FeedServer:
    """Serves `routes[path] = (status, body, headers)` on 127.0.0.1, in a thread."""

    def __init__(self):
        self.routes: dict[str, tuple[int, bytes, dict]] = {}
        self.hits: list[str] = []
        routes, hits = self.routes, self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                status, body, headers = routes.get(self.path, (404, b"not found", {}))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def serve(self, path: str, body: str | bytes, status: int = 200, headers=None) -> str:
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = (status, data, {"Content-Type": "text/calendar", **(headers or {})})
        return self.url(path)


@pytest.fixture(scope="module")
def feed_server():
    server = FeedServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def feeds(feed_server):
    feed_server.routes.clear()
    feed_server.hits.clear()
    return feed_server


@pytest.fixture
def allow_local(settings):
    settings.CALENDAR_SYNC_ALLOW_PRIVATE = True


@pytest.fixture
def public_dns(monkeypatch):
    """Every host name resolves to one public address (no DNS in tests): Add resolves the host
    of the address it is given."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in ("127.0.0.1", "localhost", "::1"):
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port or 443))]

    monkeypatch.setattr(sync.socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def frozen():
    """The clock stands at NOW (tests move it with `frozen.move_to`)."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def ics(*events: str, extra: str = "") -> str:
    body = "".join(f"BEGIN:VEVENT\r\n{event.strip()}\r\nEND:VEVENT\r\n" for event in events)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//Feeds//EN\r\n"
        f"{extra}{body}END:VCALENDAR\r\n"
    )


def event(uid: str, start: str, end: str, *lines: str) -> str:
    return "\r\n".join([f"UID:{uid}", "DTSTAMP:20261001T000000Z", start, end, *lines])


def busy_event(uid: str, start: datetime, end: datetime, *lines: str) -> str:
    """An event busy from `start` to `end` (aware UTC datetimes)."""
    return event(uid, f"DTSTART:{start:%Y%m%dT%H%M%SZ}", f"DTEND:{end:%Y%m%dT%H%M%SZ}", *lines)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def thursday(hour: int, minute: int = 0) -> datetime:
    """Thursday 22 October 2026 at hour:minute UTC."""
    return utc(2026, 10, 22, hour, minute)


def busy(coach=None, calendar=None) -> list[tuple[datetime, datetime]]:
    """The stored busy times (of `coach`, of `calendar`), soonest first."""
    rows = BusyTime.objects.all()
    if coach is not None:
        rows = rows.filter(coach=coach)
    if calendar is not None:
        rows = rows.filter(calendar=calendar)
    return list(rows.order_by("start", "end").values_list("start", "end"))


def serve_busy(feeds, path: str, *times: tuple[datetime, datetime]) -> str:
    """Serve a calendar busy at each of `times`; its address."""
    return feeds.serve(
        path, ics(*(busy_event(f"{path}-{n}", a, b) for n, (a, b) in enumerate(times)))
    )


def coach_free_on_thursday(**profile):
    """A coach (UTC) available on Thursday 22 October 09:00-17:00, on a 30-minute grid."""
    coach = CoachFactory(
        **{
            "profile__start_interval_minutes": 30,
            **{f"profile__{k}": v for k, v in profile.items()},
        }
    )
    AvailabilityWindowFactory(coach=coach, start=thursday(9), end=thursday(17))
    return coach


def thursday_starts(coach, minutes: int = 60) -> list[datetime]:
    return bookable_starts(
        coach=coach, duration_minutes=minutes, start=thursday(0), end=utc(2026, 10, 23)
    )


def agreed_session(coach, start: datetime, minutes: int = 60):
    """A session of `coach` booked at `start` and accepted (CONFIRMED, its time BOOKED)."""
    package = make_package(offering=OfferingFactory(coach=coach, duration_minutes=minutes))
    session = package.sessions.order_by("number").first()
    session_book(session=session, start=start, actor=package.student)
    session_accept(session=session, actor=coach)
    session.refresh_from_db()
    return session


def conflicts(coach) -> list:
    return coach_tasks(coach=coach).conflicts


def badge(coach) -> int:
    return coach_navigation(coach=coach).task_count


# --- busy times: stored per calendar, diffed ------------------------------------------------


def test_busy_events_become_the_calendars_busy_times_and_go_when_the_events_go(
    feeds, allow_local, frozen
):
    coach = CoachFactory()
    url = feeds.serve(
        "/work.ics",
        ics(event("a", "DTSTART:20261022T103000Z", "DTEND:20261022T113000Z", "SUMMARY:Dentist")),
    )
    calendar = ExternalCalendarFactory(coach=coach, url=url)

    result = external_calendars_sync()

    assert (result.calendars, result.failed, result.added, result.removed) == (1, 0, 1, 0)
    row = BusyTime.objects.get()
    assert (row.coach, row.calendar, row.start, row.end) == (
        coach,
        calendar,
        thursday(10, 30),
        thursday(11, 30),
    )
    calendar.refresh_from_db()
    assert calendar.last_synced_at == NOW
    assert (calendar.last_error, calendar.last_error_at) == ("", None)

    feeds.serve("/work.ics", ics())
    result = external_calendars_sync()

    assert (result.added, result.removed, busy()) == (0, 1, [])


def test_an_unchanged_busy_time_keeps_the_moment_it_was_first_seen(feeds, allow_local, frozen):
    coach = CoachFactory()
    ten = (thursday(10), thursday(11))
    calendar = ExternalCalendarFactory(coach=coach, url=serve_busy(feeds, "/a.ics", ten))
    external_calendars_sync()
    first = BusyTime.objects.get()
    assert first.created_at == NOW

    frozen.move_to(NOW + timedelta(hours=1))
    serve_busy(feeds, "/a.ics", ten, (thursday(14), thursday(15)))
    result = external_calendars_sync()

    assert (result.added, result.removed) == (1, 0)
    rows = list(BusyTime.objects.filter(calendar=calendar).order_by("start"))
    assert [(row.pk, row.created_at) for row in rows] == [
        (first.pk, NOW),
        (rows[1].pk, NOW + timedelta(hours=1)),
    ]

    # A moved event is a new busy time: the old one goes, the new one is first seen now.
    frozen.move_to(NOW + timedelta(hours=2))
    serve_busy(feeds, "/a.ics", (thursday(10, 30), thursday(11, 30)), (thursday(14), thursday(15)))
    result = external_calendars_sync()

    assert (result.added, result.removed) == (1, 1)
    moved = BusyTime.objects.get(start=thursday(10, 30))
    assert moved.created_at == NOW + timedelta(hours=2)
    assert BusyTime.objects.get(start=thursday(14)).pk == rows[1].pk
    assert not BusyTime.objects.filter(pk=first.pk).exists()


def test_sync_twice_changes_nothing_the_second_time(feeds, allow_local, frozen):
    coach = CoachFactory()
    ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/a.ics", (thursday(10), thursday(11)))
    )

    first = external_calendars_sync()
    pks = list(BusyTime.objects.values_list("pk", flat=True))
    second = external_calendars_sync()

    assert (first.added, second.added, second.removed) == (1, 0, 0)
    assert list(BusyTime.objects.values_list("pk", flat=True)) == pks


def test_each_event_is_a_busy_time_of_its_own_and_duplicates_count_once(feeds, allow_local, frozen):
    coach = CoachFactory()
    url = feeds.serve(
        "/a.ics",
        ics(
            busy_event("a", thursday(10), thursday(11)),
            busy_event("b", thursday(11), thursday(12)),  # touches a: not merged
            busy_event("c", thursday(10, 30), thursday(11, 30)),  # overlaps both
            busy_event("d", thursday(10), thursday(11)),  # the same time as a
        ),
    )
    ExternalCalendarFactory(coach=coach, url=url)

    result = external_calendars_sync()

    assert result.added == 3
    assert busy(coach) == [
        (thursday(10), thursday(11)),
        (thursday(10, 30), thursday(11, 30)),
        (thursday(11), thursday(12)),
    ]


def test_a_duplicate_row_left_behind_is_removed(feeds, allow_local, frozen):
    coach = CoachFactory()
    calendar = ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/a.ics", (thursday(10), thursday(11)))
    )
    external_calendars_sync()
    BusyTime.objects.create(coach=coach, calendar=calendar, start=thursday(10), end=thursday(11))

    result = external_calendars_sync()

    assert (result.added, result.removed, busy(coach)) == (0, 1, [(thursday(10), thursday(11))])


def test_an_event_under_way_keeps_its_start_and_ended_busy_times_are_dropped(
    feeds, allow_local, frozen
):
    coach = CoachFactory()
    under_way = (utc(2026, 10, 20, 11), utc(2026, 10, 20, 13))  # NOW is 12:00
    ended = (utc(2026, 10, 20, 9), utc(2026, 10, 20, 10))
    ExternalCalendarFactory(coach=coach, url=serve_busy(feeds, "/a.ics", under_way, ended))

    assert external_calendars_sync().added == 1
    assert busy(coach) == [under_way]
    row = BusyTime.objects.get()

    # Read again while it is still under way: the same busy time, not a new one from "now".
    frozen.move_to(utc(2026, 10, 20, 12, 30))
    result = external_calendars_sync()
    assert (result.added, result.removed, BusyTime.objects.get().pk) == (0, 0, row.pk)

    frozen.move_to(utc(2026, 10, 20, 13, 30))
    result = external_calendars_sync()
    assert (result.added, result.removed, busy(coach)) == (0, 1, [])


def test_transparent_and_cancelled_events_are_not_busy(feeds, allow_local, frozen):
    coach = CoachFactory()
    url = feeds.serve(
        "/a.ics",
        ics(
            event(
                "free", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z", "TRANSP:TRANSPARENT"
            ),
            event("gone", "DTSTART:20261022T110000Z", "DTEND:20261022T120000Z", "STATUS:CANCELLED"),
            event("busy", "DTSTART:20261022T120000Z", "DTEND:20261022T123000Z", "TRANSP:OPAQUE"),
        ),
    )
    ExternalCalendarFactory(coach=coach, url=url)

    external_calendars_sync()

    assert busy(coach) == [(thursday(12), thursday(12, 30))]


def test_weekly_recurring_event_follows_new_york_wall_time_across_the_november_dst_change(
    feeds, allow_local, frozen
):
    # 09:00-10:00 in New York every Monday: 13:00 UTC in October (EDT), 14:00 UTC after the
    # clocks go back on Sunday 1 November 2026 (EST). The 9 November occurrence is excluded.
    coach = CoachFactory(timezone="America/New_York")
    url = feeds.serve(
        "/weekly.ics",
        ics(
            event(
                "weekly",
                "DTSTART;TZID=America/New_York:20261019T090000",
                "DTEND;TZID=America/New_York:20261019T100000",
                "RRULE:FREQ=WEEKLY;BYDAY=MO",
                "EXDATE;TZID=America/New_York:20261109T090000",
                "SUMMARY:Team meeting",
            )
        ),
    )
    ExternalCalendarFactory(coach=coach, url=url)

    external_calendars_sync()

    first_four = [row for row in busy(coach) if row[0] < utc(2026, 11, 20)]
    assert first_four == [
        (utc(2026, 10, 26, 13), utc(2026, 10, 26, 14)),
        (utc(2026, 11, 2, 14), utc(2026, 11, 2, 15)),
        (utc(2026, 11, 16, 14), utc(2026, 11, 16, 15)),
    ]


def test_moved_occurrence_of_a_series_is_busy_at_its_new_time_only(feeds, allow_local, frozen):
    coach = CoachFactory()
    url = feeds.serve(
        "/moved.ics",
        ics(
            event(
                "daily", "DTSTART:20261021T090000Z", "DTEND:20261021T100000Z", "RRULE:FREQ=DAILY"
            ),
            event(
                "daily",
                "RECURRENCE-ID:20261027T090000Z",
                "DTSTART:20261027T150000Z\r\nDTEND:20261027T160000Z",
            ),
        ),
    )
    ExternalCalendarFactory(coach=coach, url=url)

    external_calendars_sync()

    on_the_27th = [row for row in busy(coach) if row[0].date() == utc(2026, 10, 27).date()]
    assert on_the_27th == [(utc(2026, 10, 27, 15), utc(2026, 10, 27, 16))]
    assert (utc(2026, 10, 26, 9), utc(2026, 10, 26, 10)) in busy(coach)


def test_all_day_event_is_busy_the_whole_day_in_the_coachs_timezone(feeds, allow_local, frozen):
    # 5 November in Berlin (CET, UTC+1) runs from 4 Nov 23:00 UTC to 5 Nov 23:00 UTC.
    coach = CoachFactory(timezone="Europe/Berlin")
    url = feeds.serve(
        "/holiday.ics",
        ics(event("h", "DTSTART;VALUE=DATE:20261105", "DTEND;VALUE=DATE:20261106", "SUMMARY:Off")),
    )
    ExternalCalendarFactory(coach=coach, url=url)

    external_calendars_sync()

    assert busy(coach) == [(utc(2026, 11, 4, 23), utc(2026, 11, 5, 23))]


# --- how far ahead ------------------------------------------------------------------------------


def test_the_sync_horizon_is_the_longest_booking_horizon_plus_a_day():
    horizon = services.SYNC_HORIZON
    assert horizon == timedelta(days=MAX_BOOKING_HORIZON_DAYS + 1)


def test_busy_times_are_read_as_far_ahead_as_the_coachs_booking_horizon_plus_a_day(
    feeds, allow_local, frozen
):
    coach = CoachFactory(profile__booking_horizon_days=30)
    inside = (NOW + timedelta(days=30, hours=20), NOW + timedelta(days=30, hours=21))
    beyond = (NOW + timedelta(days=31, hours=1), NOW + timedelta(days=31, hours=2))
    # Starts inside the window, ends after it: stored as the calendar has it, not cut short.
    long = (NOW + timedelta(days=30, hours=22), NOW + timedelta(days=40))
    ExternalCalendarFactory(coach=coach, url=serve_busy(feeds, "/a.ics", inside, beyond, long))

    external_calendars_sync()
    assert busy(coach) == [inside, long]

    CoachProfile.objects.filter(user=coach).update(booking_horizon_days=60)
    result = external_calendars_sync()

    assert (result.added, result.removed) == (1, 0)
    assert busy(coach) == [inside, long, beyond]


def test_busy_times_are_never_read_beyond_the_sync_horizon(feeds, allow_local, frozen):
    coach = CoachFactory(profile__booking_horizon_days=MAX_BOOKING_HORIZON_DAYS)
    last_day = (NOW + timedelta(days=730, hours=1), NOW + timedelta(days=730, hours=2))
    beyond = NOW + services.SYNC_HORIZON + timedelta(hours=1)
    too_far = (beyond, beyond + timedelta(hours=1))
    ExternalCalendarFactory(coach=coach, url=serve_busy(feeds, "/a.ics", last_day, too_far))

    external_calendars_sync()

    assert busy(coach) == [last_day]


def test_an_agreed_session_beyond_a_shortened_horizon_still_hears_of_a_busy_time(
    feeds, allow_local, frozen
):
    coach = CoachFactory()
    december = utc(2026, 12, 9, 10)  # 50 days ahead
    AvailabilityWindowFactory(coach=coach, start=december, end=december + timedelta(hours=1))
    session = agreed_session(coach, december)
    CoachProfile.objects.filter(user=coach).update(booking_horizon_days=10)
    later = (utc(2026, 12, 20, 10), utc(2026, 12, 20, 11))  # beyond both
    ExternalCalendarFactory(
        coach=coach,
        url=serve_busy(feeds, "/a.ics", (december, december + timedelta(hours=1)), later),
    )

    external_calendars_sync()

    assert busy(coach) == [(december, december + timedelta(hours=1))]
    assert conflicts(coach) == [session]


# --- bookable times -----------------------------------------------------------------------------


def test_busy_times_are_not_bookable_nor_within_the_coachs_buffers(feeds, allow_local, frozen):
    coach = coach_free_on_thursday(buffer_before_minutes=30, buffer_after_minutes=30)
    every_half_hour = [thursday(9) + timedelta(minutes=30 * n) for n in range(15)]  # to 16:00
    assert thursday_starts(coach) == every_half_hour
    ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/a.ics", (thursday(12), thursday(13)))
    )

    external_calendars_sync()

    # A start s is refused when [s - 30 min, s + 60 min + 30 min) overlaps 12:00-13:00.
    refused = [thursday(11), thursday(11, 30), thursday(12), thursday(12, 30), thursday(13)]
    assert thursday_starts(coach) == [s for s in every_half_hour if s not in refused]

    feeds.serve("/a.ics", ics())
    external_calendars_sync()

    assert thursday_starts(coach) == every_half_hour


def test_a_busy_time_from_any_of_the_coachs_calendars_is_not_bookable(feeds, allow_local, frozen):
    coach = coach_free_on_thursday()
    ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/1.ics", (thursday(9), thursday(10)))
    )
    ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/2.ics", (thursday(15), thursday(17)))
    )

    external_calendars_sync()

    starts = thursday_starts(coach)
    assert (starts[0], starts[-1]) == (thursday(10), thursday(14))


# --- agreed sessions: a conflict is a task, the session never moves -----------------------------


def test_a_busy_time_on_an_agreed_session_is_a_task_and_the_session_is_not_moved(
    feeds, allow_local, frozen
):
    coach = coach_free_on_thursday()
    session = agreed_session(coach, thursday(10))
    slot = session.slot
    events = SessionEvent.objects.filter(session=session).count()
    assert (conflicts(coach), badge(coach)) == ([], 0)
    url = serve_busy(feeds, "/a.ics", (thursday(10, 30), thursday(11, 30)))
    ExternalCalendarFactory(coach=coach, url=url)
    mail.outbox.clear()

    result = external_calendars_sync()

    assert result.added == 1
    assert (conflicts(coach), badge(coach)) == ([session], 1)
    session.refresh_from_db()
    fresh = TimeSlot.objects.get(pk=slot.pk)
    assert (session.status, session.slot_id) == ("CONFIRMED", slot.pk)
    assert (fresh.start, fresh.end, fresh.status) == (thursday(10), thursday(11), "BOOKED")
    assert TimeSlot.objects.filter(session=session).count() == 1
    assert SessionEvent.objects.filter(session=session).count() == events
    assert mail.outbox == []

    feeds.serve("/a.ics", ics())
    external_calendars_sync()

    assert (conflicts(coach), badge(coach)) == ([], 0)
    session.refresh_from_db()
    assert (session.status, session.slot_id) == ("CONFIRMED", slot.pk)


def test_a_busy_time_next_to_an_agreed_session_is_no_conflict(feeds, allow_local, frozen):
    coach = coach_free_on_thursday(buffer_before_minutes=30, buffer_after_minutes=30)
    agreed_session(coach, thursday(10))
    ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/a.ics", (thursday(11), thursday(12)))
    )

    external_calendars_sync()

    # Inside the buffer (not bookable for anyone else) but not on the session itself.
    assert (conflicts(coach), badge(coach)) == ([], 0)


def test_a_busy_time_on_a_requested_time_is_no_conflict_and_leaves_the_request_alone(
    feeds, allow_local, frozen
):
    coach = coach_free_on_thursday()
    package = make_package(offering=OfferingFactory(coach=coach))
    session = package.sessions.order_by("number").first()
    session_book(session=session, start=thursday(10), actor=package.student)
    ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/a.ics", (thursday(10), thursday(11)))
    )

    external_calendars_sync()

    session.refresh_from_db()
    assert (session.status, session.slot.status, session.slot.start) == (
        "REQUESTED",
        "HELD",
        thursday(10),
    )
    # The request is the coach's task already; the busy time adds none.
    assert (conflicts(coach), badge(coach)) == ([], 1)


def test_a_session_being_rescheduled_conflicts_at_its_agreed_time_which_it_keeps(
    feeds, allow_local, frozen
):
    coach = coach_free_on_thursday()
    session = agreed_session(coach, thursday(10))
    agreed = session.slot_id
    session_propose_reschedule(session=session, start=thursday(14), actor=session.student)
    ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/a.ics", (thursday(10), thursday(11)))
    )

    external_calendars_sync()

    session.refresh_from_db()
    assert (session.status, session.slot_id) == ("RESCHEDULING", agreed)
    assert conflicts(coach) == [session]
    assert coach_tasks(coach=coach).proposals == [session]  # and it still awaits the coach


def test_keeping_the_time_hides_the_conflict_until_a_busy_time_first_seen_later_overlaps(
    feeds, allow_local, frozen
):
    coach = coach_free_on_thursday()
    session = agreed_session(coach, thursday(10))
    dentist = (thursday(10, 30), thursday(11, 30))
    ExternalCalendarFactory(coach=coach, url=serve_busy(feeds, "/a.ics", dentist))
    external_calendars_sync()
    assert (conflicts(coach), badge(coach)) == ([session], 1)

    frozen.move_to(NOW + timedelta(minutes=5))
    services.reservation_keep_despite_busy(slot=session.slot, coach=coach)

    assert (conflicts(coach), badge(coach)) == ([], 0)

    # Later syncs that see the same busy time, or new ones off the session, change nothing:
    # not even one that touches the known busy time (busy times are not merged).
    frozen.move_to(NOW + timedelta(minutes=20))
    serve_busy(feeds, "/a.ics", dentist, (thursday(11, 30), thursday(12, 30)))
    result = external_calendars_sync()
    assert (result.added, result.removed) == (1, 0)
    assert (conflicts(coach), badge(coach)) == ([], 0)

    # A busy time first seen after the coach kept the time, on the session: a conflict again.
    frozen.move_to(NOW + timedelta(minutes=40))
    serve_busy(
        feeds,
        "/a.ics",
        dentist,
        (thursday(11, 30), thursday(12, 30)),
        (thursday(9), thursday(10, 15)),
    )
    external_calendars_sync()
    assert (conflicts(coach), badge(coach)) == ([session], 1)
    session.refresh_from_db()
    assert (session.status, session.slot.start) == ("CONFIRMED", thursday(10))


def test_a_kept_conflict_stays_hidden_while_the_session_and_the_busy_time_are_under_way(
    feeds, allow_local, frozen
):
    coach = CoachFactory()
    one = utc(2026, 10, 20, 13)  # an hour after NOW
    AvailabilityWindowFactory(coach=coach, start=one, end=one + timedelta(hours=1))
    session = agreed_session(coach, one)
    meeting = (utc(2026, 10, 20, 12, 30), utc(2026, 10, 20, 14, 30))  # already under way
    ExternalCalendarFactory(coach=coach, url=serve_busy(feeds, "/a.ics", meeting))
    external_calendars_sync()
    services.reservation_keep_despite_busy(slot=session.slot, coach=coach)

    frozen.move_to(utc(2026, 10, 20, 13, 15))
    result = external_calendars_sync()

    assert (result.added, result.removed, busy(coach)) == (0, 0, [meeting])
    assert (conflicts(coach), badge(coach)) == ([], 0)


def test_pausing_or_removing_the_calendar_ends_the_conflict(feeds, allow_local, frozen):
    coach = coach_free_on_thursday()
    session = agreed_session(coach, thursday(10))
    first = ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/1.ics", (thursday(10), thursday(11)))
    )
    second = ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/2.ics", (thursday(10, 30), thursday(10, 45)))
    )
    external_calendars_sync()
    assert conflicts(coach) == [session]

    services.external_calendar_set_active(calendar=first, coach=coach, is_active=False)
    assert (conflicts(coach), badge(coach)) == ([session], 1)  # the second is busy then too

    services.external_calendar_remove(calendar=second, coach=coach)
    assert (conflicts(coach), badge(coach)) == ([], 0)


# --- scale: queries, a run cut short keeps its work ----------------------------------------------

# Every query of one coach's sync with one calendar, whatever the number of busy times: the
# clean-up, the calendars, two for the windows, and per coach a savepoint, the lock, the
# calendar's update, its stored busy times, one delete, one insert, the carried-over busy times,
# the agreed times a busy time now overlaps (the coach's conflict emails) and the savepoint's
# release.
SYNC_QUERIES = 13


@pytest.mark.parametrize("count", [3, 150])
def test_a_syncs_queries_do_not_grow_with_the_number_of_busy_times(
    count, feeds, allow_local, frozen, django_assert_max_num_queries
):
    coach = CoachFactory()

    def times(offset: timedelta):
        start = NOW + timedelta(days=1) + offset
        return [
            (start + timedelta(hours=2 * n), start + timedelta(hours=2 * n + 1))
            for n in range(count)
        ]

    ExternalCalendarFactory(coach=coach, url=serve_busy(feeds, "/many.ics", *times(timedelta())))

    with django_assert_max_num_queries(SYNC_QUERIES):
        first = external_calendars_sync()

    serve_busy(feeds, "/many.ics", *times(timedelta(minutes=30)))  # every one of them moved
    with django_assert_max_num_queries(SYNC_QUERIES):
        second = external_calendars_sync()

    assert (first.added, second.added, second.removed) == (count, count, count)
    assert busy(coach) == times(timedelta(minutes=30))


def test_a_sync_cut_short_keeps_what_it_applied_and_the_next_run_starts_with_the_rest(
    feeds, allow_local, frozen, settings, monkeypatch
):
    from celery.exceptions import SoftTimeLimitExceeded

    settings.CALENDAR_SYNC_WORKERS = 1  # one fetch at a time, in the coaches' order
    first_coach, second_coach = CoachFactory(), CoachFactory()
    ten = (thursday(10), thursday(11))
    busy_body = ics(busy_event("a", *ten))
    first = ExternalCalendarFactory(coach=first_coach, url=feeds.serve("/1.ics", busy_body))
    second = ExternalCalendarFactory(coach=second_coach, url=feeds.serve("/2.ics", busy_body))
    fetch = sync.fetch

    def time_limit_at(calendar):
        # Celery raises the soft time limit wherever the worker happens to be: here, inside
        # the network read of one calendar (below fetch_busy's broad except).
        def guarded_fetch(url, **kwargs):
            if url == calendar.url:
                raise SoftTimeLimitExceeded()
            return fetch(url, **kwargs)

        return guarded_fetch

    monkeypatch.setattr(sync, "fetch", time_limit_at(second))
    with pytest.raises(SoftTimeLimitExceeded):
        external_calendars_sync()

    assert (busy(first_coach), busy(second_coach)) == ([ten], [])
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.last_synced_at, second.last_synced_at) == (NOW, None)
    assert second.last_error == sync.NOT_FINISHED  # it says why, and counts as attempted
    assert (second.last_error_at, second.last_attempt_at) == (NOW, NOW)

    # The next run starts with the coach it missed (of those attempted at the same moment,
    # the one least recently read), so the time limit cannot starve anyone.
    monkeypatch.setattr(sync, "fetch", time_limit_at(first))
    with pytest.raises(SoftTimeLimitExceeded):
        external_calendars_sync()

    assert (busy(first_coach), busy(second_coach)) == ([ten], [ten])


@pytest.mark.parametrize(("env", "workers"), [({}, "8"), ({"CALENDAR_SYNC_WORKERS": "3"}, "3")])
def test_calendar_sync_workers_is_a_setting_read_from_the_environment(env, workers):
    from tests.test_settings import run_settings

    result = run_settings(
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.CALENDAR_SYNC_WORKERS)",
        **env,
    )

    assert (result.returncode, result.stdout.strip()) == (0, workers), result.stderr


def test_fetches_run_as_many_at_once_as_calendar_sync_workers(settings, monkeypatch):
    settings.CALENDAR_SYNC_WORKERS = 3
    pools = []
    executor = sync.ThreadPoolExecutor

    def spy(max_workers):
        pools.append(max_workers)
        return executor(max_workers=max_workers)

    monkeypatch.setattr(sync, "ThreadPoolExecutor", spy)
    monkeypatch.setattr(sync, "fetch_busy", lambda **job: sync.FetchOutcome(job["calendar_id"]))

    outcomes = list(sync.fetch_as_completed([{"calendar_id": pk} for pk in range(5)]))

    assert (pools, sorted(outcome.calendar_id for outcome in outcomes)) == ([3], list(range(5)))


def test_the_time_limit_while_reading_a_calendar_file_stops_the_sync_and_says_so(
    feeds, allow_local, frozen, monkeypatch
):
    from celery.exceptions import SoftTimeLimitExceeded

    coach = CoachFactory()
    calendar = ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/a.ics", (thursday(10), thursday(11)))
    )

    def expand(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(ics_import.icalendar.Calendar, "from_ical", expand)
    with pytest.raises(SoftTimeLimitExceeded):
        external_calendars_sync()

    calendar.refresh_from_db()
    assert (calendar.last_synced_at, calendar.last_error, busy(coach)) == (
        None,
        sync.NOT_FINISHED,
        [],
    )


def test_the_time_limit_while_applying_a_coachs_busy_times_stops_the_sync(
    feeds, allow_local, frozen, monkeypatch
):
    from celery.exceptions import SoftTimeLimitExceeded

    coach = CoachFactory()
    ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/a.ics", (thursday(10), thursday(11)))
    )

    def apply(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(external_services, "_busy_times_apply", apply)
    with pytest.raises(SoftTimeLimitExceeded):
        external_calendars_sync()

    assert busy(coach) == []


# --- a calendar changed while it is fetched -------------------------------------------------------


def test_a_calendar_paused_while_it_is_fetched_gets_no_busy_times(
    feeds, allow_local, frozen, monkeypatch
):
    coach = CoachFactory()
    calendar = ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/a.ics", (thursday(10), thursday(11)))
    )
    fetch = sync.fetch

    def paused_meanwhile(url, **kwargs):
        services.external_calendar_set_active(calendar=calendar, coach=coach, is_active=False)
        return fetch(url, **kwargs)

    monkeypatch.setattr(sync, "fetch", paused_meanwhile)
    result = external_calendars_sync()

    calendar.refresh_from_db()
    assert (result.added, busy(coach), calendar.is_active, calendar.last_synced_at) == (
        0,
        [],
        False,
        None,
    )


def test_a_calendar_removed_while_it_is_fetched_does_not_stop_the_coachs_other_calendar(
    feeds, allow_local, frozen, settings, monkeypatch
):
    settings.CALENDAR_SYNC_WORKERS = 1
    coach = CoachFactory()
    gone = ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/1.ics", (thursday(10), thursday(11)))
    )
    kept = ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/2.ics", (thursday(14), thursday(15)))
    )
    fetch = sync.fetch

    def removed_meanwhile(url, **kwargs):
        if url == gone.url:
            services.external_calendar_remove(calendar=gone, coach=coach)
        return fetch(url, **kwargs)

    monkeypatch.setattr(sync, "fetch", removed_meanwhile)
    result = external_calendars_sync()

    kept.refresh_from_db()
    assert (result.added, busy(coach)) == (1, [(thursday(14), thursday(15))])
    assert BusyTime.objects.filter(calendar=kept).count() == 1
    assert (kept.last_synced_at, ExternalCalendar.objects.filter(pk=gone.pk).exists()) == (
        NOW,
        False,
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_syncs_of_one_coach_store_each_busy_time_once(feeds, allow_local, monkeypatch):
    from django.utils import timezone

    coach = CoachFactory()
    soon = timezone.now().replace(microsecond=0) + timedelta(days=2)
    times = [(soon + timedelta(hours=n), soon + timedelta(hours=n, minutes=30)) for n in range(3)]
    ExternalCalendarFactory(coach=coach, url=serve_busy(feeds, "/a.ics", *times))
    fetched = threading.Barrier(4)
    fetch = sync.fetch

    def fetch_then_wait_for_the_others(url, **kwargs):
        data = fetch(url, **kwargs)
        fetched.wait(timeout=30)  # all four syncs then write at the same moment
        return data

    monkeypatch.setattr(sync, "fetch", fetch_then_wait_for_the_others)

    results = race(4, lambda index: external_calendars_sync(coach=coach))

    assert all(isinstance(result, services.SyncResult) for result in results), results
    assert sum(result.added for result in results) == 3
    assert busy(coach) == times


# --- failures -----------------------------------------------------------------------------------


def test_failing_feed_records_its_error_and_the_other_coachs_feed_still_syncs(
    feeds, allow_local, frozen
):
    broken_coach, good_coach = CoachFactory(), CoachFactory()
    feeds.serve("/broken.ics", "boom", status=500)
    broken = ExternalCalendarFactory(coach=broken_coach, url=feeds.url("/broken.ics"))
    good = ExternalCalendarFactory(
        coach=good_coach, url=serve_busy(feeds, "/good.ics", (thursday(10), thursday(11)))
    )

    result = external_calendars_sync()

    broken.refresh_from_db()
    good.refresh_from_db()
    assert (result.calendars, result.failed, result.added) == (2, 1, 1)
    assert broken.last_error == (
        "127.0.0.1 answered 500 Internal Server Error: check that the address is still valid."
    )
    assert broken.last_error_at == NOW
    assert broken.last_synced_at is None
    assert result.errors == {broken.pk: broken.last_error}
    assert (good.last_error, good.last_synced_at) == ("", NOW)
    assert (busy(broken_coach), busy(good_coach)) == ([], [(thursday(10), thursday(11))])


def test_a_failing_calendar_keeps_its_busy_times_while_the_other_one_updates(
    feeds, allow_local, frozen
):
    coach = coach_free_on_thursday()
    ten, eleven = (thursday(10), thursday(11)), (thursday(11), thursday(12))
    first = ExternalCalendarFactory(coach=coach, url=serve_busy(feeds, "/one.ics", ten))
    second = ExternalCalendarFactory(coach=coach, url=feeds.serve("/two.ics", ics()))
    external_calendars_sync()
    assert busy(coach) == [ten]

    frozen.move_to(NOW + timedelta(minutes=20))
    feeds.serve("/one.ics", "gone", status=404)
    serve_busy(feeds, "/two.ics", eleven)
    result = external_calendars_sync()

    first.refresh_from_db()
    assert first.last_error.startswith("127.0.0.1 answered 404")
    assert (first.last_error_at, first.last_synced_at) == (NOW + timedelta(minutes=20), NOW)
    assert (result.failed, result.added, result.removed) == (1, 1, 0)
    # The failing calendar may still be busy at ten: its busy time stays, and still counts.
    assert busy(calendar=first) == [ten]
    assert busy(calendar=second) == [eleven]
    assert thursday(10) not in thursday_starts(coach)


def test_a_failing_calendars_busy_times_go_once_they_have_ended(feeds, allow_local, frozen):
    coach = CoachFactory()
    soon, later = (thursday(10), thursday(11)), (thursday(14), thursday(15))
    calendar = ExternalCalendarFactory(coach=coach, url=serve_busy(feeds, "/a.ics", soon, later))
    external_calendars_sync()
    feeds.serve("/a.ics", "down", status=503)

    frozen.move_to(thursday(12))
    result = external_calendars_sync()

    assert (result.failed, result.removed, busy(calendar=calendar)) == (1, 1, [later])


def test_a_coachs_calendars_each_keep_their_own_busy_times(feeds, allow_local, frozen):
    coach = coach_free_on_thursday()
    ten = (thursday(10), thursday(11))
    one = ExternalCalendarFactory(coach=coach, url=serve_busy(feeds, "/one.ics", ten))
    two = ExternalCalendarFactory(coach=coach, url=serve_busy(feeds, "/two.ics", ten))
    external_calendars_sync()
    assert (busy(calendar=one), busy(calendar=two)) == ([ten], [ten])

    feeds.serve("/one.ics", ics())
    external_calendars_sync()
    assert (busy(calendar=one), busy(calendar=two)) == ([], [ten])
    assert thursday(10) not in thursday_starts(coach)  # still busy in the second calendar

    feeds.serve("/two.ics", ics())
    external_calendars_sync()
    assert busy(coach) == []
    assert thursday(10) in thursday_starts(coach)


def test_a_page_that_is_not_a_calendar_is_reported(feeds, allow_local, frozen):
    calendar = ExternalCalendarFactory(
        url=feeds.serve(
            "/page", "<html><body>Sign in</body></html>", headers={"Content-Type": "text/html"}
        )
    )

    external_calendars_sync()

    calendar.refresh_from_db()
    assert calendar.last_error.startswith("That address did not return a calendar file (.ics).")


def test_a_feed_over_the_size_limit_is_refused(feeds, allow_local, frozen, settings):
    settings.CALENDAR_SYNC_MAX_BYTES = 1024 * 1024
    filler = "X-FILLER:" + "x" * 70 + "\r\n"
    big = ics(extra=filler * 20000)
    calendar = ExternalCalendarFactory(url=feeds.serve("/big.ics", big))

    external_calendars_sync()

    calendar.refresh_from_db()
    assert calendar.last_error == (
        "The calendar file is larger than 1 MB; export a shorter calendar."
    )


def test_a_server_that_never_answers_times_out(allow_local):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection in the kernel but never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow.ics"
        with pytest.raises(sync.CalendarFetchError) as refused:
            sync.fetch(url, timeout=0.2)
    assert refused.value.message == "127.0.0.1 did not answer in time."


# --- busy times carried over from before calendars were tracked ----------------------------------


def test_carried_over_busy_times_stay_while_a_calendar_fails_and_go_once_all_are_read(
    feeds, allow_local, frozen
):
    coach = CoachFactory()
    carried = BusyTime.objects.create(coach=coach, start=thursday(15), end=thursday(16))
    feeds.serve("/a.ics", "down", status=503)
    ExternalCalendarFactory(coach=coach, url=feeds.url("/a.ics"))

    external_calendars_sync()
    assert BusyTime.objects.filter(pk=carried.pk).exists()

    serve_busy(feeds, "/a.ics", (thursday(10), thursday(11)))
    result = external_calendars_sync()

    assert (result.added, result.removed) == (1, 1)
    assert busy(coach) == [(thursday(10), thursday(11))]


def test_carried_over_busy_times_of_a_coach_without_an_active_calendar_go_at_the_next_sync(
    frozen,
):
    coach, paused_only = CoachFactory(), CoachFactory()
    ExternalCalendarFactory(coach=paused_only, is_active=False)
    for owner in (coach, paused_only):
        BusyTime.objects.create(coach=owner, start=thursday(15), end=thursday(16))

    assert external_calendars_sync().removed == 2
    assert busy() == []


def test_removing_the_last_calendar_frees_the_carried_over_busy_times_too(frozen):
    coach = CoachFactory()
    calendar = ExternalCalendarFactory(coach=coach)
    BusyTime.objects.create(coach=coach, calendar=calendar, start=thursday(10), end=thursday(11))
    BusyTime.objects.create(coach=coach, start=thursday(15), end=thursday(16))

    assert services.external_calendar_remove(calendar=calendar, coach=coach) == 2
    assert busy(coach) == []


# --- the SSRF guard -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/feed.ics",
        "http://localhost:9/feed.ics",
        "http://10.1.2.3/feed.ics",
        "http://192.168.1.1/feed.ics",
        "http://172.16.0.1/feed.ics",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/feed.ics",
        "http://0.0.0.0/feed.ics",
        "http://[::1]:9/feed.ics",
        "http://[fe80::1]/feed.ics",
        "http://[::ffff:127.0.0.1]/feed.ics",
        "webcal://127.0.0.1:9/feed.ics",
    ],
)
def test_private_and_loopback_addresses_are_refused_by_default(url, settings):
    settings.CALENDAR_SYNC_ALLOW_PRIVATE = False

    with pytest.raises(sync.AddressRefused) as refused:
        sync.fetch(url)

    assert refused.value.message.startswith("That address points to a private or local network")


def test_local_feed_is_refused_by_default_and_the_refusal_is_recorded(feeds, frozen, settings):
    settings.CALENDAR_SYNC_ALLOW_PRIVATE = False
    coach = CoachFactory()
    calendar = ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/a.ics", (thursday(10), thursday(11)))
    )

    result = external_calendars_sync()

    calendar.refresh_from_db()
    assert result.failed == 1
    assert calendar.last_error.startswith("That address points to a private or local network")
    assert feeds.hits == []
    assert busy(coach) == []


def test_redirect_to_a_private_address_is_refused(feeds, settings, monkeypatch):
    settings.CALENDAR_SYNC_ALLOW_PRIVATE = False
    # Pretend 127.0.0.1 is public so the first hop is allowed; the redirect target is not.
    real = sync.address_is_public
    monkeypatch.setattr(sync, "address_is_public", lambda ip: ip == "127.0.0.1" or real(ip))
    target = f"http://127.0.0.2:{feeds.server.server_port}/inside.ics"
    url = feeds.serve("/hop.ics", "", status=302, headers={"Location": target})

    with pytest.raises(sync.AddressRefused):
        sync.fetch(url)

    assert feeds.hits == ["/hop.ics"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("ftp://example.com/cal.ics", "The calendar address redirected to an unsupported address."),
        ("file:///etc/passwd", "127.0.0.1 answered 302 Found - Redirection to url"),
    ],
)
def test_redirect_to_another_scheme_is_refused(feeds, allow_local, target, message):
    url = feeds.serve("/hop.ics", "", status=302, headers={"Location": target})

    with pytest.raises(sync.CalendarFetchError) as refused:
        sync.fetch(url)

    assert refused.value.message.startswith(message)
    assert feeds.hits == ["/hop.ics"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "Only http:// and https:// calendar addresses (or webcal://)"),
        (
            "ftp://example.com/cal.ics",
            "Only http:// and https:// calendar addresses (or webcal://)",
        ),
        ("gopher://example.com/", "Only http:// and https:// calendar addresses (or webcal://)"),
        ("not a url", "Only http:// and https:// calendar addresses (or webcal://)"),
        ("https://", "That is not a valid web address."),
        ("https://user:secret@example.com/cal.ics", "Addresses with a user name or password"),
        ("", "Enter the calendar's address."),
    ],
)
def test_external_calendar_add_refuses_bad_addresses_and_writes_nothing(url, message):
    coach = CoachFactory()

    with pytest.raises(ExternalCalendarInvalid) as refused:
        services.external_calendar_add(coach=coach, url=url)

    assert refused.value.message.startswith(message)
    assert ExternalCalendar.objects.count() == 0


def test_external_calendar_add_reads_webcal_as_https_and_names_it_after_the_host(public_dns):
    coach = CoachFactory()

    calendar = services.external_calendar_add(
        coach=coach, url="  webcal://p01-caldav.icloud.com/published/2/abc  "
    )

    assert calendar.url == "https://p01-caldav.icloud.com/published/2/abc"
    assert calendar.name == "p01-caldav.icloud.com"


def test_external_calendar_add_refuses_the_same_address_twice(public_dns):
    coach = CoachFactory()
    services.external_calendar_add(coach=coach, url="https://example.com/a.ics", name="Work")

    with pytest.raises(ExternalCalendarInvalid) as refused:
        services.external_calendar_add(coach=coach, url="https://example.com/a.ics")

    assert refused.value.message == "You have already added that calendar."
    assert ExternalCalendar.objects.filter(coach=coach).count() == 1


# --- pausing and resuming -------------------------------------------------------------------------


def test_a_calendar_switched_off_without_clean_up_loses_its_busy_times_at_the_next_sync(
    feeds, allow_local, frozen
):
    coach = CoachFactory()
    calendar = ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/a.ics", (thursday(10), thursday(11)))
    )
    external_calendars_sync()
    ExternalCalendar.objects.filter(pk=calendar.pk).update(is_active=False)

    result = external_calendars_sync()

    assert (result.calendars, result.removed, busy(coach)) == (0, 1, [])


def test_pausing_a_calendar_frees_its_time_at_once_and_later_syncs_skip_it(
    feeds, allow_local, frozen, django_capture_on_commit_callbacks
):
    coach = coach_free_on_thursday()
    calendar = ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/a.ics", (thursday(10), thursday(11)))
    )
    external_calendars_sync()
    assert thursday(10) not in thursday_starts(coach)
    feeds.hits.clear()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        removed = services.external_calendar_set_active(
            calendar=calendar, coach=coach, is_active=False
        )

    calendar.refresh_from_db()
    assert (removed, calendar.is_active, busy(coach), callbacks) == (1, False, [], [])
    assert thursday(10) in thursday_starts(coach)
    assert external_calendars_sync().calendars == 0
    assert (feeds.hits, busy(coach)) == ([], [])


def coach_with_two_busy_calendars(feeds):
    """A coach free on Thursday 22 Oct 2026 with two calendars, the first busy at 10:00, the
    second at 11:00, synced once."""
    coach = coach_free_on_thursday()
    first = ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/one.ics", (thursday(10), thursday(11)))
    )
    ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/two.ics", (thursday(11), thursday(12)))
    )
    external_calendars_sync()
    return coach, first


def test_pausing_one_of_two_calendars_frees_only_its_own_busy_times_and_queues_nothing(
    feeds, allow_local, frozen, django_capture_on_commit_callbacks
):
    coach, first = coach_with_two_busy_calendars(feeds)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        removed = services.external_calendar_set_active(
            calendar=first, coach=coach, is_active=False
        )

    assert (removed, callbacks) == (1, [])
    assert busy(coach) == [(thursday(11), thursday(12))]
    starts = thursday_starts(coach)
    assert thursday(10) in starts and thursday(11) not in starts


def test_resuming_a_paused_calendar_queues_a_sync_that_reads_its_busy_times_again(
    feeds, allow_local, frozen, celery_eager, django_capture_on_commit_callbacks
):
    coach = CoachFactory()
    calendar = ExternalCalendarFactory(
        coach=coach,
        url=serve_busy(feeds, "/a.ics", (thursday(10), thursday(11))),
        is_active=False,
    )

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.external_calendar_set_active(calendar=calendar, coach=coach, is_active=True)

    calendar.refresh_from_db()
    assert (calendar.is_active, len(callbacks)) == (True, 1)
    assert busy(calendar=calendar) == [(thursday(10), thursday(11))]


@pytest.mark.parametrize(("active", "word"), [(True, "active"), (False, "paused")])
def test_setting_a_calendar_to_the_state_it_is_in_is_refused_and_queues_nothing(
    active, word, django_capture_on_commit_callbacks
):
    calendar = ExternalCalendarFactory(name="Work", is_active=active)

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(services.ExternalCalendarUnchanged) as refused,
    ):
        services.external_calendar_set_active(
            calendar=calendar, coach=calendar.coach, is_active=active
        )

    assert (refused.value.message, callbacks) == (f"“Work” is already {word}.", [])
    calendar.refresh_from_db()
    assert calendar.is_active is active


def test_pausing_another_coachs_calendar_is_refused():
    calendar = ExternalCalendarFactory()

    with pytest.raises(PermissionDenied):
        services.external_calendar_set_active(
            calendar=calendar, coach=CoachFactory(), is_active=False
        )

    calendar.refresh_from_db()
    assert calendar.is_active is True


def test_coach_pauses_and_resumes_a_calendar_on_the_page(
    client, feeds, allow_local, frozen, django_capture_on_commit_callbacks
):
    coach = CoachFactory()
    calendar = ExternalCalendarFactory(coach=coach, name="Work", url=feeds.url("/a.ics"))
    BusyTime.objects.create(coach=coach, calendar=calendar, start=thursday(10), end=thursday(11))
    client.force_login(coach)
    page = client.get(reverse("calendars:availability")).content.decode()
    assert reverse("feeds:external_pause", args=[calendar.pk]) in page

    paused = client.post(reverse("feeds:external_pause", args=[calendar.pk]), follow=True)

    assert messages_of(paused) == [
        "Paused “Work”; 1 busy time it had stopped blocking your availability. It blocks "
        "nothing until you resume it."
    ]
    html = paused.content.decode()
    assert "Paused: not read, blocks nothing" in html
    assert reverse("feeds:external_resume", args=[calendar.pk]) in html
    assert busy(coach) == []
    again = client.post(reverse("feeds:external_pause", args=[calendar.pk]), follow=True)
    assert messages_of(again) == ["“Work” is already paused."]

    with django_capture_on_commit_callbacks() as callbacks:
        resumed = client.post(reverse("feeds:external_resume", args=[calendar.pk]), follow=True)

    assert messages_of(resumed) == [
        "Resumed “Work”. Syncing it now: refresh this page in a minute to see when it synced."
    ]
    assert (len(callbacks), feeds.hits) == (1, [])
    calendar.refresh_from_db()
    assert calendar.is_active is True


def test_pausing_a_calendar_without_busy_times_on_the_page_says_so(client):
    calendar = ExternalCalendarFactory(name="Family")
    client.force_login(calendar.coach)

    response = client.post(reverse("feeds:external_pause", args=[calendar.pk]), follow=True)

    assert messages_of(response) == [
        "Paused “Family”; it had no busy times blocking your availability. It blocks nothing "
        "until you resume it."
    ]


def test_pausing_another_coachs_calendar_on_the_page_changes_nothing(client):
    calendar = ExternalCalendarFactory()
    client.force_login(CoachFactory())

    response = client.post(reverse("feeds:external_pause", args=[calendar.pk]), follow=True)

    assert messages_of(response) == ["That calendar is not connected (any more)."]
    calendar.refresh_from_db()
    assert calendar.is_active is True


# --- removing -----------------------------------------------------------------------------------


def test_removing_a_calendar_frees_its_busy_times_at_once(
    feeds, allow_local, frozen, django_capture_on_commit_callbacks
):
    coach = coach_free_on_thursday()
    calendar = ExternalCalendarFactory(
        coach=coach,
        url=serve_busy(feeds, "/a.ics", (thursday(9), thursday(10)), (thursday(12), thursday(13))),
    )
    external_calendars_sync()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        removed = services.external_calendar_remove(calendar=calendar, coach=coach)

    assert (removed, callbacks, ExternalCalendar.objects.count(), busy()) == (2, [], 0, [])
    assert {thursday(9), thursday(12)} <= set(thursday_starts(coach))


def test_removing_one_of_two_calendars_keeps_the_others_busy_times(feeds, allow_local, frozen):
    coach, first = coach_with_two_busy_calendars(feeds)

    removed = services.external_calendar_remove(calendar=first, coach=coach)

    assert (removed, busy(coach)) == (1, [(thursday(11), thursday(12))])


def test_removing_another_coachs_calendar_is_refused():
    calendar = ExternalCalendarFactory()
    intruder = CoachFactory()

    with pytest.raises(PermissionDenied):
        services.external_calendar_remove(calendar=calendar, coach=intruder)

    assert ExternalCalendar.objects.filter(pk=calendar.pk).exists()


def test_removing_calendars_on_the_page_says_how_many_busy_times_stopped_blocking(
    client, feeds, django_capture_on_commit_callbacks
):
    coach = CoachFactory()
    work = ExternalCalendarFactory(coach=coach, name="Work", url=feeds.url("/1.ics"))
    home = ExternalCalendarFactory(coach=coach, name="Home", url=feeds.url("/2.ics"))
    for hour in (10, 12):
        BusyTime.objects.create(
            coach=coach, calendar=work, start=thursday(hour), end=thursday(hour + 1)
        )
    client.force_login(coach)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("feeds:external_remove", args=[work.pk]), follow=True)
    emptied = client.post(reverse("feeds:external_remove", args=[home.pk]), follow=True)

    assert (callbacks, feeds.hits) == ([], [])
    assert messages_of(response) == [
        "Removed “Work”; 2 busy times it had stopped blocking your availability."
    ]
    assert messages_of(emptied) == [
        "Removed “Home”; it had no busy times blocking your availability."
    ]
    assert ExternalCalendar.objects.filter(coach=coach).count() == 0


def test_removing_another_coachs_calendar_on_the_page_changes_nothing(client):
    calendar = ExternalCalendarFactory()
    client.force_login(CoachFactory())

    response = client.post(reverse("feeds:external_remove", args=[calendar.pk]), follow=True)

    assert messages_of(response) == ["That calendar is not connected (any more)."]
    assert ExternalCalendar.objects.filter(pk=calendar.pk).exists()


# --- entry points: task, command, pages --------------------------------------------------------


def test_task_and_command_run_the_sync(feeds, allow_local, frozen, capsys):
    coach = CoachFactory()
    ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/a.ics", (thursday(10), thursday(11)))
    )

    assert sync_external_calendars() == {"calendars": 1, "failed": 0, "added": 1, "removed": 0}
    assert busy(coach) == [(thursday(10), thursday(11))]

    feeds.serve("/a.ics", ics())
    call_command("sync_calendars")

    assert capsys.readouterr().out.strip() == "calendars=1 failed=0 added=0 removed=1"
    assert busy(coach) == []


def test_the_command_lists_each_failing_calendar_on_stderr(feeds, allow_local, frozen, capsys):
    feeds.serve("/a.ics", "gone", status=404)
    calendar = ExternalCalendarFactory(url=feeds.url("/a.ics"))

    call_command("sync_calendars")

    captured = capsys.readouterr()
    assert captured.out.strip() == "calendars=1 failed=1 added=0 removed=0"
    assert captured.err.startswith(f"calendar {calendar.pk}: 127.0.0.1 answered 404")


def test_nothing_is_materialised_any_more():
    from django.conf import settings

    from calendars import tasks

    assert not hasattr(tasks, "materialise_availability")
    assert "calendars.materialise_availability" not in {
        entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
    }
    with pytest.raises(Exception, match="Unknown command"):
        call_command("materialise_availability")


def test_adding_a_calendar_on_the_page_queues_its_first_sync_without_fetching_in_the_request(
    client, feeds, allow_local, frozen, celery_eager, django_capture_on_commit_callbacks
):
    coach = CoachFactory()
    url = serve_busy(feeds, "/a.ics", (thursday(10), thursday(11)))
    client.force_login(coach)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("feeds:external_add"), {"url": url, "name": "Work"})

    assert (response.status_code, feeds.hits, len(callbacks)) == (302, [], 1)
    assert messages_of(response) == [
        "Added “Work”. Syncing it now: refresh this page in a minute to see when it synced, "
        "or why it could not be read."
    ]
    callbacks[0]()  # the worker runs the queued calendars.sync_coach_calendars
    calendar = ExternalCalendar.objects.get(coach=coach)
    assert (calendar.name, calendar.last_synced_at, feeds.hits) == ("Work", NOW, ["/a.ics"])
    assert busy(calendar=calendar) == [(thursday(10), thursday(11))]


TOO_SOON = (
    "Your calendars were synced less than a minute ago. Try again in a minute; they are also "
    "synced every 15 minutes on their own."
)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (900, "every 15 minutes"),
        (60, "every minute"),
        (3600, "every hour"),
        (7200, "every 2 hours"),
        (5400, "every 90 minutes"),
        (90, "every 90 seconds"),
    ],
)
def test_the_sync_interval_in_words_follows_calendar_sync_every_seconds(settings, seconds, words):
    settings.CALENDAR_SYNC_EVERY_SECONDS = seconds

    assert sync.sync_every_words() == words


def test_sync_now_refusal_and_the_page_state_the_configured_sync_interval(
    client, settings, frozen, django_capture_on_commit_callbacks
):
    settings.CALENDAR_SYNC_EVERY_SECONDS = 30 * 60
    coach = CoachFactory()
    ExternalCalendarFactory(coach=coach, last_synced_at=NOW - timedelta(seconds=10))
    client.force_login(coach)

    refused = client.post(reverse("feeds:external_sync"), follow=True)

    assert messages_of(refused) == [
        "Your calendars were synced less than a minute ago. Try again in a minute; they are "
        "also synced every 30 minutes on their own."
    ]
    text = " ".join(refused.content.decode().split())
    assert "Apple calendar. Every 30 minutes Coachbook reads it" in text
    assert "15 minutes" not in text


def test_sync_now_queues_a_sync_and_refuses_another_within_a_minute(
    client, feeds, allow_local, frozen, celery_eager, django_capture_on_commit_callbacks
):
    coach = CoachFactory()
    ExternalCalendarFactory(
        coach=coach, url=serve_busy(feeds, "/a.ics", (thursday(10), thursday(11)))
    )
    client.force_login(coach)
    sync_now = reverse("feeds:external_sync")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        first = client.post(sync_now, follow=True)
        again = client.post(sync_now, follow=True)

    assert messages_of(first) == ["Syncing now; refresh this page in a minute to see the result."]
    assert messages_of(again) == [TOO_SOON]
    assert (len(callbacks), feeds.hits) == (1, ["/a.ics"])
    assert busy(coach) == [(thursday(10), thursday(11))]
    with time_machine.travel(NOW + timedelta(seconds=50), tick=False):
        assert messages_of(client.post(sync_now, follow=True)) == [TOO_SOON]
    with (
        time_machine.travel(NOW + timedelta(seconds=61), tick=False),
        django_capture_on_commit_callbacks(execute=True) as later,
    ):
        response = client.post(sync_now, follow=True)
    assert messages_of(response) == [
        "Syncing now; refresh this page in a minute to see the result."
    ]
    assert (len(later), feeds.hits) == (1, ["/a.ics", "/a.ics"])


def test_sync_now_is_not_held_back_by_adding_pausing_or_resuming_a_calendar(
    client, frozen, monkeypatch, django_capture_on_commit_callbacks, public_dns
):
    from django.core.cache import cache

    from calendars.tasks import sync_coach_calendars

    cache.clear()  # no claim left by another test's coach with the same id
    queued = []
    monkeypatch.setattr(sync_coach_calendars, "delay", lambda **kwargs: queued.append(kwargs))
    coach = CoachFactory()
    client.force_login(coach)
    sync_now = reverse("feeds:external_sync")

    # Each request's on-commit callbacks run as it returns, as they would in production.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("feeds:external_add"), {"url": "https://example.com/a.ics"}, follow=True
        )
    calendar = ExternalCalendar.objects.get(coach=coach)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("feeds:external_pause", args=[calendar.pk]), follow=True)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("feeds:external_resume", args=[calendar.pk]), follow=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(sync_now, follow=True)
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(sync_now, follow=True)

    assert messages_of(response) == [
        "Syncing now; refresh this page in a minute to see the result."
    ]
    assert messages_of(again) == [TOO_SOON]
    assert queued == [{"coach_id": coach.pk}] * 3  # add, resume, Sync now (a pause needs no sync)


def test_coach_sync_task_syncs_that_coach_only_and_skips_a_gone_coach(
    feeds, allow_local, frozen, celery_eager
):
    from calendars.tasks import sync_coach_calendars

    ten = (thursday(10), thursday(11))
    coach, other = CoachFactory(), CoachFactory()
    ExternalCalendarFactory(coach=coach, url=serve_busy(feeds, "/mine.ics", ten))
    ExternalCalendarFactory(coach=other, url=serve_busy(feeds, "/theirs.ics", ten))

    counts = sync_coach_calendars.delay(coach_id=coach.pk).get()

    assert counts == {"calendars": 1, "failed": 0, "added": 1, "removed": 0}
    assert (busy(coach), busy(other)) == ([ten], [])
    assert sync_coach_calendars.delay(coach_id=other.pk + 1000).get() is None


def test_adding_a_file_url_on_the_page_shows_the_reason_and_adds_nothing(client):
    coach = CoachFactory()
    client.force_login(coach)

    response = client.post(
        reverse("feeds:external_add"), {"url": "file:///etc/passwd"}, follow=True
    )

    assert response.status_code == 200
    assert messages_of(response) == [
        "Only http:// and https:// calendar addresses (or webcal://) can be synced."
    ]
    assert ExternalCalendar.objects.count() == 0


def test_external_calendars_partial_shows_the_last_error(rf):
    from django.template.loader import render_to_string

    calendar = ExternalCalendarFactory(
        last_error="calendar.example.com answered 404 Not Found: check the address.",
        last_error_at=NOW,
    )
    request = rf.get("/availability/")
    request.user = calendar.coach

    html = render_to_string(
        "calendars/_external_calendars.html",
        {
            "user": calendar.coach,
            "external_calendars": [calendar],
            "calendar_sync_every": "every 15 minutes",
        },
        request=request,
    )

    assert "Could not be read" in html
    assert "answered 404 Not Found" in html
    assert reverse("feeds:external_remove", args=[calendar.pk]) in html
    assert reverse("feeds:external_add") in html


def test_the_availability_page_explains_busy_times_and_conflicts(client):
    coach = CoachFactory()
    ExternalCalendarFactory(coach=coach, last_synced_at=NOW, last_error="boom", last_error_at=NOW)
    client.force_login(coach)

    text = " ".join(client.get(reverse("calendars:availability")).content.decode().split())

    assert "students cannot book you then (nor within your buffers around it)" in text
    assert "A session already agreed is never moved" in text
    assert "the busy times read then still count until it works again" in text
    assert "open slots" not in text


# --- bounded reading --------------------------------------------------------------------------


def test_a_rule_repeating_every_minute_is_refused_without_expanding_it_whole():
    from calendars.sync import MAX_BUSY_TIMES, CalendarFetchError, busy_intervals

    minutely = busy_event(
        "minutely", utc(2026, 10, 20, 13), utc(2026, 10, 20, 13, 1), "RRULE:FREQ=MINUTELY"
    )

    with pytest.raises(CalendarFetchError, match=f"more than {MAX_BUSY_TIMES:,} events"):
        busy_intervals(
            ics(minutely).encode(), start=NOW, end=NOW + timedelta(days=730), tz=ZoneInfo("UTC")
        )


def test_a_calendar_at_the_cap_is_read_whole():
    from calendars.sync import MAX_BUSY_TIMES, busy_intervals

    hourly = busy_event(
        "hourly",
        utc(2026, 10, 20, 13),
        utc(2026, 10, 20, 13, 30),
        f"RRULE:FREQ=HOURLY;COUNT={MAX_BUSY_TIMES}",
    )

    busy = busy_intervals(
        ics(hourly).encode(), start=NOW, end=NOW + timedelta(days=730), tz=ZoneInfo("UTC")
    )

    assert (len(busy), busy[0], busy[-1][0]) == (
        MAX_BUSY_TIMES,
        (utc(2026, 10, 20, 13), utc(2026, 10, 20, 13, 30)),
        utc(2026, 10, 20, 13) + timedelta(hours=MAX_BUSY_TIMES - 1),
    )
