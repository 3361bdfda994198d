"""Benchmark: every list and page a coach, a student and an admin open, at 200, 2,000 and
20,000 sessions of one coach, next to a floor view (login + one row), in process on SQLite and
on PostgreSQL.

    python bench/pages.py             # a temporary SQLite file, then a throwaway PostgreSQL
    DATABASE_URL=postgres://... python bench/pages.py   # PostgreSQL pass there: rows stay
    BENCH_PAGE_SIZES=200,2000 BENCH_PAGE_RUNS=9 python bench/pages.py
    BENCH_PAGE_PASSES=sqlite python bench/pages.py      # one pass only (sqlite or postgres)

Each size is its own coach in the same database, seeded in bulk (no services, `bulk_create` in
batches of BATCH rows; the primary keys of sessions and reservations are drawn first, because
each names the other): BENCH_STUDENTS students of whom one, the "heavy" student, holds a tenth
of the sessions; packages of ten sessions with their payments; sessions in a realistic mix
around a frozen clock (time-machine, Monday 16 March 2026 09:41 UTC): 10 % unscheduled
credits, 5 % requests with a live deadline (HELD reservation), 25 % confirmed ahead (BOOKED),
2 % being rescheduled on the student's proposal (the agreed time BOOKED, the proposal's HELD),
50 % completed (BOOKED, in the past) and 8 % canceled by the coach (RELEASED, or credits
canceled before booking; half of those with a time refunded in full). Reservations lie on an
hourly grid, 07:00-19:00 UTC, 50 minutes plus a 10-minute buffer, so none of a coach's or a
student's active ones overlap (PostgreSQL's exclusion constraints check it). Every transition
has its `SessionEvent` (create, book, accept, propose_reschedule, complete, cancel) at a
plausible time, and `CoachDailyTally` has the bookings and the coach's cancellations per day
that those events make. Then ANALYZE.

For every page and size: the number of queries (one request under `CaptureQueriesContext`) and
the median of BENCH_PAGE_RUNS requests through `django.test.Client` (logged in once with
`force_login`, DEBUG=false, 2 warm-up requests first; the sizes take turns request by request,
so a change in the machine's load hits them alike), and the SQL time: the sum of the queries'
`execute` times (`connection.execute_wrapper`; shown for PostgreSQL, where `execute` returns
the whole result; SQLite fetches rows after it). Each pass runs in a child process (the
settings read DATABASE_URL at import) with `bench.settings` (the floor view's URL, a
`collectstatic` into a temporary STATIC_ROOT).

The bench exits 1 if any page answers anything but 200, or if at the largest size a page's time
is more than RATIO_LIMIT (1.2) times its time at the size before: the median on SQLite, the SQL
time on PostgreSQL (the issue's measure); every figure is printed first.
"""

import contextlib
import json
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# Run as `python bench/pages.py`, bench/ is first on sys.path, and bench/http_throughput.py
# et al. must not shadow anything: only the project root stays.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

SIZES = [int(s) for s in os.environ.get("BENCH_PAGE_SIZES", "200,2000,20000").split(",") if s]
RUNS = int(os.environ.get("BENCH_PAGE_RUNS", "15"))
WARMUP = int(os.environ.get("BENCH_PAGE_WARMUP", "2"))
STUDENTS = int(os.environ.get("BENCH_STUDENTS", "100"))
PASSES = [p for p in os.environ.get("BENCH_PAGE_PASSES", "sqlite,postgres").split(",") if p]
RATIO_LIMIT = 1.2
BATCH = 5000

# Monday 16 March 2026, 09:41 UTC (the other benches' instant).
NOW = datetime(2026, 3, 16, 9, 41, tzinfo=UTC)
DURATION = 50  # minutes
BUFFER_AFTER = 10  # minutes: with the duration, one reservation an hour, back to back
GRID_HOURS = range(7, 19)  # UTC start hours: twelve a day
SESSIONS_PER_PACKAGE = 10
SHARE_CENTS = 5000
HEAVY_SHARE = 0.10  # the heavy student's share of a coach's sessions
SEED = 20260316
# The mix of a coach's sessions (per cent; the rest, after rounding, is completed).
MIX = {
    "UNSCHEDULED": 10,
    "REQUESTED": 5,
    "CONFIRMED": 25,
    "RESCHEDULING": 2,
    "CANCELED": 8,
}


def log(message: str) -> None:
    print(f"[pages] {message}", file=sys.stderr, flush=True)


def bench_env(**extra) -> dict:
    """The environment of a child that runs the app with DEBUG=false over plain HTTP."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DJANGO_READ_DOT_ENV": "0",
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SITE_URL": "http://127.0.0.1:8000",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "SECURE_HSTS_SECONDS": "0",
        "CELERY_BROKER_URL": "memory://localhost/",
        "PAYMENT_GATEWAY": "manual",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    env.update(extra)
    return env


def collectstatic(static_root: str) -> None:
    """DEBUG=false serves static files through their manifest: build one once, in a temp dir."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=bench_env(BENCH_STATIC_ROOT=static_root, DATABASE_URL="sqlite:///:memory:"),
        check=True,
    )
    log(f"collectstatic in {time.perf_counter() - started:.1f}s")


def machine(pg_version: str | None = None) -> str:
    """Platform, CPUs, Python, Django, SQLite and PostgreSQL versions, in one line."""
    import sqlite3

    import django

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.1f} GB RAM"
    if pg_version is None:
        from scripts.pgcluster import find_bindir

        bindir = find_bindir()
        if bindir is not None and (bindir / "postgres").exists():
            out = subprocess.run(
                [str(bindir / "postgres"), "--version"], capture_output=True, text=True
            ).stdout
            pg_version = out.strip().rsplit(" ", 1)[-1]
    return (
        f"machine: {platform.platform()}, {os.cpu_count()} CPU(s)"
        f"{f' ({model})' if model else ''}{memory}; Python {platform.python_version()}, "
        f"Django {django.get_version()}, SQLite {sqlite3.sqlite_version}, "
        f"PostgreSQL {pg_version or 'not found'}"
    )


# --- seeding -----------------------------------------------------------------------------------


@contextlib.contextmanager
def own_timestamps():
    """Let the seed write created_at/updated_at/purchased_at itself (auto_now(_add) off)."""
    from calendars.models import TimeSlot
    from refunds.models import Payment, Refund
    from sessions_app.models import Package, RescheduleProposal, Session

    fields = [
        field
        for model in (Package, Session, TimeSlot, Payment, Refund, RescheduleProposal)
        for field in model._meta.concrete_fields
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    ]
    saved = [(field, field.auto_now, field.auto_now_add) for field in fields]
    for field in fields:
        field.auto_now = field.auto_now_add = False
    try:
        yield
    finally:
        for field, auto_now, auto_now_add in saved:
            field.auto_now, field.auto_now_add = auto_now, auto_now_add


def fresh_ids(model, count: int) -> list[int]:
    """`count` unused primary keys of `model`: from its sequence on PostgreSQL, after the
    largest on SQLite (an explicit id moves SQLite's AUTOINCREMENT counter past it)."""
    from django.db import connection

    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, count],
            )
            return [row[0] for row in cursor.fetchall()]
        cursor.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')
        first = cursor.fetchone()[0] + 1
        return list(range(first, first + count))


def _grid(count: int, *, future: bool) -> list[datetime]:
    """`count` grid starts: the first ones from an hour after NOW on, or the last ones that
    end at least ten minutes before NOW, going back."""
    starts = []
    day = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    step = timedelta(days=1 if future else -1)
    hours = list(GRID_HOURS) if future else list(reversed(GRID_HOURS))
    while len(starts) < count:
        for hour in hours:
            start = day.replace(hour=hour)
            end = start + timedelta(minutes=DURATION)
            if (future and start >= NOW + timedelta(hours=1)) or (
                not future and end <= NOW - timedelta(minutes=10)
            ):
                starts.append(start)
                if len(starts) == count:
                    break
        day += step
    return starts


def _between(rng: random.Random, low: datetime, high: datetime) -> datetime:
    """A random instant in [low, high] (low when high is not after it), to the second."""
    if high <= low:
        return low
    return low + timedelta(seconds=rng.randint(0, int((high - low).total_seconds())))


def seed_coach(label: str, size: int) -> dict:
    """One coach with `size` sessions and everything they hang on (see the module's doc);
    returns the ids the pages need."""
    from django.db import transaction

    from accounts.models import CoachProfile, User
    from calendars.models import SlotStatus, TimeSlot
    from catalog.models import Offering
    from refunds.models import Payment, PaymentState, Refund, RefundKind, RefundState
    from sessions_app.lifecycle import Action, Status
    from sessions_app.models import (
        CoachDailyTally,
        Package,
        ProposalStatus,
        RescheduleProposal,
        Session,
        SessionEvent,
    )

    rng = random.Random(f"{SEED}-{size}")
    hour = timedelta(hours=1)
    length, buffer = timedelta(minutes=DURATION), timedelta(minutes=BUFFER_AFTER)

    # The mix, shuffled; canceled ones: three in four had a time (half of those before NOW).
    counts = {status: size * share // 100 for status, share in MIX.items()}
    counts["COMPLETED"] = size - sum(counts.values())
    statuses = [status for status, n in counts.items() for _ in range(n)]
    rng.shuffle(statuses)
    plans = []  # one dict per session
    for status in statuses:
        plan = {"status": status, "start": None, "proposal_start": None}
        if status == "CANCELED":
            kind = rng.random()
            plan["canceled_from"] = (
                "UNSCHEDULED" if kind < 0.25 else "CONFIRMED_PAST" if kind < 0.625 else "CONFIRMED"
            )
            plan["refunded"] = plan["canceled_from"] != "UNSCHEDULED" and rng.random() < 0.5
        plans.append(plan)

    # Times on the grid: the future ones in random order among the active sessions ahead.
    ahead = [p for p in plans if p["status"] in ("REQUESTED", "CONFIRMED", "RESCHEDULING")]
    ahead += [p for p in plans if p.get("canceled_from") == "CONFIRMED"]
    behind = [p for p in plans if p["status"] == "COMPLETED"]
    behind += [p for p in plans if p.get("canceled_from") == "CONFIRMED_PAST"]
    proposals = [p for p in plans if p["status"] == "RESCHEDULING"]
    future = _grid(len(ahead) + len(proposals), future=True)
    rng.shuffle(future)
    for plan, start in zip(ahead, future[: len(ahead)], strict=True):
        plan["start"] = start
    for plan, start in zip(proposals, future[len(ahead) :], strict=True):
        plan["proposal_start"] = start
    for plan, start in zip(behind, _grid(len(behind), future=False), strict=True):
        plan["start"] = start

    with transaction.atomic(), own_timestamps():
        coach = User.objects.create(
            email=f"{label}-coach@bench.test",
            password="!",
            display_name=f"Coach {size:,}",
            timezone="Europe/London",
        )
        CoachProfile.objects.create(
            user=coach,
            headline="Bench coach",
            buffer_after_minutes=BUFFER_AFTER,
            start_interval_minutes=60,
        )
        students = User.objects.bulk_create(
            [
                User(
                    email=f"{label}-student{i:03}@bench.test",
                    password="!",
                    display_name=f"Student {i:03} of {size:,}",
                    timezone="Europe/London",
                )
                for i in range(STUDENTS)
            ],
            batch_size=BATCH,
        )
        heavy, others = students[0], students[1:] or students
        offerings = Offering.objects.bulk_create(
            Offering(
                coach=coach,
                title=title,
                session_count=SESSIONS_PER_PACKAGE,
                duration_minutes=DURATION,
                price_cents=SHARE_CENTS * SESSIONS_PER_PACKAGE,
                currency="USD",
            )
            for title in ("Ten lessons", "Ten lessons (evenings)")
        )

        # Who holds what: the heavy student a tenth, the others at random; each student's
        # sessions in time order (credits last) make their packages of ten.
        by_student: dict[int, list[dict]] = {}
        for plan in plans:
            holder = heavy if rng.random() < HEAVY_SHARE else rng.choice(others)
            plan["student"] = holder.pk
            by_student.setdefault(holder.pk, []).append(plan)
        far = NOW + timedelta(days=36500)
        for plan in plans:  # when it was booked (and accepted), before its time and NOW
            start = plan["start"]
            if start is None:
                continue
            if plan["status"] == "REQUESTED":
                plan["book_at"] = NOW - timedelta(seconds=rng.randint(60, 40 * 3600))
            else:
                plan["book_at"] = min(
                    start - timedelta(seconds=rng.randint(86400, 14 * 86400)),
                    NOW - timedelta(seconds=rng.randint(3600, 30 * 86400)),
                )
                plan["accept_at"] = min(
                    plan["book_at"] + timedelta(seconds=rng.randint(600, 86400)),
                    NOW - timedelta(minutes=5),
                    start - hour,
                )
        package_rows, package_plans = [], []
        for student_id, owned in by_student.items():
            owned.sort(key=lambda p: (p["start"] or far, p["status"]))
            for first in range(0, len(owned), SESSIONS_PER_PACKAGE):
                chunk = owned[first : first + SESSIONS_PER_PACKAGE]
                booked = [p["book_at"] for p in chunk if "book_at" in p]
                purchased = (
                    min(booked) - timedelta(seconds=rng.randint(3600, 3 * 86400))
                    if booked
                    else NOW - timedelta(seconds=rng.randint(3600, 30 * 86400))
                )
                package_rows.append(
                    Package(
                        offering=offerings[len(package_rows) % len(offerings)],
                        coach=coach,
                        student_id=student_id,
                        title="Ten lessons",
                        session_count=len(chunk),
                        duration_minutes=DURATION,
                        price_cents=SHARE_CENTS * len(chunk),
                        currency="USD",
                        purchased_at=purchased,
                    )
                )
                package_plans.append(chunk)
        packages = Package.objects.bulk_create(package_rows, batch_size=BATCH)
        Payment.objects.bulk_create(
            (
                Payment(
                    package=package,
                    amount_cents=package.price_cents,
                    currency="USD",
                    gateway="manual",
                    state=PaymentState.DONE,
                    idempotency_key=f"bench-{label}-payment-{package.pk}",
                    created_at=package.purchased_at,
                    paid_at=package.purchased_at,
                )
                for package in packages
            ),
            batch_size=BATCH,
        )
        for package, chunk in zip(packages, package_plans, strict=True):
            for number, plan in enumerate(chunk, start=1):
                plan["package"], plan["number"] = package, number
                plan["created_at"] = package.purchased_at

        # Ids first: a session names its reservation and a reservation its session.
        session_ids = fresh_ids(Session, len(plans))
        slot_count = sum(1 for p in plans if p["start"]) + len(proposals)
        slot_ids = iter(fresh_ids(TimeSlot, slot_count))
        sessions, slots = [], []
        for plan, session_id in zip(plans, session_ids, strict=True):
            plan["id"], status, start = session_id, plan["status"], plan["start"]
            created = plan["created_at"]
            plan["events"] = events = [
                (
                    Action.CREATE,
                    "",
                    Status.UNSCHEDULED,
                    None,
                    created,
                    {"package_id": plan["package"].pk, "price_share_cents": SHARE_CENTS},
                )
            ]
            slot_id = None
            if start is not None:
                slot_id = next(slot_ids)
            plan["slot_id"] = slot_id
            if start is not None:
                details = {
                    "slot_id": slot_id,
                    "start": start.isoformat(),
                    "end": (start + length).isoformat(),
                }
                events.append(
                    (Action.BOOK, Status.UNSCHEDULED, Status.REQUESTED, plan["student"],
                     plan["book_at"], details)
                )  # fmt: skip
                if status != "REQUESTED":
                    events.append(
                        (Action.ACCEPT, Status.REQUESTED, Status.CONFIRMED, coach.pk,
                         plan["accept_at"], details)
                    )  # fmt: skip
            last = events[-1][4]
            expires = None
            if status == "REQUESTED":
                expires = min(plan["book_at"] + timedelta(hours=48), start)
            elif status == "RESCHEDULING":
                plan["proposal_slot"] = next(slot_ids)
                plan["propose_at"] = max(
                    last + timedelta(minutes=1),
                    NOW - timedelta(seconds=rng.randint(600, 20 * 3600)),
                )
                plan["proposal_expires"] = min(
                    plan["propose_at"] + timedelta(hours=48), plan["proposal_start"], start
                )
            elif status == "COMPLETED":
                done = start + length + timedelta(minutes=rng.randint(1, 5))
                events.append((Action.COMPLETE, Status.CONFIRMED, Status.COMPLETED, None, done, {}))
            elif status == "CANCELED":
                if start is None:
                    cancel_at = _between(rng, created + hour, NOW - timedelta(minutes=5))
                    source = Status.UNSCHEDULED
                else:
                    cancel_at = _between(rng, last + timedelta(minutes=1), min(start, NOW) - hour)
                    source = Status.CONFIRMED
                plan["cancel_at"], plan["cancel_from"] = cancel_at, source
            if start is not None:
                slot_status = {
                    "REQUESTED": SlotStatus.HELD,
                    "CANCELED": SlotStatus.RELEASED,
                }.get(status, SlotStatus.BOOKED)
                slots.append(
                    TimeSlot(
                        id=slot_id,
                        coach=coach,
                        student_id=plan["student"],
                        session_id=session_id,
                        start=start,
                        end=start + length,
                        reserved_start=start,
                        reserved_end=start + length + buffer,
                        status=slot_status,
                        created_at=plan["book_at"],
                        released_at=plan.get("cancel_at")
                        if slot_status == SlotStatus.RELEASED
                        else None,
                    )
                )
            if status == "RESCHEDULING":
                proposed = plan["proposal_start"]
                slots.append(
                    TimeSlot(
                        id=plan["proposal_slot"],
                        coach=coach,
                        student_id=plan["student"],
                        session_id=session_id,
                        start=proposed,
                        end=proposed + length,
                        reserved_start=proposed,
                        reserved_end=proposed + length + buffer,
                        status=SlotStatus.HELD,
                        created_at=plan["propose_at"],
                    )
                )
            changed = max(
                [events[-1][4], plan.get("propose_at") or created, plan.get("cancel_at") or created]
            )
            sessions.append(
                Session(
                    id=session_id,
                    package=plan["package"],
                    coach=coach,
                    student_id=plan["student"],
                    number=plan["number"],
                    status=status,
                    slot_id=slot_id,
                    starts_at=start,
                    ends_at=start + length if start else None,
                    price_share_cents=SHARE_CENTS,
                    currency="USD",
                    request_expires_at=expires,
                    sequence=(
                        {"CONFIRMED": 1, "RESCHEDULING": 1, "COMPLETED": 1}.get(status, 0)
                        + (2 if status == "CANCELED" and start else 0)
                    ),
                    created_at=created,
                    updated_at=changed,
                )
            )
        Session.objects.bulk_create(sessions, batch_size=BATCH)
        TimeSlot.objects.bulk_create(slots, batch_size=BATCH)

        rescheduling = [p for p in plans if p["status"] == "RESCHEDULING"]
        made = RescheduleProposal.objects.bulk_create(
            (
                RescheduleProposal(
                    session_id=plan["id"],
                    slot_id=plan["proposal_slot"],
                    proposed_by_id=plan["student"],
                    status=ProposalStatus.PENDING,
                    expires_at=plan["proposal_expires"],
                    created_at=plan["propose_at"],
                )
                for plan in rescheduling
            ),
            batch_size=BATCH,
        )
        for plan, proposal in zip(rescheduling, made, strict=True):
            proposed = plan["proposal_start"]
            plan["events"].append(
                (Action.PROPOSE_RESCHEDULE, Status.CONFIRMED, Status.RESCHEDULING,
                 plan["student"], plan["propose_at"],
                 {"proposal_id": proposal.pk, "agreed_slot_id": plan["slot_id"],
                  "slot_id": plan["proposal_slot"], "start": proposed.isoformat(),
                  "end": (proposed + length).isoformat()})
            )  # fmt: skip

        canceled = [p for p in plans if p["status"] == "CANCELED"]
        refunded = [p for p in canceled if p["refunded"]]
        payments = dict(
            Payment.objects.filter(package__coach=coach).values_list("package_id", "pk")
        )
        refunds = Refund.objects.bulk_create(
            (
                Refund(
                    session_id=plan["id"],
                    payment_id=payments[plan["package"].pk],
                    amount_cents=SHARE_CENTS,
                    currency="USD",
                    kind=RefundKind.FULL,
                    state=RefundState.DONE,
                    gateway="manual",
                    issued_by=coach,
                    idempotency_key=f"session-{plan['id']}-cancel",
                    created_at=plan["cancel_at"],
                    settled_at=plan["cancel_at"],
                )
                for plan in refunded
            ),
            batch_size=BATCH,
        )
        refund_of = {plan["id"]: refund for plan, refund in zip(refunded, refunds, strict=True)}
        for plan in canceled:
            refund = refund_of.get(plan["id"])
            details = {"refund": "full" if refund else "none", "reason": ""}
            if refund:
                details.update(refund_id=refund.pk, refund_amount_cents=refund.amount_cents)
            plan["events"].append(
                (Action.CANCEL, plan["cancel_from"], Status.CANCELED, coach.pk,
                 plan["cancel_at"], details)
            )  # fmt: skip

        SessionEvent.objects.bulk_create(
            (
                SessionEvent(
                    session_id=plan["id"],
                    actor_id=actor,
                    action=action,
                    from_status=source,
                    to_status=target,
                    details=details,
                    created_at=at,
                )
                for plan in plans
                for action, source, target, actor, at, details in plan["events"]
            ),
            batch_size=BATCH,
        )

        # The daily tallies those events make: bookings, and the coach's cancellations of a
        # booked session (from Requested, Confirmed or Rescheduling).
        tallies: dict = {}
        for plan in plans:
            for action, source, _target, actor, at, _details in plan["events"]:
                key = at.astimezone(UTC).date()
                if action == Action.BOOK:
                    tallies.setdefault(key, [0, 0])[0] += 1
                elif action == Action.CANCEL and actor == coach.pk and source != "UNSCHEDULED":
                    tallies.setdefault(key, [0, 0])[1] += 1
        CoachDailyTally.objects.bulk_create(
            (
                CoachDailyTally(coach=coach, day=key, booked=booked, coach_canceled=dropped)
                for key, (booked, dropped) in sorted(tallies.items())
            ),
            batch_size=BATCH,
        )

    upcoming = sorted((p for p in plans if p["status"] == "CONFIRMED"), key=lambda p: p["start"])
    return {
        "size": size,
        "coach": coach.pk,
        "heavy": heavy.pk,
        "heavy_sessions": len(by_student[heavy.pk]),
        "detail": upcoming[0]["id"] if upcoming else plans[0]["id"],
        "events": sum(len(p["events"]) for p in plans),
        "slots": len(slots),
    }


def seed(label: str, sizes=None) -> dict:
    """Every size's coach, an admin, then ANALYZE: {"sizes": {size: ids}, "admin": id}."""
    from django.db import connection

    from accounts.models import User

    ids = {}
    for size in sizes or SIZES:
        started = time.perf_counter()
        ids[size] = seed_coach(f"{label}-{size}", size)
        log(
            f"seeded {size:,} sessions ({ids[size]['slots']:,} reservations, "
            f"{ids[size]['events']:,} events) in {time.perf_counter() - started:.1f}s"
        )
    admin = User.objects.create_superuser(email=f"{label}-admin@bench.test", password=None)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"sizes": ids, "admin": admin.pk}


# --- measuring (in the child) ------------------------------------------------------------------


def pages() -> list[tuple[str, str, callable]]:
    """(name, who: coach|heavy|admin, path for a size's ids) of every page measured."""
    from django.urls import reverse

    return [
        ("floor (login + 1 row)", "coach", lambda i: "/bench/floor/"),
        ("Tasks", "coach", lambda i: reverse("sessions:tasks")),
        ("Upcoming", "coach", lambda i: reverse("sessions:upcoming")),
        ("Completed", "coach", lambda i: reverse("sessions:completed")),
        ("Canceled", "coach", lambda i: reverse("sessions:canceled")),
        ("Students", "coach", lambda i: reverse("sessions:students")),
        ("Student (heavy)", "coach",
         lambda i: reverse("sessions:student_detail", args=[i["heavy"]])),
        ("My sessions (heavy)", "heavy", lambda i: reverse("sessions:my_sessions")),
        ("Session detail", "coach", lambda i: reverse("sessions:detail", args=[i["detail"]])),
        ("Admin sessions", "admin",
         lambda i: reverse("admin:sessions_app_session_changelist") + f"?coach={i['coach']}"),
    ]  # fmt: skip


class SqlTimer:
    """Sums the time of every `execute` on the default connection while installed."""

    def __init__(self):
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started


def measure(ids: dict) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User

    clients = {}
    admin = Client()
    admin.force_login(User.objects.get(pk=ids["admin"]))
    for size, found in ids["sizes"].items():
        coach, heavy = Client(), Client()
        coach.force_login(User.objects.get(pk=found["coach"]))
        heavy.force_login(User.objects.get(pk=found["heavy"]))
        clients[size] = {"coach": coach, "heavy": heavy, "admin": admin}

    results = []
    timer = SqlTimer()
    for name, who, path_of in pages():
        paths = {size: path_of(found) for size, found in ids["sizes"].items()}
        row = {"page": name, "sizes": {}}
        for size in ids["sizes"]:
            response = clients[size][who].get(paths[size])
            row["sizes"][size] = {
                "status": response.status_code,
                "kb": len(response.content) / 1024,
                "ms": [],
                "sql_ms": [],
            }
            for _ in range(WARMUP - 1):
                clients[size][who].get(paths[size])
        with connection.execute_wrapper(timer):
            for _ in range(RUNS):
                for size in ids["sizes"]:  # the sizes take turns
                    timer.seconds = 0.0
                    started = time.perf_counter()
                    clients[size][who].get(paths[size])
                    elapsed = time.perf_counter() - started
                    row["sizes"][size]["ms"].append(elapsed * 1000)
                    row["sizes"][size]["sql_ms"].append(timer.seconds * 1000)
        for size in ids["sizes"]:
            connection.queries_log.clear()
            with CaptureQueriesContext(connection) as queries:
                clients[size][who].get(paths[size])
            figures = row["sizes"][size]
            figures["queries"] = len(queries.captured_queries)
            figures["median_ms"] = statistics.median(figures.pop("ms"))
            figures["sql_median_ms"] = statistics.median(figures.pop("sql_ms"))
        log(
            f"{name}: "
            + ", ".join(
                f"{size:,}: {f['median_ms']:.1f} ms/{f['queries']}q"
                for size, f in row["sizes"].items()
            )
        )
        results.append(row)
    return results


def child(which: str, out: str) -> int:
    import django

    django.setup()
    import time_machine
    from django.core.management import call_command
    from django.db import connection

    with time_machine.travel(NOW, tick=False):
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        log(f"{which}: migrated in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        ids = seed(f"pages{int(time.time())}-{os.getpid()}")
        seeded = time.perf_counter() - started
        results = measure(ids)
    version = None
    if connection.vendor == "postgresql":
        number = connection.cursor().connection.info.server_version
        version = f"{number // 10000}.{number % 10000}"
    Path(out).write_text(
        json.dumps(
            {
                "pass": which,
                "seconds_seeding": seeded,
                "version": version,
                "ids": {str(k): v for k, v in ids["sizes"].items()},
                "results": [
                    {"page": r["page"], "sizes": {str(k): v for k, v in r["sizes"].items()}}
                    for r in results
                ],
            }
        )
    )
    return 0


# --- the parent: both passes, one table --------------------------------------------------------


def run_pass(which: str, database_url: str, static_root: str) -> dict | None:
    fd, out = tempfile.mkstemp(prefix=f"bench-pages-{which}-", suffix=".json")
    os.close(fd)
    try:
        code = subprocess.call(
            [sys.executable, str(Path(__file__).resolve()), "--child", which, out],
            cwd=ROOT,
            env=bench_env(DATABASE_URL=database_url, BENCH_STATIC_ROOT=static_root),
        )
        if code != 0:
            print(f"FAILED: the {which} pass exited {code}")
            return None
        return json.loads(Path(out).read_text())
    finally:
        Path(out).unlink(missing_ok=True)


def report(passes: list[dict]) -> list[str]:
    """Print the table; return the failures."""
    failures = []
    sizes = SIZES
    big, before = (sizes[-1], sizes[-2]) if len(sizes) > 1 else (sizes[-1], sizes[-1])
    for run in passes:
        ids = run["ids"]
        print(
            f"{run['pass']}: seeded {sum(int(k) for k in ids):,} sessions in "
            f"{run['seconds_seeding']:.1f}s; the heavy student holds "
            + ", ".join(f"{v['heavy_sessions']:,} of {int(k):,}" for k, v in ids.items())
        )
    header = f"{'page':22}{'sessions':>9}"
    for run in passes:
        tag = "SQLite" if run["pass"] == "sqlite" else "PostgreSQL"
        header += f" | {tag + ' q':>13}{'ms':>8}{'xfloor':>7}" + (
            f"{'SQL ms':>8}" if run["pass"] == "postgres" else ""
        )
    header += f"{'KB':>7}"
    print(header)
    by_page = [
        [(run, row) for run in passes for row in run["results"] if row["page"] == page["page"]]
        for page in passes[0]["results"]
    ]
    for rows in by_page:
        name = rows[0][1]["page"]
        for size in sizes:
            line = f"{name:22}{size:>9,}"
            for run, row in rows:
                figures = row["sizes"][str(size)]
                floor = next(r for r in run["results"] if r["page"].startswith("floor"))
                floor_ms = floor["sizes"][str(size)]["median_ms"]
                status = "" if figures["status"] == 200 else f" HTTP {figures['status']}"
                line += (
                    f" | {figures['queries']:>13}{figures['median_ms']:>8.1f}"
                    f"{figures['median_ms'] / floor_ms:>7.1f}"
                    + (f"{figures['sql_median_ms']:>8.1f}" if run["pass"] == "postgres" else "")
                    + status
                )
                if figures["status"] != 200:
                    failures.append(f"{name} at {size:,} ({run['pass']}): HTTP {figures['status']}")
            line += f"{rows[0][1]['sizes'][str(size)]['kb']:>7.0f}"
            print(line)
        if big != before:
            ratios = []
            for run, row in rows:
                at_big, at_before = row["sizes"][str(big)], row["sizes"][str(before)]
                key = "median_ms" if run["pass"] == "sqlite" else "sql_median_ms"
                ratio = at_big[key] / at_before[key] if at_before[key] else 0.0
                total = at_big["median_ms"] / at_before["median_ms"]
                what = "time" if run["pass"] == "sqlite" else "SQL time"
                ratios.append(
                    f"{run['pass']} {what} {ratio:.2f}x"
                    + (f" (total {total:.2f}x)" if run["pass"] == "postgres" else "")
                    + (f", queries {at_before['queries']}->{at_big['queries']}")
                )
                if ratio > RATIO_LIMIT and not name.startswith("floor"):
                    failures.append(
                        f"{name}: {run['pass']} {what} at {big:,} is {ratio:.2f}x that at "
                        f"{before:,} (limit {RATIO_LIMIT}x)"
                    )
            print(f"{'':22}{f'{big:,}/{before:,}':>9}   " + "; ".join(ratios))
    return failures


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2], sys.argv[3])
    print(machine())
    print(
        f"one coach per size ({', '.join(f'{s:,}' for s in SIZES)} sessions), {STUDENTS} "
        f"students each; clock frozen at {NOW:%a %d %b %Y %H:%M} UTC; median of {RUNS} "
        f"requests after {WARMUP} warm-up, in process (django.test.Client, DEBUG=false)"
    )
    sys.stdout.flush()
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as scratch:
        static_root = str(Path(scratch) / "static")
        collectstatic(static_root)
        if "sqlite" in PASSES:
            url = f"sqlite:///{Path(scratch) / 'pages.sqlite3'}"
            results.append(run_pass("sqlite", url, static_root))
        if "postgres" in PASSES:
            if os.environ.get("DATABASE_URL", "").startswith("postgres"):
                results.append(run_pass("postgres", os.environ["DATABASE_URL"], static_root))
            else:
                from scripts.pgcluster import PostgresUnavailable, throwaway_postgres

                try:
                    with throwaway_postgres(database="coachbook_bench_pages") as url:
                        results.append(run_pass("postgres", url, static_root))
                except PostgresUnavailable as exc:
                    print(f"PostgreSQL pass skipped: {exc}")
                    if os.environ.get("COACHBOOK_REQUIRE_ALL") == "1":
                        results.append(None)
    failures = ["a pass did not finish"] if None in results else []
    done = [r for r in results if r]
    if done:
        failures += report(done)
    print(
        f"ratio = time at {SIZES[-1]:,} / time at {SIZES[-2] if len(SIZES) > 1 else SIZES[-1]:,}"
        f" sessions (limit {RATIO_LIMIT}x: SQLite's median, PostgreSQL's SQL time); "
        f"xfloor = median / the floor view's median at that size; "
        f"{time.perf_counter() - started:.0f}s in all"
    )
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
