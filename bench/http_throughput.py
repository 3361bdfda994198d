"""Benchmark: pages over HTTP next to the floor view (login + one row), with gunicorn on
PostgreSQL, DEBUG=false, measured with wrk.

    python bench/http_throughput.py                 # a throwaway PostgreSQL on loopback
    DATABASE_URL=postgres://... python bench/http_throughput.py   # a scratch database: rows stay
    BENCH_HTTP_SECONDS=5 python bench/http_throughput.py          # shorter runs while developing

(Not `bench/http.py`: run as a script, bench/ comes first on sys.path, and a bench/http.py would
stand in for the standard library's `http` in every bench script.)

The data is `bench/pages.py`'s seed for one coach of BENCH_HTTP_SIZE (2,000) sessions, built in
bulk with the clock frozen (time-machine) at Monday 16 March 2026 09:41 UTC; gunicorn's workers
start their clocks at that instant too (BENCH_FREEZE_AT, read by `bench/settings.py`) and let
them run on. The coach is signed in by a Django session written directly (SessionStore with the
auth keys), whose cookie wrk sends. gunicorn runs BENCH_HTTP_WORKERS (2) sync workers on a free
loopback port with `bench.settings` (the floor view's URL; static files collected into a
temporary STATIC_ROOT), DEBUG=false and plain HTTP (no HTTPS redirect). Each page gets
`wrk -t2 -c8 -d<BENCH_HTTP_SECONDS>s --latency` (15 s), one after the other: the floor view,
Upcoming, Tasks, Completed, and the calendar feed polled with the If-None-Match of its ETag
(a 304). Before wrk, every URL is fetched once and must answer what it should (200, the feed
poll 304), or the bench fails.

Printed: requests/s, latency p50 and p99, and requests/s as a fraction of the floor's. The exit
status is 1 if Upcoming makes less than UPCOMING_FLOOR_SHARE (0.3) of the floor's requests/s,
if a URL answers wrongly, or if wrk counts errors or unexpected statuses.
"""

import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, bench/ is first on sys.path; keep only the project root (see above).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import http.client  # noqa: E402

from bench import pages  # noqa: E402
from scripts.pgcluster import free_port  # noqa: E402

SIZE = int(os.environ.get("BENCH_HTTP_SIZE", "2000"))
SECONDS = int(os.environ.get("BENCH_HTTP_SECONDS", "15"))
WORKERS = int(os.environ.get("BENCH_HTTP_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_HTTP_THREADS", "2"))  # wrk's -t
CONNECTIONS = int(os.environ.get("BENCH_HTTP_CONNECTIONS", "8"))  # wrk's -c
ROUNDS = int(os.environ.get("BENCH_HTTP_ROUNDS", "3"))  # each page's seconds, in turns
RUN_SECONDS = max(1, round(SECONDS / ROUNDS))  # one wrk run
UPCOMING_FLOOR_SHARE = 0.3
WRK = shutil.which("wrk") or "/usr/bin/wrk"


def log(message: str) -> None:
    print(f"[http] {message}", file=sys.stderr, flush=True)


def fetch(port: int, path: str, headers: dict) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@contextlib.contextmanager
def gunicorn(env: dict, port: int):
    """gunicorn with WORKERS sync workers on 127.0.0.1:port; yields a dict whose "keep" the
    caller sets to keep the log (it is kept anyway if gunicorn fails)."""
    log_path = Path(tempfile.mkstemp(prefix="bench-http-gunicorn-", suffix=".log")[1])
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
                if fetch(port, "/accounts/login/", {})[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 60 s; see {log_path}")
            time.sleep(0.2)
        log(f"gunicorn up: {WORKERS} workers on 127.0.0.1:{port}")
        state = {"keep": False}
        yield state
        ok = not state["keep"]
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


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def wrk(url: str, headers: dict) -> dict:
    """One wrk run: requests/s, p50/p99 latency (ms), requests, errors and bad statuses."""
    command = [WRK, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{RUN_SECONDS}s", "--latency"]
    command += ["--timeout", "30s"]  # a slow page is measured, not counted as a socket error
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=RUN_SECONDS + 60
    ).stdout
    latency = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+(?:us|ms|s|m))\s*$", output, re.M))
    if set(latency) != {"50", "99"}:
        raise RuntimeError(f"cannot read wrk's latency distribution:\n{output}")
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "p50": _ms(latency["50"]),
        "p99": _ms(latency["99"]),
        "errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "bad": int(bad.group(1)) if bad else 0,
    }


def signed_in_cookie(user) -> str:
    """A Django session for `user`, as the login view would leave it: its key."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return store.session_key


def csrf_secret() -> str:
    """A CSRF cookie's value, as Django hands one to a browser."""
    from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH
    from django.utils.crypto import get_random_string

    return get_random_string(CSRF_SECRET_LENGTH, allowed_chars=CSRF_ALLOWED_CHARS)


def bench(database_url: str, scratch: Path) -> int:
    static_root = str(scratch / "static")
    env = pages.bench_env(
        DATABASE_URL=database_url,
        BENCH_STATIC_ROOT=static_root,
        BENCH_FREEZE_AT=pages.NOW.isoformat(),
    )
    os.environ.update({k: v for k, v in env.items() if k != "BENCH_FREEZE_AT"})
    import django

    django.setup()
    import time_machine
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, connections
    from django.urls import reverse

    from accounts.models import User

    number = connection.cursor().connection.info.server_version
    print(pages.machine(f"{number // 10000}.{number % 10000}"))
    pages.collectstatic(static_root)
    with time_machine.travel(pages.NOW, tick=False):
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        ids = pages.seed(f"http{int(time.time())}-{os.getpid()}", sizes=[SIZE])
        log(f"seeded in {time.perf_counter() - started:.1f}s")
        coach = User.objects.get(pk=ids["sizes"][SIZE]["coach"])
        # A browser also sends back the CSRF cookie it was given on its first page.
        cookie = (
            f"{settings.SESSION_COOKIE_NAME}={signed_in_cookie(coach)}; "
            f"{settings.CSRF_COOKIE_NAME}={csrf_secret()}"
        )
        feed = reverse("feeds:feed", kwargs={"token": coach.calendar_token})
    connections.close_all()

    signed_in = {"Cookie": cookie}
    targets = [
        ("floor (login + 1 row)", "/bench/floor/", signed_in, 200),
        ("Upcoming", reverse("sessions:upcoming"), signed_in, 200),
        ("Tasks", reverse("sessions:tasks"), signed_in, 200),
        ("Completed", reverse("sessions:completed"), signed_in, 200),
        ("feed poll (304)", feed, None, 304),
    ]
    failures, rows = [], []
    port = free_port()
    with gunicorn(env, port) as server:
        checked = []
        for name, path, headers, expected in targets:
            if headers is None:  # the feed poll: the ETag of a first, full answer
                status, answer, _ = fetch(port, path, {})
                if status != 200 or "ETag" not in answer:
                    failures.append(f"{name}: the feed answered {status} without an ETag")
                    server["keep"] = True
                    continue
                headers = {"If-None-Match": answer["ETag"]}
            status, answer, body = fetch(port, path, headers)
            if status != expected:
                failures.append(f"{name}: {path} answered {status}, not {expected}")
                server["keep"] = True
                continue
            log(f"{name}: {path} answers {status} ({len(body) / 1024:.0f} KB)")
            checked.append((name, path, headers, len(body) / 1024))
        # The pages take turns in ROUNDS short runs, so a change in the machine's load (other
        # jobs share its CPUs) hits the floor and the pages alike; the figures add them up.
        runs: dict[str, list[dict]] = {name: [] for name, *_ in checked}
        for round_number in range(ROUNDS):
            for name, path, headers, _kb in checked:
                log(f"round {round_number + 1}/{ROUNDS}: {name}, wrk {RUN_SECONDS}s")
                runs[name].append(wrk(f"http://127.0.0.1:{port}{path}", headers))
        for name, _path, _headers, kb in checked:
            parts = runs[name]
            result = {
                "name": name,
                "kb": kb,
                "rps": sum(part["requests"] for part in parts) / (RUN_SECONDS * ROUNDS),
                "p50": statistics.median(part["p50"] for part in parts),
                "p99": max(part["p99"] for part in parts),
                "errors": sum(part["errors"] for part in parts),
                "bad": sum(part["bad"] for part in parts),
            }
            if result["errors"] or result["bad"]:
                failures.append(
                    f"{name}: wrk saw {result['errors']} socket errors and {result['bad']} "
                    "non-2xx/3xx answers"
                )
            rows.append(result)

    print(
        f"coach with {SIZE:,} sessions; gunicorn {WORKERS} sync workers, DEBUG=false, "
        f"PostgreSQL, CONN_MAX_AGE={settings.DATABASES['default'].get('CONN_MAX_AGE')}; "
        f"wrk -t{THREADS} -c{CONNECTIONS}, {RUN_SECONDS * ROUNDS}s a page in {ROUNDS} turns, "
        f"on the same {os.cpu_count()} CPU(s)"
    )
    print(f"{'page':24}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'x floor':>9}{'KB':>7}")
    floor = next((r for r in rows if r["name"].startswith("floor")), None)
    for row in rows:
        share = row["rps"] / floor["rps"] if floor else float("nan")
        row["share"] = share
        print(
            f"{row['name']:24}{row['rps']:>9.1f}{row['p50']:>9.1f}{row['p99']:>9.1f}"
            f"{share:>9.2f}{row['kb']:>7.0f}"
        )
    upcoming = next((r for r in rows if r["name"] == "Upcoming"), None)
    if floor is None or upcoming is None:
        failures.append("the floor view or Upcoming was not measured")
    elif upcoming["share"] < UPCOMING_FLOOR_SHARE:
        failures.append(
            f"Upcoming makes {upcoming['share']:.2f} of the floor's requests/s "
            f"(at least {UPCOMING_FLOOR_SHARE} wanted)"
        )
    else:
        print(
            f"Upcoming at {upcoming['share']:.2f} of the floor's throughput "
            f"(at least {UPCOMING_FLOOR_SHARE} wanted)"
        )
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def main() -> int:
    if not Path(WRK).exists():
        print(f"skipped: wrk not found ({WRK})", file=sys.stderr)
        return 1 if os.environ.get("COACHBOOK_REQUIRE_ALL") == "1" else 0
    with tempfile.TemporaryDirectory(prefix="bench-http-") as scratch:
        if os.environ.get("DATABASE_URL", "").startswith("postgres"):
            return bench(os.environ["DATABASE_URL"], Path(scratch))
        from scripts.pgcluster import PostgresUnavailable, throwaway_postgres

        try:
            cluster = throwaway_postgres(database="coachbook_bench_http")
            url = cluster.__enter__()
        except PostgresUnavailable as exc:
            print(f"skipped: {exc}; set DATABASE_URL to a PostgreSQL server", file=sys.stderr)
            return 1 if os.environ.get("COACHBOOK_REQUIRE_ALL") == "1" else 0
        try:
            return bench(url, Path(scratch))
        finally:
            cluster.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
