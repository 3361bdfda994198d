"""Benchmark: expire 100,000 stale booking requests on PostgreSQL with the set-based, chunked
sweep (`sessions_app.services.sessions_expire_stale`), next to a naive per-object loop over
5,000 (lock, save, event, slot save, one notification per object) for the per-item ratio.

    python bench/expire_stale.py                 # starts a throwaway PostgreSQL on loopback
    DATABASE_URL=postgres://... python bench/expire_stale.py   # a scratch database: rows stay
    BENCH_SWEEP_N=20000 BENCH_NAIVE_N=2000 python bench/expire_stale.py

Each measured run happens in a fresh child process whose peak RSS (VmHWM, reset after Django
set-up) is its own, not the seeding's; it is printed next to that baseline.
Both runs schedule their notifications on commit as in production; the broker is Celery's
in-memory transport, so the figures are the database work, not a broker's latency. The
throwaway cluster runs with fsync off, which flatters the naive loop's 5,000 commits.
"""

import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["CELERY_BROKER_URL"] = "memory://localhost/"

SWEEP_N = int(os.environ.get("BENCH_SWEEP_N", "100000"))
NAIVE_N = int(os.environ.get("BENCH_NAIVE_N", "5000"))
SESSIONS_PER_COACH = 1000
BATCH = 5000


def _status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> None:
    """Start the peak (VmHWM) afresh from here: writing 5 to clear_refs resets it (Linux)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def seed(count: int, label: str) -> None:
    """`count` REQUESTED sessions past their window, each holding its own future HELD slot."""
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import CoachProfile, User
    from calendars.models import SlotStatus, TimeSlot
    from sessions_app.lifecycle import Status
    from sessions_app.models import Offering, Package, Session

    now = timezone.now()
    first_start = (now + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    coaches_needed = -(-count // SESSIONS_PER_COACH)
    with transaction.atomic():
        coaches = User.objects.bulk_create(
            User(email=f"{label}-coach{i}@bench.test", password="!") for i in range(coaches_needed)
        )
        CoachProfile.objects.bulk_create(CoachProfile(user=coach) for coach in coaches)
        offerings = Offering.objects.bulk_create(
            Offering(
                coach=coach,
                title="Bench",
                session_count=100,
                duration_minutes=60,
                price_cents=10000,
            )
            for coach in coaches
        )
        packages_needed = -(-count // 100)
        students = User.objects.bulk_create(
            (
                User(email=f"{label}-student{i}@bench.test", password="!")
                for i in range(packages_needed)
            ),
            batch_size=BATCH,
        )
        packages = Package.objects.bulk_create(
            (
                Package(
                    offering=offerings[i * 100 // SESSIONS_PER_COACH],
                    coach=coaches[i * 100 // SESSIONS_PER_COACH],
                    student=student,
                    title="Bench",
                    session_count=100,
                    duration_minutes=60,
                    price_cents=10000,
                    currency="USD",
                )
                for i, student in enumerate(students)
            ),
            batch_size=BATCH,
        )
        for start in range(0, count, BATCH):
            indexes = range(start, min(start + BATCH, count))
            slots = TimeSlot.objects.bulk_create(
                TimeSlot(
                    coach=coaches[i // SESSIONS_PER_COACH],
                    start=first_start + timedelta(hours=i % SESSIONS_PER_COACH),
                    end=first_start + timedelta(hours=i % SESSIONS_PER_COACH, minutes=60),
                    status=SlotStatus.HELD,
                )
                for i in indexes
            )
            Session.objects.bulk_create(
                Session(
                    package=packages[i // 100],
                    coach=coaches[i // SESSIONS_PER_COACH],
                    student=students[i // 100],
                    number=i % 100 + 1,
                    status=Status.REQUESTED,
                    slot=slot,
                    price_share_cents=100,
                    currency="USD",
                    request_expires_at=now - timedelta(minutes=5),
                )
                for i, slot in zip(indexes, slots, strict=True)
            )


def naive_expire(now) -> int:
    """The loop the sweep replaces: one transaction, lock and save per stale request."""
    from django.db import transaction

    from calendars.models import SlotStatus, TimeSlot
    from sessions_app.lifecycle import Action, Status
    from sessions_app.models import Session, SessionEvent
    from sessions_app.tasks import notify_event

    ids = list(
        Session.objects.filter(status=Status.REQUESTED, request_expires_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    expired = 0
    for pk in ids:
        with transaction.atomic():
            session = Session.objects.select_for_update().get(pk=pk)
            if session.status != Status.REQUESTED:
                continue
            slot_id = session.slot_id
            session.status, session.slot, session.request_expires_at = (
                Status.UNSCHEDULED,
                None,
                None,
            )
            session.save(update_fields=["status", "slot", "request_expires_at", "updated_at"])
            event = SessionEvent.objects.create(
                session=session,
                action=Action.EXPIRE,
                from_status=Status.REQUESTED,
                to_status=Status.UNSCHEDULED,
                details={"slot_id": slot_id},
                created_at=now,
            )
            slot = TimeSlot.objects.select_for_update().get(pk=slot_id)
            if slot.status in (SlotStatus.HELD, SlotStatus.BOOKED) and slot.start > now:
                slot.status = SlotStatus.OPEN
                slot.save(update_fields=["status"])
            transaction.on_commit(lambda event_id=event.pk: notify_event.delay(event_id=event_id))
            expired += 1
    return expired


def measure(mode: str) -> dict:
    """Child process: run one expiry and report its time and memory."""
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from sessions_app.services import sessions_expire_stale

    connection.ensure_connection()
    baseline = _status_mb("VmRSS")
    _reset_peak_rss()
    now = timezone.now()
    started = time.perf_counter()
    count = sessions_expire_stale(now=now) if mode == "sweep" else naive_expire(now)
    seconds = time.perf_counter() - started
    return {
        "count": count,
        "seconds": seconds,
        "peak_mb": _status_mb("VmHWM"),
        "baseline_mb": baseline,
    }


def check(count: int, label: str) -> None:
    from calendars.models import SlotStatus, TimeSlot
    from sessions_app.lifecycle import Action, Status
    from sessions_app.models import Session, SessionEvent

    sessions = Session.objects.filter(coach__email__startswith=f"{label}-")
    assert sessions.filter(status=Status.UNSCHEDULED, slot=None).count() == count
    assert SessionEvent.objects.filter(action=Action.EXPIRE, session__in=sessions).count() == count
    slots = TimeSlot.objects.filter(coach__email__startswith=f"{label}-")
    assert slots.filter(status=SlotStatus.OPEN).count() == count


def run_child(mode: str) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--measure", mode],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def bench() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    version = connection.cursor().connection.info.server_version
    print(f"PostgreSQL {version // 10000}.{version % 10000}, "
          f"{os.cpu_count()} CPU(s)")  # fmt: skip
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    run = f"{int(time.time())}"
    seed(SWEEP_N, f"sweep{run}")
    print(f"seeded {SWEEP_N:,} stale requests in {time.perf_counter() - started:.1f}s")
    connection.close()
    sweep = run_child("sweep")
    check(SWEEP_N, f"sweep{run}")
    seed(NAIVE_N, f"naive{run}")
    connection.close()
    naive = run_child("naive")
    check(NAIVE_N, f"naive{run}")

    rows = [("set-based sweep", sweep), ("naive per-object loop", naive)]
    print(
        f"{'':24}{'items':>9}{'seconds':>10}{'ms/item':>10}{'peak RSS':>11}"
        f"{'(+ over baseline)':>20}"
    )
    for name, row in rows:
        per_item = row["seconds"] / row["count"] * 1000
        print(
            f"{name:24}{row['count']:>9,}{row['seconds']:>10.2f}{per_item:>10.3f}"
            f"{row['peak_mb']:>9.0f}MB{row['peak_mb'] - row['baseline_mb']:>18.0f}MB"
        )
    ratio = (naive["seconds"] / naive["count"]) / (sweep["seconds"] / sweep["count"])
    print(f"per-item ratio: the naive loop takes {ratio:.1f}x as long per request")
    print(
        f"naive loop extrapolated to {SWEEP_N:,}: "
        f"{naive['seconds'] / naive['count'] * SWEEP_N:.0f}s vs {sweep['seconds']:.1f}s"
    )


def main(argv: list[str]) -> int:
    if argv[:1] == ["--measure"]:
        print(json.dumps(measure(argv[1])))
        return 0
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        bench()
        return 0
    from scripts.pgcluster import PostgresUnavailable, throwaway_postgres

    try:
        cluster = throwaway_postgres(database="coachbook_bench")
        url = cluster.__enter__()
    except PostgresUnavailable as exc:
        print(f"skipped: {exc}; set DATABASE_URL to a PostgreSQL server", file=sys.stderr)
        return 1 if os.environ.get("COACHBOOK_REQUIRE_ALL") == "1" else 0
    try:
        os.environ["DATABASE_URL"] = url
        bench()
    finally:
        cluster.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
