# ruff: noqa: RUF001 -- full-width look-alikes are what these tests type.
"""Failed-login limits keyed by account and client IP (issue 12): someone else's wrong guesses
never lock the owner out, while guessing from one address, or at one account from many, is
still cut off. The client IP is REMOTE_ADDR, or behind ALLAUTH_TRUSTED_PROXY_COUNT proxies the
X-Forwarded-For entry they added."""

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = reverse("account_login")
TOO_MANY = "Too many failed login attempts"
PROXY = "10.0.0.2"


@pytest.fixture(autouse=True)
def _clean_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def owner():
    return UserFactory(email="owner@example.com")


def attempt(ip=None, forwarded_for=None, *, login="owner@example.com", password="wrong"):
    """One login POST from a fresh browser; returns (response, logged_in)."""
    client = Client(REMOTE_ADDR=ip or PROXY)
    headers = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for else {}
    response = client.post(LOGIN, {"login": login, "password": password}, **headers)
    return response, "_auth_user_id" in client.session


def test_settings_key_failed_logins_by_ip_and_by_account_and_ip():
    assert django_settings.ACCOUNT_RATE_LIMITS["login_failed"] == "10/m/ip,5/5m/key"
    assert django_settings.ACCOUNT_RATE_LIMITS["login_failed_account"] == "30/h/key"
    assert django_settings.ALLAUTH_TRUSTED_PROXY_COUNT == 0  # the default without the env var


def test_guesses_from_another_ip_do_not_lock_the_owner_out(owner):
    for _ in range(8):
        attempt("203.0.113.5")

    response, logged_in = attempt("198.51.100.7", password=PASSWORD)

    assert logged_in, response.content.decode()


def test_guesses_from_one_ip_lock_that_ip_out_of_the_account(owner):
    for _ in range(5):
        attempt("203.0.113.5")

    response, logged_in = attempt("203.0.113.5", password=PASSWORD)

    assert not logged_in
    assert TOO_MANY in response.content.decode()


def test_behind_a_trusted_proxy_each_client_has_its_own_limits(settings, owner):
    """All requests come from the proxy's address; the client is the entry the proxy added."""
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    settings.TRUSTED_PROXIES = [PROXY]
    settings.TRUSTED_PROXIES = [PROXY]
    for _ in range(8):
        attempt(PROXY, "203.0.113.5")

    response, logged_in = attempt(PROXY, "198.51.100.7", password=PASSWORD)
    assert logged_in, response.content.decode()

    response, logged_in = attempt(PROXY, "203.0.113.5", password=PASSWORD)
    assert not logged_in
    assert TOO_MANY in response.content.decode()


def test_behind_a_trusted_proxy_a_spoofed_entry_is_not_the_client(settings, owner):
    """With one trusted proxy only the entry it appended counts: an attacker who sends their own
    X-Forwarded-For ("1.2.3.4, <real address>") is still limited by the real address."""
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    settings.TRUSTED_PROXIES = [PROXY]
    settings.TRUSTED_PROXIES = [PROXY]
    for n in range(5):
        attempt(PROXY, f"192.0.2.{n}, 203.0.113.5")

    response, logged_in = attempt(PROXY, "192.0.2.99, 203.0.113.5", password=PASSWORD)

    assert not logged_in
    assert TOO_MANY in response.content.decode()


def test_x_forwarded_for_from_an_address_that_is_not_a_trusted_proxy_is_ignored(settings, owner):
    """A client that reaches the app directly cannot choose its IP: with the proxy count set but
    the connection not from FORWARDED_ALLOW_IPS, its own X-Forwarded-For is dropped."""
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    settings.TRUSTED_PROXIES = [PROXY]
    for n in range(5):
        attempt("203.0.113.5", f"192.0.2.{n}")

    response, logged_in = attempt("203.0.113.5", "192.0.2.99", password=PASSWORD)

    assert not logged_in
    assert TOO_MANY in response.content.decode()


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(owner):
    for n in range(5):
        attempt("203.0.113.5", f"192.0.2.{n}")

    response, logged_in = attempt("203.0.113.5", "192.0.2.99", password=PASSWORD)

    assert not logged_in
    assert TOO_MANY in response.content.decode()


def test_per_ip_limit_covers_guesses_at_many_accounts(owner):
    for n in range(10):
        attempt("203.0.113.5", login=f"someone{n}@example.com")

    response, logged_in = attempt("203.0.113.5", password=PASSWORD)

    assert not logged_in
    assert TOO_MANY in response.content.decode()
    assert attempt("198.51.100.7", password=PASSWORD)[1]


def test_lookalike_spellings_share_the_accounts_limit(owner):
    for typed in ["owner\u200b@example.com", "ｏｗｎｅｒ@example.com", "OWNER@example.com"] * 2:
        attempt("203.0.113.5", login=typed)

    response, logged_in = attempt("203.0.113.5", password=PASSWORD)

    assert not logged_in
    assert TOO_MANY in response.content.decode()


def test_successful_logins_do_not_count_against_the_owner(owner):
    for _ in range(4):
        attempt("198.51.100.7")
    for _ in range(3):
        assert attempt("198.51.100.7", password=PASSWORD)[1]

    # Still one wrong guess left before this address is cut off.
    attempt("198.51.100.7")
    response, logged_in = attempt("198.51.100.7", password=PASSWORD)
    assert not logged_in
    assert TOO_MANY in response.content.decode()


def test_guesses_spread_over_many_ips_stop_at_the_account_wide_limit(owner):
    for n in range(30):
        attempt(f"203.0.113.{n}")

    response, logged_in = attempt("198.51.100.7", password=PASSWORD)

    assert not logged_in
    assert TOO_MANY in response.content.decode()
    # Other accounts are untouched.
    UserFactory(email="other@example.com")
    assert attempt("198.51.100.7", login="other@example.com", password=PASSWORD)[1]


def test_an_address_the_owner_logged_in_from_passes_the_account_wide_limit(owner):
    assert attempt("198.51.100.7", password=PASSWORD)[1]  # the owner's usual address
    for n in range(40):
        attempt(f"203.0.113.{n}")

    assert not attempt("192.0.2.1", password=PASSWORD)[1]  # an address never seen
    response, logged_in = attempt("198.51.100.7", password=PASSWORD)
    assert logged_in, response.content.decode()


def test_a_known_address_is_still_limited_per_account_and_ip(owner):
    assert attempt("198.51.100.7", password=PASSWORD)[1]
    for _ in range(5):
        attempt("198.51.100.7")

    response, logged_in = attempt("198.51.100.7", password=PASSWORD)

    assert not logged_in
    assert TOO_MANY in response.content.decode()
