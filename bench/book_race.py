"""No double booking, over HTTP: 50 students race for overlapping but different start times.

    .venv/bin/python bench/book_race.py          # or: make bench

Runs by itself. Without a PostgreSQL DATABASE_URL it starts a throwaway cluster
(scripts.pgcluster) and migrates it. Through the services it creates one coach (Europe/London,
a 15-minute start interval) with a one-off availability window 09:00-12:00 three days ahead
and STUDENTS students, each with a package of one 60-minute session; student i goes for
RACE_STARTS[i % 3] (10:00, 10:15 or 10:30 London time: different starts whose hours all
overlap, so at most one can be had). Each student gets a signed-in Django session. gunicorn
starts with several workers on a free loopback port; each student opens the booking's confirm
step (GET /sessions/<id>/book/?start=<ISO 8601>: the CSRF token, and a check that the start is
offered), then all the confirm POSTs (field `start`, as the confirm step's form sends it) fire at
once from as many threads. gunicorn and PostgreSQL stop afterwards.

A success is a booking the server accepted (a redirect to the session page), a refusal one it
turned down with a message (a redirect back to the time picker); anything else (a 5xx, a
connection error, a 4xx) is an error. Then the database is checked: the coach must have exactly
as many active (HELD/BOOKED) reservations as there were successes, each held by a REQUESTED
session, and no two of the coach's active reservations may overlap; every difference counts as
an error. Progress goes to stderr; stdout gets the database check, then the last line

    successes=1 refusals=49 errors=0

Exit status 0 only for 1 success, 0 errors and exactly one active reservation.

Environment: BOOK_RACE_STUDENTS (50), BOOK_RACE_WORKERS (gunicorn workers, 4),
BOOK_RACE_THREADS (threads per worker, 4: up to 16 bookings in flight at once), DATABASE_URL
(an existing PostgreSQL to use instead of a throwaway one; the bench adds its own rows),
BOOK_RACE_VIA (`http`, the default; `service` calls `session_book` from as many threads
instead, without gunicorn: a fallback for when the booking pages are being rebuilt).
"""

import contextlib
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from datetime import time as wall
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.pgcluster import free_port, throwaway_postgres  # noqa: E402

STUDENTS = int(os.environ.get("BOOK_RACE_STUDENTS", "50"))
WORKERS = int(os.environ.get("BOOK_RACE_WORKERS", "4"))
THREADS = int(os.environ.get("BOOK_RACE_THREADS", "4"))  # per worker (gthread when above 1)
VIA = os.environ.get("BOOK_RACE_VIA", "http")
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
START_INPUT = re.compile(r'name="start" value="([^"]+)"')
COACH_TZ = "Europe/London"
RACE_STARTS = (wall(10, 0), wall(10, 15), wall(10, 30))  # coach-local, each for 60 minutes
DURATION = 60
# What calendars.services.reservation_hold logs (INFO) when the exclusion constraint refuses.
DATABASE_REFUSAL = "reservation refused by the database"


def log(message: str) -> None:
    print(f"[book_race] {message}", file=sys.stderr, flush=True)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the redirect itself is the answer we classify


OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def request(url: str, *, cookies: dict, data: dict | None = None, timeout: float = 60):
    """(status, headers, body) of one request, redirects not followed."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    headers = {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=body, headers=headers)
    try:
        with OPENER.open(req, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def cookie_value(headers, name: str) -> str | None:
    for header in headers.get_all("Set-Cookie") or []:
        match = re.match(rf"{name}=([^;]+)", header)
        if match:
            return match.group(1)
    return None


def _offering_create():
    try:
        from catalog.services import offering_create
    except ImportError:  # before offerings moved to the catalog app
        from sessions_app.services import offering_create
    return offering_create


def prepare_data(run: str) -> tuple[int, list[datetime], list[dict]]:
    """Through the services: a coach with a 15-minute grid and a window round the race starts,
    STUDENTS students with a one-session package each and a signed-in Django session; returns
    the coach's id, the race starts (aware) and the students."""
    import django

    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connections
    from django.utils import timezone

    from accounts.models import User
    from accounts.services import coach_profile_create, coach_profile_update, user_update_profile
    from calendars.selectors import bookable_starts
    from calendars.services import availability_window_add
    from sessions_app.services import package_purchase

    coach = User.objects.create_user(email=f"race-coach-{run}@example.com")
    coach = user_update_profile(user=coach, display_name="Race coach", timezone=COACH_TZ)
    profile = coach_profile_create(user=coach, headline="Race coach")
    coach_profile_update(
        user=coach,
        headline=profile.headline,
        bio=profile.bio,
        request_window_hours=profile.request_window_hours,
        reschedule_window_hours=profile.reschedule_window_hours,
        minimum_notice_hours=profile.minimum_notice_hours,
        start_interval_minutes=15,
    )
    coach = User.objects.select_related("coach_profile").get(pk=coach.pk)
    # Three days ahead in the coach's own time: past any notice, within the horizon, whatever
    # the hour the bench runs at.
    tz = ZoneInfo(COACH_TZ)
    day = timezone.localtime(timezone.now(), tz).date() + timedelta(days=3)
    availability_window_add(
        coach=coach,
        start=datetime.combine(day, wall(9, 0), tzinfo=tz),
        end=datetime.combine(day, wall(12, 0), tzinfo=tz),
    )
    starts = [datetime.combine(day, moment, tzinfo=tz) for moment in RACE_STARTS]
    offered = bookable_starts(
        coach=coach,
        duration_minutes=DURATION,
        start=starts[0],
        end=starts[-1] + timedelta(minutes=1),
    )
    if offered != starts:
        raise RuntimeError(f"the race starts are not all bookable: {offered} != {starts}")
    offering = _offering_create()(
        coach=coach,
        title="Race package",
        session_count=1,
        duration_minutes=DURATION,
        price_cents=5000,
    )
    students = []
    for index in range(STUDENTS):
        student = User.objects.create_user(email=f"race-student-{run}-{index}@example.com")
        session = package_purchase(student=student, offering=offering).sessions.get()
        store = SessionStore()
        store[SESSION_KEY] = str(student.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = student.get_session_auth_hash()
        store.create()
        students.append(
            {
                "session_id": session.pk,
                "start": starts[index % len(starts)],
                "cookies": {"sessionid": store.session_key},
            }
        )
    connections.close_all()
    return coach.pk, starts, students


def check_database(coach_id: int) -> dict:
    """The coach's active reservations: how many, how many REQUESTED sessions hold one, and
    how many pairs of them overlap (buffers included)."""
    from django.db import connections

    from calendars.models import ACTIVE_SLOT_STATUSES, TimeSlot
    from sessions_app.lifecycle import Status
    from sessions_app.models import Session

    active = list(
        TimeSlot.objects.filter(coach_id=coach_id, status__in=ACTIVE_SLOT_STATUSES).order_by(
            "reserved_start"
        )
    )
    holders = Session.objects.filter(
        coach_id=coach_id, status=Status.REQUESTED, slot__in=[slot.pk for slot in active]
    ).count()
    overlapping = sum(
        1
        for index, first in enumerate(active)
        for second in active[index + 1 :]
        if first.reserved_start < second.reserved_end and second.reserved_start < first.reserved_end
    )
    connections.close_all()
    return {"active": active, "holders": holders, "overlapping": overlapping}


@contextlib.contextmanager
def gunicorn(env: dict, port: int):
    """gunicorn with WORKERS workers of THREADS threads on 127.0.0.1:port: yields its base
    URL and its log file (the app logs at INFO there); the log is kept only if it fails."""
    log_path = Path(tempfile.mkstemp(prefix="book-race-gunicorn-", suffix=".log")[1])
    command = [
        sys.executable, "-m", "gunicorn", "config.wsgi",
        "-w", str(WORKERS), "--threads", str(THREADS), "-b", f"127.0.0.1:{port}",
        "--timeout", "120", "--log-level", "warning",
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    ok = False
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({process.returncode}); see {log_path}")
            try:
                status, _, _ = request(
                    f"http://127.0.0.1:{port}/accounts/login/", cookies={}, timeout=2
                )
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 60 s; see {log_path}")
            time.sleep(0.2)
        log(f"gunicorn up: {WORKERS} workers x {THREADS} threads on 127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}", log_path
        ok = True
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if ok:
            log_path.unlink(missing_ok=True)
        else:
            log(f"gunicorn log kept: {log_path}")


def classify(status: int, headers, session_id: int) -> str:
    location = urllib.parse.urlsplit(headers.get("Location", "") if headers else "").path
    if status == 302 and location == f"/sessions/{session_id}/":
        return "success"
    if status == 302 and location == f"/sessions/{session_id}/book/":
        return "refusal"
    return "error"


def _iso(moment: datetime) -> str:
    """The `start` value the picker links carry: UTC with a Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _all_at_once(count: int, work) -> list[str]:
    """Run work(index) for every index on its own thread, all released together; each
    returns "success", "refusal" or "error"."""
    outcomes: list[str] = ["error"] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait(timeout=60)
        outcomes[index] = work(index)

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log(f"all answers in {time.monotonic() - started:.2f} s")
    return outcomes


def race_http(base: str, students: list[dict]) -> list[str]:
    # Each student opens the confirm step of their start first: the CSRF token, and a check
    # that the start is offered to them (the confirm step redirects away from one that is not).
    def open_page(student: dict) -> None:
        url = f"{base}/sessions/{student['session_id']}/book/?" + urllib.parse.urlencode(
            {"start": _iso(student["start"])}
        )
        status, headers, body = request(url, cookies=student["cookies"])
        page = body.decode()
        csrf, start = CSRF_INPUT.search(page), START_INPUT.search(page)
        if status != 200 or not csrf or not start:
            where = headers.get("Location", "") if headers else ""
            raise RuntimeError(
                f"confirm step for session {student['session_id']}: {status} {where}".rstrip()
            )
        student["csrf"], student["start_value"] = csrf.group(1), start.group(1)
        token = cookie_value(headers, "csrftoken")
        if token:
            student["cookies"]["csrftoken"] = token

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(open_page, students))
    log(f"{len(students)} confirm steps loaded; firing {len(students)} POSTs at once")

    def book(index: int) -> str:
        student = students[index]
        try:
            status, headers, _ = request(
                f"{base}/sessions/{student['session_id']}/book/",
                cookies=student["cookies"],
                data={
                    "csrfmiddlewaretoken": student["csrf"],
                    "start": student["start_value"],
                    "seen_status": "UNSCHEDULED",
                    "seen_slot": "",
                },
            )
        except OSError as exc:
            log(f"session {student['session_id']}: {exc}")
            return "error"
        outcome = classify(status, headers, student["session_id"])
        if outcome == "error":
            log(f"session {student['session_id']}: unexpected answer {status}")
        return outcome

    return _all_at_once(len(students), book)


def race_service(students: list[dict]) -> list[str]:
    """The fallback: `session_book` itself from as many threads (one connection each)."""
    from django.db import connections

    from core.errors import DomainError
    from sessions_app.models import Session

    sessions = {
        session.pk: session
        for session in Session.objects.select_related("student").filter(
            pk__in=[student["session_id"] for student in students]
        )
    }
    connections.close_all()

    def book(index: int) -> str:
        from sessions_app.services import session_book

        student = students[index]
        session = sessions[student["session_id"]]
        try:
            session_book(session=session, start=student["start"], actor=session.student)
            return "success"
        except DomainError:
            return "refusal"
        except Exception as exc:  # every other failure is an error to count
            log(f"session {session.pk}: {type(exc).__name__}: {exc}")
            return "error"
        finally:
            connections.close_all()

    return _all_at_once(len(students), book)


def main() -> int:
    run = secrets.token_hex(4)
    with contextlib.ExitStack() as stack:
        url = os.environ.get("DATABASE_URL", "")
        if not url.startswith("postgres"):
            log("no PostgreSQL DATABASE_URL: starting a throwaway cluster")
            url = stack.enter_context(throwaway_postgres(database="book_race"))
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": url,
            "DEBUG": "true",
            "SECRET_KEY": f"book-race-{run}-not-secret",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CELERY_BROKER_URL": "memory://",  # notifications go nowhere during the bench
            "EMAIL_URL": "consolemail://",
            "LOG_LEVEL": "WARNING",
        }
        os.environ.update(env)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        coach_id, starts, students = prepare_data(run)
        tz = ZoneInfo(COACH_TZ)
        labels = ", ".join(f"{timezone_label(start, tz)}" for start in starts)
        log(f"{len(students)} students with a credit each, racing for {labels} ({DURATION} min)")
        if VIA == "service":
            log("BOOK_RACE_VIA=service: calling session_book from threads, not over HTTP")
            with count_logged(DATABASE_REFUSAL) as logged:
                outcomes = race_service(students)
            by_database = logged[0]
        else:
            with gunicorn({**env, "LOG_LEVEL": "INFO"}, free_port()) as (base, log_path):
                outcomes = race_http(base, students)
                by_database = log_path.read_text(errors="replace").count(DATABASE_REFUSAL)
        counts = {kind: outcomes.count(kind) for kind in ("success", "refusal", "error")}
        found = check_database(coach_id)
    active = found["active"]
    won = ", ".join(
        f"{timezone_label(slot.start, tz)}-{slot.end.astimezone(tz):%H:%M} {slot.status}"
        for slot in active
    )
    print(
        f"database: {len(active)} active reservation(s) of the coach ({won or 'none'}), "
        f"{found['holders']} held by a REQUESTED session, "
        f"{found['overlapping']} overlapping pair(s)",
        flush=True,
    )
    # Every way the answers and the database disagree is an error.
    mismatch = abs(len(active) - counts["success"]) + abs(found["holders"] - len(active))
    if mismatch:
        log(f"{mismatch} booking(s) the answers and the database disagree on")
    print(
        f"refusals: {by_database} by the database's exclusion constraint (the booking had "
        f"passed the availability check concurrently), {counts['refusal'] - by_database} by "
        "the availability check",
        flush=True,
    )
    successes, refusals = counts["success"], counts["refusal"]
    errors = counts["error"] + mismatch + found["overlapping"]
    print(f"successes={successes} refusals={refusals} errors={errors}", flush=True)
    return 0 if successes == 1 and errors == 0 and len(active) == 1 else 1


@contextlib.contextmanager
def count_logged(text: str, logger_name: str = "calendars.services.reservations"):
    """Count the records of `logger_name` (INFO and up) whose message contains `text`; they
    are kept off the console meanwhile."""
    import logging

    found = [0]

    class Counter(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                found[0] += 1

    handler, logger = Counter(logging.INFO), logging.getLogger(logger_name)
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield found
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate = saved


def timezone_label(moment: datetime, tz: ZoneInfo) -> str:
    return f"{moment.astimezone(tz):%H:%M}"


if __name__ == "__main__":
    sys.exit(main())
