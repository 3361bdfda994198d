"""`make run-stripe`: `make run` with card payments, against localstripe instead of Stripe.

    python scripts/run_stripe.py [ADDRESS]      # default 127.0.0.1:8000

Sets PAYMENT_GATEWAY=stripe and the STRIPE_* variables for a local Stripe-compatible server
(test keys that only that server accepts), migrates and seeds the demo as `make run` does, and
starts localstripe (scripts/localstripe_server.py) on 127.0.0.1:8420 with Coachbook's webhook
registered, so events reach /payments/stripe/webhook/ signed with the local secret. Once it
answers, scripts/run_dev.py runs the dev server and the Celery worker with beat in that
environment. Ctrl-C (or SIGTERM) stops all three; if localstripe dies, the rest is stopped too.
Nothing leaves the machine: localstripe listens on loopback and keeps its data in memory (it
forgets every payment when it stops; the app's database keeps what it recorded).
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts import run_dev  # noqa: E402

LOCALSTRIPE_HOST = "127.0.0.1"
LOCALSTRIPE_PORT = 8420
LOCALSTRIPE_URL = f"http://{LOCALSTRIPE_HOST}:{LOCALSTRIPE_PORT}"
# Keys and secret of the local demo only: localstripe accepts any sk_test_ key.
SECRET_KEY = "sk_test_local_coachbook"
PUBLISHABLE_KEY = "pk_test_local_coachbook"
WEBHOOK_SECRET = "whsec_local_coachbook"
START_SECONDS = 20
GRACE_SECONDS = 10


def stripe_env(address: str) -> dict[str, str]:
    """The variables the app runs with (they win over a .env file)."""
    return {
        "PAYMENT_GATEWAY": "stripe",
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": LOCALSTRIPE_URL,
        "STRIPE_JS_URL": f"{LOCALSTRIPE_URL}/js.stripe.com/v3/",
        # Links in emails and feeds point at this server.
        "SITE_URL": os.environ.get("SITE_URL") or f"http://{address}",
    }


def webhook_url(address: str) -> str:
    return f"http://{address}/payments/stripe/webhook/"


def localstripe_command(address: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "scripts.localstripe_server",
        "--port",
        str(LOCALSTRIPE_PORT),
        "--webhook",
        webhook_url(address),
        "--webhook-secret",
        WEBHOOK_SECRET,
    ]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_until_answering(process: subprocess.Popen, timeout: float = START_SECONDS) -> None:
    """Return once localstripe answers HTTP; raise if it exits or stays silent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"localstripe exited with code {process.returncode}")
        try:
            urllib.request.urlopen(f"{LOCALSTRIPE_URL}/v1/charges", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answered (401 without a key): it is up
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"localstripe did not answer within {timeout:.0f} seconds")


def stop(process: subprocess.Popen | None) -> None:
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            print("run_stripe: localstripe did not stop; killing it", flush=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _watch(process: subprocess.Popen, died: threading.Event) -> None:
    """If localstripe exits while the app runs, stop the app (run_dev stops on SIGTERM)."""
    process.wait()
    if not died.is_set():
        died.set()
        print(f"run_stripe: localstripe exited with code {process.returncode}", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)


class _Stopped(Exception):
    pass


def _raise_stopped(signum, frame):
    raise _Stopped


def main(argv: list[str]) -> int:
    address = argv[0] if argv else os.environ.get("RUN_ADDRESS", "127.0.0.1:8000")
    os.environ.update(stripe_env(address))
    # Until run_dev takes over the signals, Ctrl-C and SIGTERM stop what was started so far.
    signal.signal(signal.SIGINT, _raise_stopped)
    signal.signal(signal.SIGTERM, _raise_stopped)
    localstripe: subprocess.Popen | None = None
    died = threading.Event()
    try:
        for step in (["migrate", "--noinput"], ["seed_demo"]):
            subprocess.run([sys.executable, "manage.py", *step], cwd=ROOT, check=True)
        if port_in_use(LOCALSTRIPE_HOST, LOCALSTRIPE_PORT):
            print(
                f"run_stripe: {LOCALSTRIPE_HOST}:{LOCALSTRIPE_PORT} is already in use (another "
                "localstripe?); stop it first.",
                file=sys.stderr,
                flush=True,
            )
            return 1
        # Its own session: the terminal's Ctrl-C reaches only us, and we stop it last.
        localstripe = subprocess.Popen(
            localstripe_command(address), cwd=ROOT, start_new_session=True
        )
        wait_until_answering(localstripe)
        print(
            f"run_stripe: localstripe on {LOCALSTRIPE_URL}/, webhooks to {webhook_url(address)}",
            flush=True,
        )
        threading.Thread(target=_watch, args=(localstripe, died), daemon=True).start()
        code = run_dev.main([address])
        return 1 if died.is_set() else code
    except _Stopped:
        print("\nrun_stripe: stopping", flush=True)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"run_stripe: {' '.join(exc.cmd[1:])} failed ({exc.returncode})", flush=True)
        return exc.returncode
    except RuntimeError as exc:
        print(f"run_stripe: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        died.set()  # the watcher must not signal us while localstripe is being stopped
        stop(localstripe)
        print("run_stripe: localstripe stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
