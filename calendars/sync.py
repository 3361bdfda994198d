"""Fetching and reading coaches' external calendars (their secret iCal addresses elsewhere).

No database writes here: `calendars.services.external_calendars_sync` calls these functions,
then stores what each calendar says as the coach's busy times. Everything that touches the
network is guarded:

- only http and https (a `webcal://` address is read as https);
- the host is resolved and every address it resolves to must be public: private, loopback,
  link-local, shared, reserved, multicast and unspecified addresses are refused, unless
  `settings.CALENDAR_SYNC_ALLOW_PRIVATE` is true (tests serve feeds from 127.0.0.1). The
  connection is then made to the address that was checked, so a DNS answer that changes
  between check and connect cannot smuggle a private address in, and every redirect (at most
  five, http/https only) goes through the same check;
- no proxies from the environment; a per-operation timeout and an overall deadline;
- at most `settings.CALENDAR_SYNC_MAX_BYTES` (2 MB) are read.
"""

import http.client
import ipaddress
import logging
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from calendars.errors import AddressRefused, CalendarFetchError
from calendars.intervals import Interval, merge, overlaps  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

ALLOWED_SCHEMES = ("http", "https")
MAX_REDIRECTS = 5
USER_AGENT = "Coachbook-calendar-sync/1.0"


def _setting(name: str, default):
    return getattr(settings, name, default)


def sync_timeout() -> float:
    return float(_setting("CALENDAR_SYNC_TIMEOUT", 10))


def sync_max_bytes() -> int:
    return int(_setting("CALENDAR_SYNC_MAX_BYTES", 2 * 1024 * 1024))


def sync_every_words() -> str:
    """How often the periodic sync runs (CALENDAR_SYNC_EVERY_SECONDS), in words: "every 15
    minutes", "every hour", "every 90 seconds"."""
    seconds = max(1, int(_setting("CALENDAR_SYNC_EVERY_SECONDS", 15 * 60)))
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = seconds // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    raise AssertionError("unreachable")  # pragma: no cover


# --- addresses ----------------------------------------------------------------------------------


def normalize_url(url: str) -> str:
    """A calendar address as it will be fetched, or `CalendarFetchError` saying what is wrong.

    `webcal://` (what Apple and Outlook hand out) becomes `https://`; anything but http and
    https is refused.
    """
    url = (url or "").strip()
    if not url:
        raise CalendarFetchError("Enter the calendar's address.")
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in ("webcal", "webcals"):
        url = f"https://{rest}"
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise CalendarFetchError(
            "Only http:// and https:// calendar addresses (or webcal://) can be synced."
        )
    if len(url) > 2000:
        raise CalendarFetchError("That address is too long.")
    try:
        URLValidator(schemes=list(ALLOWED_SCHEMES))(url)
    except ValidationError as exc:
        raise CalendarFetchError("That is not a valid web address.") from exc
    if urllib.parse.urlsplit(url).username is not None:
        raise CalendarFetchError("Addresses with a user name or password cannot be synced.")
    return url


def address_is_public(address: str) -> bool:
    """Whether an IP address is on the public internet (not private, local or reserved)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


def _guarded_create_connection(allow_private: bool):
    """A replacement for `socket.create_connection` that connects only to checked addresses."""

    def connect(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None):
        host, port = address
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise CalendarFetchError(f"The host {host} could not be found.") from exc
        if not allow_private:
            for info in infos:
                if not address_is_public(info[4][0]):
                    logger.warning("calendar sync refused %s (%s)", host, info[4][0])
                    raise AddressRefused()
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                error = exc
                sock.close()
        raise error or OSError(f"no address for {host}")

    return connect


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, allow_private: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _guarded_create_connection(allow_private)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, allow_private: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _guarded_create_connection(allow_private)


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allow_private: bool):
        super().__init__()
        self.allow_private = allow_private

    def http_open(self, req):
        def factory(host, **kwargs):
            return _GuardedHTTPConnection(host, allow_private=self.allow_private, **kwargs)

        return self.do_open(factory, req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allow_private: bool):
        super().__init__(context=ssl.create_default_context())
        self.allow_private = allow_private

    def https_open(self, req):
        def factory(host, **kwargs):
            return _GuardedHTTPSConnection(host, allow_private=self.allow_private, **kwargs)

        return self.do_open(factory, req, context=self._context)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ALLOWED_SCHEMES:
            raise CalendarFetchError("The calendar address redirected to an unsupported address.")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(allow_private: bool) -> urllib.request.OpenerDirector:
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler({}),  # never through a proxy from the environment
        urllib.request.UnknownHandler(),
        _GuardedHTTPHandler(allow_private),
        _GuardedHTTPSHandler(allow_private),
        urllib.request.HTTPDefaultErrorHandler(),
        _RedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


# --- fetching -----------------------------------------------------------------------------------


def fetch(
    url: str,
    *,
    timeout: float | None = None,
    max_bytes: int | None = None,
    allow_private: bool | None = None,
) -> bytes:
    """GET a calendar file, guarded as the module docstring says; `CalendarFetchError` if not."""
    url = normalize_url(url)
    timeout = sync_timeout() if timeout is None else timeout
    max_bytes = sync_max_bytes() if max_bytes is None else max_bytes
    if allow_private is None:
        allow_private = bool(_setting("CALENDAR_SYNC_ALLOW_PRIVATE", False))
    host = urllib.parse.urlsplit(url).hostname
    request = urllib.request.Request(
        url, headers={"User-Agent": USER_AGENT, "Accept": "text/calendar, */*;q=0.5"}
    )
    deadline = time.monotonic() + timeout * 3
    try:
        with _opener(allow_private).open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise _too_big(max_bytes)
            chunks, size = [], 0
            while True:
                # read1: one receive at a time, so the deadline holds against a slow drip.
                chunk = response.read1(64 * 1024)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise _too_big(max_bytes)
                if time.monotonic() > deadline:
                    raise CalendarFetchError(f"{host} took too long to send the calendar.")
                chunks.append(chunk)
    except CalendarFetchError:
        raise
    except urllib.error.HTTPError as exc:
        raise CalendarFetchError(
            f"{host} answered {exc.code} {exc.reason}: check that the address is still valid."
        ) from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, CalendarFetchError):
            raise reason from exc
        if isinstance(reason, TimeoutError | socket.timeout):
            raise CalendarFetchError(f"{host} did not answer in time.") from exc
        raise CalendarFetchError(f"Could not connect to {host}: {reason}.") from exc
    except TimeoutError as exc:
        raise CalendarFetchError(f"{host} did not answer in time.") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise CalendarFetchError(f"Reading from {host} failed: {exc}.") from exc
    return b"".join(chunks)


def _too_big(max_bytes: int) -> CalendarFetchError:
    return CalendarFetchError(
        f"The calendar file is larger than {max_bytes // (1024 * 1024) or 1} MB; "
        "export a shorter calendar."
    )


# --- reading: calendars/ics_import.py --------------------------------------------------------

# Re-exported: the callers and tests of the reading code found it here first.
from calendars.ics_import import MAX_BUSY_TIMES, busy_intervals, read_calendar  # noqa: E402,F401


@dataclass
class FetchOutcome:
    calendar_id: int
    busy: list[Interval] | None = None
    error: str = ""
    events: int = 0
    # What the reading skipped or repaired, and why, for the coach (ics_import.CalendarRead).
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.busy is not None


def fetch_busy(
    *, calendar_id: int, url: str, start: datetime, end: datetime, tz: ZoneInfo
) -> FetchOutcome:
    """Fetch and read one calendar; never raises (the error is in the outcome), except for
    Celery's `SoftTimeLimitExceeded`, which stops the whole sync."""
    try:
        read = read_calendar(fetch(url), start=start, end=end, tz=tz)
    except CalendarFetchError as exc:
        return FetchOutcome(calendar_id, error=exc.message)
    except SoftTimeLimitExceeded:
        raise  # the task's time limit (an Exception too): stop, the next run carries on
    except Exception as exc:  # one broken feed must never stop the others
        logger.exception("calendar %s: unexpected sync failure", calendar_id)
        return FetchOutcome(calendar_id, error=f"Unexpected error while syncing: {exc}")
    return FetchOutcome(calendar_id, busy=read.busy, events=len(read.busy), notes=read.notes)


def fetch_as_completed(jobs: list[dict], *, workers: int | None = None) -> Iterator[FetchOutcome]:
    """`fetch_busy` for each job (its keyword arguments), several at once, started in the
    jobs' order; yields each outcome as soon as it is ready.

    If the caller stops early (or is interrupted), fetches not yet started are cancelled and
    running ones are not waited for.
    """
    if not jobs:
        return
    workers = workers or int(_setting("CALENDAR_SYNC_WORKERS", 8))
    if len(jobs) == 1 or workers <= 1:
        for job in jobs:
            yield fetch_busy(**job)
        return
    pool = ThreadPoolExecutor(max_workers=min(workers, len(jobs)))
    try:
        futures = [pool.submit(fetch_busy, **job) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
