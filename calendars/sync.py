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
- no proxies from the environment;
- one absolute deadline per fetch (`settings.CALENDAR_SYNC_TIMEOUT` seconds, 10): connecting,
  the TLS handshake, the request, the status line, the headers, every redirect and the body all
  count against it; before every read the socket's timeout is set to the time left, so a server
  that drips a byte at a time is cut at the deadline, not after a timeout per byte;
- at most `settings.CALENDAR_SYNC_MAX_BYTES` (2 MB) are read.
"""

import http.client
import ipaddress
import logging
import select
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
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


class Deadline:
    """One absolute moment (time.monotonic) a whole fetch must end by."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        """The seconds left; `TimeoutError` once there are none."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the fetch's deadline has passed")
        return left


class _DeadlineArmed:
    """Sets the socket's timeout to the time left before every read and write (a mixin for
    the plain and the TLS socket)."""

    deadline: Deadline | None = None

    def _arm(self) -> None:
        if self.deadline is not None:
            self.settimeout(self.deadline.remaining())

    def recv(self, *args, **kwargs):
        self._arm()
        return super().recv(*args, **kwargs)

    def recv_into(self, *args, **kwargs):
        self._arm()
        return super().recv_into(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        self._arm()
        return super().sendall(*args, **kwargs)


class _DeadlineSocket(_DeadlineArmed, socket.socket):
    """A socket whose timeout is set to the time left before every read and write."""


class _DeadlineSSLSocket(_DeadlineArmed, ssl.SSLSocket):
    """The TLS counterpart of `_DeadlineSocket` (made by the context, `sslsocket_class`)."""

    def read(self, *args, **kwargs):
        self._arm()
        return super().read(*args, **kwargs)


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.sslsocket_class = _DeadlineSSLSocket
    return context


def _handshake(sock: ssl.SSLSocket, deadline: Deadline) -> None:
    """The TLS handshake, non-blocking, waiting at most until the deadline in all (a blocking
    handshake would wait a full timeout for every dripped byte)."""
    sock.settimeout(0)
    while True:
        try:
            sock.do_handshake()
            return
        except ssl.SSLWantReadError:
            ready = select.select([sock], [], [], deadline.remaining())[0]
        except ssl.SSLWantWriteError:
            ready = select.select([], [sock], [], deadline.remaining())[1]
        if not ready:
            raise TimeoutError("the TLS handshake did not finish in time")


def resolve(host: str, port: int | None, *, allow_private: bool) -> list:
    """`socket.getaddrinfo` for a calendar's host, refused (`CalendarFetchError`: not found,
    `AddressRefused`: not public) as the sync refuses it. Used at Add too (nothing fetched)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise CalendarFetchError(f"The host {host} could not be found.") from exc
    if not allow_private:
        for info in infos:
            if not address_is_public(info[4][0]):
                logger.warning("calendar sync refused %s (%s)", host, info[4][0])
                raise AddressRefused()
    return infos


def check_address(url: str, *, allow_private: bool | None = None) -> str:
    """`normalize_url`, then the host resolved and checked as a fetch would check it (without
    fetching anything): the address as it will be fetched, or `CalendarFetchError`."""
    url = normalize_url(url)
    if allow_private is None:
        allow_private = bool(_setting("CALENDAR_SYNC_ALLOW_PRIVATE", False))
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise CalendarFetchError("That is not a valid web address.") from exc
    resolve(
        parts.hostname or "",
        port or (443 if parts.scheme == "https" else 80),
        allow_private=allow_private,
    )
    return url


def _guarded_create_connection(allow_private: bool, deadline: Deadline | None = None):
    """A replacement for `socket.create_connection` that connects only to checked addresses
    (and, given a deadline, returns a socket that keeps to it)."""

    def connect(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None):
        host, port = address
        infos = resolve(host, port, allow_private=allow_private)
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in infos:
            sock = _DeadlineSocket(family, kind, proto)
            sock.deadline = deadline
            try:
                if deadline is not None:
                    sock.settimeout(deadline.remaining())
                elif timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
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
    def __init__(self, *args, allow_private: bool, deadline: Deadline | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _guarded_create_connection(allow_private, deadline)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, allow_private: bool, deadline: Deadline | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._deadline = deadline
        self._create_connection = _guarded_create_connection(allow_private, deadline)

    def connect(self):
        http.client.HTTPConnection.connect(self)  # TCP only (no proxy tunnel here, ever)
        sock = self._context.wrap_socket(
            self.sock, server_hostname=self.host, do_handshake_on_connect=False
        )
        self.sock = sock
        if self._deadline is not None:
            sock.deadline = self._deadline
            _handshake(sock, self._deadline)
            sock.settimeout(self._deadline.remaining())
        else:
            sock.do_handshake()


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allow_private: bool, deadline: Deadline | None = None):
        super().__init__()
        self.allow_private = allow_private
        self.deadline = deadline

    def http_open(self, req):
        def factory(host, **kwargs):
            return _GuardedHTTPConnection(
                host, allow_private=self.allow_private, deadline=self.deadline, **kwargs
            )

        return self.do_open(factory, req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allow_private: bool, deadline: Deadline | None = None):
        super().__init__(context=_tls_context())
        self.allow_private = allow_private
        self.deadline = deadline

    def https_open(self, req):
        def factory(host, **kwargs):
            return _GuardedHTTPSConnection(
                host, allow_private=self.allow_private, deadline=self.deadline, **kwargs
            )

        return self.do_open(factory, req, context=self._context)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ALLOWED_SCHEMES:
            raise CalendarFetchError("The calendar address redirected to an unsupported address.")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(allow_private: bool, deadline: Deadline | None = None) -> urllib.request.OpenerDirector:
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler({}),  # never through a proxy from the environment
        urllib.request.UnknownHandler(),
        _GuardedHTTPHandler(allow_private, deadline),
        _GuardedHTTPSHandler(allow_private, deadline),
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
    """GET a calendar file, guarded as the module docstring says; `CalendarFetchError` if not.

    `timeout` (default CALENDAR_SYNC_TIMEOUT) is the whole fetch's: it ends by then, whatever
    the server does (name resolution aside, which the system's resolver bounds)."""
    url = normalize_url(url)
    timeout = sync_timeout() if timeout is None else timeout
    max_bytes = sync_max_bytes() if max_bytes is None else max_bytes
    if allow_private is None:
        allow_private = bool(_setting("CALENDAR_SYNC_ALLOW_PRIVATE", False))
    host = urllib.parse.urlsplit(url).hostname
    request = urllib.request.Request(
        url, headers={"User-Agent": USER_AGENT, "Accept": "text/calendar, */*;q=0.5"}
    )
    deadline = Deadline(timeout)
    try:
        with _opener(allow_private, deadline).open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise _too_big(max_bytes)
            chunks, size = [], 0
            while True:
                # read1: one receive at a time, each given only the time left.
                try:
                    chunk = response.read1(64 * 1024)
                except TimeoutError as exc:
                    raise CalendarFetchError(f"{host} took too long to send the calendar.") from exc
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise _too_big(max_bytes)
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

# What a calendar a run did not finish records (`FetchOutcome.error`, then `last_error`).
NOT_REACHED = (
    "Not reached in this run: the sync ran out of time before this calendar's turn; it is "
    "read first in the next run."
)
NOT_FINISHED = (
    "Not finished in this run: the sync ran out of time while this calendar was being read; "
    "it is tried again in the next run."
)
# How long past a fetch's own deadline a run waits for the fetches under way (they end by
# themselves at their deadline; this is only slack for the thread to return).
FETCH_GRACE_SECONDS = 2.0
MAX_NOTES = 20
MAX_NOTE_CHARS = 300


@dataclass
class FetchOutcome:
    calendar_id: int
    busy: list[Interval] | None = None
    error: str = ""
    events: int = 0
    # What the reading skipped or repaired, and why, for the coach (ics_import.CalendarRead).
    notes: list[str] = field(default_factory=list)
    # False for a calendar the run never got to (its last attempt stays what it was).
    attempted: bool = True

    @property
    def ok(self) -> bool:
        return self.busy is not None


def bounded_notes(notes) -> list[str]:
    """The reader's notes as stored on the calendar: at most MAX_NOTES sentences of at most
    MAX_NOTE_CHARS characters (the last one says how many more there were)."""
    notes = [str(note).strip() for note in notes or () if str(note).strip()]
    clipped = [
        note if len(note) <= MAX_NOTE_CHARS else note[: MAX_NOTE_CHARS - 1] + "…"
        for note in notes[:MAX_NOTES]
    ]
    if len(notes) > MAX_NOTES:
        clipped[-1] = f"…and {len(notes) - MAX_NOTES + 1} more notes like these."
    return clipped


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
    return FetchOutcome(
        calendar_id, busy=read.busy, events=len(read.busy), notes=list(read.notes or [])
    )


def fetch_as_completed(
    jobs: list[dict],
    *,
    workers: int | None = None,
    budget: float | None = None,
    started: set | None = None,
) -> Iterator[FetchOutcome]:
    """`fetch_busy` for each job (its keyword arguments), several at once, started in the
    jobs' order; yields each outcome as soon as it is ready.

    `budget`: seconds from now after which no fetch is started any more; each job not
    started by then yields a `NOT_REACHED` outcome (`attempted=False`). Fetches under way are
    waited for (each ends by itself at its own deadline, CALENDAR_SYNC_TIMEOUT) up to that
    deadline plus FETCH_GRACE_SECONDS; one still running then yields `NOT_FINISHED`. So
    every job yields exactly one outcome, and no fetch thread outlives the run by more than
    its own deadline. `started` (optional) collects the calendar ids whose fetch began.

    If the caller stops early (or is interrupted), fetches not yet started are cancelled and
    those under way are waited for, up to their deadline plus the grace.
    """
    if not jobs:
        return
    workers = workers or int(_setting("CALENDAR_SYNC_WORKERS", 8))
    run_ends = None if budget is None else time.monotonic() + budget
    grace = sync_timeout() + FETCH_GRACE_SECONDS

    def run(job: dict) -> FetchOutcome:
        if started is not None:
            started.add(job["calendar_id"])
        return fetch_busy(**job)

    if len(jobs) == 1 or workers <= 1:
        for job in jobs:
            if run_ends is not None and time.monotonic() >= run_ends:
                yield FetchOutcome(job["calendar_id"], error=NOT_REACHED, attempted=False)
            else:
                yield run(job)
        return
    pool = ThreadPoolExecutor(max_workers=min(workers, len(jobs)))
    futures: dict = {}
    try:
        futures = {pool.submit(run, job): job["calendar_id"] for job in jobs}
        pending = set(futures)
        waiting_until = None  # once the budget is spent: the end of the wait for the rest
        while pending:
            timeout = None
            if run_ends is not None and waiting_until is None:
                timeout = run_ends - time.monotonic()
                if timeout <= 0:
                    for future in list(pending):
                        if future.cancel():
                            pending.discard(future)
                            yield FetchOutcome(futures[future], error=NOT_REACHED, attempted=False)
                    waiting_until = time.monotonic() + grace
                    continue
            elif waiting_until is not None:
                timeout = waiting_until - time.monotonic()
                if timeout <= 0:
                    for future in pending:
                        logger.warning("calendar %s: fetch still running", futures[future])
                        yield FetchOutcome(futures[future], error=NOT_FINISHED)
                    return
            done, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        for future in futures:
            future.cancel()
        running = [future for future in futures if not future.done()]
        if running:
            wait(running, timeout=grace)  # they end by themselves, at their deadline
        pool.shutdown(wait=False, cancel_futures=True)
