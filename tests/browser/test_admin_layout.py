"""The admin's money lists fit a 1280 px screen, money first, with the longest names."""

import re

import pytest

from tests.browser.conftest import log_in
from tests.factories import (
    PASSWORD,
    CoachFactory,
    StudentFactory,
    SuperuserFactory,
    make_canceled_session,
)

pytestmark = pytest.mark.django_db(transaction=True)

# The admin's one date format (config/formats/en/formats.py).
ADMIN_DATETIME = re.compile(r"^\d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2}$")


@pytest.fixture
def long_rows():
    student = StudentFactory(display_name="S" * 120)
    coach = CoachFactory(display_name="C" * 120)
    for _ in range(3):
        make_canceled_session(
            refund="partial",
            amount_cents=1250,
            reason="R" * 500,
            student=student,
            coach=coach,
            title="T" * 120,
        )


@pytest.mark.parametrize(
    ("path", "first_columns"),
    [
        ("/admin/refunds/refund/", ["amount_display", "kind", "state_display", "reason_short"]),
        ("/admin/refunds/payment/", ["amount_display", "state", "refunded_display"]),
        ("/admin/sessions_app/session/", None),
    ],
)
def test_admin_lists_fit_1280_px_with_money_first(page, long_rows, path, first_columns):
    admin = SuperuserFactory()
    log_in(page, admin, PASSWORD)
    page.goto(path)

    table = page.locator("#result_list")
    assert table.locator("tbody tr").count() >= 3
    widths = page.evaluate(
        "() => [document.querySelector('#result_list').scrollWidth,"
        " document.querySelector('.results').clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    if first_columns:
        classes = table.locator("thead th").evaluate_all(
            "cells => cells.map(cell => cell.className)"
        )
        columns = [
            name.removeprefix("column-")
            for cell in classes
            for name in cell.split()
            if name.startswith("column-")
        ]
        assert columns[: len(first_columns)] == first_columns
    created = table.locator("td.field-created_at, td.field-created_at_display")
    for text in created.all_inner_texts():
        assert ADMIN_DATETIME.match(text.strip()), text
