"""Benchmark: the calendar subscription feed on PostgreSQL, through Django's test Client (the
whole middleware stack, in process), next to a trivial logged-in page as the floor.

    python bench/feed.py                    # starts a throwaway PostgreSQL on loopback
    DATABASE_URL=postgres://... python bench/feed.py   # a scratch database: rows stay
    BENCH_FEED_SESSIONS=2000 BENCH_FEED_BIG=20000 BENCH_RUNS=15 BENCH_FAST_RUNS=201 \\
        python bench/feed.py

The data is built in bulk: a coach with BENCH_FEED_SESSIONS sessions, all inside the feed's
window (completed ones over the last 25 days, confirmed ones with a few rescheduling and
canceled ones over the next ten months), among 100-session packages of 20 students; and a
second coach with BENCH_FEED_BIG sessions (0 skips it) over six years, of which the window
(90 days back, 365 ahead) holds about a fifth. The clock is frozen (time-machine) at a fixed
moment, so the figures never depend on when the bench runs.

Measured, the median of BENCH_RUNS requests (the cold feed) or BENCH_FAST_RUNS (the floor, the
warm feed and the 304 poll, called in turn, so that load from elsewhere on the machine falls on
all three alike), without query capture; query counts come from one separate request each
under `CaptureQueriesContext`:

- floor: `GET /bench/floor/` as the logged-in coach, a login-required view defined here (a
  urlconf override) rendering one table row with the user's name and email from a template
  string: the session and user lookups and the middleware, nothing else;
- the feed cold: Django's cache cleared before each request, so the feed is built;
- the feed warm: an unconditional GET served from the cached body (200);
- the 304 poll: a GET with the ETag in If-None-Match;
- beside them, the same 2,000 events built and serialized with icalendar objects (how the feed
  was written before; `calendars.ical.session_vevent`), for the ratio.

The cache is the one the settings give (Django's local-memory cache without REDIS_URL). The
exit status is 1 unless the 304 poll costs at most 2x the floor and the cold feed of
BENCH_FEED_SESSIONS sessions is under 100 ms.
"""

import os
import platform
import statistics
import sys
import time
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["CELERY_BROKER_URL"] = "memory://localhost/"

SESSIONS = int(os.environ.get("BENCH_FEED_SESSIONS", "2000"))
BIG = int(os.environ.get("BENCH_FEED_BIG", "20000"))
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
# Requests of a few milliseconds (the floor, warm fetches, 304 polls): more runs, same cost.
FAST_RUNS = int(os.environ.get("BENCH_FAST_RUNS", "201"))
SESSIONS_PER_PACKAGE = 100
DURATION = 60  # minutes
# Monday 16 March 2026, 09:41 UTC.
NOW = datetime(2026, 3, 16, 9, 41, tzinfo=UTC)
MAX_304_OVER_FLOOR = 2.0
MAX_COLD_MS = 100.0


def log(message: str) -> None:
    print(f"[feed] {message}", file=sys.stderr, flush=True)


# --- seeding -----------------------------------------------------------------------------------


def seed_coach(label: str, *, count: int, first: datetime, last: datetime) -> int:
    """A coach with `count` sessions spread evenly over [first, last): past ones completed,
    future ones confirmed, one in 20 rescheduling and one in 25 canceled from confirmed, with
    its event (a week ago, or the day before its time if that was over 30 days ago); returns
    the coach's id."""
    from django.db import transaction

    from accounts.models import CoachProfile, User
    from calendars.models import SlotStatus, TimeSlot
    from sessions_app.lifecycle import Action, Status
    from sessions_app.models import Package, Session, SessionEvent

    Offering = Package._meta.get_field("offering").related_model  # catalog.Offering
    # The colleague's copies of the slot's times, when the model has them.
    has_times = any(field.name == "starts_at" for field in Session._meta.get_fields())
    step = (last - first) / count
    with transaction.atomic():
        coach = User.objects.create(
            email=f"{label}-coach@bench.test", display_name=f"Coach {label}", password="!"
        )
        CoachProfile.objects.create(user=coach)
        students = User.objects.bulk_create(
            User(email=f"{label}-student{i}@bench.test", display_name=f"Student {i}, {label}")
            for i in range(20)
        )
        offering = Offering.objects.create(
            coach=coach,
            title="Weekly coaching; 100 sessions",
            session_count=SESSIONS_PER_PACKAGE,
            duration_minutes=DURATION,
            price_cents=100 * SESSIONS_PER_PACKAGE,
        )
        packages = Package.objects.bulk_create(
            Package(
                offering=offering,
                coach=coach,
                student=students[index % len(students)],
                title=offering.title,
                session_count=SESSIONS_PER_PACKAGE,
                duration_minutes=DURATION,
                price_cents=100 * SESSIONS_PER_PACKAGE,
                currency="USD",
            )
            for index in range(-(-count // SESSIONS_PER_PACKAGE))
        )
        starts = [(first + step * index).replace(second=0, microsecond=0) for index in range(count)]
        statuses = []
        for index, start in enumerate(starts):
            if index % 25 == 7:
                statuses.append(Status.CANCELED)
            elif start < NOW:
                statuses.append(Status.COMPLETED)
            elif index % 20 == 3:
                statuses.append(Status.RESCHEDULING)
            else:
                statuses.append(Status.CONFIRMED)
        sessions = Session.objects.bulk_create(
            (
                Session(
                    package=packages[index // SESSIONS_PER_PACKAGE],
                    coach=coach,
                    student_id=packages[index // SESSIONS_PER_PACKAGE].student_id,
                    number=index % SESSIONS_PER_PACKAGE + 1,
                    status=Status.UNSCHEDULED,  # until it names its reservation, below
                    price_share_cents=100,
                    currency="USD",
                    sequence=1 if statuses[index] == Status.CANCELED else 0,
                )
                for index in range(count)
            ),
            batch_size=2000,
        )
        slots = TimeSlot.objects.bulk_create(
            (
                TimeSlot(
                    coach=coach,
                    student_id=session.student_id,
                    session=session,
                    start=start,
                    end=start + timedelta(minutes=DURATION),
                    reserved_start=start,
                    reserved_end=start + timedelta(minutes=DURATION),
                    status=SlotStatus.RELEASED if status == Status.CANCELED else SlotStatus.BOOKED,
                    released_at=NOW if status == Status.CANCELED else None,
                )
                for session, start, status in zip(sessions, starts, statuses, strict=True)
            ),
            batch_size=2000,
        )
        fields = ["slot", "status"] + (["starts_at", "ends_at"] if has_times else [])
        for session, slot, status in zip(sessions, slots, statuses, strict=True):
            session.slot, session.status = slot, status
            if has_times:
                session.starts_at, session.ends_at = slot.start, slot.end
        Session.objects.bulk_update(sessions, fields, batch_size=2000)
        SessionEvent.objects.bulk_create(
            (
                SessionEvent(
                    session=session,
                    action=Action.CANCEL,
                    from_status=Status.CONFIRMED,
                    to_status=Status.CANCELED,
                    details={},
                    # Recent ones a week ago (still in the feed), older ones the day before.
                    created_at=(
                        NOW - timedelta(days=7)
                        if start > NOW - timedelta(days=30)
                        else start - timedelta(days=1)
                    ),
                )
                for session, start, status in zip(sessions, starts, statuses, strict=True)
                if status == Status.CANCELED
            ),
            batch_size=2000,
        )
    return coach.pk


# --- the floor: a trivial logged-in page --------------------------------------------------------


def floor_urlconf() -> types.ModuleType:
    """The project's urls plus /bench/floor/: login required, one table row, no query of its
    own (the session and the user are loaded by the middleware and `login_required`)."""
    from django.contrib.auth.decorators import login_required
    from django.http import HttpResponse
    from django.template import engines
    from django.urls import include, path

    template = engines["django"].from_string(
        "<table><tr><td>{{ user.name }}</td><td>{{ user.email }}</td></tr></table>"
    )

    @login_required
    def floor(request):
        return HttpResponse(template.render({"user": request.user}))

    module = types.ModuleType("bench_feed_urls")
    module.urlpatterns = [path("bench/floor/", floor), path("", include("config.urls"))]
    return module


# --- measuring ---------------------------------------------------------------------------------


def median_ms(function, runs: int = RUNS) -> float:
    return interleaved_ms([function], runs)[0]


def interleaved_ms(functions, runs: int) -> list[float]:
    """The median ms of each function over `runs` rounds that call them in turn: on a shared
    machine a burst of load then falls on all of them, not on whichever ran at the time."""
    seconds = [[] for _ in functions]
    for _ in range(runs):
        for index, function in enumerate(functions):
            started = time.perf_counter()
            function()
            seconds[index].append(time.perf_counter() - started)
    return [statistics.median(each) * 1000 for each in seconds]


def counted(function) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        function()
    return len(queries.captured_queries)


def icalendar_build(coach) -> bytes:
    """The feed as icalendar objects build it (the writer before this one), same sessions."""
    import icalendar

    from calendars import feeds, ical

    calendar = icalendar.Calendar()
    calendar.add("prodid", ical.PRODID)
    calendar.add("version", "2.0")
    for session in feeds.feed_sessions(user=coach):
        fields = feeds.feed_event_fields(session, coach)
        created, last_modified = fields.pop("created"), fields.pop("last_modified")
        event = ical.session_vevent(**fields)
        event.add("last-modified", last_modified)
        event.add("created", created)
        calendar.add_component(event)
    return calendar.to_ical()


def measure_feed(client, coach, floor) -> dict:
    """Cold, warm and 304 for `coach`'s feed: median ms, queries, events and bytes; the warm
    and 304 requests interleaved with `floor` (the floor's figure comes back as "floor")."""
    from django.core.cache import cache
    from django.urls import reverse

    url = reverse("feeds:feed", kwargs={"token": coach.calendar_token})

    def cold():
        cache.clear()
        response = client.get(url)
        assert response.status_code == 200, response.status_code

    def warm():
        response = client.get(url)
        assert response.status_code == 200, response.status_code

    cold()
    first = client.get(url)
    etag = first["ETag"]

    def poll():
        response = client.get(url, HTTP_IF_NONE_MATCH=etag)
        assert response.status_code == 304, response.status_code

    floor_ms, warm_ms, poll_ms = interleaved_ms([floor, warm, poll], FAST_RUNS)
    return {
        "events": first.content.count(b"BEGIN:VEVENT"),
        "bytes": len(first.content),
        "floor": (floor_ms, counted(floor)),
        "cold": (median_ms(cold), counted(cold)),
        "warm": (warm_ms, counted(warm)),
        "304": (poll_ms, counted(poll)),
    }


def bench() -> int:
    import django

    django.setup()
    import time_machine
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings

    from accounts.models import User

    version = connection.cursor().connection.info.server_version
    print(
        f"{platform.platform()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}, "
        f"Django {django.get_version()}, PostgreSQL {version // 10000}.{version % 10000}"
    )
    call_command("migrate", verbosity=0)
    label = f"feed{int(time.time())}-{os.getpid()}"
    # DEBUG would log every query of the timed runs too; only the counted runs log theirs.
    with (
        time_machine.travel(NOW, tick=False),
        override_settings(DEBUG=False, ROOT_URLCONF=floor_urlconf(), ALLOWED_HOSTS=["*"]),
    ):
        started = time.perf_counter()
        small_id = seed_coach(
            f"{label}-small",
            count=SESSIONS,
            first=NOW - timedelta(days=25),
            last=NOW + timedelta(days=300),
        )
        big_id = BIG and seed_coach(
            f"{label}-big",
            count=BIG,
            first=NOW - timedelta(days=5 * 365),
            last=NOW + timedelta(days=365 + 90),
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        log(f"seeded in {time.perf_counter() - started:.1f}s")

        coach = User.objects.get(pk=small_id)
        floor_client = Client()
        floor_client.force_login(coach)

        def floor():
            response = floor_client.get("/bench/floor/")
            assert response.status_code == 200, response.status_code

        floor()
        feed_client = Client()
        small = measure_feed(feed_client, coach, floor)
        floor_ms, floor_q = small["floor"]
        before_ms = median_ms(lambda: icalendar_build(User.objects.get(pk=small_id)), runs=3)
        big = measure_feed(feed_client, User.objects.get(pk=big_id), floor) if BIG else None

    print(f"feed of a coach, clock frozen at {NOW:%a %d %b %Y %H:%M} UTC; Django test Client")
    print(f"{'':44}{'sessions':>9}{'events':>8}{'KB':>7}{'median ms':>11}{'queries':>9}")
    rows = [("floor: logged-in page, one row", "", "", "", floor_ms, floor_q)]
    for data, total in ((small, SESSIONS), (big, BIG)):
        if data is None:
            continue
        for kind, title in (
            ("cold", "feed, cold (cache cleared, built)"),
            ("warm", "feed, warm (cached body, 200)"),
            ("304", "feed, 304 poll (If-None-Match)"),
        ):
            ms, queries = data[kind]
            rows.append((title, f"{total:,}", data["events"], data["bytes"] // 1024, ms, queries))
    for name, total, events, kilobytes, ms, queries in rows:
        print(f"{name:44}{total:>9}{events:>8}{kilobytes:>7}{ms:>11.1f}{queries:>9}")
    print(
        f"{'before: same query, icalendar objects':44}{f'{SESSIONS:,}':>9}"
        f"{small['events']:>8}{'':>7}{before_ms:>11.1f}{'':>9}"
    )
    ratio = small["304"][0] / floor_ms
    cold_ms = small["cold"][0]
    print(f"ratio: 304 poll / floor = {ratio:.2f} (must be <= {MAX_304_OVER_FLOOR})")
    print(
        f"full feed of {SESSIONS:,} sessions, cold: {cold_ms:.1f} ms (must be < {MAX_COLD_MS:.0f})"
    )
    print(f"icalendar objects / cold feed = {before_ms / cold_ms:.1f}x")
    failures = []
    if ratio > MAX_304_OVER_FLOOR:
        failures.append(f"a 304 poll costs {ratio:.2f}x the floor")
    if cold_ms >= MAX_COLD_MS:
        failures.append(f"the cold feed took {cold_ms:.1f} ms")
    if small["events"] != SESSIONS:
        failures.append(f"the feed has {small['events']} events, not {SESSIONS}")
    if small["304"][1] > 2:
        failures.append(f"a 304 poll took {small['304'][1]} queries")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def main() -> int:
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        return bench()
    from scripts.pgcluster import PostgresUnavailable, throwaway_postgres

    try:
        cluster = throwaway_postgres(database="coachbook_bench_feed")
        url = cluster.__enter__()
    except PostgresUnavailable as exc:
        print(f"skipped: {exc}; set DATABASE_URL to a PostgreSQL server", file=sys.stderr)
        return 1 if os.environ.get("COACHBOOK_REQUIRE_ALL") == "1" else 0
    try:
        os.environ["DATABASE_URL"] = url
        return bench()
    finally:
        cluster.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
