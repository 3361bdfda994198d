"""The profile page: display name and timezone, becoming a coach, the coach profile."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import CoachProfile, User
from accounts.services import CoachProfileInvalid
from sessions_app.lifecycle import PermissionDenied
from tests.conftest import messages_of
from tests.factories import CoachFactory, StudentFactory

pytestmark = pytest.mark.django_db

PROFILE = reverse("accounts:profile")
UPDATE = reverse("accounts:profile_update")
BECOME = reverse("accounts:coach_become")
COACH = reverse("accounts:coach_update")


@pytest.fixture
def student():
    return StudentFactory(display_name="Sam", timezone="UTC")


def coach_data(**overrides) -> dict:
    data = {
        "coach-headline": "Sharper thinking in six weeks",
        "coach-bio": "I coach founders.",
        "coach-request_window_hours": "24",
        "coach-reschedule_window_hours": "36",
        "coach-minimum_notice_hours": "6",
        "coach-buffer_before_minutes": "10",
        "coach-buffer_after_minutes": "15",
        "coach-start_interval_minutes": "45",
        "coach-booking_horizon_days": "90",
    }
    data.update(overrides)
    return data


def test_anonymous_visitor_is_sent_to_log_in(client):
    response = client.get(PROFILE)

    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_profile_shows_name_timezone_become_a_coach_and_the_feed(student_client):
    response = student_client.get(PROFILE)

    page = response.content.decode()
    assert response.status_code == 200
    assert 'value="Sam"' in page
    assert '<option value="Europe/Berlin">Europe/Berlin</option>' in page
    assert '<option value="UTC" selected>UTC</option>' in page
    assert "Become a coach" in page
    assert "calendars/_feed_instructions.html" in [t.name for t in response.templates]
    assert response.context["coach_form"] is None


def test_saving_name_and_timezone_changes_how_times_are_shown(student_client, student):
    response = student_client.post(
        UPDATE, {"me-display_name": "  Samantha ", "me-timezone": "America/New_York"}, follow=True
    )

    student.refresh_from_db()
    assert (student.display_name, student.timezone) == ("Samantha", "America/New_York")
    assert messages_of(response) == ["Profile saved. Times are shown in America/New_York."]
    assert "Times are shown in America/New_York." in response.content.decode()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (
            {"me-display_name": "Sam", "me-timezone": "Mars/Olympus"},
            "Choose a timezone from the list.",
        ),
        ({"me-display_name": "Sam", "me-timezone": ""}, "This field is required."),
        ({"me-display_name": "x" * 121, "me-timezone": "UTC"}, "at most 120 characters"),
    ],
)
def test_bad_profile_input_is_refused_and_changes_nothing(student_client, student, data, error):
    response = student_client.post(UPDATE, data)

    student.refresh_from_db()
    assert response.status_code == 400
    assert error in response.content.decode()
    assert (student.display_name, student.timezone) == ("Sam", "UTC")


def test_a_refusal_from_the_service_is_shown_on_the_page(student_client, student, monkeypatch):
    def refuse(*, user, display_name, timezone):
        user.display_name = display_name
        raise ValidationError({"display_name": ["That name is not allowed."]})

    monkeypatch.setattr(services, "user_update_profile", refuse)

    response = student_client.post(UPDATE, {"me-display_name": "Bad", "me-timezone": "UTC"})

    assert response.status_code == 400
    assert "That name is not allowed." in response.content.decode()
    assert User.objects.get(pk=student.pk).display_name == "Sam"


def test_a_legacy_timezone_already_chosen_stays_selectable(client):
    user = StudentFactory(timezone="US/Eastern")
    client.force_login(user)

    page = client.get(PROFILE).content.decode()

    assert '<option value="US/Eastern" selected>US/Eastern</option>' in page


def test_becoming_a_coach_creates_the_coach_profile(student_client, student):
    response = student_client.post(BECOME, follow=True)

    assert CoachProfile.objects.filter(user=student).count() == 1
    assert messages_of(response)[0].startswith("You are a coach now.")
    assert response.context["coach_form"] is not None


def test_becoming_a_coach_twice_keeps_one_profile(coach_client, coach):
    response = coach_client.post(BECOME, follow=True)

    assert CoachProfile.objects.filter(user=coach).count() == 1
    assert messages_of(response) == ["You are already a coach."]


def test_coach_sees_and_saves_their_coach_profile(coach_client, coach):
    assert (
        'name="coach-request_window_hours" value="48"' in coach_client.get(PROFILE).content.decode()
    )

    response = coach_client.post(COACH, coach_data(), follow=True)

    profile = CoachProfile.objects.get(user=coach)
    assert (profile.headline, profile.bio) == ("Sharper thinking in six weeks", "I coach founders.")
    assert (
        profile.request_window_hours,
        profile.reschedule_window_hours,
        profile.minimum_notice_hours,
    ) == (24, 36, 6)
    assert (
        profile.buffer_before_minutes,
        profile.buffer_after_minutes,
        profile.start_interval_minutes,
        profile.booking_horizon_days,
    ) == (10, 15, 45, 90)
    assert messages_of(response) == ["Coach profile saved."]


def test_coach_profile_shows_the_booking_rules_grouped_with_their_bounds(coach_client, coach):
    response = coach_client.get(PROFILE)

    page = response.content.decode()
    assert [legend for legend, _ in response.context["coach_form"].groups()] == [
        "About you",
        "Requests and changes",
        "Booking rules",
    ]
    assert "<legend>Booking rules</legend>" in page
    assert 'name="coach-buffer_before_minutes" value="0"' in page
    assert 'name="coach-start_interval_minutes" value="30"' in page
    assert 'name="coach-booking_horizon_days" value="730"' in page
    assert 'max="240"' in page and 'min="5"' in page and 'max="730"' in page
    assert reverse("calendars:availability") in page


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"coach-request_window_hours": "0"}, "greater than or equal to 1"),
        ({"coach-reschedule_window_hours": "abc"}, "Enter a whole number."),
        ({"coach-minimum_notice_hours": "-1"}, "greater than or equal to 0"),
        ({"coach-minimum_notice_hours": "721"}, "less than or equal to 720"),
        ({"coach-headline": "x" * 161}, "at most 160 characters"),
        ({"coach-buffer_before_minutes": "-5"}, "Use 0 to 240 minutes."),
        ({"coach-buffer_after_minutes": "241"}, "Use 0 to 240 minutes."),
        ({"coach-buffer_after_minutes": "1.5"}, "Enter a whole number of minutes."),
        ({"coach-start_interval_minutes": "4"}, "Use 5 to 240 minutes."),
        ({"coach-start_interval_minutes": "241"}, "Use 5 to 240 minutes."),
        ({"coach-start_interval_minutes": ""}, "Enter a number of minutes (5 to 240)."),
        ({"coach-booking_horizon_days": "0"}, "Use 1 to 730 days."),
        ({"coach-booking_horizon_days": "99999999999999999999"}, "Use 1 to 730 days."),
        (
            {"coach-minimum_notice_hours": "48", "coach-booking_horizon_days": "2"},
            "The minimum notice (48 hours) must be shorter than the booking horizon (2 days), "
            "or nothing could be booked.",
        ),
    ],
)
def test_bad_coach_profile_is_refused_and_changes_nothing(coach_client, coach, overrides, error):
    response = coach_client.post(COACH, coach_data(**overrides))

    profile = CoachProfile.objects.get(user=coach)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert (profile.headline, profile.request_window_hours, profile.minimum_notice_hours) == (
        "Helps you get better",
        48,
        0,
    )
    assert (
        profile.buffer_before_minutes,
        profile.buffer_after_minutes,
        profile.start_interval_minutes,
        profile.booking_horizon_days,
    ) == (0, 0, 30, 730)


def test_student_cannot_save_a_coach_profile(student_client, student):
    response = student_client.post(COACH, coach_data(), follow=True)

    assert CoachProfile.objects.filter(user=student).exists() is False
    assert messages_of(response) == ["Only coaches have a coach profile. Become a coach first."]


def test_profile_changes_need_a_csrf_token(student):
    client = Client(enforce_csrf_checks=True)
    client.force_login(student)

    responses = [
        client.post(UPDATE, {"me-display_name": "X", "me-timezone": "UTC"}),
        client.post(BECOME),
    ]

    assert [r.status_code for r in responses] == [403, 403]
    assert User.objects.get(pk=student.pk).display_name == "Sam"
    assert CoachProfile.objects.filter(user=student).exists() is False


def test_get_on_an_action_url_is_not_allowed(student_client):
    assert student_client.get(BECOME).status_code == 405


# --- the service -------------------------------------------------------------------------------


def test_coach_profile_update_refuses_a_non_coach():
    with pytest.raises(PermissionDenied):
        services.coach_profile_update(
            user=StudentFactory(),
            headline="",
            bio="",
            request_window_hours=1,
            reschedule_window_hours=1,
            minimum_notice_hours=0,
        )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("request_window_hours", 0, "The request window must be 1 to 720 hours."),
        ("reschedule_window_hours", True, "The reschedule window must be 1 to 720 hours."),
        ("minimum_notice_hours", "6", "The minimum notice must be 0 to 720 hours."),
    ],
)
def test_coach_profile_update_refuses_bad_windows(field, value, message):
    coach = CoachFactory()
    fields = {
        "headline": "New",
        "bio": "",
        "request_window_hours": 10,
        "reschedule_window_hours": 10,
        "minimum_notice_hours": 1,
        field: value,
    }

    with pytest.raises(CoachProfileInvalid, match=message):
        services.coach_profile_update(user=coach, **fields)

    assert CoachProfile.objects.get(user=coach).headline == "Helps you get better"


WINDOWS = {"headline": "", "bio": "", "request_window_hours": 10, "reschedule_window_hours": 10}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("buffer_before_minutes", -1, "The buffer before a session must be 0 to 240 minutes."),
        ("buffer_after_minutes", 241, "The buffer after a session must be 0 to 240 minutes."),
        ("start_interval_minutes", 4, "The start interval must be 5 to 240 minutes."),
        ("start_interval_minutes", 30.0, "The start interval must be 5 to 240 minutes."),
        ("booking_horizon_days", 731, "The booking horizon must be 1 to 730 days."),
        ("booking_horizon_days", False, "The booking horizon must be 1 to 730 days."),
    ],
)
def test_coach_profile_update_refuses_booking_rules_out_of_bounds(field, value, message):
    coach = CoachFactory()

    with pytest.raises(CoachProfileInvalid, match=message):
        services.coach_profile_update(
            user=coach, **WINDOWS, minimum_notice_hours=1, **{field: value}
        )

    profile = CoachProfile.objects.get(user=coach)
    assert (profile.start_interval_minutes, profile.booking_horizon_days) == (30, 730)


def test_coach_profile_update_keeps_booking_rules_it_is_not_given():
    coach = CoachFactory()
    services.coach_profile_update(
        user=coach, **WINDOWS, minimum_notice_hours=1, buffer_after_minutes=20
    )

    profile = CoachProfile.objects.get(user=coach)
    assert (
        profile.buffer_before_minutes,
        profile.buffer_after_minutes,
        profile.start_interval_minutes,
        profile.booking_horizon_days,
    ) == (0, 20, 30, 730)


def test_coach_profile_update_refuses_a_notice_that_reaches_past_the_horizon():
    coach = CoachFactory()

    with pytest.raises(CoachProfileInvalid, match="must be shorter than the booking horizon"):
        services.coach_profile_update(
            user=coach, **WINDOWS, minimum_notice_hours=24, booking_horizon_days=1
        )

    assert CoachProfile.objects.get(user=coach).minimum_notice_hours == 0


# --- the model's bounds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("request_window_hours", 721),
        ("request_window_hours", 10**9),
        ("reschedule_window_hours", 0),
        ("reschedule_window_hours", 10**9),
        ("minimum_notice_hours", 721),
        ("buffer_before_minutes", 241),
        ("buffer_after_minutes", 241),
        ("start_interval_minutes", 4),
        ("start_interval_minutes", 241),
        ("booking_horizon_days", 0),
        ("booking_horizon_days", 731),
    ],
)
def test_the_database_refuses_a_window_out_of_bounds(field, value):
    profile = CoachFactory().coach_profile
    setattr(profile, field, value)

    with pytest.raises(ValidationError) as invalid:
        profile.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        profile.save(update_fields=[field])

    assert field in invalid.value.message_dict
    assert getattr(CoachProfile.objects.get(pk=profile.pk), field) != value


# --- display names are one line ----------------------------------------------------------------

ONE_LINE = "Use one line without tabs or other control characters."


@pytest.mark.parametrize("name", ["Sam\nBcc: x@example.com", "Sam\rSmith", "A\tB", "A\u2028B"])
def test_a_display_name_that_is_not_one_line_is_refused_on_the_page(student_client, student, name):
    response = student_client.post(UPDATE, {"me-display_name": name, "me-timezone": "UTC"})

    assert response.status_code == 400
    assert ONE_LINE in response.content.decode()
    assert User.objects.get(pk=student.pk).display_name == "Sam"


def test_the_profile_service_refuses_a_display_name_that_is_not_one_line(student):
    with pytest.raises(ValidationError) as refused:
        services.user_update_profile(user=student, display_name="Sam\nSmith", timezone="UTC")

    assert refused.value.message_dict == {"display_name": [ONE_LINE]}
    assert User.objects.get(pk=student.pk).display_name == "Sam"
