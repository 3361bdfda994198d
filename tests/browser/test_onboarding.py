"""A new coach in a real browser (issue 13): signs up at 1280 px with the timezone detected
from the browser, confirms the address from the email, lands on Get started and follows its
steps (profile, weekly hours, offering) to a public page where a student can buy."""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from playwright.sync_api import expect

from accounts.models import User
from tests.browser.conftest import log_in
from tests.factories import PASSWORD, StudentFactory

pytestmark = pytest.mark.django_db(transaction=True)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=BERLIN)  # a Tuesday
NEW_PASSWORD = "a-long-pass-42"


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=True):
        yield


def progress(page) -> str:
    page.goto("/profile/get-started/")
    return page.locator(".get-started-progress label").inner_text()


def test_a_new_coach_gets_from_sign_up_to_a_bookable_page(new_page, clock):
    page = new_page(width=1280, height=900, timezone_id="Europe/Berlin")

    # Sign up: the timezone is prefilled from the browser, the role has no default.
    page.goto("/accounts/signup/")
    assert page.get_by_label("Your timezone").input_value() == "Europe/Berlin"
    assert not page.get_by_label("I coach").is_checked()
    page.get_by_label("Your name").fill("Ana Pérez")
    page.get_by_label("Email").first.fill("ana@example.com")
    page.get_by_label("I coach").check()
    page.get_by_label("Password").first.fill(NEW_PASSWORD)
    page.get_by_label("Password (again)").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_load_state()
    user = User.objects.get(email="ana@example.com")
    assert (user.display_name, user.timezone, user.is_coach) == ("Ana Pérez", "Europe/Berlin", True)

    # Confirm the address from the branded email; confirming logs in and lands on Get started.
    (message,) = mail.outbox
    assert "Coachbook" in message.subject
    (link,) = re.findall(r"https?://\S+/accounts/confirm-email/\S+", message.body)
    assert link.startswith(settings.SITE_URL)
    page.goto(link.removeprefix(settings.SITE_URL))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_load_state()
    assert page.locator("main h1").inner_text() == "Get started"
    assert page.locator(".get-started-progress label").inner_text() == "0 of 5 done"
    assert page.get_by_role("navigation", name="Main").get_by_role("link", name="Get started")

    # Step 1: the profile.
    page.get_by_role("link", name="Edit your profile").click()
    page.get_by_label("Headline").fill("Chess coach for club players")
    page.get_by_label("Bio").fill("Twenty years of tournament play; I teach openings and endgames.")
    page.locator("#coach").get_by_role("button", name="Save").click()
    page.wait_for_load_state()
    assert progress(page) == "1 of 5 done"

    # Step 2: weekly hours, Monday to Wednesday 09:00-17:00.
    page.get_by_role("link", name="Set weekly hours").click()
    for day in ("Monday", "Tuesday", "Wednesday"):
        page.get_by_label(f"{day}, first window, from").fill("09:00")
        page.get_by_label(f"{day}, first window, until").fill("17:00")
    page.get_by_role("button", name="Save weekly hours").click()
    page.wait_for_load_state()
    assert progress(page) == "2 of 5 done"

    # Step 3: the first offering.
    page.get_by_role("link", name="Create an offering").click()
    page.get_by_label("Title").fill("Endgame course")
    page.get_by_label("Number of sessions").fill("3")
    page.get_by_label("Minutes per session").fill("60")
    page.get_by_label("Price for the whole package").fill("150.00")
    page.get_by_role("button", name="Put on sale").click()
    page.wait_for_load_state()
    assert progress(page) == "3 of 5 done"

    # Step 5: the booking link, shown with a copy button, is the public page.
    booking_link = page.get_by_label("Your booking link").input_value()
    assert booking_link.startswith(settings.SITE_URL + "/")
    assert page.get_by_role("button", name="Copy link").is_visible()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy link").click()
    expect(page.locator("[data-copy-status]")).to_have_text("Link copied.")

    # A student who opens the link sees the offering and can buy it.
    student = StudentFactory(timezone="Europe/Berlin")
    student_page = new_page()
    log_in(student_page, student, PASSWORD)
    student_page.goto(booking_link.removeprefix(settings.SITE_URL))
    assert "Ana Pérez" in student_page.locator("main h1").inner_text()
    assert "Endgame course" in student_page.locator("main").inner_text()
    assert student_page.get_by_role("link", name="Buy Endgame course").is_visible()
