"""Filtering Upcoming in a browser, on a wide screen and on a phone."""

import pytest
from django.core.management import call_command

from accounts.models import User
from sessions_app.lifecycle import Status
from sessions_app.models import Session
from tests.browser.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("width", [1280, 375])
def test_a_coach_filters_upcoming_by_a_students_name(new_page, transactional_db, width):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    coach = User.objects.get(email="coach@example.com")
    page = new_page(width=width)
    log_in(page, coach, "coachbook-demo")
    page.goto("/sessions/upcoming/")
    everyone = page.locator("table tr[id^=session-]").count()
    assert everyone >= 2

    page.get_by_label("Search student").fill("nobody-at-all")
    page.get_by_role("button", name="Apply").click()
    assert "No sessions match" in page.locator("main").inner_text()

    page.get_by_label("Search student").fill("student@example")
    page.get_by_role("button", name="Apply").click()
    jamies = Session.objects.filter(
        coach=coach,
        student__email="student@example.com",
        status__in=[Status.CONFIRMED, Status.RESCHEDULING],
    ).count()
    assert page.locator("table tr[id^=session-]").count() == jamies
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    page.get_by_role("search").get_by_role("link", name="Clear filters").click()
    assert page.locator("table tr[id^=session-]").count() == everyone
