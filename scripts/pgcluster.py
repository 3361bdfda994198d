"""A throwaway PostgreSQL cluster on a free loopback port, for tests and benchmarks.

PostgreSQL refuses to run as root, and these machines run as root: the cluster is initialised
and started as an unprivileged user (`postgres` when it exists, else `nobody`) in a temporary
directory that is removed afterwards.

    python -m scripts.pgcluster -- pytest -m postgres     # runs the command with DATABASE_URL set

Exit codes: the command's own; 0 with a message when no PostgreSQL binaries exist (unless
COACHBOOK_REQUIRE_ALL=1, then 1); 1 with the error and the tail of the server log when the
binaries exist but the cluster cannot be initialised or started (a broken PostgreSQL pass must
never look green).
"""

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine: the PostgreSQL pass is skipped."""


class PostgresStartFailed(RuntimeError):
    """The binaries exist but the throwaway cluster could not be set up: an error, not a skip."""


LOG_TAIL_LINES = 40


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _start_failure(exc: BaseException, log: Path) -> PostgresStartFailed:
    """The error to raise for a failed start, with the command's stderr and the log's tail."""
    parts = [str(exc)]
    stderr = getattr(exc, "stderr", None)
    if stderr:
        parts.append(stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr)
    tail = _tail(log)
    if tail:
        parts.append(f"--- last lines of {log.name} ---\n{tail}")
    return PostgresStartFailed("\n".join(part.rstrip() for part in parts))


def find_bindir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine, or None."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for candidate in reversed(candidates):
        if Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _runner() -> tuple[list[str], int | None, int | None]:
    """The command prefix to run as an unprivileged user when we are root, and its ids."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], entry.pw_uid, entry.pw_gid
    raise PostgresStartFailed("running as root and no unprivileged user to run PostgreSQL as")


@contextlib.contextmanager
def throwaway_postgres(*, database: str = "coachbook") -> Iterator[str]:
    """Start a fresh cluster, yield its DATABASE_URL (superuser `postgres`), then remove it."""
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable("no PostgreSQL server binaries (pg_ctl) found")
    prefix, uid, gid = _runner()
    root = Path(tempfile.mkdtemp(prefix="coachbook-pg-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    if uid is not None:
        for path in (root, sockets):
            os.chown(path, uid, gid)
    os.chmod(root, 0o755)
    port = free_port()
    log = root / "server.log"
    try:
        try:
            subprocess.run(
                [
                    *prefix,
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            options = (
                f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            subprocess.run(
                [
                    *prefix,
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            subprocess.run(
                [
                    *prefix,
                    str(bindir / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    database,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except (subprocess.CalledProcessError, OSError) as exc:
            raise _start_failure(exc, log) from exc
        yield f"postgres://postgres@127.0.0.1:{port}/{database}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m scripts.pgcluster -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        return subprocess.call(argv)
    require_all = os.environ.get("COACHBOOK_REQUIRE_ALL") == "1"
    try:
        cluster = throwaway_postgres()
        url = cluster.__enter__()
    except PostgresUnavailable as exc:
        # Only a machine without the server binaries skips the pass.
        print(f"PostgreSQL pass skipped: {exc}", file=sys.stderr)
        return 1 if require_all else 0
    except Exception as exc:
        print(
            f"PostgreSQL pass FAILED: the throwaway cluster did not start: {exc}", file=sys.stderr
        )
        return 1
    try:
        started = time.monotonic()
        code = subprocess.call(argv, env={**os.environ, "DATABASE_URL": url})
        print(f"PostgreSQL pass finished in {time.monotonic() - started:.0f}s", file=sys.stderr)
        return code
    finally:
        cluster.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
