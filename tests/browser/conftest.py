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

    def open_page(width: int = 1280, height: int = 900, timezone_id: str | None = None):
        extra = {"timezone_id": timezone_id} if timezone_id else {}
        context = chromium.new_context(
            viewport={"width": width, "height": height}, base_url=live_server.url, **extra
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


WCAG_AA_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def wcag_violations(page) -> list[str]:
    """Every axe-core violation of a WCAG 2.0, 2.1 or 2.2 level A or AA rule on the current
    page, whatever its impact."""
    from axe_playwright_python.sync_playwright import Axe

    options = {"runOnly": {"type": "tag", "values": WCAG_AA_TAGS}}
    results = Axe().run(page, options=options)
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} "
        f"-> {[node['target'] for node in violation['nodes']][:3]}"
        for violation in results.response["violations"]
    ]


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
