"""Accounts: email login, sign-up with verification, password reset, rate limits, profile."""

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import CoachProfile, User
from accounts.services import coach_profile_create, user_update_profile
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_create_user_logs_in_with_email_and_normalises_it():
    user = User.objects.create_user(email="Ana@Example.COM", password="pw-123456789")

    assert user.email == "ana@example.com"
    assert user.check_password("pw-123456789")
    assert not user.is_coach


def test_signup_creates_unverified_user_and_sends_verification(client):
    response = client.post(
        reverse("account_signup"),
        {
            "email": "new@example.com",
            "password1": "a-long-pass-42",
            "password2": "a-long-pass-42",
            "display_name": "New",
            "role": "student",
            "timezone": "UTC",
        },
    )

    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert EmailAddress.objects.get(user=user).verified is False
    assert len(mail.outbox) == 1
    assert "new@example.com" in mail.outbox[0].to


def test_login_requires_a_verified_email(client):
    user = UserFactory()
    EmailAddress.objects.filter(user=user).update(verified=False)

    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})

    assert response.status_code == 302
    assert response.url == reverse("account_email_verification_sent")
    assert "_auth_user_id" not in client.session


def test_login_with_verified_email_signs_in(client):
    user = UserFactory()

    client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})

    assert client.session["_auth_user_id"] == str(user.pk)


def test_failed_logins_are_rate_limited_even_for_the_right_password_afterwards(client):
    user = UserFactory()
    for _ in range(5):
        client.post(reverse("account_login"), {"login": user.email, "password": "wrong"})

    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})

    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_password_reset_sends_a_link(client):
    user = UserFactory()

    response = client.post(reverse("account_reset_password"), {"email": user.email})

    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "/accounts/password/reset/key/" in mail.outbox[0].body


def test_becoming_a_coach_is_idempotent():
    user = UserFactory()

    first = coach_profile_create(user=user, headline="Chess")
    second = coach_profile_create(user=user, headline="Other")

    assert first == second
    assert CoachProfile.objects.get(user=user).headline == "Chess"
    assert User.objects.get(pk=user.pk).is_coach


def test_profile_update_refuses_unknown_timezone():
    user = UserFactory(timezone="UTC")

    with pytest.raises(ValidationError):
        user_update_profile(user=user, display_name="Ana", timezone="Mars/Olympus")

    user.refresh_from_db()
    assert (user.display_name, user.timezone) != ("Ana", "Mars/Olympus")
    assert user.timezone == "UTC"
