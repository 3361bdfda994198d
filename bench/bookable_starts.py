"""Benchmark: a coach's bookable start times over the next four weeks on PostgreSQL, computed by
`calendars.selectors.bookable_starts` (a constant number of queries) next to a naive loop that
asks the database about every candidate start on the grid.

    python bench/bookable_starts.py                 # starts a throwaway PostgreSQL on loopback
    DATABASE_URL=postgres://... python bench/bookable_starts.py   # a scratch database: rows stay
    BENCH_RESERVATIONS=5000 BENCH_BUSY=5000 BENCH_RUNS=21 python bench/bookable_starts.py

The data is built in bulk: a coach in Europe/London with Mon-Fri 09:00-17:00 weekly rules, a
15-minute start interval, a 15-minute buffer after each session, a few one-off windows and
periods of time off; BENCH_RESERVATIONS reservations of other students' and the measured
student's sessions spread over a year either side of now (booked, held and released; most of
them outside the four weeks); BENCH_BUSY external busy intervals spread the same way. A second
coach gets a tenth of that (BENCH_SMALL_*), to show that the query count does not grow with the
data. The clock is frozen (time-machine) at a fixed Monday morning whose four weeks cross the
spring DST change, so the figures never depend on the hour the bench runs at.

Timings are the median of BENCH_RUNS runs (BENCH_NAIVE_RUNS for the naive loop), measured
without query capture; the query counts come from one separate run each under
`django.test.utils.CaptureQueriesContext`. Both versions must return the same starts, and the
selector's query count must be the same at both data sizes, else the exit status is 1.
"""

import os
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["CELERY_BROKER_URL"] = "memory://localhost/"

RESERVATIONS = int(os.environ.get("BENCH_RESERVATIONS", "2000"))
BUSY = int(os.environ.get("BENCH_BUSY", "2000"))
SMALL_RESERVATIONS = int(os.environ.get("BENCH_SMALL_RESERVATIONS", "200"))
SMALL_BUSY = int(os.environ.get("BENCH_SMALL_BUSY", "200"))
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
NAIVE_RUNS = int(os.environ.get("BENCH_NAIVE_RUNS", "5"))

# Monday 16 March 2026, 09:41 UTC: the four weeks ahead cross the change to BST on 29 March.
NOW = datetime(2026, 3, 16, 9, 41, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")
SPAN = timedelta(weeks=4)
DURATION = 60  # minutes, the measured student's session
STEP = 15  # the coach's start interval, minutes
BUFFER_AFTER = 15  # minutes
SESSIONS_PER_PACKAGE = 100
# Where the seeded reservations start, local time (60 minutes each, 90 minutes apart: with the
# 15-minute buffer after, none of a coach's overlap, as the exclusion constraint demands).
RESERVATION_STARTS = (wall(9, 0), wall(10, 30), wall(12, 0), wall(13, 30), wall(15, 0))
SEED = 20260316


def log(message: str) -> None:
    print(f"[bookable_starts] {message}", file=sys.stderr, flush=True)


# --- seeding -----------------------------------------------------------------------------------


def _weekday_positions(first: date, last: date) -> list[datetime]:
    """Every seeded-reservation start (UTC) on the weekdays first..last, London time."""
    positions = []
    day = first
    while day <= last:
        if day.weekday() < 5:
            positions += [
                datetime.combine(day, moment, tzinfo=LONDON).astimezone(UTC)
                for moment in RESERVATION_STARTS
            ]
        day += timedelta(days=1)
    return positions


def seed_coach(label: str, *, size: str, reservations: int, busy: int, student) -> int:
    """One coach with weekly rules, windows, time off, `reservations` reservations (about one in
    ten the measured `student`'s) and `busy` busy times; returns the coach's id."""
    from django.db import transaction

    from accounts.models import CoachProfile, User
    from calendars.models import (
        AvailabilityRule,
        AvailabilityWindow,
        BusyTime,
        ExternalCalendar,
        SlotStatus,
        TimeOff,
        TimeSlot,
    )
    from sessions_app.lifecycle import Status
    from sessions_app.models import Package, Session

    Offering = Package._meta.get_field("offering").related_model  # catalog.Offering
    rng = random.Random(f"{SEED}-{size}")  # the same data on every run
    with transaction.atomic():
        coach = User.objects.create(
            email=f"{label}-coach@bench.test", password="!", timezone="Europe/London"
        )
        CoachProfile.objects.create(
            user=coach,
            start_interval_minutes=STEP,
            buffer_after_minutes=BUFFER_AFTER,
            minimum_notice_hours=12,
            booking_horizon_days=60,
        )
        AvailabilityRule.objects.bulk_create(
            AvailabilityRule(coach=coach, weekday=weekday, start_time=wall(9), end_time=wall(17))
            for weekday in range(5)
        )
        # Saturday mornings now and then, one of them within the four weeks.
        saturdays = [date(2026, 3, 21), date(2026, 4, 4), date(2026, 5, 2), date(2025, 11, 8)]
        AvailabilityWindow.objects.bulk_create(
            AvailabilityWindow(
                coach=coach,
                start=datetime.combine(day, wall(10), tzinfo=LONDON),
                end=datetime.combine(day, wall(13), tzinfo=LONDON),
            )
            for day in saturdays
        )
        away = [
            (date(2026, 3, 27), date(2026, 3, 28)),  # a Friday within the four weeks
            (date(2026, 4, 6), date(2026, 4, 7)),  # Easter Monday
            (date(2025, 8, 4), date(2025, 8, 16)),
            (date(2025, 12, 22), date(2026, 1, 3)),
            (date(2026, 8, 3), date(2026, 8, 15)),
        ]
        TimeOff.objects.bulk_create(
            TimeOff(
                coach=coach,
                start=datetime.combine(first, wall(0), tzinfo=LONDON),
                end=datetime.combine(last, wall(0), tzinfo=LONDON),
                reason="Away",
            )
            for first, last in away
        )

        # Reservations: a random choice among the weekday positions of a year either side.
        today = NOW.date()
        positions = _weekday_positions(today - timedelta(days=365), today + timedelta(days=365))
        starts = sorted(rng.sample(positions, min(reservations, len(positions))))
        others = User.objects.bulk_create(
            User(email=f"{label}-student{i}@bench.test", password="!")
            for i in range(-(-len(starts) // SESSIONS_PER_PACKAGE))
        )
        offering = Offering.objects.create(
            coach=coach,
            title="Bench",
            session_count=SESSIONS_PER_PACKAGE,
            duration_minutes=DURATION,
            price_cents=100 * SESSIONS_PER_PACKAGE,
        )

        def package(holder) -> Package:
            return Package(
                offering=offering,
                coach=coach,
                student=holder,
                title="Bench",
                session_count=SESSIONS_PER_PACKAGE,
                duration_minutes=DURATION,
                price_cents=100 * SESSIONS_PER_PACKAGE,
                currency="USD",
            )

        current: dict[int, tuple[Package, int]] = {}  # holder id -> (package, sessions used)

        def next_number(holder) -> tuple[Package, int]:
            """The holder's package with room left (a new one when full) and the next number."""
            held, used = current.get(holder.pk, (None, SESSIONS_PER_PACKAGE))
            if used == SESSIONS_PER_PACKAGE:
                held, used = package(holder), 0
                held.save()
            current[holder.pk] = (held, used + 1)
            return held, used + 1

        slots, sessions, statuses = [], [], []
        for index, start in enumerate(starts):
            # One in ten is the measured student's (their own reservations count against them).
            holder = student if index % 10 == 0 else others[index // SESSIONS_PER_PACKAGE]
            owner_package, number = next_number(holder)
            roll = rng.random()
            if roll < 0.1:
                slot_status, status = SlotStatus.RELEASED, Status.CANCELED
            elif start > NOW and roll < 0.2:
                slot_status, status = SlotStatus.HELD, Status.REQUESTED
            else:
                slot_status = SlotStatus.BOOKED
                status = Status.CONFIRMED if start > NOW else Status.COMPLETED
            statuses.append(status)
            end = start + timedelta(minutes=DURATION)
            slots.append(
                TimeSlot(
                    coach=coach,
                    student_id=owner_package.student_id,
                    start=start,
                    end=end,
                    reserved_start=start,
                    reserved_end=end + timedelta(minutes=BUFFER_AFTER),
                    status=slot_status,
                    released_at=NOW if slot_status == SlotStatus.RELEASED else None,
                )
            )
            sessions.append(
                Session(
                    package=owner_package,
                    coach=coach,
                    student_id=owner_package.student_id,
                    number=number,
                    status=Status.UNSCHEDULED,  # until it names its reservation, below
                    price_share_cents=100,
                    currency="USD",
                    request_expires_at=(
                        min(NOW + timedelta(hours=48), start)
                        if status == Status.REQUESTED
                        else None
                    ),
                )
            )
        # An active reservation must name its session and a session holding its time its
        # reservation (check constraints, row by row): the sessions go in unscheduled, then
        # their reservations, then the sessions get their time and status.
        sessions = Session.objects.bulk_create(sessions, batch_size=1000)
        for slot, session in zip(slots, sessions, strict=True):
            slot.session = session
        slots = TimeSlot.objects.bulk_create(slots, batch_size=1000)
        for slot, session, status in zip(slots, sessions, statuses, strict=True):
            session.slot, session.status = slot, status
        Session.objects.bulk_update(sessions, ["slot", "status"], batch_size=1000)

        # Busy times: anywhere within a year either side, on the quarter hour, 30 to 120 min.
        calendar = ExternalCalendar.objects.create(
            coach=coach, name="Work", url=f"https://calendar.example.com/{label}.ics"
        )
        quarter_hours = int(timedelta(days=730) / timedelta(minutes=15))
        origin = (NOW - timedelta(days=365)).replace(minute=0, second=0, microsecond=0)
        BusyTime.objects.bulk_create(
            (
                BusyTime(coach=coach, calendar=calendar, start=start, end=start + length)
                for start, length in (
                    (
                        origin + timedelta(minutes=15) * rng.randrange(quarter_hours),
                        timedelta(minutes=15) * rng.randint(2, 8),
                    )
                    for _ in range(busy)
                )
            ),
            batch_size=1000,
        )
    return coach.pk


def seed(label: str) -> dict:
    """Both data sizes, each a coach with their own measured student: {size: (coach, student)}."""
    from django.db import connection

    from accounts.models import User

    ids = {}
    for size, reservations, busy in (
        ("big", RESERVATIONS, BUSY),
        ("small", SMALL_RESERVATIONS, SMALL_BUSY),
    ):
        student = User.objects.create(email=f"{label}-{size}-measured@bench.test", password="!")
        coach = seed_coach(
            f"{label}-{size}", size=size, reservations=reservations, busy=busy, student=student
        )
        ids[size] = (coach, student.pk)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return ids


# --- the two computations ----------------------------------------------------------------------


def optimised(coach, student) -> list[datetime]:
    from calendars.selectors import bookable_starts

    return bookable_starts(
        coach=coach,
        duration_minutes=DURATION,
        start=NOW,
        end=NOW + SPAN,
        student=student,
        now=NOW,
    )


def naive(coach, student) -> list[datetime]:
    """The loop the selector replaces: availability read once, then for every candidate start
    on the grid an exists() query each for time off, a coach's reservation (buffers included),
    a busy time and the student's own reservation, stopping at the first that answers yes."""
    from calendars import intervals
    from calendars.models import (
        ACTIVE_SLOT_STATUSES,
        AvailabilityRule,
        AvailabilityWindow,
        BusyTime,
        TimeOff,
        TimeSlot,
    )
    from calendars.selectors import booking_bounds

    bounds = booking_bounds(coach=coach, now=NOW)
    low, high = (
        max(NOW, bounds.earliest),
        min(NOW + SPAN, bounds.latest + timedelta(microseconds=1)),
    )
    length = timedelta(minutes=DURATION)
    tz = coach.tzinfo
    windows = intervals.rule_occurrences(
        list(AvailabilityRule.objects.filter(coach=coach)),
        low.astimezone(tz).date() - timedelta(days=1),
        high.astimezone(tz).date() + timedelta(days=1),
        tz,
    )
    windows += list(
        AvailabilityWindow.objects.filter(
            coach=coach, end__gt=low, start__lt=high + length
        ).values_list("start", "end")
    )
    available = intervals.merge(windows)
    candidates = set()
    for window_start, window_end in windows:
        moment = window_start
        while moment < window_end:
            if low <= moment < high:
                candidates.add(moment)
            moment += bounds.step
    found = []
    for moment in sorted(candidates):
        finish = moment + length
        if not intervals.contains(available, moment, finish):
            continue
        padded_start, padded_end = moment - bounds.before, finish + bounds.after
        if TimeOff.objects.filter(coach=coach, start__lt=finish, end__gt=moment).exists():
            continue
        if TimeSlot.objects.filter(
            coach=coach,
            status__in=ACTIVE_SLOT_STATUSES,
            reserved_start__lt=padded_end,
            reserved_end__gt=padded_start,
        ).exists():
            continue
        if BusyTime.objects.filter(
            coach=coach, start__lt=padded_end, end__gt=padded_start
        ).exists():
            continue
        if TimeSlot.objects.filter(
            student=student, status__in=ACTIVE_SLOT_STATUSES, start__lt=finish, end__gt=moment
        ).exists():
            continue
        found.append(moment)
    return found


# --- measuring ---------------------------------------------------------------------------------


def _fresh(ids: dict, which: str):
    """The coach and the student as a view would have them: freshly read, nothing cached."""
    from accounts.models import User

    coach, student = ids[which]
    return User.objects.get(pk=coach), User.objects.get(pk=student)


def timed(function, ids: dict, which: str, runs: int) -> tuple[float, list[datetime]]:
    """The median seconds of `runs` runs of function(coach, student), and its result."""
    seconds, result = [], []
    for _ in range(runs):
        coach, student = _fresh(ids, which)
        started = time.perf_counter()
        result = function(coach, student)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def counted(function, ids: dict, which: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    coach, student = _fresh(ids, which)
    connection.queries_log.clear()  # the log keeps at most 9,000; count from empty
    with CaptureQueriesContext(connection) as queries:
        function(coach, student)
    return len(queries.captured_queries)


def within_four_weeks(coach_id: int) -> dict:
    from calendars.models import ACTIVE_SLOT_STATUSES, BusyTime, TimeSlot

    return {
        "reservations": TimeSlot.objects.filter(
            coach_id=coach_id, status__in=ACTIVE_SLOT_STATUSES, end__gt=NOW, start__lt=NOW + SPAN
        ).count(),
        "busy": BusyTime.objects.filter(
            coach_id=coach_id, end__gt=NOW, start__lt=NOW + SPAN
        ).count(),
    }


def bench() -> int:
    import django

    django.setup()
    import time_machine
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    version = connection.cursor().connection.info.server_version
    print(f"PostgreSQL {version // 10000}.{version % 10000}, {os.cpu_count()} CPU(s)")
    call_command("migrate", verbosity=0)
    # DEBUG would log every query of the timed runs too; only the counted runs log theirs.
    with time_machine.travel(NOW, tick=False), override_settings(DEBUG=False):
        started = time.perf_counter()
        ids = seed(f"starts{int(time.time())}-{os.getpid()}")
        log(f"seeded in {time.perf_counter() - started:.1f}s")
        # Warm up connection and caches once before measuring.
        optimised(*_fresh(ids, "big"))

        fast_s, fast = timed(optimised, ids, "big", RUNS)
        slow_s, slow = timed(naive, ids, "big", NAIVE_RUNS)
        fast_q, slow_q = counted(optimised, ids, "big"), counted(naive, ids, "big")
        small_fast_s, small_fast = timed(optimised, ids, "small", RUNS)
        small_slow_s, small_slow = timed(naive, ids, "small", NAIVE_RUNS)
        small_fast_q, small_slow_q = counted(optimised, ids, "small"), counted(naive, ids, "small")
        inside = within_four_weeks(ids["big"][0])

    local_now = NOW.astimezone(LONDON)
    print(
        f"coach's next four weeks from {local_now:%a %d %b %Y %H:%M %Z} (clock frozen), "
        f"{DURATION}-minute sessions on a {STEP}-minute grid, Mon-Fri 09:00-17:00 Europe/London"
    )
    print(f"{'':36}{'data':>13}{'starts':>8}{'median ms':>11}{'queries':>9}")
    rows = [
        ("bookable_starts (selector)", RESERVATIONS, BUSY, fast, fast_s, fast_q),
        ("naive per-candidate query loop", RESERVATIONS, BUSY, slow, slow_s, slow_q),
        ("bookable_starts (selector)", SMALL_RESERVATIONS, SMALL_BUSY, small_fast, small_fast_s,
         small_fast_q),
        ("naive per-candidate query loop", SMALL_RESERVATIONS, SMALL_BUSY, small_slow,
         small_slow_s, small_slow_q),
    ]  # fmt: skip
    for name, reservations, busy, starts, seconds, queries in rows:
        print(
            f"{name:36}{f'{reservations:,}/{busy:,}':>13}{len(starts):>8}"
            f"{seconds * 1000:>11.1f}{queries:>9}"
        )
    print(
        f"data = the coach's reservations/busy times; of the {RESERVATIONS:,}/{BUSY:,}, "
        f"{inside['reservations']} active reservations and {inside['busy']} busy times fall "
        "within the four weeks"
    )
    print(
        f"ratio: the naive loop takes {slow_s / fast_s:.0f}x as long ({slow_q} vs {fast_q} queries)"
    )
    print(
        f"selector query count at {SMALL_RESERVATIONS:,}/{SMALL_BUSY:,}: {small_fast_q}; "
        f"at {RESERVATIONS:,}/{BUSY:,}: {fast_q}"
        + (" (does not grow)" if small_fast_q == fast_q else " (GROWS)")
    )
    failures = []
    if fast != slow:
        failures.append(f"the two versions disagree at {RESERVATIONS:,}/{BUSY:,}")
    if small_fast != small_slow:
        failures.append(f"the two versions disagree at {SMALL_RESERVATIONS:,}/{SMALL_BUSY:,}")
    if small_fast_q != fast_q:
        failures.append("the selector's query count grows with the data")
    if not fast:
        failures.append("no bookable start at all: the data leaves nothing to measure")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def main() -> int:
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        return bench()
    from scripts.pgcluster import PostgresUnavailable, throwaway_postgres

    try:
        cluster = throwaway_postgres(database="coachbook_bench_starts")
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
