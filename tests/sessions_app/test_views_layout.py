import pytest
from django.urls import reverse

from tests.factories import CoachFactory, StudentFactory, make_session

pytestmark = pytest.mark.django_db


def test_home_shows_the_landing_page_to_a_visitor(client):
    response = client.get(reverse("home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<main id="main"' in html
    assert 'href="#main"' in html
    assert 'role="status"' in html
    assert "Coaching sessions, booked and kept" in html


def test_home_sends_a_coach_to_tasks(client):
    client.force_login(CoachFactory())
    assert client.get(reverse("home")).url == reverse("sessions:tasks")


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
