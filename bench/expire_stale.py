"""Benchmark: expire 100,000 stale items on PostgreSQL with the set-based, chunked sweep
(`sessions_app.services.sessions_expire_stale`), next to its floor, the same writes done by
one SQL statement per kind of item, and a naive per-object loop over 1,000 (lock, save,
event, reservation release, one notification per object) for the per-item ratio.

Nine items in ten are booking requests past their window (REQUESTED, holding a HELD
reservation: they go back to UNSCHEDULED and the reservation is RELEASED); one in ten is a
reschedule proposal past its deadline (the session RESCHEDULING, its agreed time BOOKED, the
proposal holding a HELD reservation: the proposal expires, its reservation is RELEASED and the
session goes back to CONFIRMED at the agreed time, still BOOKED). Every item writes its event
and an email to each side (outbox rows with the facts of the moment). The data is seeded once
and copied (CREATE DATABASE ... TEMPLATE) into one database per run, so the floor, the sweep
and the loop each start from the same fresh data. Afterwards each copy is checked item by item:
statuses, events, deliveries and reservations.

    python bench/expire_stale.py                 # starts a throwaway PostgreSQL on loopback
    DATABASE_URL=postgres://... python bench/expire_stale.py   # a scratch database (the seed
                                                 # stays; the role must be allowed CREATEDB)
    BENCH_SWEEP_N=20000 BENCH_NAIVE_N=500 python bench/expire_stale.py

Exits non-zero when, at 100,000 items or more, the sweep takes more than BENCH_MAX_RATIO
(default 1.3) times the floor. Each measured run happens in a fresh child process whose peak
RSS (VmHWM, reset after Django set-up) is its own, not the seeding's; it is printed next to
that baseline. The sweep and the loop queue their deliveries on commit as in production; the
broker is Celery's in-memory transport, so the figures are the database work, not a broker's
latency. The throwaway cluster runs with fsync off, which flatters the naive loop's commits.
"""

import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["CELERY_BROKER_URL"] = "memory://localhost/"

SWEEP_N = int(os.environ.get("BENCH_SWEEP_N", "100000"))
NAIVE_N = int(os.environ.get("BENCH_NAIVE_N", "1000"))
MAX_RATIO = float(os.environ.get("BENCH_MAX_RATIO", "1.3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
FULL_N = 100_000  # the ratio is judged from here up (fixed costs weigh more below)
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

        def reservation_start(i: int, *, later=False):
            hour = i % SESSIONS_PER_COACH + (SESSIONS_PER_COACH if later else 0)
            return first_start + timedelta(hours=hour)

        def reservation(i: int, slot_id: int, session_id: int, *, later=False, booked=False):
            start = reservation_start(i, later=later)
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
                        # The session's own copy of its reservation's time.
                        "starts_at": reservation_start(i),
                        "ends_at": reservation_start(i) + timedelta(minutes=60),
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
    proposal), one notification each. It handles the first NAIVE_N items (in the same
    proportion of requests and proposals) of its own copy of the seeded data."""
    from django.db import transaction

    from calendars.models import ACTIVE_SLOT_STATUSES, SlotStatus, TimeSlot
    from notifications.services import deliveries_for_event
    from sessions_app.lifecycle import Action, Status
    from sessions_app.models import ProposalStatus, RescheduleProposal, Session, SessionEvent

    requests, proposals = split(NAIVE_N)

    def release(slot_id: int) -> None:
        slot = TimeSlot.objects.select_for_update().get(pk=slot_id)
        if slot.status in ACTIVE_SLOT_STATUSES:
            slot.status, slot.released_at = SlotStatus.RELEASED, now
            slot.save(update_fields=["status", "released_at"])

    def event(session, action, source, target, details) -> None:
        created = SessionEvent.objects.create(
            session=session,
            action=action,
            from_status=source,
            to_status=target,
            details=details,
            created_at=now,
        )
        deliveries_for_event(event=created)  # its outbox rows, sent on commit

    expired = 0
    request_ids = list(
        Session.objects.filter(status=Status.REQUESTED, request_expires_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:requests]
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
            session.starts_at = session.ends_at = None
            session.save(
                update_fields=[
                    "status",
                    "slot",
                    "starts_at",
                    "ends_at",
                    "request_expires_at",
                    "updated_at",
                ]
            )
            event(
                session, Action.EXPIRE, Status.REQUESTED, Status.UNSCHEDULED, {"slot_id": slot_id}
            )
            release(slot_id)
            expired += 1
    proposal_ids = list(
        RescheduleProposal.objects.filter(status=ProposalStatus.PENDING, expires_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:proposals]
    )
    for pk in proposal_ids:
        with transaction.atomic():
            proposal = (
                RescheduleProposal.objects.select_for_update().select_related("slot").get(pk=pk)
            )
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
                {
                    "proposal_id": proposal.pk,
                    "proposed_start": proposal.slot.start.isoformat(),
                    "slot_id": session.slot_id,
                },
            )
            release(proposal.slot_id)
            expired += 1
    return expired


# The floor: the same writes as the sweep (sessions, proposals, events, reservations, both
# sides' outbox rows with the facts of their emails) in one statement per kind of item, with
# nothing in Python. The facts are built by jsonb_build_object with the keys the sweep writes.
_FACTS_SQL = """
    jsonb_build_object(
        'session_id', m.id, 'title', p.title, 'number', m.number,
        'session_count', p.session_count, 'duration_minutes', p.duration_minutes,
        'currency', m.currency, 'sequence', m.sequence, 'status_label', %(label)s::text,
        'coach_id', c.id,
        'coach', coalesce(nullif(c.display_name, ''), split_part(c.email, '@', 1)),
        'coach_email', c.email, 'student_id', st.id,
        'student', coalesce(nullif(st.display_name, ''), split_part(st.email, '@', 1)),
        'student_email', st.email,
        'action', %(action)s::text, 'from_status', %(source)s::text, 'to_status', %(target)s::text,
        'actor_id', NULL, 'actor', NULL, 'occurred_at', %(now)s::timestamptz, 'reason', '',
        'start', m.shown_start, 'end', m.shown_end
    )"""

_DELIVERIES_SQL = """
INSERT INTO notifications_delivery (recipient_id, kind, session_id, event_id, key, status,
                                    facts, attempts, claim_seq, next_attempt_at, subject,
                                    last_error, created_at)
SELECT who.id, 'session_event', f.session_id, f.event_id,
       'event:' || f.event_id || ':to:' || who.id, 'PENDING', f.facts, 0, 0,
       %(written)s::timestamptz, '', '', %(written)s::timestamptz
FROM facts f
CROSS JOIN LATERAL (VALUES (f.coach_id, f.coach_active, f.coach_email),
                           (f.student_id, f.student_active, f.student_email))
           AS who (id, active, email)
WHERE who.active AND who.email <> ''
"""

_FACTS_CTE = f"""
facts AS (
    SELECT e.id AS event_id, m.id AS session_id,
           c.id AS coach_id, c.is_active AS coach_active, c.email AS coach_email,
           st.id AS student_id, st.is_active AS student_active, st.email AS student_email,
           {_FACTS_SQL} AS facts
    FROM events e
    JOIN moved m ON m.id = e.session_id
    JOIN sessions_app_package p ON p.id = m.package_id
    JOIN accounts_user c ON c.id = m.coach_id
    JOIN accounts_user st ON st.id = m.student_id
)"""

FLOOR_REQUESTS_SQL = f"""
WITH stale AS (
    SELECT s.id, s.slot_id, t.start AS shown_start, t."end" AS shown_end
    FROM sessions_app_session s
    LEFT JOIN calendars_timeslot t ON t.id = s.slot_id
    WHERE s.status = 'REQUESTED' AND s.request_expires_at <= %(now)s::timestamptz
    FOR UPDATE OF s
), moved AS (
    UPDATE sessions_app_session s
    SET status = 'UNSCHEDULED', slot_id = NULL, starts_at = NULL, ends_at = NULL,
        request_expires_at = NULL, updated_at = %(now)s::timestamptz
    FROM stale
    WHERE s.id = stale.id
    RETURNING s.id, stale.slot_id, stale.shown_start, stale.shown_end, s.package_id,
              s.coach_id, s.student_id, s.number, s.currency, s.sequence
), released AS (
    UPDATE calendars_timeslot t SET status = 'RELEASED', released_at = %(now)s::timestamptz
    FROM moved
    WHERE t.id = moved.slot_id AND t.status IN ('HELD', 'BOOKED')
    RETURNING t.id
), events AS (
    INSERT INTO sessions_app_sessionevent (session_id, action, from_status, to_status,
                                           details, created_at)
    SELECT id, %(action)s::text, %(source)s::text, %(target)s::text,
           jsonb_build_object('slot_id', slot_id), %(now)s::timestamptz
    FROM moved
    RETURNING id, session_id
), {_FACTS_CTE}
{_DELIVERIES_SQL}
"""

FLOOR_PROPOSALS_SQL = f"""
WITH stale AS (
    SELECT s.id, pr.id AS proposal_id, pr.slot_id AS proposed_slot_id,
           ps.start AS proposed_start, s.slot_id, a.start AS shown_start, a."end" AS shown_end
    FROM sessions_app_session s
    JOIN sessions_app_rescheduleproposal pr
         ON pr.session_id = s.id AND pr.status = 'PENDING'
        AND pr.expires_at <= %(now)s::timestamptz
    JOIN calendars_timeslot a ON a.id = s.slot_id AND a.status = 'BOOKED'
    JOIN calendars_timeslot ps ON ps.id = pr.slot_id
    WHERE s.status = 'RESCHEDULING'
    FOR UPDATE OF s, pr
), expired AS (
    UPDATE sessions_app_rescheduleproposal pr
    SET status = 'EXPIRED', decided_at = %(now)s::timestamptz
    FROM stale
    WHERE pr.id = stale.proposal_id
    RETURNING pr.id
), moved AS (
    UPDATE sessions_app_session s SET status = 'CONFIRMED', updated_at = %(now)s::timestamptz
    FROM stale
    WHERE s.id = stale.id
    RETURNING s.id, stale.proposal_id, stale.proposed_start, stale.slot_id,
              stale.shown_start, stale.shown_end, s.package_id, s.coach_id, s.student_id,
              s.number, s.currency, s.sequence
), released AS (
    UPDATE calendars_timeslot t SET status = 'RELEASED', released_at = %(now)s::timestamptz
    FROM stale
    WHERE t.id = stale.proposed_slot_id AND t.status IN ('HELD', 'BOOKED')
    RETURNING t.id
), events AS (
    INSERT INTO sessions_app_sessionevent (session_id, action, from_status, to_status,
                                           details, created_at)
    SELECT id, %(action)s::text, %(source)s::text, %(target)s::text,
           jsonb_build_object('proposal_id', proposal_id, 'proposed_start', proposed_start,
                              'slot_id', slot_id),
           %(now)s::timestamptz
    FROM moved
    RETURNING id, session_id
), {_FACTS_CTE}
{_DELIVERIES_SQL}
"""


def floor_expire(now) -> int:
    """The floor: both kinds of stale item expired by one statement each, in one transaction
    (`FLOOR_REQUESTS_SQL`, `FLOOR_PROPOSALS_SQL`); returns the deliveries written / 2."""
    from django.db import connection, transaction
    from django.utils import timezone

    from sessions_app.lifecycle import Action, Status

    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        # The floor's best chance: its two large statements would otherwise be JIT-compiled
        # (a second or more, for nothing at this size); the sweep's small ones never are.
        cursor.execute("SET LOCAL jit = off")
        for sql, action, source, target in (
            (FLOOR_REQUESTS_SQL, Action.EXPIRE, Status.REQUESTED, Status.UNSCHEDULED),
            (FLOOR_PROPOSALS_SQL, Action.EXPIRE_RESCHEDULE, Status.RESCHEDULING, Status.CONFIRMED),
        ):
            cursor.execute(
                sql,
                {
                    "now": now,
                    "written": timezone.now(),
                    "action": action.value,
                    "source": source.value,
                    "target": target.value,
                    "label": target.label,
                },
            )
            written += cursor.rowcount
    return written // 2  # both sides of each item


def measure(mode: str) -> dict:
    """Child process: run one expiry on this process's database, report its time, memory and
    statements, then check the database item by item (outside the timing)."""
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    import notifications.tasks  # noqa: F401  (a running worker has it imported already)
    from sessions_app.services import sessions_expire_stale

    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    # A worker runs with DEBUG off; with it on, Django keeps the SQL of the last 9,000
    # statements, which for multi-row INSERTs is most of the peak memory.
    settings.DEBUG = False
    runs = {"sweep": sessions_expire_stale, "floor": floor_expire, "naive": naive_expire}
    connection.ensure_connection()
    baseline = _status_mb("VmRSS")
    _reset_peak_rss()
    now = timezone.now()
    with connection.execute_wrapper(count):
        started = time.perf_counter()
        expired = runs[mode](now=now)
        seconds = time.perf_counter() - started
    peak = _status_mb("VmHWM")
    requests, proposals = split(NAIVE_N if mode == "naive" else SWEEP_N)
    check(requests=requests, proposals=proposals)
    return {
        "count": expired,
        "seconds": seconds,
        "statements": statements,
        "peak_mb": peak,
        "baseline_mb": baseline,
    }


def check(*, requests: int, proposals: int) -> None:
    """`requests` stale requests are unscheduled credits again and `proposals` stale proposals
    expired with their sessions back at the agreed time (still BOOKED), each with one event
    and one email to each side; each of their reservations RELEASED, every agreed time of the
    seed still BOOKED."""
    from django.db.models import F

    from calendars.models import SlotStatus, TimeSlot
    from notifications.models import Delivery
    from sessions_app.lifecycle import Action, Status
    from sessions_app.models import ProposalStatus, RescheduleProposal, Session, SessionEvent

    _, seeded_proposals = split(SWEEP_N)
    found = {
        "unscheduled credits": Session.objects.filter(
            status=Status.UNSCHEDULED, slot=None, starts_at=None, ends_at=None
        ).count(),
        "expire events": SessionEvent.objects.filter(action=Action.EXPIRE).count(),
        "confirmed at the agreed time": Session.objects.filter(
            status=Status.CONFIRMED, slot__status=SlotStatus.BOOKED
        ).count(),
        "expire_reschedule events": SessionEvent.objects.filter(
            action=Action.EXPIRE_RESCHEDULE
        ).count(),
        "expired proposals": RescheduleProposal.objects.filter(
            status=ProposalStatus.EXPIRED
        ).count(),
        "released reservations": TimeSlot.objects.filter(status=SlotStatus.RELEASED).count(),
        "booked reservations": TimeSlot.objects.filter(status=SlotStatus.BOOKED).count(),
        "emails to write": Delivery.objects.filter(event__isnull=False).count(),
        "events with both sides' emails": SessionEvent.objects.filter(
            deliveries__recipient=F("session__coach")
        )
        .filter(deliveries__recipient=F("session__student"))
        .count(),
    }
    wanted = {
        "unscheduled credits": requests,
        "expire events": requests,
        "confirmed at the agreed time": proposals,
        "expire_reschedule events": proposals,
        "expired proposals": proposals,
        "released reservations": requests + proposals,
        "booked reservations": seeded_proposals,
        "emails to write": 2 * (requests + proposals),
        "events with both sides' emails": requests + proposals,
    }
    wrong = {key: (found[key], wanted[key]) for key in wanted if found[key] != wanted[key]}
    assert not wrong, f"(found, wanted) {wrong}"


def _database_url(url: str, name: str) -> str:
    """`url` pointing at database `name` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def run_child(mode: str, url: str) -> dict:
    """Measure `mode` in a fresh process on the database at `url`."""
    child = subprocess.run(
        [sys.executable, __file__, "--measure", mode],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": url},
    )
    if child.returncode:
        sys.stderr.write(child.stderr)
        raise SystemExit(f"the {mode} run failed (exit {child.returncode})")
    return json.loads(child.stdout.strip().splitlines()[-1])


def _machine(connection) -> str:
    """Where the figures come from: platform, CPUs, Python, Django, PostgreSQL."""
    import django

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    version = connection.cursor().connection.info.server_version
    return (
        f"{platform.platform()}, {os.cpu_count()} CPU(s) ({model}), "
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"PostgreSQL {version // 10000}.{version % 10000}"
    )


def bench() -> int:
    """Seed once, copy the seed into one database per run (identical data, fresh for each),
    measure floor, sweep and naive loop each in its own process, print, judge the ratio."""
    import django

    django.setup()
    import psycopg
    from django.core.management import call_command
    from django.db import connection

    wall = time.perf_counter()
    base_url = os.environ["DATABASE_URL"]
    base = connection.settings_dict["NAME"]
    print(f"machine: {_machine(connection)}")
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    seed(SWEEP_N, f"bench{int(time.time())}")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # each copy starts with statistics and hint bits
    requests, proposals = split(SWEEP_N)
    seeded = time.perf_counter() - started
    connection.close()

    print(
        f"seeded {SWEEP_N:,} stale items ({requests:,} requests, {proposals:,} reschedule "
        f"proposals) in {seeded:.1f}s"
    )
    # Floor and sweep alternate (floor, sweep, sweep, floor, ...) and each keeps its best
    # round, so neither gains from going second on a machine whose load drifts.
    order = [("floor", "sweep") if r % 2 == 0 else ("sweep", "floor") for r in range(ROUNDS)]
    runs = [mode for pair in order for mode in pair] + ["naive"]
    results: dict[str, dict] = {}
    admin_url = _database_url(base_url, "postgres")
    for mode in runs:
        # A fresh copy of the seed for each run, made just before it and dropped just after
        # (with a checkpoint), so no run pays for the previous one's autovacuum or dirty pages.
        name = f"{base}_{mode}"
        with psycopg.connect(admin_url, autocommit=True) as admin:
            strategy = " STRATEGY FILE_COPY" if admin.info.server_version >= 150000 else ""
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{base}"{strategy}')
            admin.execute("CHECKPOINT")
        try:
            result = run_child(mode, _database_url(base_url, name))
        finally:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        result["rounds"] = [*results.get(mode, {}).get("rounds", []), result["seconds"]]
        if mode not in results or result["seconds"] < results[mode]["seconds"]:
            results[mode] = result
        else:
            results[mode]["rounds"] = result["rounds"]

    floor, sweep, naive = results["floor"], results["sweep"], results["naive"]
    rows = [
        ("SQL floor", floor),
        ("set-based sweep", sweep),
        ("naive per-object loop", naive),
    ]
    print(
        f"{'':24}{'items':>9}{'seconds':>10}{'ms/item':>10}{'statements':>12}{'peak RSS':>11}"
        f"{'(+ over baseline)':>20}"
    )
    for name, row in rows:
        per_item = row["seconds"] / row["count"] * 1000
        print(
            f"{name:24}{row['count']:>9,}{row['seconds']:>10.2f}{per_item:>10.3f}"
            f"{row['statements']:>12,}{row['peak_mb']:>9.0f}MB"
            f"{row['peak_mb'] - row['baseline_mb']:>18.0f}MB"
        )
    ratio = sweep["seconds"] / floor["seconds"]
    rounds = ", ".join(
        f"{mode} {' '.join(f'{seconds:.2f}' for seconds in results[mode]['rounds'])}s"
        for mode in ("floor", "sweep")
    )
    print(f"rounds (best kept): {rounds}")
    print(f"sweep / floor: {ratio:.2f}x (at most {MAX_RATIO:.2f}x at {FULL_N:,} items)")
    per_item = (naive["seconds"] / naive["count"]) / (sweep["seconds"] / sweep["count"])
    print(
        f"the naive loop takes {per_item:.1f}x as long per item; extrapolated to {SWEEP_N:,}: "
        f"{naive['seconds'] / naive['count'] * SWEEP_N:.0f}s vs {sweep['seconds']:.1f}s"
    )
    print(f"whole benchmark: {time.perf_counter() - wall:.0f}s", flush=True)
    if ratio > MAX_RATIO and SWEEP_N >= FULL_N:
        print(f"FAIL: the sweep takes {ratio:.2f}x its SQL floor", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--measure"]:
        print(json.dumps(measure(argv[1])))
        return 0
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        return bench()
    from scripts.pgcluster import PostgresUnavailable, throwaway_postgres

    try:
        cluster = throwaway_postgres(database="coachbook_bench")
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
    sys.exit(main(sys.argv[1:]))
