"""Benchmark: expire 100,000 stale items on PostgreSQL with the set-based, chunked sweep
(`sessions_app.services.sessions_expire_stale`), next to a naive per-object loop over 5,000
(lock, save, event, reservation release, one notification per object) for the per-item ratio.

Nine items in ten are booking requests past their window (REQUESTED, holding a HELD
reservation: they go back to UNSCHEDULED and the reservation is RELEASED); one in ten is a
reschedule proposal past its deadline (the session RESCHEDULING, its agreed time BOOKED, the
proposal holding a HELD reservation: the proposal expires, its reservation is RELEASED and the
session goes back to CONFIRMED at the agreed time, still BOOKED). Afterwards the database is
checked item by item: statuses, events and reservations.

    python bench/expire_stale.py                 # starts a throwaway PostgreSQL on loopback
    DATABASE_URL=postgres://... python bench/expire_stale.py   # a scratch database: rows stay
    BENCH_SWEEP_N=20000 BENCH_NAIVE_N=2000 python bench/expire_stale.py

Each measured run happens in a fresh child process whose peak RSS (VmHWM, reset after Django
set-up) is its own, not the seeding's; it is printed next to that baseline.
Both runs write their outbox deliveries and queue them on commit as in production; the
broker is Celery's in-memory transport, so the figures are the database work, not a broker's
latency. The
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


PROPOSAL_EVERY = 10  # one stale item in ten is a reschedule proposal, the rest requests


def _is_proposal(index: int) -> bool:
    return index % PROPOSAL_EVERY == PROPOSAL_EVERY - 1


def split(count: int) -> tuple[int, int]:
    """(stale requests, stale proposals) among `count` seeded items."""
    proposals = sum(1 for index in range(count) if _is_proposal(index))
    return count - proposals, proposals


def seed(count: int, label: str) -> None:
    """`count` stale items, each a session of its own with its own future reservations: most
    are REQUESTED past their window, holding a HELD reservation; one in PROPOSAL_EVERY is
    RESCHEDULING with its agreed time BOOKED and a pending proposal past its deadline holding
    a HELD reservation of its own (SESSIONS_PER_COACH hours later, so none overlap)."""
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import CoachProfile, User
    from calendars.models import SlotStatus, TimeSlot
    from sessions_app.lifecycle import Status
    from sessions_app.models import Package, RescheduleProposal, Session

    Offering = Package._meta.get_field("offering").related_model  # catalog.Offering
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

        coach_ids = [coach.pk for coach in coaches]
        student_ids = [student.pk for student in students]
        package_ids = [package.pk for package in packages]

        def reservation(i: int, slot_id: int, session_id: int, *, later=False, booked=False):
            hour = i % SESSIONS_PER_COACH + (SESSIONS_PER_COACH if later else 0)
            start = first_start + timedelta(hours=hour)
            return {
                "id": slot_id,
                "coach_id": coach_ids[i // SESSIONS_PER_COACH],
                "student_id": student_ids[i // 100],
                "session_id": session_id,
                "start": start,
                "end": start + timedelta(minutes=60),
                "reserved_start": start,
                "reserved_end": start + timedelta(minutes=60),
                "status": SlotStatus.BOOKED if booked else SlotStatus.HELD,
            }

        for begin in range(0, count, BATCH):
            indexes = range(begin, min(begin + BATCH, count))
            rescheduling = [i for i in indexes if _is_proposal(i)]
            # An active reservation must name its session and a session holding its time its
            # reservation (check constraints, row by row): every id is drawn first, the
            # reservations go in naming their sessions (foreign keys are checked at commit),
            # then the sessions naming their reservations. COPY, not bulk_create: the seeding
            # is not what is measured, and it would otherwise take longer than the sweep.
            session_ids = dict(zip(indexes, _next_ids(Session, len(indexes)), strict=True))
            slot_ids = dict(zip(indexes, _next_ids(TimeSlot, len(indexes)), strict=True))
            proposed_ids = dict(
                zip(rescheduling, _next_ids(TimeSlot, len(rescheduling)), strict=True)
            )
            _copy(
                TimeSlot,
                [
                    reservation(i, slot_ids[i], session_ids[i], booked=_is_proposal(i))
                    for i in indexes
                ]
                + [
                    reservation(i, proposed_ids[i], session_ids[i], later=True)
                    for i in rescheduling
                ],
                now=now,
            )
            _copy(
                Session,
                (
                    {
                        "id": session_ids[i],
                        "package_id": package_ids[i // 100],
                        "coach_id": coach_ids[i // SESSIONS_PER_COACH],
                        "student_id": student_ids[i // 100],
                        "number": i % 100 + 1,
                        "status": Status.RESCHEDULING if _is_proposal(i) else Status.REQUESTED,
                        "slot_id": slot_ids[i],
                        "price_share_cents": 100,
                        "currency": "USD",
                        "request_expires_at": (
                            None if _is_proposal(i) else now - timedelta(minutes=5)
                        ),
                    }
                    for i in indexes
                ),
                now=now,
            )
            _copy(
                RescheduleProposal,
                (
                    {
                        "id": proposal_id,
                        "session_id": session_ids[i],
                        "slot_id": proposed_ids[i],
                        "proposed_by_id": student_ids[i // 100],
                        "expires_at": now - timedelta(minutes=5),
                    }
                    for i, proposal_id in zip(
                        rescheduling,
                        _next_ids(RescheduleProposal, len(rescheduling)),
                        strict=True,
                    )
                ),
                now=now,
            )


def _next_ids(model, count: int) -> list[int]:
    """`count` fresh primary keys from `model`'s identity sequence (PostgreSQL)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [model._meta.db_table, count],
        )
        return [row[0] for row in cursor.fetchall()]


def _copy(model, rows, *, now) -> None:
    """COPY `rows` (dicts of column attname -> value, each with its id) into `model`'s table.

    A field a row leaves out takes its default (auto_now and auto_now_add: `now`; else the
    field's default, or null), so a field added to the model later needs no change here. Given
    values go to psycopg as they are (ints, strings, aware datetimes), except JSON."""
    from django.db import connection

    fields = model._meta.concrete_fields

    def default(field):
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            return now
        if field.has_default() or not field.null:
            return field.get_default()
        return None

    defaults = [field.get_db_prep_save(default(field), connection) for field in fields]
    json = {field.attname for field in fields if field.get_internal_type() == "JSONField"}
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [
                    (
                        fallback
                        if field.attname not in row
                        else field.get_db_prep_save(row[field.attname], connection)
                        if field.attname in json
                        else row[field.attname]
                    )
                    for field, fallback in zip(fields, defaults, strict=True)
                ]
            )


def naive_expire(now) -> int:
    """The loop the sweep replaces: one transaction, lock and save per stale item (request or
    proposal), one notification each."""
    from django.db import transaction

    from calendars.models import ACTIVE_SLOT_STATUSES, SlotStatus, TimeSlot
    from notifications.services import deliveries_for_event
    from sessions_app.lifecycle import Action, Status
    from sessions_app.models import ProposalStatus, RescheduleProposal, Session, SessionEvent

    def release(slot_id: int) -> None:
        slot = TimeSlot.objects.select_for_update().get(pk=slot_id)
        if slot.status in ACTIVE_SLOT_STATUSES:
            slot.status, slot.released_at = SlotStatus.RELEASED, now
            slot.save(update_fields=["status", "released_at"])

    def event(session, action, source, target, slot_id) -> None:
        created = SessionEvent.objects.create(
            session=session,
            action=action,
            from_status=source,
            to_status=target,
            details={"slot_id": slot_id},
            created_at=now,
        )
        deliveries_for_event(event=created)  # its outbox rows, sent on commit

    expired = 0
    request_ids = list(
        Session.objects.filter(status=Status.REQUESTED, request_expires_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for pk in request_ids:
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
            event(session, Action.EXPIRE, Status.REQUESTED, Status.UNSCHEDULED, slot_id)
            release(slot_id)
            expired += 1
    proposal_ids = list(
        RescheduleProposal.objects.filter(status=ProposalStatus.PENDING, expires_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for pk in proposal_ids:
        with transaction.atomic():
            proposal = RescheduleProposal.objects.select_for_update().get(pk=pk)
            session = Session.objects.select_for_update().get(pk=proposal.session_id)
            if proposal.status != ProposalStatus.PENDING or session.status != Status.RESCHEDULING:
                continue
            proposal.status, proposal.decided_at = ProposalStatus.EXPIRED, now
            proposal.save(update_fields=["status", "decided_at"])
            session.status = Status.CONFIRMED
            session.save(update_fields=["status", "updated_at"])
            event(
                session,
                Action.EXPIRE_RESCHEDULE,
                Status.RESCHEDULING,
                Status.CONFIRMED,
                proposal.slot_id,
            )
            release(proposal.slot_id)
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
    """Every stale request is an unscheduled credit again, every stale proposal expired with
    its session back at the agreed time (still BOOKED), each with one event; every request's
    and proposal's reservation RELEASED."""
    from calendars.models import SlotStatus, TimeSlot
    from sessions_app.lifecycle import Action, Status
    from sessions_app.models import ProposalStatus, RescheduleProposal, Session, SessionEvent

    requests, proposals = split(count)
    sessions = Session.objects.filter(coach__email__startswith=f"{label}-")
    events = SessionEvent.objects.filter(session__in=sessions)
    slots = TimeSlot.objects.filter(coach__email__startswith=f"{label}-")
    found = {
        "unscheduled credits": sessions.filter(status=Status.UNSCHEDULED, slot=None).count(),
        "expire events": events.filter(action=Action.EXPIRE).count(),
        "confirmed at the agreed time": sessions.filter(
            status=Status.CONFIRMED, slot__status=SlotStatus.BOOKED
        ).count(),
        "expire_reschedule events": events.filter(action=Action.EXPIRE_RESCHEDULE).count(),
        "expired proposals": RescheduleProposal.objects.filter(
            session__in=sessions, status=ProposalStatus.EXPIRED
        ).count(),
        "released reservations": slots.filter(status=SlotStatus.RELEASED).count(),
        "booked reservations": slots.filter(status=SlotStatus.BOOKED).count(),
    }
    wanted = {
        "unscheduled credits": requests,
        "expire events": requests,
        "confirmed at the agreed time": proposals,
        "expire_reschedule events": proposals,
        "expired proposals": proposals,
        "released reservations": count,
        "booked reservations": proposals,
    }
    wrong = {key: (found[key], wanted[key]) for key in wanted if found[key] != wanted[key]}
    assert not wrong, f"{label}: (found, wanted) {wrong}"


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
    requests, proposals = split(SWEEP_N)
    print(
        f"seeded {SWEEP_N:,} stale items ({requests:,} requests, {proposals:,} reschedule "
        f"proposals) in {time.perf_counter() - started:.1f}s"
    )
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
    print(f"per-item ratio: the naive loop takes {ratio:.1f}x as long per item")
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
