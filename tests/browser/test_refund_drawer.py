"""The refund drawer in a real browser (issue 13): opened with the keyboard, nothing preselected,
the amount enabled only for Partial refund, the high-rate advice, a partial refund's message."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from refunds.models import Refund
from sessions_app import services
from sessions_app.lifecycle import Status
from sessions_app.models import Session
from tests.browser.conftest import log_in
from tests.factories import PASSWORD, CoachFactory, make_package
from tests.sessions_app.test_views_helpers import open_at

# The drawer's money choices, with a coach who decides each refund (docs/policies.md).
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("coaches_decide_refunds"),
]

NOW = datetime(2030, 1, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=True):
        yield


def confirmed(coach, start):
    package = make_package(coach=coach)
    session = package.sessions.order_by("number").first()
    services.session_book(session=session, start=open_at(coach, start), actor=package.student)
    services.session_accept(session=session, actor=coach)
    return Session.objects.get(pk=session.pk)


def test_refund_drawer_by_keyboard_amount_only_for_partial_and_high_rate_advice(page, clock):
    coach = CoachFactory(timezone="Europe/London")
    session = confirmed(coach, NOW + timedelta(days=2))
    for day in (3, 4):  # two earlier cancellations out of three booked: a high rate
        services.session_cancel(
            session=confirmed(coach, NOW + timedelta(days=day)), actor=coach, refund="none"
        )
    log_in(page, coach, PASSWORD)
    page.goto(f"/sessions/{session.pk}/?from=upcoming")

    cancel = page.get_by_role("link", name="Cancel Session")
    cancel.focus()
    page.keyboard.press("Enter")
    drawer = page.locator("dialog#refund-drawer")
    assert drawer.is_visible()

    text = drawer.inner_text()
    assert "Canceling too often hurts students; consider Reschedule" in text
    assert "High" in text
    assert text.index("Canceling too often") < text.index("cancellation rate")
    for choice in ("Full refund", "Partial refund", "Cancel without refund"):
        assert not drawer.get_by_label(choice).is_checked()

    amount = drawer.get_by_label("Amount to refund")
    assert amount.is_disabled()
    drawer.get_by_label("Full refund").check()
    assert amount.is_disabled()
    drawer.get_by_label("Partial refund").focus()
    page.keyboard.press("Space")
    assert drawer.get_by_label("Partial refund").is_checked()
    assert amount.is_enabled()
    amount.fill("12.50")
    drawer.get_by_role("button", name="Cancel Session").click()
    page.wait_for_load_state()

    message = page.locator(".messages").inner_text()
    assert "Canceled:" in message and "under Canceled; a partial refund of" in message
    assert page.url.endswith(f"/sessions/{session.pk}/?from=upcoming")
    assert Session.objects.get(pk=session.pk).status == Status.CANCELED
    assert list(Refund.objects.filter(session=session).values_list("kind", "amount_cents")) == [
        ("partial", 1250)
    ]
