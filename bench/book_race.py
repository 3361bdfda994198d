"""No double booking, over HTTP: 50 students book the same slot at the same moment.

    .venv/bin/python bench/book_race.py          # or: make bench

Runs by itself. Without a PostgreSQL DATABASE_URL it starts a throwaway cluster
(scripts.pgcluster), migrates it, creates (through the services) one coach with one open slot
and STUDENTS students each holding an unscheduled credit, gives each student a signed-in Django
session, starts gunicorn with several workers on a free loopback port, fetches each student's
booking page (for the CSRF token), then fires all booking POSTs at once from as many threads.
It stops gunicorn and PostgreSQL afterwards.

Progress goes to stderr; stdout gets exactly one line:

    successes=1 refusals=49 errors=0

A success is a booking the server accepted (a redirect to the session page), a refusal one it
turned down with a message (a redirect back to the time chooser); anything else (a 5xx, a
connection error, a 4xx) is an error. The database is checked afterwards: the slot must be HELD
by exactly as many sessions as there were successes, else the difference counts as errors.
Exit status 0 only for 1 success and 0 errors.

Environment: BOOK_RACE_STUDENTS (50), BOOK_RACE_WORKERS (gunicorn workers, 4), DATABASE_URL
(an existing PostgreSQL to use instead of a throwaway one; the bench adds its own rows).
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
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.pgcluster import free_port, throwaway_postgres  # noqa: E402

STUDENTS = int(os.environ.get("BOOK_RACE_STUDENTS", "50"))
WORKERS = int(os.environ.get("BOOK_RACE_WORKERS", "4"))
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


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


def prepare_data(run: str) -> tuple[int, list[dict]]:
    """Through the services: a coach, one open slot, STUDENTS credits and signed-in sessions."""
    import django

    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connections
    from django.utils import timezone

    from accounts.models import User
    from accounts.services import coach_profile_create
    from calendars.services import slot_create
    from sessions_app.services import offering_create, package_purchase

    coach = User.objects.create_user(email=f"race-coach-{run}@example.com")
    coach_profile_create(user=coach, headline="Race coach")
    offering = offering_create(
        coach=coach, title="Race package", session_count=1, duration_minutes=60, price_cents=5000
    )
    start = (timezone.now() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    slot = slot_create(coach=coach, start=start, end=start + timedelta(hours=1))
    students = []
    for index in range(STUDENTS):
        student = User.objects.create_user(email=f"race-student-{run}-{index}@example.com")
        session = package_purchase(student=student, offering=offering).sessions.get()
        store = SessionStore()
        store[SESSION_KEY] = str(student.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = student.get_session_auth_hash()
        store.create()
        students.append({"session_id": session.pk, "cookies": {"sessionid": store.session_key}})
    connections.close_all()
    return slot.pk, students


def held_count(slot_id: int) -> tuple[int, str]:
    from django.db import connections

    from calendars.models import TimeSlot
    from sessions_app.models import Session

    holders = Session.objects.filter(slot_id=slot_id, status="REQUESTED").count()
    status = TimeSlot.objects.get(pk=slot_id).status
    connections.close_all()
    return holders, status


@contextlib.contextmanager
def gunicorn(env: dict, port: int):
    """gunicorn with WORKERS workers on 127.0.0.1:port; its log is kept only if it fails."""
    log_path = Path(tempfile.mkstemp(prefix="book-race-gunicorn-", suffix=".log")[1])
    command = [
        sys.executable, "-m", "gunicorn", "config.wsgi",
        "-w", str(WORKERS), "-b", f"127.0.0.1:{port}",
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
        log(f"gunicorn up: {WORKERS} workers on 127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
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


def race(base: str, slot_id: int, students: list[dict]) -> dict[str, int]:
    # Each student opens their booking page first: the CSRF token, and a check that the slot
    # is offered to them.
    def open_page(student: dict) -> None:
        status, headers, body = request(
            f"{base}/sessions/{student['session_id']}/book/", cookies=student["cookies"]
        )
        page = body.decode()
        match = CSRF_INPUT.search(page)
        token = cookie_value(headers, "csrftoken")
        if status != 200 or not match or not token or f'value="{slot_id}"' not in page:
            raise RuntimeError(f"booking page for session {student['session_id']}: {status}")
        student["csrf"] = match.group(1)
        student["cookies"]["csrftoken"] = token

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(open_page, students))
    log(f"{len(students)} booking pages loaded; firing {len(students)} POSTs at once")

    outcomes: list[str] = ["error"] * len(students)
    barrier = threading.Barrier(len(students))

    def book(index: int) -> None:
        student = students[index]
        barrier.wait(timeout=60)
        try:
            status, headers, _ = request(
                f"{base}/sessions/{student['session_id']}/book/",
                cookies=student["cookies"],
                data={
                    "csrfmiddlewaretoken": student["csrf"],
                    "slot": str(slot_id),
                    "seen_status": "UNSCHEDULED",
                },
            )
            outcomes[index] = classify(status, headers, student["session_id"])
            if outcomes[index] == "error":
                log(f"session {student['session_id']}: unexpected answer {status}")
        except OSError as exc:
            log(f"session {student['session_id']}: {exc}")

    started = time.monotonic()
    threads = [threading.Thread(target=book, args=(index,)) for index in range(len(students))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log(f"all answers in {time.monotonic() - started:.2f} s")
    return {kind: outcomes.count(kind) for kind in ("success", "refusal", "error")}


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
        slot_id, students = prepare_data(run)
        log(f"one open slot ({slot_id}) and {len(students)} students with a credit each")
        with gunicorn(env, free_port()) as base:
            counts = race(base, slot_id, students)
        holders, slot_status = held_count(slot_id)
        log(f"database: slot {slot_status}, {holders} REQUESTED session(s) on it")
        mismatch = abs(holders - counts["success"])
        if mismatch:
            log(f"{mismatch} booking(s) the answers and the database disagree on")
    successes, refusals = counts["success"], counts["refusal"]
    errors = counts["error"] + mismatch
    print(f"successes={successes} refusals={refusals} errors={errors}", flush=True)
    return 0 if successes == 1 and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
