"""A real broker and a real worker: redis-server on a free loopback port and
`celery -A config worker -B` in a subprocess against the test database (PostgreSQL pass).
Beat expires a stale request on its own; nothing runs eagerly."""

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import time_machine
from django.db import connection
from django.utils import timezone

from calendars.models import SlotStatus
from calendars.services import availability_window_add
from scripts.pgcluster import free_port
from sessions_app import services
from sessions_app.lifecycle import Action, Status
from tests.conftest import require_component
from tests.factories import CoachFactory, OfferingFactory, StudentFactory

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_SECONDS = 60

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture
def redis_url(tmp_path):
    server = shutil.which("redis-server")
    require_component(server is not None, "redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [
            server,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        _wait_for(lambda: _pings(client), "redis-server to answer", timeout=10)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


def _wait_for(condition, what: str, timeout: float = DEADLINE_SECONDS):
    """Poll `condition` (bounded) until it holds; fail with `what` when time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def _database_url() -> str:
    """The test database (pytest-django's test_<name>) as a URL for the worker process."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    host = quote(db["HOST"] or "localhost", safe="")
    return f"postgres://{user}{password}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(redis_url, tmp_path):
    """`celery -A config worker -B` with the expiry every 2 s; yields (process, mail folder)."""
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": redis_url,
        "EMAIL_URL": f"filemail:///{mail_dir}",  # environ drops one leading slash
        "CELERY_BEAT_SCHEDULE_FILENAME": str(tmp_path / "celerybeat-schedule"),
        "JOBS_EXPIRE_EVERY_SECONDS": "2",
        "CONN_MAX_AGE": "0",
        "SITE_URL": "https://coachbook.test",
    }
    env.pop("CELERY_BROKER_URL", None)
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "config", "worker", "-B",
            "--loglevel=INFO", "--concurrency=1", "--hostname", f"integration-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield process, mail_dir
    finally:
        process.terminate()  # warm shutdown
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        log.close()
        print((tmp_path / "worker.log").read_text()[-3000:])


@pytest.mark.django_db(transaction=True)
def test_worker_with_beat_expires_a_stale_request_and_emails_both_sides(worker):
    process, mail_dir = worker
    coach = CoachFactory(timezone="Europe/Berlin")
    coach.coach_profile.request_window_hours = 1
    coach.coach_profile.save(update_fields=["request_window_hours"])
    student = StudentFactory(timezone="America/New_York")
    now = timezone.now()
    with time_machine.travel(now - timedelta(hours=2)):
        package = services.package_purchase(student=student, offering=OfferingFactory(coach=coach))
        session = package.sessions.order_by("number").first()
        start = now + timedelta(days=1)
        availability_window_add(coach=coach, start=start, end=start + timedelta(hours=1))
        services.session_book(session=session, start=start, actor=student)
    session.refresh_from_db()
    slot = session.slot
    assert slot.status == SlotStatus.HELD
    assert session.status == Status.REQUESTED
    assert session.request_expires_at < timezone.now()

    def expired():
        assert process.poll() is None, "the worker exited"
        session.refresh_from_db()
        slot.refresh_from_db()
        return session.status == Status.UNSCHEDULED and slot.status == SlotStatus.RELEASED

    _wait_for(expired, "the worker's beat to expire the request")
    event = session.events.get(action=Action.EXPIRE)
    assert (event.actor_id, event.from_status, event.to_status) == (
        None,
        "REQUESTED",
        "UNSCHEDULED",
    )

    def expiry_emails():
        # The file backend writes each connection's messages to one file, 79 dashes apart.
        texts = [path.read_bytes() for path in mail_dir.glob("*.log")]
        messages = [
            message_from_bytes(chunk.strip())
            for text in texts
            for chunk in text.split(b"-" * 79)
            if chunk.strip()
        ]
        recipients = [m["To"] for m in messages if m["Subject"].startswith("Request expired")]
        return sorted(recipients) if len(recipients) >= 2 else None

    assert _wait_for(expiry_emails, "both expiry emails") == sorted([coach.email, student.email])
