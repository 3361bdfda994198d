"""A real broker and real workers: redis-server on a free loopback port and
`celery -A config worker -B` in subprocesses against the test database (PostgreSQL pass).

- Beat expires a stale request on its own and both sides get their email; nothing runs eagerly.
- Redis stops, a coach cancels with a full refund (committed), Redis starts again: the student
  gets exactly one email, whose invitation removes the session from their calendar.
- A worker killed in the middle of a send loses nothing: once its claim's lease runs out,
  another worker's sweep sends the delivery, once.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import quote

import icalendar
import pytest
import redis
import time_machine
from django.db import connection
from django.utils import timezone

from calendars.models import SlotStatus
from calendars.services import availability_window_add
from notifications.models import Delivery, DeliveryStatus
from scripts.pgcluster import free_port
from sessions_app import services
from sessions_app.lifecycle import Action, Status
from tests.conftest import celery_pools_reset, require_component
from tests.factories import CoachFactory, OfferingFactory, StudentFactory

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_SECONDS = 90

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


class RedisServer:
    """A throwaway redis-server on one port, stopped and started again on the same port."""

    def __init__(self, binary: str, directory: Path):
        self.binary, self.directory = binary, directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        _wait_for(lambda: _pings(client), "redis-server to answer", timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        _wait_for(lambda: not _pings(client), "redis-server to stop", timeout=10)


@pytest.fixture
def redis_server(tmp_path):
    binary = shutil.which("redis-server")
    require_component(binary is not None, "redis-server is not installed")
    server = RedisServer(binary, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server):
    return redis_server.url


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
def start_worker(redis_url, tmp_path):
    """start_worker(name, **env) runs `celery -A config worker -B` (its own beat schedule
    file and log); returns the process. Every worker started is stopped at the end."""
    started: list[tuple[subprocess.Popen, Path]] = []

    def start(name: str = "worker", **extra_env) -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "REDIS_URL": redis_url,
            "CELERY_BEAT_SCHEDULE_FILENAME": str(tmp_path / f"{name}-celerybeat-schedule"),
            "CONN_MAX_AGE": "0",
            "SITE_URL": "https://coachbook.test",
            **extra_env,
        }
        env.pop("CELERY_BROKER_URL", None)
        log_path = tmp_path / f"{name}.log"
        log = log_path.open("w")
        process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config", "worker", "-B",
                "--loglevel=INFO", "--concurrency=1",
                "--hostname", f"integration-{name}-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        started.append((process, log_path))
        return process

    yield start
    for process, log_path in started:
        if process.poll() is None:
            process.terminate()  # warm shutdown
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        print(f"--- {log_path.name}\n{log_path.read_text()[-3000:]}")


def _mail_dir(tmp_path, name: str = "mail") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


def _email_url(folder: Path) -> str:
    return f"filemail:///{folder}"  # environ drops one leading slash


def _emails(mail_dir: Path) -> list:
    """Every message the file backend wrote (each connection's messages in one file, 79
    dashes apart), parsed."""
    texts = [path.read_bytes() for path in sorted(mail_dir.glob("*.log"))]
    return [
        message_from_bytes(chunk.strip(), policy=policy.default)
        for text in texts
        for chunk in text.split(b"-" * 79)
        if chunk.strip()
    ]


def _calendar(message) -> icalendar.Calendar | None:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            return icalendar.Calendar.from_ical(part.get_payload(decode=True))
    return None


@pytest.fixture
def publish_to_redis(redis_url):
    """This process's Celery app publishes to the test's Redis (the suite's default is an
    in-memory broker), so an on-commit task meets the real broker, down or up."""
    from config.celery import app

    previous = app.conf.broker_url, app.conf.broker_transport_options
    app.conf.broker_url, app.conf.broker_transport_options = redis_url, {}
    celery_pools_reset()
    yield
    app.conf.broker_url, app.conf.broker_transport_options = previous
    celery_pools_reset()


def _confirmed_session(coach, student, start):
    package = services.package_purchase(student=student, offering=OfferingFactory(coach=coach))
    session = package.sessions.order_by("number").first()
    availability_window_add(coach=coach, start=start, end=start + timedelta(hours=1))
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=session, actor=coach)
    session.refresh_from_db()
    return session


# --- beat expires a stale request --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_worker_with_beat_expires_a_stale_request_and_emails_both_sides(start_worker, tmp_path):
    mail_dir = _mail_dir(tmp_path)
    process = start_worker(EMAIL_URL=_email_url(mail_dir), JOBS_EXPIRE_EVERY_SECONDS="2")
    coach = CoachFactory(timezone="Europe/Berlin")
    coach.coach_profile.request_window_hours = 1
    coach.coach_profile.save(update_fields=["request_window_hours"])
    student = StudentFactory(timezone="America/New_York")
    now = timezone.now().replace(second=0, microsecond=0)
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
        messages = _emails(mail_dir)
        recipients = [m["To"] for m in messages if m["Subject"].startswith("Request expired")]
        return sorted(recipients) if len(recipients) >= 2 else None

    assert _wait_for(expiry_emails, "both expiry emails") == sorted([coach.email, student.email])


# --- Redis down while a coach cancels with a refund ---------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_cancel_made_while_redis_is_down_emails_the_student_once_when_it_is_back(
    redis_server, start_worker, publish_to_redis, tmp_path, caplog
):
    mail_dir = _mail_dir(tmp_path)
    process = start_worker(EMAIL_URL=_email_url(mail_dir), JOBS_DELIVERIES_EVERY_SECONDS="2")
    coach = CoachFactory(timezone="Europe/Berlin", display_name="Carla Coach")
    student = StudentFactory(timezone="America/New_York", display_name="Sam Student")
    start = (timezone.now() + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    session = _confirmed_session(coach, student, start)

    def everything_sent():
        assert process.poll() is None, "the worker exited"
        return not Delivery.objects.exclude(status=DeliveryStatus.SENT).exists()

    _wait_for(everything_sent, "the emails sent while Redis is up")
    before = {m["Message-ID"] for m in _emails(mail_dir)}

    redis_server.stop()
    services.session_cancel(session=session, actor=coach, refund="full", reason="Ill")

    session.refresh_from_db()
    [refund] = session.refunds.all()
    # Both sides: the cancellation takes the session off both calendars (the coach's copy too).
    delivery = Delivery.objects.get(event__action=Action.CANCEL, recipient=student)
    own = Delivery.objects.get(event__action=Action.CANCEL, recipient=coach)
    assert own.status == DeliveryStatus.PENDING
    assert (session.status, refund.kind) == (Status.CANCELED, "full")
    assert (delivery.recipient, delivery.status, delivery.attempts) == (
        student,
        DeliveryStatus.PENDING,
        0,
    )
    assert "the committed change stands" in caplog.text  # the on-commit publish failed

    redis_server.start()

    def sent():
        assert process.poll() is None, "the worker exited"
        return not Delivery.objects.exclude(status=DeliveryStatus.SENT).exists()

    _wait_for(sent, "the sweep to send the cancellation once Redis is back")
    time.sleep(5)  # two more sweeps: nothing is sent again

    new = [m for m in _emails(mail_dir) if m["Message-ID"] not in before]
    title = session.package.title
    assert sorted((m["To"], m["Subject"]) for m in new) == sorted(
        [
            (student.email, f"Session canceled: {title}, {_short(start, student)}"),
            (coach.email, f"Canceled: {title} with {student.name}, {_short(start, coach)}"),
        ]
    )
    [message] = [m for m in new if m["To"] == student.email]
    assert "Full refund: $100.00." in message.get_body(("plain",)).get_content()
    calendar = _calendar(message)
    assert str(calendar["METHOD"]) == "CANCEL"
    [event] = calendar.walk("VEVENT")
    assert (str(event["UID"]), int(event["SEQUENCE"]), str(event["STATUS"])) == (
        f"session-{session.pk}@coachbook",
        session.sequence,
        "CANCELLED",
    )
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 1)
    assert Delivery.objects.filter(event__action=Action.CANCEL).count() == 2


def _short(start, user) -> str:
    from notifications.emails import format_short

    return format_short(start, user)


# --- a worker killed in the middle of a send ---------------------------------------------------


class SilentMailServer:
    """Accepts SMTP connections and never answers: a send hangs until its worker is killed."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(client)

    def close(self):
        self.sock.close()
        for client in self.accepted:
            client.close()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_send_loses_nothing_and_the_sweep_sends_it_once(start_worker, tmp_path):
    coach = CoachFactory(timezone="Europe/Berlin")
    student = StudentFactory(timezone="America/New_York")
    start = (timezone.now() + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    session = _confirmed_session(coach, student, start)  # this process's broker is in memory
    pending = list(Delivery.objects.order_by("pk"))
    # Receipt, sold notice, the booking to the coach, the acceptance to both.
    assert {d.status for d in pending} == {DeliveryStatus.PENDING} and len(pending) == 5

    silent = SilentMailServer()
    try:
        doomed = start_worker(
            "doomed",
            EMAIL_URL=f"smtp://127.0.0.1:{silent.port}",
            EMAIL_TIMEOUT="120",
            NOTIFICATIONS_CLAIM_LEASE_SECONDS="5",
            JOBS_DELIVERIES_EVERY_SECONDS="1",
        )

        def claimed():
            assert doomed.poll() is None, "the doomed worker exited"
            rows = list(Delivery.objects.filter(claimed_until__isnull=False))
            return rows if rows and silent.accepted else None

        [claimed_row] = _wait_for(claimed, "a worker to claim a delivery and hang in its send")
        os.killpg(doomed.pid, signal.SIGKILL)  # the worker, its pool and its beat, mid-send
        doomed.wait(10)
    finally:
        silent.close()
    assert (claimed_row.status, claimed_row.attempts) == (DeliveryStatus.PENDING, 1)

    mail_dir = _mail_dir(tmp_path)
    survivor = start_worker(
        "survivor", EMAIL_URL=_email_url(mail_dir), JOBS_DELIVERIES_EVERY_SECONDS="1"
    )

    def all_sent():
        assert survivor.poll() is None, "the worker exited"
        return not Delivery.objects.exclude(status=DeliveryStatus.SENT).exists()

    _wait_for(all_sent, "the sweep to send what the killed worker left, once its lease ran out")
    time.sleep(3)  # more sweeps: nothing is sent twice

    sent_ids = sorted(int(m["X-Coachbook-Delivery"]) for m in _emails(mail_dir))
    assert sent_ids == sorted(d.pk for d in pending)  # each delivery exactly once
    claimed_row.refresh_from_db()
    assert (claimed_row.status, claimed_row.attempts) == (DeliveryStatus.SENT, 2)
    assert claimed_row.sent_at >= claimed_row.created_at
    assert session.status == Status.CONFIRMED
