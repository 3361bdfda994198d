"""The fail-open Redis cache, against a port where nothing listens and a socket that never
answers: every operation answers as an empty cache that lets the caller go ahead, quickly, with
one warning in the log."""

import logging
import socket
import time

import pytest

from core import cache as core_cache
from core.cache import FailOpenRedisCache
from scripts.pgcluster import free_port
from tests.test_settings import run_settings


@pytest.fixture(autouse=True)
def _fresh_warning(monkeypatch):
    monkeypatch.setattr(core_cache._warnings, "at", None)
    monkeypatch.setattr(core_cache._warnings, "failures", 0)


@pytest.fixture
def refused():
    """A cache on a loopback port where nothing listens (connection refused)."""
    return FailOpenRedisCache(f"redis://127.0.0.1:{free_port()}/0", {})


@pytest.fixture
def silent():
    """A cache on a socket that accepts connections and never answers (a hung Redis)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    yield FailOpenRedisCache(
        f"redis://127.0.0.1:{port}/0",
        {"OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}},
    )
    listener.close()


def test_every_operation_answers_as_an_empty_cache_that_lets_the_caller_go_ahead(refused):
    started = time.monotonic()

    answers = {
        "get": refused.get("k", "default"),
        "add": refused.add("k", 1, timeout=60),
        "set": refused.set("k", 1),
        "touch": refused.touch("k"),
        "delete": refused.delete("k"),
        "get_many": refused.get_many(["a", "b"]),
        "has_key": refused.has_key("k"),
        "incr": refused.incr("k", 3),
        "decr": refused.decr("k"),
        "set_many": refused.set_many({"a": 1, "b": 2}),
        "delete_many": refused.delete_many(["a", "b"]),
        "get_or_set": refused.get_or_set("k", 7),
        "clear": refused.clear(),
    }

    assert answers == {
        "get": "default",
        "add": True,
        "set": None,
        "touch": False,
        "delete": False,
        "get_many": {},
        "has_key": False,
        "incr": 3,
        "decr": -1,
        "set_many": ["a", "b"],
        "delete_many": None,
        "get_or_set": 7,
        "clear": False,
    }
    assert time.monotonic() - started < 2  # refused at once, never retried


def test_a_redis_that_never_answers_times_out_and_lets_the_caller_go_ahead(silent):
    started = time.monotonic()

    claimed = silent.add("coachbook:calendar-sync:coach:1", 1, timeout=60)

    assert claimed is True
    assert time.monotonic() - started < 1.5  # the socket timeout, not a hung request


def test_one_warning_per_interval_counts_the_operations_that_failed_open(refused, caplog):
    caplog.set_level(logging.WARNING, logger="core.cache")

    for _ in range(3):
        refused.get("k")
    core_cache._warnings.at -= core_cache.WARN_EVERY_SECONDS  # a minute later
    refused.add("k", 1)

    messages = [r.getMessage() for r in caplog.records if r.name == "core.cache"]
    assert len(messages) == 2
    assert messages[0].startswith("Redis cache unreachable (get: Error 111 connecting")
    assert "1 cache operation(s) failed open" in messages[0]
    assert messages[1].startswith("Redis cache unreachable (add: ")
    assert "3 cache operation(s) failed open" in messages[1]  # two gets, then this add


_PRINT_CACHE = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.CACHES['default']['BACKEND'])"
)


@pytest.mark.parametrize(
    ("env", "backend"),
    [
        ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, "core.cache.FailOpenRedisCache"),
        ({}, "django.core.cache.backends.locmem.LocMemCache"),  # make run: no Redis needed
    ],
)
def test_settings_use_the_fail_open_backend_when_redis_url_is_set(env, backend):
    result = run_settings(_PRINT_CACHE, **env)

    assert (result.returncode, result.stdout.strip()) == (0, backend), result.stderr
