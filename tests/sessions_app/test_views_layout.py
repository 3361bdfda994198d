import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import (
    CoachFactory,
    OfferingFactory,
    StudentFactory,
    make_package,
    make_session,
)

pytestmark = pytest.mark.django_db


def test_home_shows_the_landing_page_to_a_visitor(client):
    response = client.get(reverse("home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<main id="main"' in html
    assert 'href="#main"' in html
    assert 'role="status"' in html
    assert "Coaching sessions, booked and kept" in html


def test_home_sends_a_new_coach_to_get_started(client):
    # A coach who has done every step lands on Tasks (tests/accounts/test_signup_onboarding.py).
    client.force_login(CoachFactory())
    assert client.get(reverse("home")).url == reverse("accounts:get_started")


def test_home_sends_a_student_to_my_sessions(client):
    client.force_login(StudentFactory())
    assert client.get(reverse("home")).url == reverse("sessions:my_sessions")


def test_tasks_count_in_the_navigation_counts_live_requests_and_proposals_for_the_coach(
    client,
):
    requested = make_session("REQUESTED")
    coach = requested.coach
    make_session("REQUESTED", coach=coach)
    make_session("CONFIRMED", coach=coach)
    # The coach proposed this one: it waits on the student, not on the coach.
    make_session("RESCHEDULING", coach=coach)
    client.force_login(coach)
    html = client.get(reverse("home"), follow=True).content.decode()
    assert '<span class="count" aria-label="2 waiting">2</span>' in html


def test_coach_navigation_names_the_coach_pages_and_marks_the_current_one(client):
    client.force_login(CoachFactory())
    html = client.get(reverse("sessions:upcoming")).content.decode()
    for label in ["Tasks", "Upcoming", "Completed", "Availability", "Offerings", "Calendar"]:
        assert f">{label}" in html
    assert f'<a href="{reverse("sessions:upcoming")}" aria-current="page">Upcoming</a>' in html
    assert ">My sessions</a>" not in html
    assert f'<form class="inline" method="post" action="{reverse("account_logout")}">' in html
    assert ">Log out</button>" in html


def test_coach_navigation_offers_coaches_and_my_sessions_once_the_coach_bought_a_package(client):
    coach, offering = CoachFactory(), OfferingFactory()  # another coach's offering
    client.force_login(coach)
    url = reverse("catalog:coaches")

    with CaptureQueriesContext(connection) as first:
        before = client.get(url).content.decode()
    make_package(student=coach, offering=offering)
    with CaptureQueriesContext(connection) as second:
        after = client.get(url).content.decode()

    coaches_link = f'<a href="{url}" aria-current="page">Coaches</a>'
    my_sessions_link = f'<a href="{reverse("sessions:my_sessions")}">My sessions</a>'
    assert (coaches_link in before, my_sessions_link in before) == (True, False)
    assert (coaches_link in after, my_sessions_link in after) == (True, True)
    assert '<span class="count"' not in after  # nothing waits on this coach
    # The Tasks count and the package check are one query, before and after the purchase: the
    # only query that reads packages also counts sessions, and the page costs the same.
    for queries in (first, second):
        package_reads = [q["sql"] for q in queries if '"sessions_app_package"' in q["sql"]]
        assert len(package_reads) == 1, package_reads
        assert '"sessions_app_session"' in package_reads[0]
    assert len(second) == len(first)


def test_coach_navigation_still_counts_tasks_with_packages_bought(client):
    requested = make_session("REQUESTED")
    make_package(student=requested.coach)
    client.force_login(requested.coach)
    html = client.get(reverse("sessions:upcoming")).content.decode()
    assert '<span class="count" aria-label="1 waiting">1</span>' in html
    assert f'<a href="{reverse("sessions:my_sessions")}">My sessions</a>' in html


def test_student_navigation_names_the_student_pages(client):
    client.force_login(StudentFactory())
    html = client.get(reverse("sessions:my_sessions")).content.decode()
    for label in ["My sessions", "Coaches", "Calendar", "Profile"]:
        assert f">{label}</a>" in html
    assert ">Tasks" not in html


@pytest.mark.parametrize(
    ("url_name", "heading"),
    [
        ("account_login", "Log in"),
        ("account_signup", "Create an account"),
        ("account_reset_password", "Reset your password"),
        ("account_reset_password_done", "Check your email"),
        ("account_email_verification_sent", "Confirm your email address"),
    ],
)
def test_account_pages_use_the_site_layout(client, url_name, heading):
    response = client.get(reverse(url_name))
    html = response.content.decode()
    assert response.status_code == 200
    assert '<main id="main"' in html
    assert f">{heading}</h1>" in html
    assert "css/app.css" in html


def test_login_form_fields_have_labels_and_a_bad_password_shows_an_alert(client):
    response = client.post(reverse("account_login"), {"login": "x@example.com", "password": "no"})
    html = response.content.decode()
    assert '<label for="id_login">' in html
    assert '<label for="id_password">' in html
    assert 'role="alert"' in html


def test_logged_in_account_pages_use_the_site_layout(client):
    client.force_login(StudentFactory())
    for url_name, heading in [
        ("account_logout", "Log out"),
        ("account_change_password", "Change password"),
    ]:
        html = client.get(reverse(url_name)).content.decode()
        assert f">{heading}</h1>" in html
        assert '<nav class="site-nav" aria-label="Main">' in html


def test_logout_is_a_post(client):
    client.force_login(StudentFactory())
    response = client.post(reverse("account_logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session
