"""Redis down is survivable: with REDIS_URL's cache (`core.cache.FailOpenRedisCache`) on a real
redis-server that is then stopped, logging in through allauth's page still works (its rate
limits fail open, with a warning in the log) and "Sync now" answers with a message, with the
broker on that dead Redis too. Nothing answers a 500."""

import logging
import shutil
import subprocess
import time

import pytest
import redis
from django.core.cache import cache
from django.urls import reverse

from core import cache as core_cache
from scripts.pgcluster import free_port
from tests.conftest import celery_pools_reset, messages_of, require_component
from tests.factories import PASSWORD, CoachFactory, StudentFactory

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

SYNC_NOW_QUEUED = "Syncing now; refresh this page in a minute to see the result."


class RedisServer:
    """A throwaway redis-server on a free loopback port that a test can stop."""

    def __init__(self, directory, port: int | None = None):
        server = shutil.which("redis-server")
        require_component(server is not None, "redis-server is not installed")
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                server,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._wait(lambda: self.pings(), "redis-server to answer")

    def pings(self) -> bool:
        try:
            return redis.Redis.from_url(self.url, socket_connect_timeout=1).ping()
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self._wait(lambda: not self.pings(), "redis-server to stop")

    @staticmethod
    def _wait(condition, what: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_cache(settings, redis_server, monkeypatch):
    """settings.CACHES as config/settings.py makes it when REDIS_URL is set (and the backend's
    once-a-minute warning not yet given in this process)."""
    monkeypatch.setattr(core_cache._warnings, "at", None)
    settings.CACHES = {
        "default": {"BACKEND": "core.cache.FailOpenRedisCache", "LOCATION": redis_server.url}
    }
    cache.clear()
    return redis_server


@pytest.fixture
def broker_on(redis_server):
    """Celery's broker on the test's redis-server (the suite uses an in-memory one)."""
    from config.celery import app

    def point_at(url: str) -> None:
        celery_pools_reset()
        app.conf.broker_url = url

    previous = app.conf.broker_url
    point_at(redis_server.url)
    yield app
    point_at(previous)


def _log_in(client, user):
    return client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})


def test_the_cache_is_redis_while_it_is_up(redis_cache):
    cache.set("coachbook:probe", 42)

    assert redis.Redis.from_url(redis_cache.url).exists(cache.make_key("coachbook:probe")) == 1
    assert cache.get("coachbook:probe") == 42


def test_errors_that_are_not_about_reaching_redis_still_raise(redis_cache):
    with pytest.raises(ValueError, match="not found"):
        cache.incr("coachbook:no-such-counter")


def test_failed_logins_are_rate_limited_in_redis_while_it_is_up(client, redis_cache):
    user = StudentFactory()
    for _ in range(5):
        client.post(reverse("account_login"), {"login": user.email, "password": "wrong"})

    response = _log_in(client, user)

    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()
    assert redis.Redis.from_url(redis_cache.url).dbsize() > 0  # the counters live in Redis


def test_after_redis_comes_back_the_rate_limit_applies_again(client, redis_cache, tmp_path):
    user = StudentFactory()
    redis_cache.stop()
    assert _log_in(client, user).status_code == 302
    client.logout()
    back = RedisServer(tmp_path / "again", port=redis_cache.port)
    try:
        for _ in range(5):
            client.post(reverse("account_login"), {"login": user.email, "password": "wrong"})
        response = _log_in(client, user)
    finally:
        back.stop()

    assert "Too many failed login attempts" in response.content.decode()


def test_logging_in_works_with_redis_stopped(client, redis_cache, caplog):
    user = StudentFactory()
    redis_cache.stop()
    caplog.set_level(logging.WARNING, logger="core.cache")

    response = _log_in(client, user)

    assert (response.status_code, response["Location"]) == (302, reverse("home"))
    assert int(client.session["_auth_user_id"]) == user.pk
    assert "Redis cache unreachable" in caplog.text


def test_a_wrong_password_with_redis_stopped_is_a_form_error_not_a_500(client, redis_cache):
    user = StudentFactory()
    redis_cache.stop()

    response = client.post(reverse("account_login"), {"login": user.email, "password": "wrong"})

    assert response.status_code == 200
    assert "not correct" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_login_page_itself_shows_with_redis_stopped(client, redis_cache):
    redis_cache.stop()

    assert client.get(reverse("account_login")).status_code == 200


def test_without_the_fail_open_backend_redis_down_would_break_logging_in(
    client, settings, redis_server
):
    """What the wrapper is for: Django's own RedisCache raises, and the login page would 500."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
        }
    }
    user = StudentFactory()
    redis_server.stop()

    with pytest.raises(redis.ConnectionError):
        _log_in(client, user)


def test_sync_now_answers_with_a_message_with_cache_and_broker_stopped(
    client, redis_cache, broker_on, caplog, django_capture_on_commit_callbacks
):
    coach = CoachFactory()
    client.force_login(coach)
    redis_cache.stop()

    with django_capture_on_commit_callbacks(execute=True) as hooks:
        response = client.post(reverse("feeds:external_sync"))

    assert (response.status_code, messages_of(response)) == (302, [SYNC_NOW_QUEUED])
    assert len(hooks) == 1  # the queued sync, whose send to the dead broker failed:
    assert "After-commit step" in caplog.text  # logged, not raised
    assert "Redis cache unreachable" in caplog.text
    page = client.get(response["Location"])
    assert page.status_code == 200


def test_sync_now_with_redis_up_queues_once_a_minute(client, redis_cache):
    coach = CoachFactory()
    client.force_login(coach)

    first = client.post(reverse("feeds:external_sync"))
    second = client.post(reverse("feeds:external_sync"))

    assert messages_of(first) == [SYNC_NOW_QUEUED]
    assert messages_of(second)[-1].startswith("Your calendars were synced less than a minute ago.")
