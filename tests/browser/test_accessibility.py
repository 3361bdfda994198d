"""axe-core finds no violation of any WCAG 2.0/2.1/2.2 A or AA rule, whatever its impact, on
every page of both roles, at 1280 and at 375 px; and every page fits a 375 px screen."""

import pytest
from django.core.management import call_command
from django.urls import NoReverseMatch, reverse

from accounts.models import User
from calendars.models import BusyTime
from catalog.models import Offering
from sessions_app.lifecycle import Status
from sessions_app.models import Session
from tests.browser.conftest import log_in, wcag_violations

pytestmark = pytest.mark.django_db(transaction=True)

DEMO_PASSWORD = "coachbook-demo"
WIDTHS = [1280, 375]


@pytest.fixture
def demo(transactional_db):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    coach = User.objects.get(email="coach@example.com")
    student = User.objects.get(email="student@example.com")
    return coach, student


def optional_path(name: str, *args) -> list[str]:
    """[the page's address] when the route exists, else []."""
    try:
        return [reverse(name, args=args)]
    except NoReverseMatch:
        return []


def scan(page, paths, expected_status=200) -> dict[str, list[str]]:
    found = {}
    for path in paths:
        response = page.goto(path)
        assert response.status == expected_status, path
        violations = wcag_violations(page)
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


def coach_paths(page, coach) -> list[str]:
    sessions = Session.objects.filter(coach=coach)
    confirmed = sessions.filter(status=Status.CONFIRMED).first()
    # A busy time in the coach's own calendar lands on an agreed session: a task.
    BusyTime.objects.create(coach=coach, start=confirmed.slot.start, end=confirmed.slot.end)
    by_status = [
        sessions.filter(status=status).first()
        for status in (Status.REQUESTED, Status.CONFIRMED, Status.RESCHEDULING, Status.COMPLETED)
    ]
    canceled = sessions.filter(status=Status.CANCELED).first()
    student_id = confirmed.student_id
    offering = Offering.objects.filter(coach=coach).first()
    return [
        "/sessions/tasks/",
        "/sessions/upcoming/",
        "/sessions/completed/",
        "/sessions/canceled/",
        *optional_path("sessions:students"),
        *optional_path("sessions:student_detail", student_id),
        *optional_path("accounts:get_started"),
        *[f"/sessions/{session.pk}/" for session in [*by_status, canceled] if session],
        f"/sessions/{confirmed.pk}/?from=tasks",
        f"/sessions/{confirmed.pk}/cancel/",
        f"/sessions/{confirmed.pk}/reschedule/",
        confirm_step_of(page, f"/sessions/{confirmed.pk}/reschedule/"),
        "/availability/",
        "/coaches/offerings/",
        "/coaches/offerings/new/",
        f"/coaches/offerings/{offering.pk}/edit/",
        f"/coaches/{coach.pk}/",
        "/profile/",
        "/calendar/week/",
    ]


def student_paths(page, coach, student) -> list[str]:
    sessions = Session.objects.filter(student=student)
    unscheduled = sessions.filter(status=Status.UNSCHEDULED).first()
    offering = Offering.objects.filter(coach=coach).first()
    by_status = [
        sessions.filter(status=status).first()
        for status in (Status.REQUESTED, Status.CONFIRMED, Status.RESCHEDULING, Status.COMPLETED)
    ]
    return [
        "/sessions/my/",
        "/coaches/",
        f"/coaches/{coach.pk}/",
        f"/coaches/buy/{offering.pk}/",
        f"/sessions/{unscheduled.pk}/book/",
        confirm_step_of(page, f"/sessions/{unscheduled.pk}/book/"),
        *[f"/sessions/{session.pk}/" for session in by_status if session],
        "/profile/",
        "/calendar/week/",
    ]


ANONYMOUS_PATHS = ["/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]


@pytest.mark.parametrize("width", WIDTHS)
def test_coach_pages_have_no_wcag_violation(new_page, demo, width):
    coach, _ = demo
    page = new_page(width=width)
    log_in(page, coach, DEMO_PASSWORD)

    assert scan(page, coach_paths(page, coach)) == {}


@pytest.mark.parametrize("width", WIDTHS)
def test_student_and_public_pages_have_no_wcag_violation(new_page, demo, width):
    coach, student = demo
    page = new_page(width=width)

    anonymous = scan(page, ANONYMOUS_PATHS)
    missing = scan(page, ["/no-such-page/"], expected_status=404)
    log_in(page, student, DEMO_PASSWORD)
    signed_in = scan(page, student_paths(page, coach, student))

    assert anonymous == {}
    assert missing == {}
    assert signed_in == {}


def test_every_page_fits_a_375_px_screen(phone_page, demo):
    coach, student = demo
    overflowing = []
    for path in ANONYMOUS_PATHS:
        phone_page.goto(path)
        width = phone_page.evaluate("document.documentElement.scrollWidth")
        if width > 375:
            overflowing.append((path, width))
    for user, paths_of in [
        (coach, lambda: coach_paths(phone_page, coach)),
        (student, lambda: student_paths(phone_page, coach, student)),
    ]:
        log_in(phone_page, user, DEMO_PASSWORD)
        for path in paths_of():
            phone_page.goto(path)
            width = phone_page.evaluate("document.documentElement.scrollWidth")
            if width > 375:
                overflowing.append((path, width))
        phone_page.context.clear_cookies()

    assert overflowing == []
