"""A Redis cache that fails open: Redis being down never turns a page into a 500.

The cache holds only what can be lost: allauth's rate-limit counters (failed logins, sign-ups,
password resets) and short claims ("Sync now" once a minute). When Redis cannot be reached
(refused, reset, timed out, or something else answers), each operation logs a warning and
answers as an empty cache that lets the caller go ahead:

    get -> the default          get_many -> {}         has_key -> False
    add -> True (claimed)       set / set_many / delete / delete_many / touch / clear: no-op
    incr -> delta (a fresh counter)

So logging in works with Redis down (the rate limit is not applied until Redis is back), and
"Sync now" queues a sync (the on-commit hook logs it if the broker is down too). Errors that
are not about reaching Redis (a bad key, a wrong type) still raise.

Connecting and each command give up after `socket_connect_timeout` / `socket_timeout` seconds
(OPTIONS; 1 and 2 here unless set), and no command is retried, so a dead Redis costs a request
milliseconds (refused) or a couple of seconds (unreachable host), not a hung worker. One
warning per process per WARN_EVERY_SECONDS is logged, with how many operations failed since.

    CACHES = {"default": {"BACKEND": "core.cache.FailOpenRedisCache", "LOCATION": REDIS_URL}}
"""

import logging
import threading
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import AuthenticationError, InvalidResponse, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# Refused, reset, timed out, still loading, something that does not speak Redis answered, or a
# replica that turned read-only after a failover.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, InvalidResponse, ReadOnlyError)
DEFAULT_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 2, "retry_on_timeout": False}
WARN_EVERY_SECONDS = 60.0


class _Warnings:
    """How many operations failed open since the last warning, and when that was."""

    lock = threading.Lock()
    failures = 0
    at: float | None = None


_warnings = _Warnings()


class FailOpenRedisCache(RedisCache):
    """Django's RedisCache, answering as an empty cache while Redis cannot be reached."""

    def __init__(self, server, params):
        params = {**params, "OPTIONS": {**DEFAULT_OPTIONS, **params.get("OPTIONS", {})}}
        options = params["OPTIONS"]
        if "retry" not in options:
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            options["retry"] = Retry(NoBackoff(), 0)  # fail fast; the caller goes ahead
        super().__init__(server, params)

    def _unreachable(self, operation: str, exc: Exception) -> None:
        if isinstance(exc, AuthenticationError):
            # A wrong password is a configuration error, not an outage: say so every time.
            logger.error(
                "Redis cache refused the credentials (%s: %s); failing open.", operation, exc
            )
            return
        # Django keeps one backend per thread; the warning is throttled per process.
        with _warnings.lock:
            _warnings.failures += 1
            now = time.monotonic()
            if _warnings.at is not None and now - _warnings.at < WARN_EVERY_SECONDS:
                return
            failures, _warnings.failures, _warnings.at = _warnings.failures, 0, now
        logger.warning(
            "Redis cache unreachable (%s: %s); %d cache operation(s) failed open since the "
            "last warning: rate limits and claims are not applied until it is back.",
            operation,
            exc,
            failures,
        )

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().add(key, value, timeout, version)
        except UNREACHABLE as exc:
            self._unreachable("add", exc)
            return True

    def get(self, key, default=None, version=None):
        try:
            return super().get(key, default, version)
        except UNREACHABLE as exc:
            self._unreachable("get", exc)
            return default

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            super().set(key, value, timeout, version)
        except UNREACHABLE as exc:
            self._unreachable("set", exc)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().touch(key, timeout, version)
        except UNREACHABLE as exc:
            self._unreachable("touch", exc)
            return False

    def delete(self, key, version=None):
        try:
            return super().delete(key, version)
        except UNREACHABLE as exc:
            self._unreachable("delete", exc)
            return False

    def get_many(self, keys, version=None):
        try:
            return super().get_many(keys, version)
        except UNREACHABLE as exc:
            self._unreachable("get_many", exc)
            return {}

    def has_key(self, key, version=None):
        try:
            return super().has_key(key, version)
        except UNREACHABLE as exc:
            self._unreachable("has_key", exc)
            return False

    def incr(self, key, delta=1, version=None):
        try:
            return super().incr(key, delta, version)
        except UNREACHABLE as exc:
            self._unreachable("incr", exc)
            return delta

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().set_many(data, timeout, version)
        except UNREACHABLE as exc:
            self._unreachable("set_many", exc)
            return list(data)  # the keys that were not stored

    def delete_many(self, keys, version=None):
        try:
            super().delete_many(keys, version)
        except UNREACHABLE as exc:
            self._unreachable("delete_many", exc)

    def clear(self):
        try:
            return super().clear()
        except UNREACHABLE as exc:
            self._unreachable("clear", exc)
            return False
