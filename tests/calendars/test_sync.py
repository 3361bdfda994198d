"""External busy calendars: fetched from a local HTTP server, they block and reopen slots."""

import http.server
import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse

from calendars import services, sync
from calendars.models import ExternalCalendar, TimeSlot
from calendars.services import ExternalCalendarInvalid, external_calendars_sync
from calendars.tasks import sync_external_calendars
from sessions_app.services import session_book
from tests.conftest import messages_of
from tests.factories import (
    CoachFactory,
    ExternalCalendarFactory,
    OfferingFactory,
    TimeSlotFactory,
    make_package,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)


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
    settings.AVAILABILITY_WEEKS_AHEAD = 4


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def ics(*events: str, extra: str = "") -> str:
    body = "".join(f"BEGIN:VEVENT\r\n{event.strip()}\r\nEND:VEVENT\r\n" for event in events)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//Feeds//EN\r\n"
        f"{extra}{body}END:VCALENDAR\r\n"
    )


def event(uid: str, start: str, end: str, *lines: str) -> str:
    return "\r\n".join([f"UID:{uid}", "DTSTAMP:20261001T000000Z", start, end, *lines])


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def slot(coach, start: datetime, hours: int = 1, **fields) -> TimeSlot:
    return TimeSlotFactory(coach=coach, start=start, end=start + timedelta(hours=hours), **fields)


def states(*slots) -> list[tuple[str, str]]:
    result = []
    for item in slots:
        item.refresh_from_db()
        result.append((item.status, item.block_source))
    return result


OPEN, BLOCKED = ("OPEN", ""), ("BLOCKED", "external")


# --- blocking and reopening ---------------------------------------------------------------------


def test_busy_event_blocks_overlapping_open_slots_and_reopens_when_it_goes_away(
    feeds, allow_local, frozen
):
    coach = CoachFactory()
    ten, eleven, noon = (slot(coach, utc(2026, 10, 22, hour)) for hour in (10, 11, 12))
    url = feeds.serve(
        "/work.ics",
        ics(event("a", "DTSTART:20261022T103000Z", "DTEND:20261022T113000Z", "SUMMARY:Dentist")),
    )
    calendar = ExternalCalendarFactory(coach=coach, url=url)

    result = external_calendars_sync()

    assert (result.calendars, result.failed, result.blocked, result.reopened) == (1, 0, 2, 0)
    assert states(ten, eleven, noon) == [BLOCKED, BLOCKED, OPEN]
    calendar.refresh_from_db()
    assert calendar.last_synced_at == NOW
    assert (calendar.last_error, calendar.last_error_at) == ("", None)

    feeds.serve("/work.ics", ics())
    result = external_calendars_sync()

    assert (result.blocked, result.reopened) == (0, 2)
    assert states(ten, eleven, noon) == [OPEN, OPEN, OPEN]


def test_sync_twice_changes_nothing_the_second_time(feeds, allow_local, frozen):
    coach = CoachFactory()
    ten = slot(coach, utc(2026, 10, 22, 10))
    url = feeds.serve(
        "/a.ics", ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
    )
    ExternalCalendarFactory(coach=coach, url=url)

    first, second = external_calendars_sync(), external_calendars_sync()

    assert (first.blocked, second.blocked, second.reopened) == (1, 0, 0)
    assert states(ten) == [BLOCKED]


def test_held_booked_and_coach_blocked_slots_are_never_touched(feeds, allow_local, frozen):
    coach = CoachFactory()
    package = make_package(offering=OfferingFactory(coach=coach))
    held = slot(coach, utc(2026, 10, 22, 10))
    session_book(session=package.sessions.first(), slot=held, actor=package.student)
    booked = slot(coach, utc(2026, 10, 22, 11), status="BOOKED")
    mine = slot(coach, utc(2026, 10, 22, 12), status="BLOCKED", block_source="coach")
    busy = ics(event("a", "DTSTART:20261022T090000Z", "DTEND:20261022T140000Z"))
    url = feeds.serve("/a.ics", busy)
    ExternalCalendarFactory(coach=coach, url=url)

    external_calendars_sync()
    assert states(held, booked, mine) == [("HELD", ""), ("BOOKED", ""), ("BLOCKED", "coach")]

    feeds.serve("/a.ics", ics())
    external_calendars_sync()
    assert states(held, booked, mine) == [("HELD", ""), ("BOOKED", ""), ("BLOCKED", "coach")]


def test_past_slots_and_slots_beyond_the_slot_horizon_are_left_alone(feeds, allow_local, frozen):
    coach = CoachFactory()
    past = slot(coach, utc(2026, 10, 20, 9))
    far = slot(coach, utc(2028, 10, 24, 13))  # 735 days ahead: no form or pattern reaches it
    assert utc(2028, 10, 24, 13) > NOW + services.SLOT_HORIZON
    url = feeds.serve(
        "/a.ics",
        ics(
            event("p", "DTSTART:20261020T090000Z", "DTEND:20261020T100000Z"),
            event("f", "DTSTART:20281024T130000Z", "DTEND:20281024T140000Z"),
        ),
    )
    ExternalCalendarFactory(coach=coach, url=url)

    external_calendars_sync()

    assert states(past, far) == [OPEN, OPEN]


def test_the_sync_horizon_covers_the_furthest_one_off_and_pattern_slot():
    from calendars import forms

    horizon_days = services.SLOT_HORIZON.days
    assert forms.MAX_SLOT_DAYS_AHEAD == services.MAX_SLOT_DAYS_AHEAD
    assert horizon_days > services.MAX_SLOT_DAYS_AHEAD
    assert horizon_days > services.MAX_PATTERN_START_DAYS + 7 * services.MAX_PATTERN_WEEKS


def test_a_slot_60_weeks_ahead_is_blocked_by_a_busy_time(feeds, allow_local, frozen):
    coach = CoachFactory()
    far = slot(coach, NOW + timedelta(weeks=60))  # 2027-12-14 12:00 UTC
    url = feeds.serve(
        "/a.ics", ics(event("f", "DTSTART:20271214T120000Z", "DTEND:20271214T130000Z"))
    )
    ExternalCalendarFactory(coach=coach, url=url)

    result = external_calendars_sync()

    assert (result.blocked, states(far)) == (1, [BLOCKED])


def test_a_slot_two_years_ahead_from_a_pattern_is_blocked_by_a_busy_time(
    feeds, allow_local, frozen
):
    from datetime import date, time

    coach = CoachFactory(timezone="UTC")
    start_day = NOW.date() + timedelta(days=services.MAX_PATTERN_START_DAYS)
    services.availability_patterns_create(
        coach=coach,
        weekdays=[start_day.weekday()],
        start_time=time(9),
        end_time=time(10),
        slot_minutes=60,
        weeks=services.MAX_PATTERN_WEEKS,
        valid_from=start_day,
    )
    last = TimeSlot.objects.filter(coach=coach).order_by("start").last()
    assert last.start.date() == start_day + timedelta(weeks=services.MAX_PATTERN_WEEKS - 1)
    assert last.start.date() > date(2028, 10, 1)
    day = f"{last.start:%Y%m%d}"
    url = feeds.serve("/a.ics", ics(event("f", f"DTSTART:{day}T090000Z", f"DTEND:{day}T100000Z")))
    ExternalCalendarFactory(coach=coach, url=url)

    result = external_calendars_sync()

    assert (result.blocked, states(last)) == (1, [BLOCKED])


def test_busy_times_are_read_up_to_the_coachs_furthest_open_slot(feeds, allow_local, frozen):
    coach = CoachFactory()
    ten_weeks = slot(coach, NOW + timedelta(weeks=10))  # beyond AVAILABILITY_WEEKS_AHEAD (4)
    free_later = slot(coach, NOW + timedelta(weeks=10, hours=2))
    url = feeds.serve(
        "/a.ics",
        ics(
            event("w", "DTSTART:20261229T120000Z", "DTEND:20261229T130000Z"),
            event("x", "DTSTART:20270105T120000Z", "DTEND:20270105T130000Z"),  # no slot there
        ),
    )
    ExternalCalendarFactory(coach=coach, url=url)

    result = external_calendars_sync()

    assert (result.blocked, states(ten_weeks, free_later)) == (1, [BLOCKED, OPEN])
    feeds.serve("/a.ics", ics())
    assert external_calendars_sync().reopened == 1
    assert states(ten_weeks) == [OPEN]


def test_transparent_and_cancelled_events_do_not_block(feeds, allow_local, frozen):
    coach = CoachFactory()
    ten, eleven, noon = (slot(coach, utc(2026, 10, 22, hour)) for hour in (10, 11, 12))
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

    assert states(ten, eleven, noon) == [OPEN, OPEN, BLOCKED]


def test_weekly_recurring_event_follows_new_york_wall_time_across_the_november_dst_change(
    feeds, allow_local, frozen
):
    # 09:00-10:00 in New York every Monday: 13:00 UTC in October (EDT), 14:00 UTC after the
    # clocks go back on Sunday 1 November 2026 (EST). The 9 November occurrence is excluded.
    coach = CoachFactory(timezone="America/New_York")
    oct26_13, oct26_14 = slot(coach, utc(2026, 10, 26, 13)), slot(coach, utc(2026, 10, 26, 14))
    nov2_13, nov2_14 = slot(coach, utc(2026, 11, 2, 13)), slot(coach, utc(2026, 11, 2, 14))
    nov9_14, nov16_14 = slot(coach, utc(2026, 11, 9, 14)), slot(coach, utc(2026, 11, 16, 14))
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

    assert states(oct26_13, oct26_14) == [BLOCKED, OPEN]
    assert states(nov2_13, nov2_14) == [OPEN, BLOCKED]
    assert states(nov9_14, nov16_14) == [OPEN, BLOCKED]


def test_moved_occurrence_of_a_series_blocks_its_new_time_only(feeds, allow_local, frozen):
    coach = CoachFactory()
    old_time, new_time = slot(coach, utc(2026, 10, 27, 9)), slot(coach, utc(2026, 10, 27, 15))
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

    assert states(old_time, new_time) == [OPEN, BLOCKED]


def test_all_day_event_blocks_the_whole_day_in_the_coachs_timezone(feeds, allow_local, frozen):
    # 5 November in Berlin (CET, UTC+1) runs from 4 Nov 23:00 UTC to 5 Nov 23:00 UTC.
    coach = CoachFactory(timezone="Europe/Berlin")
    before, first, last, after = (
        slot(coach, utc(2026, 11, 4, 22)),
        slot(coach, utc(2026, 11, 4, 23)),
        slot(coach, utc(2026, 11, 5, 22)),
        slot(coach, utc(2026, 11, 5, 23)),
    )
    url = feeds.serve(
        "/holiday.ics",
        ics(event("h", "DTSTART;VALUE=DATE:20261105", "DTEND;VALUE=DATE:20261106", "SUMMARY:Off")),
    )
    ExternalCalendarFactory(coach=coach, url=url)

    external_calendars_sync()

    assert states(before, first, last, after) == [OPEN, BLOCKED, BLOCKED, OPEN]


# --- scale: a run cut short keeps its work -------------------------------------------------------


def test_a_sync_cut_short_keeps_what_it_applied_and_the_next_run_starts_with_the_rest(
    feeds, allow_local, frozen, settings, monkeypatch
):
    from celery.exceptions import SoftTimeLimitExceeded

    settings.CALENDAR_SYNC_WORKERS = 1  # one fetch at a time, in the coaches' order
    first_coach, second_coach = CoachFactory(), CoachFactory()
    busy = ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
    first_slot, second_slot = (slot(c, utc(2026, 10, 22, 10)) for c in (first_coach, second_coach))
    first = ExternalCalendarFactory(coach=first_coach, url=feeds.serve("/1.ics", busy))
    second = ExternalCalendarFactory(coach=second_coach, url=feeds.serve("/2.ics", busy))
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

    assert states(first_slot, second_slot) == [BLOCKED, OPEN]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.last_synced_at, second.last_synced_at, second.last_error) == (NOW, None, "")

    # The next run starts with the coach it missed, so the time limit cannot starve anyone.
    monkeypatch.setattr(sync, "fetch", time_limit_at(first))
    with pytest.raises(SoftTimeLimitExceeded):
        external_calendars_sync()

    assert states(first_slot, second_slot) == [BLOCKED, BLOCKED]


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


def test_the_time_limit_while_reading_a_calendar_file_stops_the_sync_unrecorded(
    feeds, allow_local, frozen, monkeypatch
):
    from celery.exceptions import SoftTimeLimitExceeded

    coach = CoachFactory()
    ten = slot(coach, utc(2026, 10, 22, 10))
    url = feeds.serve(
        "/a.ics", ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
    )
    calendar = ExternalCalendarFactory(coach=coach, url=url)

    def expand(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(sync.recurring_ical_events, "of", expand)
    with pytest.raises(SoftTimeLimitExceeded):
        external_calendars_sync()

    calendar.refresh_from_db()
    assert (calendar.last_synced_at, calendar.last_error, states(ten)) == (None, "", [OPEN])


def test_the_time_limit_while_applying_a_coachs_busy_times_stops_the_sync(
    feeds, allow_local, frozen, monkeypatch
):
    from celery.exceptions import SoftTimeLimitExceeded

    coach = CoachFactory()
    ten = slot(coach, utc(2026, 10, 22, 10))
    url = feeds.serve(
        "/a.ics", ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
    )
    ExternalCalendarFactory(coach=coach, url=url)

    def apply(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(services, "_external_blocks_apply", apply)
    with pytest.raises(SoftTimeLimitExceeded):
        external_calendars_sync()

    assert states(ten) == [OPEN]


# --- failures -----------------------------------------------------------------------------------


def test_failing_feed_records_its_error_and_the_other_coachs_feed_still_syncs(
    feeds, allow_local, frozen
):
    broken_coach, good_coach = CoachFactory(), CoachFactory()
    broken_slot = slot(broken_coach, utc(2026, 10, 22, 10))
    good_slot = slot(good_coach, utc(2026, 10, 22, 10))
    feeds.serve("/broken.ics", "boom", status=500)
    broken = ExternalCalendarFactory(coach=broken_coach, url=feeds.url("/broken.ics"))
    good = ExternalCalendarFactory(
        coach=good_coach,
        url=feeds.serve(
            "/good.ics", ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
        ),
    )

    result = external_calendars_sync()

    broken.refresh_from_db()
    good.refresh_from_db()
    assert (result.calendars, result.failed, result.blocked) == (2, 1, 1)
    assert broken.last_error == (
        "127.0.0.1 answered 500 Internal Server Error: check that the address is still valid."
    )
    assert broken.last_error_at == NOW
    assert broken.last_synced_at is None
    assert result.errors == {broken.pk: broken.last_error}
    assert (good.last_error, good.last_synced_at) == ("", NOW)
    assert states(broken_slot, good_slot) == [OPEN, BLOCKED]


def test_a_coachs_failing_calendar_keeps_blocks_while_the_other_still_adds_them(
    feeds, allow_local, frozen
):
    coach = CoachFactory()
    ten, eleven = slot(coach, utc(2026, 10, 22, 10)), slot(coach, utc(2026, 10, 22, 11))
    first = ExternalCalendarFactory(
        coach=coach,
        url=feeds.serve(
            "/one.ics", ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
        ),
    )
    ExternalCalendarFactory(coach=coach, url=feeds.serve("/two.ics", ics()))
    external_calendars_sync()
    assert states(ten, eleven) == [BLOCKED, OPEN]

    feeds.serve("/one.ics", "gone", status=404)
    feeds.serve("/two.ics", ics(event("b", "DTSTART:20261022T110000Z", "DTEND:20261022T120000Z")))
    result = external_calendars_sync()

    first.refresh_from_db()
    assert first.last_error.startswith("127.0.0.1 answered 404")
    assert (result.failed, result.blocked, result.reopened) == (1, 1, 0)
    # The failing calendar may still be busy at ten: nothing is reopened while it fails.
    assert states(ten, eleven) == [BLOCKED, BLOCKED]


def test_a_coachs_calendars_together_decide_what_reopens(feeds, allow_local, frozen):
    coach = CoachFactory()
    ten = slot(coach, utc(2026, 10, 22, 10))
    busy = ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
    ExternalCalendarFactory(coach=coach, url=feeds.serve("/one.ics", busy))
    ExternalCalendarFactory(coach=coach, url=feeds.serve("/two.ics", busy))
    external_calendars_sync()

    feeds.serve("/one.ics", ics())
    external_calendars_sync()
    assert states(ten) == [BLOCKED]  # still busy in the second calendar

    feeds.serve("/two.ics", ics())
    external_calendars_sync()
    assert states(ten) == [OPEN]


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
    ten = slot(coach, utc(2026, 10, 22, 10))
    url = feeds.serve(
        "/a.ics", ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
    )
    calendar = ExternalCalendarFactory(coach=coach, url=url)

    result = external_calendars_sync()

    calendar.refresh_from_db()
    assert result.failed == 1
    assert calendar.last_error.startswith("That address points to a private or local network")
    assert feeds.hits == []
    assert states(ten) == [OPEN]


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


def test_external_calendar_add_reads_webcal_as_https_and_names_it_after_the_host():
    coach = CoachFactory()

    calendar = services.external_calendar_add(
        coach=coach, url="  webcal://p01-caldav.icloud.com/published/2/abc  "
    )

    assert calendar.url == "https://p01-caldav.icloud.com/published/2/abc"
    assert calendar.name == "p01-caldav.icloud.com"


def test_external_calendar_add_refuses_the_same_address_twice():
    coach = CoachFactory()
    services.external_calendar_add(coach=coach, url="https://example.com/a.ics", name="Work")

    with pytest.raises(ExternalCalendarInvalid) as refused:
        services.external_calendar_add(coach=coach, url="https://example.com/a.ics")

    assert refused.value.message == "You have already added that calendar."
    assert ExternalCalendar.objects.filter(coach=coach).count() == 1


def test_switching_a_calendar_off_reopens_what_it_blocked_at_the_next_sync(
    feeds, allow_local, frozen
):
    coach = CoachFactory()
    ten = slot(coach, utc(2026, 10, 22, 10))
    url = feeds.serve(
        "/a.ics", ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
    )
    calendar = ExternalCalendarFactory(coach=coach, url=url)
    external_calendars_sync()
    ExternalCalendar.objects.filter(pk=calendar.pk).update(is_active=False)

    result = external_calendars_sync()

    assert (result.calendars, result.reopened) == (0, 1)
    assert states(ten) == [OPEN]


# --- pausing and resuming -------------------------------------------------------------------------


def test_pausing_the_only_calendar_reopens_its_blocks_and_later_syncs_skip_it(
    feeds, allow_local, frozen
):
    coach = CoachFactory()
    ten = slot(coach, utc(2026, 10, 22, 10))
    url = feeds.serve(
        "/a.ics", ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
    )
    calendar = ExternalCalendarFactory(coach=coach, url=url)
    external_calendars_sync()
    feeds.hits.clear()

    reopened = services.external_calendar_set_active(
        calendar=calendar, coach=coach, is_active=False
    )

    calendar.refresh_from_db()
    assert (reopened, calendar.is_active, states(ten)) == (1, False, [OPEN])
    assert external_calendars_sync().calendars == 0
    assert (feeds.hits, states(ten)) == ([], [OPEN])


def coach_with_two_busy_calendars(feeds):
    """A coach with slots at 10:00 and 11:00 on 22 Oct 2026, each blocked by its own calendar
    (the first calendar is busy at 10:00, the second at 11:00), synced once."""
    coach = CoachFactory()
    ten, eleven = slot(coach, utc(2026, 10, 22, 10)), slot(coach, utc(2026, 10, 22, 11))
    first = ExternalCalendarFactory(
        coach=coach,
        url=feeds.serve(
            "/one.ics", ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
        ),
    )
    ExternalCalendarFactory(
        coach=coach,
        url=feeds.serve(
            "/two.ics", ics(event("b", "DTSTART:20261022T110000Z", "DTEND:20261022T120000Z"))
        ),
    )
    external_calendars_sync()
    return coach, first, ten, eleven


def test_pausing_one_of_two_calendars_reopens_only_what_it_blocked_via_a_queued_sync(
    feeds, allow_local, frozen, celery_eager, django_capture_on_commit_callbacks
):
    coach, first, ten, eleven = coach_with_two_busy_calendars(feeds)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        reopened = services.external_calendar_set_active(
            calendar=first, coach=coach, is_active=False
        )

    assert (reopened, len(callbacks)) == (None, 1)
    assert states(ten, eleven) == [OPEN, BLOCKED]


def test_resuming_a_paused_calendar_queues_a_sync_that_blocks_again(
    feeds, allow_local, frozen, celery_eager, django_capture_on_commit_callbacks
):
    coach = CoachFactory()
    ten = slot(coach, utc(2026, 10, 22, 10))
    url = feeds.serve(
        "/a.ics", ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
    )
    calendar = ExternalCalendarFactory(coach=coach, url=url, is_active=False)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.external_calendar_set_active(calendar=calendar, coach=coach, is_active=True)

    calendar.refresh_from_db()
    assert (calendar.is_active, len(callbacks), states(ten)) == (True, 1, [BLOCKED])


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

    with pytest.raises(services.PermissionDenied):
        services.external_calendar_set_active(
            calendar=calendar, coach=CoachFactory(), is_active=False
        )

    calendar.refresh_from_db()
    assert calendar.is_active is True


def test_coach_pauses_and_resumes_a_calendar_on_the_page(
    client, feeds, allow_local, frozen, django_capture_on_commit_callbacks
):
    coach = CoachFactory()
    ten = slot(coach, utc(2026, 10, 22, 10), status="BLOCKED", block_source="external")
    calendar = ExternalCalendarFactory(coach=coach, name="Work", url=feeds.url("/a.ics"))
    client.force_login(coach)
    page = client.get(reverse("calendars:availability")).content.decode()
    assert reverse("feeds:external_pause", args=[calendar.pk]) in page

    paused = client.post(reverse("feeds:external_pause", args=[calendar.pk]), follow=True)

    assert messages_of(paused) == [
        "Paused “Work”; 1 slot(s) it blocked reopened. It blocks nothing until you resume it."
    ]
    html = paused.content.decode()
    assert "Paused: not read, blocks nothing" in html
    assert reverse("feeds:external_resume", args=[calendar.pk]) in html
    assert states(ten) == [OPEN]
    again = client.post(reverse("feeds:external_pause", args=[calendar.pk]), follow=True)
    assert messages_of(again) == ["“Work” is already paused."]

    with django_capture_on_commit_callbacks() as callbacks:
        resumed = client.post(reverse("feeds:external_resume", args=[calendar.pk]), follow=True)

    assert messages_of(resumed) == [
        "Resumed “Work”. Syncing it now: refresh this page in a minute to see what it blocked."
    ]
    assert (len(callbacks), feeds.hits) == (1, [])
    calendar.refresh_from_db()
    assert calendar.is_active is True


def test_pausing_another_coachs_calendar_on_the_page_changes_nothing(client):
    calendar = ExternalCalendarFactory()
    client.force_login(CoachFactory())

    response = client.post(reverse("feeds:external_pause", args=[calendar.pk]), follow=True)

    assert messages_of(response) == ["That calendar is not connected (any more)."]
    calendar.refresh_from_db()
    assert calendar.is_active is True


# --- removing -----------------------------------------------------------------------------------


def test_removing_the_only_calendar_reopens_what_it_blocked(feeds, allow_local, frozen):
    coach = CoachFactory()
    ten = slot(coach, utc(2026, 10, 22, 10))
    mine = slot(coach, utc(2026, 10, 22, 12), status="BLOCKED", block_source="coach")
    url = feeds.serve(
        "/a.ics", ics(event("a", "DTSTART:20261022T090000Z", "DTEND:20261022T130000Z"))
    )
    calendar = ExternalCalendarFactory(coach=coach, url=url)
    external_calendars_sync()

    reopened = services.external_calendar_remove(calendar=calendar, coach=coach)

    assert reopened == 1
    assert ExternalCalendar.objects.count() == 0
    assert states(ten, mine) == [OPEN, ("BLOCKED", "coach")]


def test_removing_one_of_two_calendars_keeps_what_the_other_blocks(
    feeds, allow_local, frozen, celery_eager, django_capture_on_commit_callbacks
):
    coach, first, ten, eleven = coach_with_two_busy_calendars(feeds)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        reopened = services.external_calendar_remove(calendar=first, coach=coach)

    assert (reopened, len(callbacks)) == (None, 1)  # the other calendar syncs in the background
    assert states(ten, eleven) == [OPEN, BLOCKED]


def test_removing_another_coachs_calendar_is_refused():
    calendar = ExternalCalendarFactory()
    intruder = CoachFactory()

    with pytest.raises(services.PermissionDenied):
        services.external_calendar_remove(calendar=calendar, coach=intruder)

    assert ExternalCalendar.objects.filter(pk=calendar.pk).exists()


# --- entry points: task, command, pages --------------------------------------------------------


def test_task_and_command_run_the_sync(feeds, allow_local, frozen, capsys):
    coach = CoachFactory()
    ten = slot(coach, utc(2026, 10, 22, 10))
    url = feeds.serve(
        "/a.ics", ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
    )
    ExternalCalendarFactory(coach=coach, url=url)

    assert sync_external_calendars() == {"calendars": 1, "failed": 0, "blocked": 1, "reopened": 0}
    assert states(ten) == [BLOCKED]

    feeds.serve("/a.ics", ics())
    call_command("sync_calendars")

    assert capsys.readouterr().out.strip() == "calendars=1 failed=0 blocked=0 reopened=1"
    assert states(ten) == [OPEN]


def test_adding_a_calendar_on_the_page_queues_its_first_sync_without_fetching_in_the_request(
    client, feeds, allow_local, frozen, celery_eager, django_capture_on_commit_callbacks
):
    coach = CoachFactory()
    ten = slot(coach, utc(2026, 10, 22, 10))
    url = feeds.serve(
        "/a.ics", ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
    )
    client.force_login(coach)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("feeds:external_add"), {"url": url, "name": "Work"})

    assert (response.status_code, feeds.hits, len(callbacks)) == (302, [], 1)
    assert messages_of(response) == [
        "Added “Work”. Syncing it now: refresh this page in a minute to see what it blocked, "
        "or why it could not be read."
    ]
    callbacks[0]()  # the worker runs the queued calendars.sync_coach_calendars
    calendar = ExternalCalendar.objects.get(coach=coach)
    assert (calendar.name, calendar.last_synced_at, feeds.hits) == ("Work", NOW, ["/a.ics"])
    assert states(ten) == [BLOCKED]


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
    ten = slot(coach, utc(2026, 10, 22, 10))
    url = feeds.serve(
        "/a.ics", ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
    )
    ExternalCalendarFactory(coach=coach, url=url)
    client.force_login(coach)
    sync_now = reverse("feeds:external_sync")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        first = client.post(sync_now, follow=True)
        again = client.post(sync_now, follow=True)

    assert messages_of(first) == ["Syncing now; refresh this page in a minute to see the result."]
    assert messages_of(again) == [TOO_SOON]
    assert (len(callbacks), feeds.hits, states(ten)) == (1, ["/a.ics"], [BLOCKED])
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
    client, frozen, monkeypatch, django_capture_on_commit_callbacks
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
    assert queued == [{"coach_id": coach.pk}] * 3  # add, resume, Sync now (the pause reopened)


def test_removing_one_of_two_calendars_on_the_page_says_the_rest_sync_in_the_background(
    client, feeds, allow_local, frozen, django_capture_on_commit_callbacks
):
    coach = CoachFactory()
    first = ExternalCalendarFactory(coach=coach, name="Work", url=feeds.url("/1.ics"))
    ExternalCalendarFactory(coach=coach, url=feeds.url("/2.ics"))
    client.force_login(coach)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("feeds:external_remove", args=[first.pk]))

    assert (len(callbacks), feeds.hits) == (1, [])
    assert messages_of(response) == [
        "Removed “Work”. Syncing your other calendars now: the slots only it blocked reopen "
        "within a minute."
    ]


def test_coach_sync_task_syncs_that_coach_only_and_skips_a_gone_coach(
    feeds, allow_local, frozen, celery_eager
):
    from calendars.tasks import sync_coach_calendars

    busy = ics(event("a", "DTSTART:20261022T100000Z", "DTEND:20261022T110000Z"))
    coach, other = CoachFactory(), CoachFactory()
    mine, theirs = slot(coach, utc(2026, 10, 22, 10)), slot(other, utc(2026, 10, 22, 10))
    ExternalCalendarFactory(coach=coach, url=feeds.serve("/mine.ics", busy))
    ExternalCalendarFactory(coach=other, url=feeds.serve("/theirs.ics", busy))

    counts = sync_coach_calendars.delay(coach_id=coach.pk).get()

    assert counts == {"calendars": 1, "failed": 0, "blocked": 1, "reopened": 0}
    assert states(mine, theirs) == [BLOCKED, OPEN]
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


def test_removing_another_coachs_calendar_on_the_page_changes_nothing(client):
    calendar = ExternalCalendarFactory()
    client.force_login(CoachFactory())

    response = client.post(reverse("feeds:external_remove", args=[calendar.pk]), follow=True)

    assert messages_of(response) == ["That calendar is not connected (any more)."]
    assert ExternalCalendar.objects.filter(pk=calendar.pk).exists()


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
