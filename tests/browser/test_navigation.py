"""Under 600 px the main navigation folds behind a Menu button; above, it is always shown."""

import pytest

from tests.browser.conftest import log_in
from tests.factories import PASSWORD, StudentFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_menu_button_opens_and_closes_the_navigation_on_a_phone(phone_page):
    student = StudentFactory()
    log_in(phone_page, student, PASSWORD)
    menu = phone_page.get_by_role("button", name="Menu")
    my_sessions = phone_page.locator("#site-nav-list").get_by_role("link", name="My sessions")

    assert menu.is_visible()
    assert menu.get_attribute("aria-expanded") == "false"
    assert not my_sessions.is_visible()

    menu.click()
    assert menu.get_attribute("aria-expanded") == "true"
    assert my_sessions.is_visible()
    # The header with the menu open still fits the screen.
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 375

    phone_page.keyboard.press("Escape")
    assert menu.get_attribute("aria-expanded") == "false"
    assert not my_sessions.is_visible()
    assert phone_page.evaluate("document.activeElement.textContent.trim()") == "Menu"


def test_a_wide_screen_shows_the_navigation_without_a_menu_button(page):
    student = StudentFactory()
    log_in(page, student, PASSWORD)

    assert not page.get_by_role("button", name="Menu").is_visible()
    nav = page.locator("#site-nav-list")
    assert nav.get_by_role("link", name="My sessions").is_visible()
    assert nav.get_by_role("button", name="Log out").is_visible()
