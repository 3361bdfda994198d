"""Buying on a phone (issue 13, item 4): the price per session and the policy before Buy; a
second purchase warns about unused sessions and needs "Yes, buy another package"."""

import pytest

from sessions_app.models import Package
from tests.browser.conftest import log_in
from tests.factories import PASSWORD, CoachFactory, OfferingFactory, StudentFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_student_buys_on_a_phone_and_is_warned_before_a_second_package(phone_page):
    coach = CoachFactory(display_name="Alex")
    OfferingFactory(coach=coach, title="One session", session_count=1, price_cents=3000)
    OfferingFactory(coach=coach, title="Five sessions", session_count=5, price_cents=13000)
    student = StudentFactory()
    page = phone_page
    log_in(page, student, PASSWORD)

    page.goto(f"/coaches/{coach.pk}/")
    main = page.locator("main")
    assert "$26.00 per session" in main.inner_text()
    assert "Save $20.00 (13 %)" in main.inner_text()
    assert "Cancellation and rescheduling" in main.inner_text()
    page.get_by_role("link", name="Buy Five sessions").click()
    page.wait_for_load_state()
    assert "You'll settle the payment with Alex directly." in main.inner_text()
    assert "gateway" not in main.inner_text().lower()
    page.get_by_role("button", name="Buy for").click()
    page.wait_for_load_state()
    assert page.url.endswith("/sessions/my/")
    assert "0 of 5 used, 5 to book" in main.inner_text()
    # Nothing is wider than the phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375

    # Back to the Buy page: a fresh page warns, and Buy alone buys nothing.
    page.go_back()
    page.reload()
    assert "You still have 5 unused sessions of Five sessions with Alex." in main.inner_text()
    page.get_by_role("button", name="Buy for").click()
    page.wait_for_load_state()
    assert "Tick “Yes, buy another package”" in main.inner_text()
    assert Package.objects.filter(student=student).count() == 1

    page.get_by_label("Yes, buy another package").check()
    page.get_by_role("button", name="Buy for").click()
    page.wait_for_load_state()
    assert page.url.endswith("/sessions/my/")
    assert Package.objects.filter(student=student).count() == 2
    text = main.inner_text()
    assert "Five sessions #1" in text and "Five sessions #2" in text
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
