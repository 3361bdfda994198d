"""The whole story in a real browser, on a fixed clock: the student buys, books through the
picker and its confirm step, the coach accepts; the coach proposes a new time, the student
proposes another, the coach keeps the current time; the student reschedules and the coach
confirms the new time; the coach cancels with a partial refund, and the freed time is booked
again.

The coach lives in London and the student in New York: each picker shows its viewer's clock.
"""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from calendars.models import SlotStatus, TimeSlot
from calendars.services import availability_week_set
from refunds.models import Refund
from sessions_app.lifecycle import Status
from sessions_app.models import ProposalStatus, Session
from tests.browser.conftest import log_in
from tests.factories import PASSWORD, CoachFactory, OfferingFactory, StudentFactory

# The drawer's money choices, with a coach who decides each refund (docs/policies.md).
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("coaches_decide_refunds"),
]

LONDON = ZoneInfo("Europe/London")
# Tuesday 1 December 2026, 09:00 in London (GMT); the clock ticks on from there.
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=LONDON)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in December 2026, London's wall clock."""
    return datetime(2026, 12, day, hour, minute, tzinfo=LONDON)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=True):
        yield


def pick(page, label: str):
    """Choose the picker's time with this accessible name, then wait for the confirm step."""
    page.get_by_role("link", name=label, exact=True).click()
    page.wait_for_load_state()
    return page.locator("main h1").inner_text()


def confirm(page):
    page.get_by_role("button", name="Confirm", exact=True).click()
    page.wait_for_load_state()
    return page.locator(".messages").inner_text()


def fresh(session) -> Session:
    return Session.objects.select_related("slot").get(pk=session.pk)


def story_cast():
    """The coach in London (weekdays 09:00-17:00, a two-session 90-minute course) and the
    student in New York who buys it."""
    coach = CoachFactory(display_name="Alex Coach", timezone="Europe/London")
    availability_week_set(coach=coach, week={day: [(time(9), time(17))] for day in range(5)})
    student = StudentFactory(display_name="Jamie Student", timezone="America/New_York")
    OfferingFactory(
        coach=coach,
        title="Endgame course",
        session_count=2,
        duration_minutes=90,
        price_cents=20000,
    )
    return coach, student


def test_the_whole_story_in_a_browser(new_page, clock):
    coach, student = story_cast()
    coach_page, student_page = new_page(), new_page()
    log_in(coach_page, coach, PASSWORD)
    log_in(student_page, student, PASSWORD)

    # The student finds the coach, buys the package and books Thursday 11:00 London time,
    # which their picker shows as 06:00 in New York.
    student_page.goto("/coaches/")
    student_page.get_by_role("link", name="Alex Coach", exact=True).click()
    student_page.get_by_role("link", name="Buy Endgame course").click()
    student_page.get_by_role("button", name="Buy for").click()
    assert student_page.url.endswith("/sessions/my/")
    student_page.get_by_role("link", name="Book session 1 of Endgame course").click()
    assert "Mon 30 Nov \u2013 Sun 6 Dec" in student_page.locator("main").inner_text()
    heading = pick(student_page, "Book Thu 3 Dec, 06:00\u201307:30 EST")
    assert heading == "Book Thu 3 Dec, 06:00\u201307:30 EST?"
    assert Session.objects.get(student=student, number=1).status == Status.UNSCHEDULED
    assert "Requested: Thu 3 Dec, 06:00\u201307:30 EST waits for" in confirm(student_page)
    assert student_page.url.endswith("/sessions/my/")
    session = fresh(Session.objects.get(student=student, number=1))
    assert (session.status, session.slot.start, session.slot.end) == (
        Status.REQUESTED,
        at(3, 11),
        at(3, 12, 30),
    )

    # The coach sees it in Tasks, in London time, and accepts.
    coach_page.goto("/sessions/tasks/")
    assert "Thu 3 Dec, 11:00\u201312:30 GMT" in coach_page.locator("main").inner_text()
    coach_page.get_by_role("button", name="Accept").first.click()
    coach_page.wait_for_load_state()
    assert fresh(session).status == Status.CONFIRMED
    agreed = fresh(session).slot

    # The coach proposes Friday 14:00; the lesson stays at Thursday 11:00 meanwhile.
    coach_page.goto(f"/sessions/{session.pk}/")
    coach_page.get_by_role("link", name="Reschedule", exact=True).click()
    assert pick(coach_page, "Propose Fri 4 Dec, 14:00\u201315:30 GMT") == (
        "Propose Fri 4 Dec, 14:00\u201315:30 GMT?"
    )
    assert confirm(coach_page).startswith(
        "Rescheduling: you proposed Fri 4 Dec, 14:00\u201315:30 GMT; the agreed time "
        "Thu 3 Dec, 11:00\u201312:30 GMT stays until"
    )
    assert (fresh(session).status, fresh(session).slot_id) == (Status.RESCHEDULING, agreed.pk)
    coach_detail = coach_page.locator("main").inner_text()
    assert "Withdraw my proposal" in coach_detail
    assert "Waiting for Jamie Student to answer" in coach_detail

    # The student sees both times, and proposes another one, next week.
    student_page.goto(f"/sessions/{session.pk}/")
    student_detail = student_page.locator("main").inner_text()
    assert "Thu 3 Dec, 06:00\u201307:30 EST (stays until a new time is agreed)" in student_detail
    assert "Fri 4 Dec, 09:00\u201310:30 EST (proposed by Alex Coach)" in student_detail
    student_page.get_by_role("link", name="Propose another time").click()
    student_page.get_by_role("link", name="Next week \u2192").first.click()
    assert "Mon 7 Dec \u2013 Sun 13 Dec" in student_page.locator("main").inner_text()
    pick(student_page, "Propose Mon 7 Dec, 05:00\u201306:30 EST")
    assert "stays until Alex Coach answers" in confirm(student_page)
    pending = session.proposals.get(status=ProposalStatus.PENDING)
    assert (pending.proposed_by_id, pending.slot.start) == (student.pk, at(7, 10))

    # The coach keeps the current time from Tasks.
    coach_page.goto("/sessions/tasks/")
    coach_page.get_by_role("button", name="Keep the current time").click()
    coach_page.wait_for_load_state()
    assert "Confirmed at the current time: Thu 3 Dec, 11:00\u201312:30 GMT." in (
        coach_page.locator(".messages").inner_text()
    )
    assert (fresh(session).status, fresh(session).slot_id) == (Status.CONFIRMED, agreed.pk)

    # The student reschedules to Friday 15:30 London time; the coach confirms the new time.
    student_page.goto("/sessions/my/")
    student_page.get_by_role("link", name="Reschedule", exact=True).click()
    pick(student_page, "Propose Fri 4 Dec, 10:30\u201312:00 EST")
    confirm(student_page)
    coach_page.goto("/sessions/tasks/")
    coach_page.get_by_role("button", name="Confirm the new time").click()
    coach_page.wait_for_load_state()
    moved = fresh(session)
    assert (moved.status, moved.slot.start) == (Status.CONFIRMED, at(4, 15, 30))
    assert TimeSlot.objects.get(pk=agreed.pk).status == SlotStatus.RELEASED

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
    assert fresh(session).status == Status.CANCELED
    assert list(Refund.objects.filter(session=session).values_list("kind", "amount_cents")) == [
        ("partial", 2500)
    ]
    assert TimeSlot.objects.get(pk=moved.slot_id).status == SlotStatus.RELEASED

    # The freed time is bookable again: the student books it with the second credit.
    student_page.goto("/sessions/my/")
    student_page.get_by_role("link", name="Book session 2 of Endgame course").click()
    pick(student_page, "Book Fri 4 Dec, 10:30\u201312:00 EST")
    confirm(student_page)
    rebooked = fresh(Session.objects.get(student=student, number=2))
    assert (rebooked.status, rebooked.slot.start) == (Status.REQUESTED, at(4, 15, 30))
    assert timedelta(minutes=90) == rebooked.slot.end - rebooked.slot.start
