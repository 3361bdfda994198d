"""The whole story in a real browser: buy, book, accept, reschedule, counter, confirm, cancel
with a partial refund, and the freed time is bookable again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from calendars.models import SlotStatus, TimeSlot
from refunds.models import Refund
from sessions_app.lifecycle import Status
from sessions_app.models import Session
from tests.browser.conftest import log_in
from tests.factories import PASSWORD, CoachFactory, OfferingFactory, StudentFactory, TimeSlotFactory

pytestmark = pytest.mark.django_db(transaction=True)


def slot_button(page, slot):
    """The chooser's button for `slot` (the page shows times in the viewer's timezone, UTC)."""
    label = f"{slot.start:%H:%M}\u2013{slot.end:%H:%M}"  # an en dash, as the page prints it
    return page.locator("ul.slot-list button", has_text=label).first


def test_the_whole_story_in_a_browser(new_page):
    coach = CoachFactory(display_name="Alex Coach")
    student = StudentFactory(display_name="Jamie Student")
    OfferingFactory(coach=coach, title="Endgame course", session_count=2, price_cents=20000)
    base = (timezone.now() + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    first, second, third = (
        TimeSlotFactory(coach=coach, start=base + timedelta(hours=h)) for h in (0, 2, 4)
    )
    coach_page, student_page = new_page(), new_page()
    log_in(coach_page, coach, PASSWORD)
    log_in(student_page, student, PASSWORD)

    # The student finds the coach, buys the package and books the first time.
    student_page.goto("/coaches/")
    student_page.get_by_role("link", name="Alex Coach", exact=True).click()
    student_page.get_by_role("link", name="Buy Endgame course").click()
    student_page.get_by_role("button", name="Buy for").click()
    assert student_page.url.endswith("/sessions/my/")
    student_page.get_by_role("link", name="Book session 1 of Endgame course").click()
    slot_button(student_page, first).click()
    session = Session.objects.get(student=student, number=1)
    assert (session.status, session.slot) == (Status.REQUESTED, first)

    # The coach sees it in Tasks and accepts.
    coach_page.goto("/sessions/tasks/")
    request_row = coach_page.locator("main").get_by_text("Jamie Student").first
    assert request_row.is_visible()
    coach_page.get_by_role("button", name="Accept").first.click()
    coach_page.goto("/sessions/upcoming/")
    assert coach_page.locator("main").get_by_text("Jamie Student").first.is_visible()
    session.refresh_from_db()
    assert session.status == Status.CONFIRMED

    # The coach reschedules to the second time.
    coach_page.goto(f"/sessions/{session.pk}/")
    coach_page.get_by_role("link", name="Reschedule", exact=True).click()
    slot_button(coach_page, second).click()
    session.refresh_from_db()
    assert session.status == Status.RESCHEDULING

    # The student proposes another time instead.
    student_page.goto("/sessions/my/")
    student_page.get_by_role("link", name="Propose another time").first.click()
    slot_button(student_page, third).click()

    # The coach confirms the student's proposal from Tasks.
    coach_page.goto("/sessions/tasks/")
    coach_page.get_by_role("button", name="Confirm", exact=True).first.click()
    session.refresh_from_db()
    assert (session.status, session.slot) == (Status.CONFIRMED, third)

    # The coach cancels with a partial refund through the drawer.
    coach_page.goto(f"/sessions/{session.pk}/")
    coach_page.get_by_role("link", name="Cancel Session").click()
    drawer = coach_page.locator("dialog#refund-drawer")
    assert drawer.is_visible()
    assert "cancellation rate" in drawer.inner_text()
    drawer.get_by_label("Partial refund").check()
    drawer.get_by_label("Amount to refund").fill("25.00")
    drawer.get_by_role("button", name="Cancel Session").click()
    coach_page.wait_for_load_state()
    session.refresh_from_db()
    assert session.status == Status.CANCELED
    assert list(Refund.objects.filter(session=session).values_list("kind", "amount_cents")) == [
        ("partial", 2500)
    ]
    assert TimeSlot.objects.get(pk=third.pk).status == SlotStatus.OPEN

    # The freed time is bookable again: the student books it with the second credit.
    student_page.goto("/sessions/my/")
    student_page.get_by_role("link", name="Book session 2 of Endgame course").click()
    slot_button(student_page, third).click()
    rebooked = Session.objects.get(student=student, number=2)
    assert (rebooked.status, rebooked.slot) == (Status.REQUESTED, third)
