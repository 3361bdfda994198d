"""Shared test set-up: fast hashing, in-memory email, and honest skips for missing components.

A test that needs a component this machine lacks (PostgreSQL, redis-server, Chromium) calls
`require_component`: it skips with the reason on a developer's machine and fails in CI, where
`COACHBOOK_REQUIRE_ALL=1` forbids such skips.
"""

import os
import threading

import pytest
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.db import connection

from scripts.screenshots import chromium_path  # noqa: F401  (one lookup for tests and the script)
from tests.factories import CoachFactory, StudentFactory

REQUIRE_ALL = os.environ.get("COACHBOOK_REQUIRE_ALL") == "1"


def require_component(available: bool, reason: str) -> None:
    if available:
        return
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (COACHBOOK_REQUIRE_ALL=1 forbids skipping)")
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items):
    if connection.vendor == "postgresql":
        return
    # PostgreSQL-only tests run in the second pass of `make test` (python -m scripts.pgcluster).
    skip = pytest.mark.skip(reason="PostgreSQL-only: runs in the PostgreSQL pass of make test")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _test_settings(settings):
    # Every test starts with an empty cache: ids and a frozen clock repeat between tests, so a
    # fragment or feed cached by one could otherwise be served to the next.
    cache.clear()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def coaches_decide_refunds(settings):
    """Coaches without a saved policy choose each cancel's refund freely (the coach-side rule
    "coach_decides"), as before policies existed: for tests about the refund drawer's money
    rather than about policies (tests/policies)."""
    settings.CANCELLATION_POLICY_DEFAULTS = {"coach_cancel_rule": "coach_decides"}


@pytest.fixture(autouse=True, scope="session")
def _celery_memory_broker():
    """Tasks queued by tests (on_commit notifications) go to an in-memory broker, never to the
    developer's .celery/ queue or a Redis. Tests that run tasks turn on eager mode themselves."""
    from config.celery import app

    app.conf.broker_url = "memory://localhost/"
    app.conf.broker_transport_options = {}
    yield


# --- shared helpers and fixtures ---------------------------------------------------------------


def race(count: int, act) -> list:
    """Run act(index) in `count` threads released at once; each result or raised exception.

    Each thread closes its own database connection; a thread still running after a minute
    fails the test.
    """
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = act(index)
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racing thread hung"
    return results


def messages_of(response) -> list[str]:
    """The flash messages the request that made `response` queued, as text."""
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def coach():
    """A coach; a test module overrides this fixture for a particular timezone or name."""
    return CoachFactory()


@pytest.fixture
def student():
    """A student; a test module overrides this fixture for a particular timezone or name."""
    return StudentFactory()


@pytest.fixture
def coach_client(client, coach):
    client.force_login(coach)
    return client


@pytest.fixture
def student_client(client, student):
    client.force_login(student)
    return client


@pytest.fixture
def celery_eager():
    """Run Celery tasks in-process, errors propagating, with a clean claim cache."""
    from config.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    cache.clear()
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


# --- a Stripe-compatible server (localstripe) ---------------------------------------------------


@pytest.fixture(scope="session")
def localstripe():
    """localstripe on a free loopback port for the whole test session (tests/stripe_support)."""
    from tests.stripe_support import start_localstripe

    server = start_localstripe()
    require_component(server is not None, "localstripe is not installed (pip install localstripe)")
    yield server
    server.process.terminate()
    server.process.wait(10)


@pytest.fixture
def stripe_settings(settings, localstripe):
    """Coachbook configured for Stripe, pointed at the local server."""
    from tests import stripe_support

    settings.PAYMENT_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = stripe_support.SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = stripe_support.PUBLISHABLE_KEY
    settings.STRIPE_WEBHOOK_SECRET = stripe_support.WEBHOOK_SECRET
    settings.STRIPE_API_BASE = localstripe.url
    settings.STRIPE_JS_URL = localstripe.js_url
    return settings


@pytest.fixture
def deferred_gateway(settings, monkeypatch):
    """The asynchronous test gateway (tests/fakes.py), configured: packages bought from now on
    are paid through it, and their refunds settle only when its settle task asks."""
    from refunds import gateways
    from tests.fakes import DeferredGateway

    gateway = DeferredGateway()
    monkeypatch.setitem(gateways.GATEWAYS, "deferred", gateway)
    settings.PAYMENT_GATEWAY = "deferred"
    return gateway


def celery_pools_reset() -> None:
    """Close and forget every broker connection and producer pool of this process.

    kombu keeps its pools in process-wide registries keyed by the broker URL, so closing only
    the app's pool would leave a closed one behind for the next test that uses the same URL
    ("Acquire on closed pool"); `kombu.pools.reset()` clears the registries too.
    """
    from kombu import pools

    from config.celery import app

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
