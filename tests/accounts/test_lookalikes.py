# ruff: noqa: RUF001, RUF003 -- full-width look-alikes are what these tests type.
"""Look-alike accounts (issue 12): email addresses are normalised wherever they are set, so a
zero-width or full-width copy of an existing address is that address; display names must be
visible and free of bidirectional controls."""

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import User, normalize_email_address, validate_display_name
from accounts.services import user_update_profile
from tests.factories import PASSWORD, StudentFactory, UserFactory

pytestmark = pytest.mark.django_db

SIGNUP = reverse("account_signup")
NEW_PASSWORD = "a-long-pass-42"

# Spellings of sam@example.com that a mail server delivers to sam@example.com.
LOOKALIKES = [
    "sam\u200b@example.com",  # zero-width space in the local part
    "sam@example.com\u200b",  # ... and at the end of the domain (Django's validator accepts it)
    "s\u200cam@exa\u200dmple.com",  # zero-width non-joiner and joiner
    "\ufeffsam@example.com",  # byte-order mark pasted in front
    "sa\u00adm@example.com",  # soft hyphen
    "sa\u2060m@example.com",  # word joiner
    "sam\u00a0@example.com",  # no-break space
    "ｓａｍ@example.com",  # full-width local part
    "sａm@example.com",  # one full-width letter
    "ｓａｍ＠ｅｘａｍｐｌｅ．ｃｏｍ",  # full-width throughout, ＠ and ． included
    "SAM@Example.COM\u200b",  # case and a zero-width space
]


@pytest.fixture(autouse=True)
def _clean_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def sam():
    return UserFactory(email="sam@example.com")


def signup(client, email, **extra):
    data = {
        "email": email,
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
        "display_name": "Sam",
        "role": "student",
        "timezone": "UTC",
        **extra,
    }
    return client.post(SIGNUP, data)


# --- The normal form -------------------------------------------------------------------------


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_every_lookalike_normalises_to_the_plain_address(lookalike):
    assert normalize_email_address(lookalike) == "sam@example.com"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("  Ana@Example.COM ", "ana@example.com"),
        ("ana@bücher.example", "ana@xn--bcher-kva.example"),
        ("ana@BÜCHER.example", "ana@xn--bcher-kva.example"),
        ("ana@xn--bcher-kva.example", "ana@xn--bcher-kva.example"),
        ("ａｎａ＠ｂüｃｈｅｒ．ｅｘａｍｐｌｅ", "ana@xn--bcher-kva.example"),
        ("first.last+tag@example.com", "first.last+tag@example.com"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_normal_form_is_nfkc_without_invisibles_with_an_idna_lowercase_domain(typed, stored):
    assert normalize_email_address(typed) == stored


def test_user_manager_stores_the_normal_form():
    user = User.objects.create_user(email="ＡＮＡ\u200b@Bücher.Example", password=PASSWORD)

    assert user.email == "ana@xn--bcher-kva.example"
    assert User.objects.get_by_natural_key("ana\u200b@bücher.example") == user


# --- Sign-up ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_signup_with_a_lookalike_of_an_existing_address_creates_nothing(client, sam, lookalike):
    """Mandatory verification (the default) with allauth's enumeration prevention: the sign-up
    is treated as one with the plain address, so the visitor is told to check the mail and only
    the real owner hears about it, in an "account already exists" email."""
    response = signup(client, lookalike)

    assert response.status_code == 302
    assert list(User.objects.values_list("email", flat=True)) == ["sam@example.com"]
    assert list(EmailAddress.objects.values_list("email", flat=True)) == ["sam@example.com"]
    assert [message.to for message in mail.outbox] == [["sam@example.com"]]
    assert "Account Already Exists" in mail.outbox[0].subject
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("lookalike", ["sam\u200b@example.com", "ｓａｍ@example.com"])
def test_signup_page_says_the_address_is_taken_without_mandatory_verification(
    client, settings, sam, lookalike
):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"

    response = signup(client, lookalike)

    assert response.status_code == 200
    assert "A user is already registered with this email address." in response.content.decode()
    assert User.objects.count() == 1
    assert mail.outbox == []


def test_signup_form_shows_the_address_as_it_was_read(client, settings, sam):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"

    response = signup(client, "ｓａｍ\u200b@example.com")

    assert response.context["form"]["email"].value() == "sam@example.com"


def test_signup_stores_a_new_address_in_its_normal_form(client):
    response = signup(client, "ｎｅｗ\u200b@Bücher.Example")

    assert response.status_code == 302
    user = User.objects.get()
    assert user.email == "new@xn--bcher-kva.example"
    assert EmailAddress.objects.get(user=user).email == "new@xn--bcher-kva.example"
    assert mail.outbox[0].to == ["new@xn--bcher-kva.example"]


def test_adapter_clean_email_normalises(rf):
    from accounts.adapters import AccountAdapter

    assert AccountAdapter(rf.get("/")).clean_email("ｓａｍ\u200b@example.com") == "sam@example.com"


# --- Login -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed", ["sam\u200b@example.com", "ｓａｍ@Example.com", " SAM@example.com"]
)
def test_owner_logs_in_with_a_pasted_invisible_or_full_width_character(client, sam, typed):
    client.post(reverse("account_login"), {"login": typed, "password": PASSWORD})

    assert client.session["_auth_user_id"] == str(sam.pk)


# --- The admin -------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser(email="root@example.com", password=PASSWORD))
    return client


def admin_add(client, email):
    return client.post(
        reverse("admin:accounts_user_add"),
        {"email": email, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )


@pytest.mark.parametrize("lookalike", ["sam\u200b@example.com", "ｓａｍ@example.com"])
def test_admin_add_refuses_a_lookalike_of_an_existing_address(admin_client, sam, lookalike):
    response = admin_add(admin_client, lookalike)

    assert response.status_code == 200
    assert "User with this Email address already exists." in response.content.decode()
    assert User.objects.count() == 2


def test_admin_add_and_change_store_the_normal_form(admin_client, sam):
    assert admin_add(admin_client, "ｎｅｗ@Bücher.Example").status_code == 302
    new = User.objects.get(email="new@xn--bcher-kva.example")

    response = admin_client.post(
        reverse("admin:accounts_user_change", args=[new.pk]),
        {
            "email": "ｒｅｎａｍｅｄ\u200b@example.com",
            "display_name": "New",
            "timezone": "UTC",
            "is_active": "on",
            "last_login_0": "",
            "last_login_1": "",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )

    assert response.status_code == 302, response.content.decode()
    new.refresh_from_db()
    assert new.email == "renamed@example.com"


def test_admin_change_refuses_a_lookalike_of_another_account(admin_client, sam):
    other = UserFactory(email="other@example.com")

    response = admin_client.post(
        reverse("admin:accounts_user_change", args=[other.pk]),
        {
            "email": "ｓａｍ@example.com",
            "display_name": "Other",
            "timezone": "UTC",
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )

    assert response.status_code == 200
    assert "User with this Email address already exists." in response.content.decode()
    other.refresh_from_db()
    assert other.email == "other@example.com"


# --- Display names ---------------------------------------------------------------------------

BIDI_NAMES = [
    "Sam\u202eeciloA",  # right-to-left override
    "\u202aSam",
    "Sam\u202b",
    "Sam\u202c",
    "Sam\u202d",
    "Sam\u2066x\u2069",  # isolates
    "Sam\u2067",
    "Sam\u2068",
    "Sam\u200e",  # left-to-right mark
    "Sam\u200f",  # right-to-left mark
    "Sam\u061c",  # Arabic letter mark
]
INVISIBLE_NAMES = [
    "\u200b",
    "\u200b\u200c\u200d",
    "\ufeff\u2060",
    "\u00ad",
    "\u3164",  # Hangul filler
    "\u2800\u2800",  # braille blank
    "\u200b \u3000 \u200b",  # zero-width and ideographic spaces
    "\u0301\u0301",  # combining marks with nothing to sit on
]
GOOD_NAMES = ["Sam", "Zoë Ångström", "محمد علي", "李雷", "Ana 👩\u200d💻", "Jean-Luc O'Neil"]


@pytest.mark.parametrize("name", BIDI_NAMES)
def test_display_name_with_a_bidi_control_is_refused(name):
    with pytest.raises(ValidationError) as excinfo:
        validate_display_name(name)
    assert excinfo.value.code == "bidi_controls"


@pytest.mark.parametrize("name", INVISIBLE_NAMES)
def test_display_name_of_only_invisible_characters_is_refused(name):
    with pytest.raises(ValidationError) as excinfo:
        validate_display_name(name)
    assert excinfo.value.code == "invisible"


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_visible_display_names_in_any_script_are_accepted(name):
    validate_display_name(name)
    user = user_update_profile(user=StudentFactory(), display_name=name, timezone="UTC")
    assert user.display_name == name


@pytest.mark.parametrize("name", ["Sam\u202egnp.exe", "\u200b\u200b"])
def test_service_refuses_the_name_and_saves_nothing(name):
    user = StudentFactory(display_name="Sam")

    with pytest.raises(ValidationError):
        user_update_profile(user=user, display_name=name, timezone="UTC")

    user.refresh_from_db()
    assert user.display_name == "Sam"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("\u200b\u200b", "Use at least one visible letter or digit"),
        ("Sam\u202eeciloA", "Remove the text-direction control characters"),
        ("Sam\u2066", "Remove the text-direction control characters"),
    ],
)
def test_profile_page_refuses_the_name_with_a_clear_message(client, name, message):
    user = StudentFactory(display_name="Sam")
    client.force_login(user)

    response = client.post(
        reverse("accounts:profile_update"), {"me-display_name": name, "me-timezone": "UTC"}
    )

    assert response.status_code == 400
    assert message in response.content.decode()
    user.refresh_from_db()
    assert user.display_name == "Sam"


# --- Stored addresses ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_migration_normalises_stored_addresses_and_leaves_collisions():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    def migrate(targets):
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(targets)
        return executor.loader.project_state(targets).apps

    old_apps = migrate(
        [
            ("accounts", "0004_coachprofile_booking_terms"),
            ("account", "0009_emailaddress_unique_primary_email"),
        ]
    )
    try:
        OldUser = old_apps.get_model("accounts", "User")
        OldEmailAddress = old_apps.get_model("account", "EmailAddress")
        rows = {
            "ana@bücher.example": "ana@xn--bcher-kva.example",
            "sam@example.com": "sam@example.com",
            "sam@example.com\u200b": "sam@example.com\u200b",  # collides: left for the admin
        }
        for n, email in enumerate(rows):
            user = OldUser.objects.create(email=email, calendar_token=f"token-{n}")
            OldEmailAddress.objects.create(user=user, email=email, primary=True, verified=True)

        migrate([("accounts", "0005_normalize_stored_emails")])
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert sorted(User.objects.values_list("email", flat=True)) == sorted(rows.values())
    assert sorted(EmailAddress.objects.values_list("email", flat=True)) == sorted(rows.values())
