"""A real server speaking Stripe's API for the tests: localstripe on a free loopback port.

`localstripe` (the fixture in tests/conftest.py) starts `scripts.localstripe_server` once per
test session and yields a `LocalStripe`; `stripe_settings` points Coachbook's Stripe settings
at it. Without the `localstripe` package the tests that need it skip with the reason (and fail
in CI, where COACHBOOK_REQUIRE_ALL=1).
"""

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "sk_test_coachbook_local"
PUBLISHABLE_KEY = "pk_test_coachbook_local"
WEBHOOK_SECRET = "whsec_coachbook_local_test"

# Stripe's test cards (localstripe knows the same numbers).
CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000341"  # attaches, then the charge is declined
CARD_3DS = "4000002500003155"  # the bank asks for 3-D Secure


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalStripe:
    url: str
    process: subprocess.Popen

    @property
    def js_url(self) -> str:
        return f"{self.url}/js.stripe.com/v3/"

    def api(self, method: str, path: str, **params) -> dict:
        """A request to the server's API with the secret key, as JSON."""
        response = requests.request(
            method,
            f"{self.url}{path}",
            auth=(SECRET_KEY, ""),
            params=params if method == "GET" else None,
            data=params if method != "GET" else None,
            timeout=10,
        )
        return response.json()

    def card_token(self, number: str = CARD_OK) -> str:
        """What the card element makes in the page: a token for `number`."""
        response = requests.post(
            f"{self.url}/v1/tokens",
            data={
                "card[number]": number,
                "card[exp_month]": "12",
                "card[exp_year]": "2034",
                "card[cvc]": "123",
                "key": PUBLISHABLE_KEY,
            },
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["id"]

    def authenticate(self, intent_id: str, client_secret: str, *, success: bool = True) -> dict:
        """What confirmCardPayment does in the page when the bank asks for 3-D Secure."""
        response = requests.post(
            f"{self.url}/v1/payment_intents/{intent_id}/_authenticate",
            params={"success": "true" if success else "false"},
            data={"key": PUBLISHABLE_KEY, "client_secret": client_secret},
            timeout=10,
        )
        return response.json()

    def refunds_of(self, intent_id: str) -> list[dict]:
        return self.api("GET", "/v1/refunds", payment_intent=intent_id, limit=100)["data"]

    def register_webhook(self, url: str, secret: str = WEBHOOK_SECRET) -> None:
        """Send every event from now on to `url`, signed with `secret`. The server lives for
        the whole test session: call `unregister_webhook` when the test ends."""
        requests.post(
            f"{self.url}/_config/webhooks/coachbook",
            data={"url": url, "secret": secret},
            timeout=10,
        ).raise_for_status()

    def unregister_webhook(self) -> None:
        """Send no more events (localstripe cannot delete an endpoint: it is kept, for an event
        type that never happens, at an address nothing listens on)."""
        requests.post(
            f"{self.url}/_config/webhooks/coachbook",
            data={
                "url": "http://127.0.0.1:9/",
                "secret": "whsec_unused",
                "events[]": ["coachbook.never_sent"],
            },
            timeout=10,
        ).raise_for_status()


def start_localstripe() -> LocalStripe | None:
    """Start the server; None when localstripe is not installed."""
    try:
        import localstripe  # noqa: F401
    except ImportError:
        return None
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.localstripe_server", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"localstripe exited with code {process.returncode}")
        try:
            requests.get(f"{url}/v1/charges", timeout=1)
            return LocalStripe(url=url, process=process)
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("localstripe did not answer within 20 seconds")


def signed_headers(payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None):
    """The Stripe-Signature header Stripe would send with `payload`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    return {"HTTP_STRIPE_SIGNATURE": f"t={timestamp},v1={signature}"}


def event_body(event_id: str, event_type: str, obj: dict) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "data": {"object": obj},
        }
    ).encode()
