import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_settings(code="import django; django.setup()", **env):
    """Load the settings in a fresh interpreter with only `env`, never a developer's `.env`."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_READ_DOT_ENV": "0",
            **env,
        },
        capture_output=True,
        text=True,
    )


def test_production_refuses_the_default_secret_key():
    result = run_settings(DEBUG="false")

    assert result.returncode == 1
    assert "Set SECRET_KEY" in result.stderr


@pytest.mark.parametrize(
    "key",
    ["change-me-to-a-long-random-string", "x" * 49],
    ids=["the .env.example placeholder", "49 characters"],
)
def test_production_refuses_a_placeholder_or_short_secret_key(key):
    result = run_settings(DEBUG="false", SECRET_KEY=key)

    assert result.returncode == 1
    assert "shorter than 50 characters" in result.stderr


def test_production_starts_with_a_real_secret_key():
    result = run_settings(DEBUG="false", SECRET_KEY="x" * 50)

    assert result.returncode == 0, result.stderr


def test_development_accepts_the_default_key():
    assert run_settings(DEBUG="true").returncode == 0


STRIPE_KEYS = {
    "STRIPE_SECRET_KEY": "sk_live_x",
    "STRIPE_PUBLISHABLE_KEY": "pk_live_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
}


@pytest.mark.parametrize("missing", sorted(STRIPE_KEYS))
def test_production_refuses_stripe_with_a_missing_key(missing):
    keys = {name: value for name, value in STRIPE_KEYS.items() if name != missing}
    result = run_settings(DEBUG="false", SECRET_KEY="x" * 50, PAYMENT_GATEWAY="stripe", **keys)

    assert result.returncode == 1
    assert f"PAYMENT_GATEWAY=stripe needs {missing}" in result.stderr


def test_production_starts_with_stripe_and_all_its_keys():
    result = run_settings(
        DEBUG="false", SECRET_KEY="x" * 50, PAYMENT_GATEWAY="stripe", **STRIPE_KEYS
    )

    assert result.returncode == 0, result.stderr


def test_development_accepts_stripe_without_keys_and_refuses_an_unknown_gateway():
    assert run_settings(DEBUG="true", PAYMENT_GATEWAY="stripe").returncode == 0
    unknown = run_settings(DEBUG="true", PAYMENT_GATEWAY="deferred")
    assert unknown.returncode == 1
    assert "PAYMENT_GATEWAY must be one of manual, stripe, not 'deferred'" in unknown.stderr


# Loads the settings with `.env` reading replaced by a marker, then says whether it was called.
_SPY_ON_DOT_ENV = """
import environ
calls = []
environ.Env.read_env = classmethod(lambda cls, *args, **kwargs: calls.append(args))
import django
django.setup()
print("read .env" if calls else "ignored .env")
"""


def test_settings_read_dot_env_unless_told_not_to():
    ignored = run_settings(_SPY_ON_DOT_ENV)
    read = run_settings(_SPY_ON_DOT_ENV, DJANGO_READ_DOT_ENV="1")

    assert (ignored.stdout, read.stdout) == ("ignored .env\n", "read .env\n")
