"""Branded 404, 500 and 503 pages; a database outage answers 503 with a retry hint."""

import pytest
from django.db import InterfaceError, OperationalError
from django.test import override_settings
from django.urls import path

from tests.test_settings import run_settings


def _boom(request):
    raise RuntimeError("a bug")


def _db_down(request):
    raise OperationalError("could not connect to server: Connection refused")


def _db_gone(request):
    raise InterfaceError("connection already closed")


urlpatterns = [
    path("boom/", _boom),
    path("db-down/", _db_down),
    path("db-gone/", _db_gone),
]
handler500 = "core.views.server_error"

pytestmark = pytest.mark.django_db


@pytest.fixture
def anon(client):
    client.raise_request_exception = False
    return client


def test_an_unknown_address_shows_the_branded_404(anon):
    response = anon.get("/no-such-page/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html
    assert 'class="site-header"' in html


@override_settings(ROOT_URLCONF=__name__)
def test_a_bug_shows_the_branded_500_without_a_database_query(anon, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = anon.get("/boom/")

    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong" in html
    assert 'class="site-header"' in html
    assert "Retry-After" not in response


@override_settings(ROOT_URLCONF=__name__)
@pytest.mark.parametrize("url", ["/db-down/", "/db-gone/"])
def test_a_database_outage_answers_503_with_a_retry_hint(anon, url, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = anon.get(url)

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    assert "Coachbook is briefly unavailable" in html
    assert "try again in 30 seconds" in html.lower()


@override_settings(ROOT_URLCONF=__name__, DATABASE_UNAVAILABLE_RETRY_AFTER=120)
def test_the_retry_hint_follows_the_setting(anon):
    response = anon.get("/db-down/")

    assert (response.status_code, response["Retry-After"]) == (503, "120")


def test_the_500_handler_answers_503_for_a_database_error_outside_a_view(rf):
    from core.views import server_error

    try:
        raise OperationalError("server closed the connection unexpectedly")
    except OperationalError:
        response = server_error(rf.get("/"))

    assert response.status_code == 503
    assert response["Retry-After"] == "30"


# A real outage: production settings, a database file that cannot be opened, and a request
# with a session cookie (loading the session needs the database).
_REAL_OUTAGE = """
import django
django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
client.cookies["sessionid"] = "x" * 32
for url in ("/", "/accounts/login/", "/coaches/"):
    response = client.get(url, secure=True)
    print(url, response.status_code, response.get("Retry-After"),
          "briefly unavailable" in response.content.decode())
"""


@pytest.mark.django_db(transaction=False)
def test_a_real_unreachable_database_answers_503(tmp_path):
    result = run_settings(
        _REAL_OUTAGE,
        DEBUG="false",
        SECRET_KEY="k3y-" + "abcdefghijklmnopqrstuvwxyz0123456789" * 2,
        ALLOWED_HOSTS="testserver",
        DATABASE_URL=f"sqlite:///{tmp_path}/missing/folder/db.sqlite3",
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert len(lines) == 3 * 4, result.stdout
    for line in result.stdout.splitlines():
        _url, status, retry_after, branded = line.split()
        assert (status, retry_after, branded) == ("503", "30", "True"), line
