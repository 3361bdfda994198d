"""Playwright driving the system Chromium against pytest-django's `live_server`.

These tests skip only where no Chromium exists (never in CI, see tests/conftest.py).
"""

import os

import pytest

from tests.conftest import chromium_path, require_component

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make to
# arrange data are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium():
    path = chromium_path()
    require_component(path is not None, "no Chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium, live_server):
    """Open pages in fresh browser contexts (separate cookies), all closed after the test."""
    contexts = []

    def open_page(width: int = 1280, height: int = 900):
        context = chromium.new_context(
            viewport={"width": width, "height": height}, base_url=live_server.url
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        # Let in-flight requests finish before the live server's database goes away.
        for opened in context.pages:
            opened.wait_for_load_state("networkidle")
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.fixture
def phone_page(new_page):
    return new_page(width=375, height=740)


def log_in(page, user, password):
    """Log in through the real allauth form (each test has its own fresh browser context)."""
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").first.fill(password)
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_load_state()


def serious_violations(page) -> list[str]:
    """axe-core violations of impact serious or critical on the current page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} "
        f"-> {[node['target'] for node in violation['nodes']][:3]}"
        for violation in results.response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]
