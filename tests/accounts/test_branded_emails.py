"""Account emails come from Coachbook, not from the host the request came in on, and their
links start with SITE_URL (issue 13)."""

import re

import pytest
from django.core import mail
from django.core.cache import cache
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SITE = "https://coachbook.example"
PASSWORD = "a-long-pass-42"


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = SITE
    cache.clear()  # allauth's rate limits
    yield
    cache.clear()


def links(body: str) -> list[str]:
    return re.findall(r"https?://\S+", body)


def assert_branded(message, host="127.0.0.1:8101"):
    assert message.subject.startswith("[Coachbook] ")
    assert "Hello from Coachbook!" in message.body
    assert "The Coachbook team" in message.body
    assert host not in message.subject + message.body
    assert "testserver" not in message.subject + message.body
    assert links(message.body)
    body_links = links(message.body)
    assert all(link == SITE or link.startswith(SITE + "/") for link in body_links), message.body


def test_confirmation_email_is_from_coachbook_with_a_site_url_link(client):
    response = client.post(
        reverse("account_signup"),
        {
            "email": "new@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "display_name": "New",
            "role": "coach",
            "timezone": "UTC",
        },
        HTTP_HOST="127.0.0.1:8101",
    )

    assert response.status_code == 302
    (message,) = mail.outbox
    assert message.subject == "[Coachbook] Confirm your email address"
    assert_branded(message)
    assert any("/accounts/confirm-email/" in link for link in links(message.body))


def test_password_reset_email_is_from_coachbook_with_a_site_url_link(client):
    user = UserFactory()

    client.post(
        reverse("account_reset_password"), {"email": user.email}, HTTP_HOST="127.0.0.1:8101"
    )

    (message,) = mail.outbox
    assert message.subject == "[Coachbook] Reset your password"
    assert_branded(message)
    (link,) = [link for link in links(message.body) if "/accounts/password/reset/key/" in link]
    # The link works on the configured site.
    path = link.removeprefix(SITE)
    assert client.get(path).status_code in (200, 302)


def test_signing_up_again_with_a_taken_address_mails_a_branded_notice(client):
    user = UserFactory()

    client.post(
        reverse("account_signup"),
        {
            "email": user.email,
            "password1": PASSWORD,
            "password2": PASSWORD,
            "display_name": "Again",
            "role": "student",
            "timezone": "UTC",
        },
        HTTP_HOST="127.0.0.1:8101",
    )

    (message,) = mail.outbox
    assert message.subject == "[Coachbook] Account Already Exists"
    assert_branded(message)


@pytest.mark.parametrize(
    ("url_name", "heading"),
    [
        ("account_email", "Email addresses"),
        ("account_reauthenticate", "Confirm it's you"),
        ("account_change_password", "Change password"),
    ],
)
def test_account_management_pages_are_branded_in_the_site_layout(client, url_name, heading):
    client.force_login(UserFactory())
    response = client.get(reverse(url_name))
    html = response.content.decode()

    assert response.status_code == 200
    assert f">{heading}</h1>" in html
    assert '<main id="main"' in html and "css/app.css" in html
    assert "Coachbook" in html


def test_the_signup_page_names_coachbook(client):
    html = client.get(reverse("account_signup")).content.decode()
    assert "Coachbook books your coaching sessions" in html
    assert "How will you use Coachbook?" in html
