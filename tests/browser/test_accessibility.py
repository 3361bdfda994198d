"""axe-core finds no serious or critical violation on the main pages, and they fit 375 px."""

import pytest
from django.core.management import call_command

from accounts.models import User
from calendars.models import BusyTime
from catalog.models import Offering
from sessions_app.lifecycle import Status
from sessions_app.models import Session
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


def confirm_step_of(page, picker_path) -> str:
    """The address of the picker's confirm step for its first time (from the week with one)."""
    page.goto(picker_path)
    times = page.locator("ul.slot-list a")
    if times.count() == 0:  # this week is full or over: the page links the next open time
        page.get_by_role("link", name="Show that week").click()
    return page.locator("ul.slot-list a").first.get_attribute("href")


def test_coach_pages_have_no_serious_accessibility_violations(page, demo):
    coach, _ = demo
    confirmed = Session.objects.filter(coach=coach, status=Status.CONFIRMED).first()
    rescheduling = Session.objects.filter(coach=coach, status=Status.RESCHEDULING).first()
    # A busy time in the coach's own calendar lands on an agreed session: a task.
    BusyTime.objects.create(coach=coach, start=confirmed.slot.start, end=confirmed.slot.end)
    log_in(page, coach, DEMO_PASSWORD)
    confirm_step = confirm_step_of(page, f"/sessions/{confirmed.pk}/reschedule/")

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
            confirm_step,
            f"/sessions/{rescheduling.pk}/",
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
    rescheduling = Session.objects.filter(student=student, status=Status.RESCHEDULING).first()

    anonymous = scan(
        page, ["/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]
    )
    log_in(page, student, DEMO_PASSWORD)
    confirm_step = confirm_step_of(page, f"/sessions/{unscheduled.pk}/book/")
    signed_in = scan(
        page,
        [
            "/sessions/my/",
            "/coaches/",
            f"/coaches/{coach.pk}/",
            f"/coaches/buy/{offering.pk}/",
            f"/sessions/{unscheduled.pk}/book/",
            confirm_step,
            f"/sessions/{rescheduling.pk}/",
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
