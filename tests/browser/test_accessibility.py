"""axe-core finds no serious or critical violation on the main pages, and they fit 375 px."""

import pytest
from django.core.management import call_command

from accounts.models import User
from sessions_app.lifecycle import Status
from sessions_app.models import Offering, Session
from tests.browser.conftest import log_in, serious_violations

pytestmark = pytest.mark.django_db(transaction=True)

DEMO_PASSWORD = "coachbook-demo"


@pytest.fixture
def demo(transactional_db):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    coach = User.objects.get(email="coach@example.com")
    student = User.objects.get(email="student@example.com")
    return coach, student


def scan(page, paths) -> dict[str, list[str]]:
    found = {}
    for path in paths:
        response = page.goto(path)
        assert response.status == 200, path
        violations = serious_violations(page)
        if violations:
            found[path] = violations
    return found


def test_coach_pages_have_no_serious_accessibility_violations(page, demo):
    coach, _ = demo
    confirmed = Session.objects.filter(coach=coach, status=Status.CONFIRMED).first()
    log_in(page, coach, DEMO_PASSWORD)

    found = scan(
        page,
        [
            "/sessions/tasks/",
            "/sessions/upcoming/",
            "/sessions/completed/",
            "/sessions/canceled/",
            f"/sessions/{confirmed.pk}/",
            f"/sessions/{confirmed.pk}/cancel/",
            f"/sessions/{confirmed.pk}/reschedule/",
            "/availability/",
            "/coaches/offerings/",
            "/profile/",
            "/calendar/week/",
        ],
    )

    assert found == {}


def test_student_and_public_pages_have_no_serious_accessibility_violations(page, demo):
    coach, student = demo
    offering = Offering.objects.filter(coach=coach).first()
    unscheduled = Session.objects.filter(student=student, status=Status.UNSCHEDULED).first()

    anonymous = scan(
        page, ["/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]
    )
    log_in(page, student, DEMO_PASSWORD)
    signed_in = scan(
        page,
        [
            "/sessions/my/",
            "/coaches/",
            f"/coaches/{coach.pk}/",
            f"/coaches/buy/{offering.pk}/",
            f"/sessions/{unscheduled.pk}/book/",
            "/profile/",
            "/calendar/week/",
        ],
    )

    assert anonymous == {}
    assert signed_in == {}


def test_main_pages_fit_a_375_px_screen(phone_page, demo):
    coach, student = demo
    overflowing = []
    for user, paths in [
        (coach, ["/sessions/tasks/", "/sessions/upcoming/", "/availability/", "/calendar/week/"]),
        (student, ["/sessions/my/", "/coaches/"]),
    ]:
        log_in(phone_page, user, DEMO_PASSWORD)
        for path in paths:
            phone_page.goto(path)
            width = phone_page.evaluate("document.documentElement.scrollWidth")
            if width > 375:
                overflowing.append((path, width))
        phone_page.context.clear_cookies()

    assert overflowing == []
