"""Guards: coach-only pages send anyone else away with a message, and a form's `next` only ever
leads back into this site."""

import pytest
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse

from core.guards import coach_required, safe_next_url
from tests.conftest import messages_of

pytestmark = pytest.mark.django_db


class _Person:
    def __init__(self, is_coach: bool):
        self.is_coach = is_coach


def _request(is_coach: bool, path: str = "/"):
    request = RequestFactory().get(path)
    request.user = _Person(is_coach)
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    return request


@coach_required(message="Offerings are for coaches.", redirect_to="accounts:profile")
def _page(request, pk):
    return HttpResponse(f"page {pk}")


def test_a_coach_sees_the_page():
    response = _page(_request(is_coach=True), pk=3)

    assert (response.status_code, response.content) == (200, b"page 3")


def test_anyone_else_is_told_and_sent_away():
    request = _request(is_coach=False)

    response = _page(request, pk=3)

    assert (response.status_code, response["Location"]) == (302, reverse("accounts:profile"))
    assert [str(m) for m in request._messages] == ["Offerings are for coaches."]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/sessions/4/", "/sessions/4/"),
        ("/calendars/availability/#external", "/calendars/availability/#external"),
        ("https://evil.example/", "/fallback/"),
        ("//evil.example/", "/fallback/"),
        ("/\\evil.example/", "/fallback/"),
        ("javascript:alert(1)", "/fallback/"),
        ("", "/fallback/"),
    ],
)
def test_next_leads_only_into_this_site(rf, target, expected):
    get = rf.get("/x/", {"next": target})
    post = rf.post("/x/", {"next": target})

    assert safe_next_url(get, "/fallback/") == expected
    assert safe_next_url(post, "/fallback/") == expected


def test_next_defaults_to_nothing(rf):
    assert safe_next_url(rf.get("/x/")) == ""


OFFERINGS_ONLY = "Offerings are for coaches. Become a coach on your profile page first."
AVAILABILITY_ONLY = "Availability is for coaches. Become a coach on your profile page first."
TASKS_ONLY = "Tasks, Upcoming and Completed are pages for coaches."


@pytest.mark.parametrize(
    ("method", "name", "args", "target", "message"),
    [
        ("get", "catalog:offerings", [], "accounts:profile", OFFERINGS_ONLY),
        ("get", "catalog:offering_create", [], "accounts:profile", OFFERINGS_ONLY),
        ("post", "catalog:offering_set_active", [1], "accounts:profile", OFFERINGS_ONLY),
        ("get", "calendars:availability", [], "accounts:profile", AVAILABILITY_ONLY),
        ("post", "calendars:window_add", [], "accounts:profile", AVAILABILITY_ONLY),
        ("post", "calendars:time_off_remove", [1], "accounts:profile", AVAILABILITY_ONLY),
        ("get", "sessions:tasks", [], "sessions:my_sessions", TASKS_ONLY),
        ("get", "sessions:canceled", [], "sessions:my_sessions", TASKS_ONLY),
    ],
)
def test_coach_only_pages_send_a_student_away_with_a_message(
    student_client, method, name, args, target, message
):
    response = getattr(student_client, method)(reverse(name, args=args))

    assert (response.status_code, response["Location"]) == (302, reverse(target))
    assert messages_of(response) == [message]


def test_coach_only_pages_still_send_visitors_to_the_login_page(client):
    response = client.get(reverse("catalog:offerings"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
