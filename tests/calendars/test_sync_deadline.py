"""Fetching external calendars under one absolute deadline, fairly across coaches: a server that
drips bytes is cut at the deadline (status line, headers, body, TLS handshake, redirects), no
fetch thread outlives a run, a calendar a run did not finish says why and the order of work is
by last attempt, taken in turns across coaches; Add refuses what the sync would refuse, with
the same message, without fetching; the reader's notes are stored and shown."""

import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import time_machine
from django.urls import reverse

from calendars import services, sync
from calendars.forms import ExternalCalendarForm
from calendars.models import BusyTime, ExternalCalendar
from calendars.services import ExternalCalendarInvalid, external_calendars_sync
from tests.factories import CoachFactory, ExternalCalendarFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
DEADLINE = 1.0  # CALENDAR_SYNC_TIMEOUT in these tests, seconds
SLACK = 1.5  # generous: the bound is the deadline, not a timeout per byte (that would be minutes)
BUSY = (datetime(2026, 10, 22, 10, tzinfo=UTC), datetime(2026, 10, 22, 11, tzinfo=UTC))
ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VEVENT\r\nUID:a\r\n"
    b"DTSTART:20261022T100000Z\r\nDTEND:20261022T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


class DripServer:
    """A raw TCP server on 127.0.0.1: each connection is handled in a thread by one of the
    modes below, chosen by the request path (`/<mode>/...`)."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def _serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _drip(self, conn, data: bytes, every: float = 0.1):
        """Sends `data` one byte every `every` seconds, then one byte forever (until the
        client hangs up or the server stops)."""
        index = 0
        while not self.stopped.is_set():
            byte = data[index : index + 1] or b"x"
            index += 1
            conn.sendall(byte)
            time.sleep(every)

    def _handle(self, conn):
        try:
            with conn:
                conn.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                mode = request.split(b" ", 2)[1].split(b"/")[1].decode()
                if mode == "status":
                    self._drip(conn, b"HTTP/1.1 200 OK\r\n")
                elif mode == "headers":
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    self._drip(conn, b"X-Slow: " + b"a" * 10_000)
                elif mode == "body":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                    self._drip(conn, b"BEGIN:VCALENDAR\r\n")
                elif mode == "hop":
                    # Each hop answers after 0.4 s: five of them are more than one deadline.
                    time.sleep(0.4)
                    conn.sendall(
                        b"HTTP/1.1 302 Found\r\nLocation: /hop/again\r\n"
                        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                elif mode == "good":
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/calendar\r\nContent-Length: "
                        + str(len(ICS)).encode()
                        + b"\r\nConnection: close\r\n\r\n"
                        + ICS
                    )
        except OSError:
            pass  # the client hung up: what a cut fetch does

    def close(self):
        self.stopped.set()
        self.listener.close()
        self.thread.join(timeout=2)


@pytest.fixture(scope="module")
def drip():
    server = DripServer()
    yield server
    server.close()


@pytest.fixture
def local(settings):
    settings.CALENDAR_SYNC_ALLOW_PRIVATE = True
    settings.CALENDAR_SYNC_TIMEOUT = DEADLINE


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def timed(function, *args, **kwargs):
    started = time.monotonic()
    try:
        return function(*args, **kwargs), time.monotonic() - started
    except Exception as exc:
        return exc, time.monotonic() - started


def pool_threads() -> set:
    return {thread for thread in threading.enumerate() if thread.name.startswith("ThreadPool")}


# --- one deadline per fetch -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/status/a.ics", "127.0.0.1 did not answer in time."),
        ("/headers/a.ics", "127.0.0.1 did not answer in time."),
        ("/body/a.ics", "127.0.0.1 took too long to send the calendar."),
        ("/hop/a.ics", "127.0.0.1 did not answer in time."),
    ],
)
def test_a_server_dripping_bytes_is_cut_at_the_deadline(drip, local, path, message):
    # One byte every 0.1 s: a timeout per read would never fire, the deadline does.
    error, elapsed = timed(sync.fetch, drip.url(path))

    assert isinstance(error, sync.CalendarFetchError), error
    assert error.message == message
    assert DEADLINE - 0.05 <= elapsed < DEADLINE + SLACK, elapsed


def test_a_tls_handshake_that_never_finishes_is_cut_at_the_deadline(local):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        # Accepts (in the kernel) and never answers the ClientHello.
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/a.ics"
        error, elapsed = timed(sync.fetch, url)

    assert isinstance(error, sync.CalendarFetchError), error
    assert error.message == "127.0.0.1 did not answer in time."
    assert DEADLINE - 0.05 <= elapsed < DEADLINE + SLACK, elapsed


def test_a_tls_server_dripping_its_handshake_is_cut_at_the_deadline(drip, local):
    # Garbage a byte at a time where the ServerHello should be: cut at the deadline at the
    # latest (the TLS layer may refuse it sooner), never a timeout per byte.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        stop = threading.Event()

        def serve():
            conn, _ = listener.accept()
            with conn:
                while not stop.is_set():
                    try:
                        conn.sendall(b"\x16")
                    except OSError:
                        return
                    time.sleep(0.1)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        error, elapsed = timed(sync.fetch, f"https://127.0.0.1:{port}/a.ics")
        stop.set()
        thread.join(timeout=2)

    assert isinstance(error, sync.CalendarFetchError), error
    assert elapsed < DEADLINE + SLACK, elapsed


def test_a_good_calendar_is_read_within_the_deadline(drip, local):
    assert sync.fetch(drip.url("/good/a.ics")) == ICS


def test_the_deadline_is_one_for_the_whole_fetch():
    deadline = sync.Deadline(0.2)
    assert 0 < deadline.remaining() <= 0.2
    time.sleep(0.25)
    with pytest.raises(TimeoutError):
        deadline.remaining()


# --- no fetch outlives a run ----------------------------------------------------------------------


def test_fetches_under_way_are_waited_for_and_not_started_ones_say_so(drip, local):
    before = pool_threads()
    jobs = [
        {
            "calendar_id": pk,
            "url": drip.url(f"/headers/{pk}.ics"),
            "start": NOW,
            "end": NOW + timedelta(days=1),
            "tz": UTC,
        }
        for pk in range(6)
    ]

    outcomes, elapsed = timed(lambda: list(sync.fetch_as_completed(jobs, workers=2, budget=0.3)))

    by_id = {outcome.calendar_id: outcome for outcome in outcomes}
    assert sorted(by_id) == list(range(6))  # one outcome each
    assert [by_id[pk].error for pk in (0, 1)] == ["127.0.0.1 did not answer in time."] * 2
    assert {by_id[pk].error for pk in range(2, 6)} == {sync.NOT_REACHED}
    assert not any(by_id[pk].attempted for pk in range(2, 6))
    assert elapsed < DEADLINE + SLACK, elapsed
    time.sleep(0.3)  # idle workers leave on the shutdown sentinel
    assert not {thread for thread in pool_threads() - before if thread.is_alive()}


def test_a_fetch_still_running_when_the_wait_ends_says_it_did_not_finish(monkeypatch, settings):
    settings.CALENDAR_SYNC_TIMEOUT = 0.2
    monkeypatch.setattr(sync, "FETCH_GRACE_SECONDS", 0.1)
    release = threading.Event()

    def stuck(**job):  # something that ignores every deadline (it cannot happen in fetch)
        release.wait(5)
        return sync.FetchOutcome(job["calendar_id"], busy=[])

    monkeypatch.setattr(sync, "fetch_busy", stuck)
    try:
        outcomes, elapsed = timed(
            lambda: list(
                sync.fetch_as_completed(
                    [{"calendar_id": 1}, {"calendar_id": 2}], workers=2, budget=0.1
                )
            )
        )
    finally:
        release.set()

    assert [
        (o.calendar_id, o.error, o.attempted) for o in sorted(outcomes, key=lambda o: o.calendar_id)
    ] == [
        (1, sync.NOT_FINISHED, True),
        (2, sync.NOT_FINISHED, True),
    ]
    assert elapsed < 2, elapsed


# --- fair runs: order by last attempt, in turns across coaches ------------------------------------


def test_eight_dripping_calendars_cannot_delay_another_coachs_sync(drip, local, frozen, settings):
    settings.CALENDAR_SYNC_TIMEOUT = deadline = 2 * DEADLINE  # room for a loaded test machine
    slow_coach, other_coach = CoachFactory(), CoachFactory()
    slow = [
        ExternalCalendarFactory(coach=slow_coach, url=drip.url(f"/headers/{n}.ics"))
        for n in range(8)
    ]
    good = ExternalCalendarFactory(coach=other_coach, url=drip.url("/good/a.ics"))

    result, elapsed = timed(external_calendars_sync, budget=60)

    good.refresh_from_db()
    assert good.last_error == ""
    assert (good.last_synced_at, good.last_attempt_at) == (NOW, NOW)
    assert list(BusyTime.objects.filter(coach=other_coach).values_list("start", "end")) == [BUSY]
    assert (result.calendars, result.failed) == (9, 8)
    for calendar in slow:
        calendar.refresh_from_db()
        assert calendar.last_error == "127.0.0.1 did not answer in time."
        assert calendar.last_attempt_at == NOW
    # Eight at a time: the whole run is about one deadline, not eight nor ninety seconds each.
    assert deadline - 0.05 <= elapsed < deadline + SLACK + 1, elapsed
    print(f"8 dripping + 1 good calendar: run took {elapsed:.2f} s")


def test_one_coach_at_a_time_the_good_calendar_still_goes_in_the_first_round(
    drip, local, frozen, settings
):
    settings.CALENDAR_SYNC_WORKERS = 1  # fetched one by one, in the order of work
    slow_coach, other_coach = CoachFactory(), CoachFactory()
    for n in range(8):
        ExternalCalendarFactory(coach=slow_coach, url=drip.url(f"/headers/{n}.ics"))
    good = ExternalCalendarFactory(coach=other_coach, url=drip.url("/good/a.ics"))

    # The budget lets two fetches start after the first dripping one: the good calendar is
    # the second (in turns across coaches), the slow coach's second the third.
    _, elapsed = timed(external_calendars_sync, budget=DEADLINE + 0.5)

    good.refresh_from_db()
    assert (good.last_synced_at, good.last_error) == (NOW, "")
    errors = sorted(
        ExternalCalendar.objects.filter(coach=slow_coach).values_list("last_error", flat=True)
    )
    assert errors == sorted(["127.0.0.1 did not answer in time."] * 2 + [sync.NOT_REACHED] * 6)
    assert elapsed < 2 * DEADLINE + SLACK, elapsed


def test_calendars_not_reached_go_first_next_run_and_attempted_ones_go_behind(
    drip, local, frozen, settings, monkeypatch
):
    settings.CALENDAR_SYNC_WORKERS = 1
    coach = CoachFactory()
    urls = [
        ExternalCalendarFactory(coach=coach, url=drip.url(f"/good/{n}.ics")).url for n in range(3)
    ]
    order = []
    fetch = sync.fetch

    def slow(url, **kwargs):  # each fetch spends the whole budget of its run
        order.append(url)
        time.sleep(0.3)
        return fetch(url, **kwargs)

    monkeypatch.setattr(sync, "fetch", slow)
    for _ in range(4):
        external_calendars_sync(budget=0.2)

    # Run 1 reads the first, run 2 the second (not reached before, so first now), run 3 the
    # third, run 4 the first again: nobody is starved, nobody is always first.
    assert order == [urls[0], urls[1], urls[2], urls[0]]
    errors = dict(ExternalCalendar.objects.values_list("url", "last_error"))
    assert errors == {urls[0]: "", urls[1]: sync.NOT_REACHED, urls[2]: sync.NOT_REACHED}


def test_a_calendar_not_reached_says_why_and_keeps_its_busy_times(drip, local, frozen, settings):
    settings.CALENDAR_SYNC_WORKERS = 1
    coach = CoachFactory()
    first = ExternalCalendarFactory(coach=coach, url=drip.url("/headers/1.ics"))
    later = ExternalCalendarFactory(coach=coach, url=drip.url("/good/2.ics"))
    BusyTime.objects.create(coach=coach, calendar=later, start=BUSY[0], end=BUSY[1])

    external_calendars_sync(budget=0.5)

    first.refresh_from_db()
    later.refresh_from_db()
    assert (first.last_attempt_at, first.last_error) == (NOW, "127.0.0.1 did not answer in time.")
    assert (later.last_attempt_at, later.last_error, later.last_error_at) == (
        None,
        sync.NOT_REACHED,
        NOW,
    )
    assert later.sync_deferred and not first.sync_deferred
    assert BusyTime.objects.filter(calendar=later).count() == 1


def test_at_most_per_coach_per_run_calendars_of_one_coach(local, frozen, monkeypatch):
    monkeypatch.setattr(services.external, "PER_COACH_PER_RUN", 2)
    seen = []
    monkeypatch.setattr(
        sync,
        "fetch_busy",
        lambda **job: (
            seen.append(job["calendar_id"]) or sync.FetchOutcome(job["calendar_id"], busy=[])
        ),
    )
    coach = CoachFactory()
    calendars = [ExternalCalendarFactory(coach=coach) for _ in range(3)]

    first = external_calendars_sync()
    second = external_calendars_sync()

    assert (first.calendars, second.calendars) == (2, 2)
    assert seen[:2] == [calendars[0].pk, calendars[1].pk]
    assert seen[2] == calendars[2].pk  # the one left out goes first next run


# --- refused at Add what the sync would refuse ----------------------------------------------------


def _fake_dns(monkeypatch, answers: dict):
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            if answers[host] is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [
                (
                    socket.AF_INET6 if ":" in ip else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (ip, port),
                )
                for ip in answers[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(sync.socket, "getaddrinfo", getaddrinfo)


def _sync_message(url: str) -> str:
    with pytest.raises(sync.CalendarFetchError) as refused:
        sync.fetch(url)
    return refused.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/cal.ics",
        "http://localhost:9/cal.ics",
        "https://intranet.example.com/cal.ics",  # resolves to 10.0.0.5
        "https://mixed.example.com/cal.ics",  # one public and one link-local address
        "https://[::1]/cal.ics",
        "https://gone.example.com/cal.ics",  # not found
        "ftp://example.com/cal.ics",
        "https://example.com/" + "a" * 2000,
    ],
)
def test_add_refuses_what_the_sync_refuses_with_the_same_message(monkeypatch, url):
    _fake_dns(
        monkeypatch,
        {
            "intranet.example.com": ["10.0.0.5"],
            "mixed.example.com": ["93.184.215.14", "169.254.169.254"],
            "gone.example.com": None,
        },
    )
    coach = CoachFactory()

    with pytest.raises(ExternalCalendarInvalid) as refused:
        services.external_calendar_add(coach=coach, url=url)

    assert refused.value.message == _sync_message(url)
    assert ExternalCalendar.objects.count() == 0


def test_add_resolves_but_never_fetches(drip, local):
    connections = drip.connections
    coach = CoachFactory()

    calendar = services.external_calendar_add(coach=coach, url=drip.url("/good/a.ics"))

    assert calendar.url == drip.url("/good/a.ics")
    time.sleep(0.2)
    assert drip.connections == connections


def test_add_accepts_a_public_host(monkeypatch):
    _fake_dns(monkeypatch, {"calendar.example.com": ["93.184.215.14"]})

    calendar = services.external_calendar_add(
        coach=CoachFactory(), url="webcal://calendar.example.com/basic.ics"
    )

    assert calendar.url == "https://calendar.example.com/basic.ics"


def test_add_with_private_addresses_allowed_accepts_loopback(settings):
    settings.CALENDAR_SYNC_ALLOW_PRIVATE = True

    calendar = services.external_calendar_add(coach=CoachFactory(), url="http://127.0.0.1:9/a.ics")

    assert calendar.pk


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "Enter the calendar's address."),
        ("ftp://example.com/a.ics", None),
        ("https://example.com/" + "a" * 2000, "That address is too long."),
    ],
)
def test_the_add_form_refuses_with_the_syncs_messages(url, message):
    form = ExternalCalendarForm({"url": url})
    expected = message
    if expected is None:
        with pytest.raises(sync.CalendarFetchError) as refused:
            sync.normalize_url(url)
        expected = refused.value.message

    assert not form.is_valid()
    assert form.errors["url"] == [expected]


def test_the_add_form_reads_webcal_as_https():
    form = ExternalCalendarForm({"url": " webcal://example.com/a.ics ", "name": "Work"})

    assert form.is_valid(), form.errors
    assert form.cleaned_data["url"] == "https://example.com/a.ics"


# --- the reader's notes ---------------------------------------------------------------------------


def test_the_readers_notes_are_stored_bounded_and_shown_on_the_availability_page(
    client, drip, local, frozen, monkeypatch
):
    notes = [
        "A repeating event's rule (BYDAY=MO, TU) was repaired.",
        "An event with an unknown time zone was read in your own time zone.",
    ]
    monkeypatch.setattr(
        sync, "read_calendar", lambda data, **kwargs: SimpleNamespace(busy=[BUSY], notes=notes)
    )
    coach = CoachFactory()
    calendar = ExternalCalendarFactory(coach=coach, url=drip.url("/good/a.ics"))

    external_calendars_sync()

    calendar.refresh_from_db()
    assert calendar.last_sync_notes == notes
    client.force_login(coach)
    page = client.get(reverse("calendars:availability")).content.decode()
    assert "2 notes from the last sync" in page
    assert "An event with an unknown time zone was read in your own time zone." in page
    assert "BYDAY=MO, TU" in page

    many = [f"Note {n}: " + "x" * 400 for n in range(25)]
    monkeypatch.setattr(
        sync, "read_calendar", lambda data, **kwargs: SimpleNamespace(busy=[BUSY], notes=many)
    )
    external_calendars_sync()

    calendar.refresh_from_db()
    assert len(calendar.last_sync_notes) == sync.MAX_NOTES
    assert all(len(note) <= sync.MAX_NOTE_CHARS for note in calendar.last_sync_notes)
    assert calendar.last_sync_notes[0].startswith("Note 0: ")
    assert calendar.last_sync_notes[-1] == "…and 6 more notes like these."


def test_a_failed_sync_keeps_the_last_good_reads_notes(drip, local, frozen, monkeypatch):
    monkeypatch.setattr(
        sync, "read_calendar", lambda data, **kwargs: SimpleNamespace(busy=[], notes=["Kept."])
    )
    calendar = ExternalCalendarFactory(url=drip.url("/good/a.ics"))
    external_calendars_sync()
    ExternalCalendar.objects.filter(pk=calendar.pk).update(url=drip.url("/status/a.ics"))

    external_calendars_sync()

    calendar.refresh_from_db()
    assert (calendar.last_error, calendar.last_sync_notes) == (
        "127.0.0.1 did not answer in time.",
        ["Kept."],
    )


def test_an_unfinished_calendar_is_shown_as_waiting_for_its_turn(client, frozen):
    coach = CoachFactory()
    ExternalCalendarFactory(
        coach=coach, last_error=sync.NOT_REACHED, last_error_at=NOW - timedelta(minutes=5)
    )
    client.force_login(coach)

    page = client.get(reverse("calendars:availability")).content.decode()

    assert "Waiting for its turn" in page
    assert "Could not be read" not in page


@pytest.mark.django_db
def test_the_page_refuses_an_over_long_address_with_the_syncs_message_and_adds_nothing(client):
    from calendars.models import ExternalCalendar
    from tests.conftest import messages_of

    coach = CoachFactory()
    client.force_login(coach)

    response = client.post(
        reverse("feeds:external_add"), {"url": "https://example.com/" + "a" * 3000, "name": ""}
    )

    assert messages_of(response) == ["That address is too long."]
    assert not ExternalCalendar.objects.filter(coach=coach).exists()
