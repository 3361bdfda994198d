"""`make run`: the dev server and a Celery worker with embedded beat, together.

    python scripts/run_dev.py [ADDRESS]        # default 127.0.0.1:8000

The worker uses the broker of config/settings.py: kombu's filesystem transport under .celery/
(no server needed) unless REDIS_URL is set. Ctrl-C (or SIGTERM) stops both; if either one
exits, the other is stopped too and its exit code is returned.
"""

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRACE_SECONDS = 15


def commands(address: str) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "web": [python, "manage.py", "runserver", address],
        "worker": [
            python,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-B",
            "--loglevel=INFO",
            "--concurrency=1",
        ],
    }


class Stop(Exception):
    pass


def _raise_stop(signum, frame):
    raise Stop


def stop(processes: dict[str, subprocess.Popen]) -> None:
    """SIGTERM each (celery shuts down warm, finishing its task), then kill what is left."""
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    for name, process in processes.items():
        try:
            process.wait(GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            print(f"run_dev: {name} did not stop in {GRACE_SECONDS}s; killing it", flush=True)
        # Each child leads its own process group: this also ends the reloader's and pool's
        # children.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main(argv: list[str]) -> int:
    address = argv[0] if argv else os.environ.get("RUN_ADDRESS", "127.0.0.1:8000")
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    processes: dict[str, subprocess.Popen] = {}
    code = 0
    try:
        for name, command in commands(address).items():
            # A session of their own: the terminal's Ctrl-C reaches only us, and we stop them
            # in order.
            processes[name] = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
        print(
            f"run_dev: web on http://{address}/ and a Celery worker with beat; Ctrl-C stops both",
            flush=True,
        )
        while True:
            for name, process in processes.items():
                try:
                    code = process.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    continue
                print(f"run_dev: {name} exited with code {code}; stopping the rest", flush=True)
                return code
    except Stop:
        print("\nrun_dev: stopping web and worker", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop(processes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
