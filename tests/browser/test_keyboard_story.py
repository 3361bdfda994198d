"""The whole story with the keyboard alone, on a fixed clock (WCAG 2.1.1 Keyboard, 2.4.7 Focus
Visible): the student logs in, buys, books through the picker and its confirm step; the coach
accepts, reschedules, the student confirms the new time; the coach cancels with a partial refund
through the drawer.

Only `page.keyboard` interacts (Tab, Shift+Tab, Enter, Space, arrows, typing); `page.goto` opens
only the login page, each user's first page. Every element reached by Tab must show a visible
focus indicator.
"""

from urllib.parse import urlparse

import pytest

from calendars.models import SlotStatus, TimeSlot
from refunds.models import Refund
from sessions_app.lifecycle import Status
from sessions_app.models import Session
from tests.browser.test_story import at, clock, fresh, story_cast  # noqa: F401  (clock: a fixture)
from tests.factories import PASSWORD

# The drawer's money choices, with a coach who decides each refund (docs/policies.md).
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("coaches_decide_refunds"),
]

# The accessible name of the focused element, roughly as a screen reader computes it:
# aria-label, aria-labelledby, the <label> of a form control, else its text.
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const norm = (s) => (s || "").replace(/\\s+/g, " ").trim();
  let name = el.getAttribute("aria-label");
  if (!name && el.getAttribute("aria-labelledby")) {
    name = el.getAttribute("aria-labelledby").split(/\\s+/)
      .map((id) => document.getElementById(id)).filter(Boolean)
      .map((n) => n.textContent).join(" ");
  }
  if (!name && el.labels && el.labels.length) {
    name = Array.from(el.labels).map((l) => l.textContent).join(" ");
  }
  if (!name && (el.type === "submit" || el.type === "button") && el.value) name = el.value;
  if (!name) name = el.textContent;
  const style = getComputedStyle(el);
  const outlined = style.outlineStyle !== "none" && style.outlineWidth !== "0px";
  const shadowed = style.boxShadow !== "none";
  return {
    name: norm(name),
    tag: el.tagName.toLowerCase(),
    type: el.type || null,
    checked: el.checked === undefined ? null : el.checked,
    disabled: !!el.disabled,
    visibleFocus: outlined || shadowed,
    outline: style.outlineStyle + " " + style.outlineWidth,
    boxShadow: style.boxShadow,
    inDialog: !!el.closest("dialog"),
  };
}"""


def focused(page) -> dict | None:
    return page.evaluate(FOCUSED)


def tab_to(page, name: str, *, max_presses: int = 120, back: bool = False) -> dict:
    """Press Tab (Shift+Tab with back=True) until the focused element's accessible name
    contains `name`; every element focused on the way must show a visible focus indicator."""
    key = "Shift+Tab" if back else "Tab"
    seen = []
    for _ in range(max_presses):
        page.keyboard.press(key)
        element = focused(page)
        if element is None:
            seen.append("<body>")
            continue
        seen.append(element["name"][:60])
        assert element["visibleFocus"], (
            f"no visible focus on {page.url}: <{element['tag']}> {element['name'][:80]!r} "
            f"(outline {element['outline']}, box-shadow {element['boxShadow']})"
        )
        if name in element["name"]:
            return element
    raise AssertionError(f"{name!r} not reached by {key} on {page.url}; focus went {seen[:40]}")


def activate(page, name: str, **kwargs) -> dict:
    """Tab to a link or button and press Enter, then wait for the page it opens."""
    element = tab_to(page, name, **kwargs)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_load_state()
    return element


def log_in(page, user) -> None:
    page.goto("/accounts/login/")
    tab_to(page, "Email")
    page.keyboard.type(user.email)
    tab_to(page, "Password")
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_load_state()
    assert "/accounts/login/" not in page.url, page.locator("main").inner_text()


def messages(page) -> str:
    return page.locator(".messages").inner_text()


def test_the_whole_story_with_the_keyboard_alone(new_page, clock):  # noqa: F811
    coach, student = story_cast()
    student_page = new_page()

    # The student logs in, finds the coach and buys the package (owning none of it yet, the
    # Buy page asks no confirmation).
    log_in(student_page, student)
    activate(student_page, "Coaches")
    activate(student_page, "Alex Coach")
    activate(student_page, "Buy Endgame course")
    assert student_page.locator("main input[type=checkbox]").count() == 0
    with student_page.expect_navigation():
        tab_to(student_page, "Buy for")
        student_page.keyboard.press("Enter")
    assert urlparse(student_page.url).path == "/sessions/my/"

    # Books Thursday 11:00 London time (06:00 in New York) through the picker and confirms.
    activate(student_page, "Book session 1 of Endgame course")
    activate(student_page, "Book Thu 3 Dec, 06:00\u201307:30 EST")
    assert student_page.locator("main h1").inner_text() == "Book Thu 3 Dec, 06:00\u201307:30 EST?"
    activate(student_page, "Confirm")
    assert "Requested: Thu 3 Dec, 06:00\u201307:30 EST waits for" in messages(student_page)
    session = fresh(Session.objects.get(student=student, number=1))
    assert (session.status, session.slot.start) == (Status.REQUESTED, at(3, 11))

    # The coach logs in (own context), opens the request from Tasks and accepts it there.
    coach_page = new_page()
    log_in(coach_page, coach)
    activate(coach_page, "Tasks")
    activate(coach_page, "Details of the request from Jamie Student")
    assert urlparse(coach_page.url).path == f"/sessions/{session.pk}/"
    activate(coach_page, "Accept")
    assert "Confirmed" in messages(coach_page)
    assert fresh(session).status == Status.CONFIRMED
    agreed = fresh(session).slot

    # The coach reschedules to Friday 14:00 London time.
    if urlparse(coach_page.url).path != f"/sessions/{session.pk}/":
        activate(coach_page, "Upcoming")
        activate(coach_page, "Details of session 1, Endgame course")
    activate(coach_page, "Reschedule")
    activate(coach_page, "Propose Fri 4 Dec, 14:00\u201315:30 GMT")
    assert coach_page.locator("main h1").inner_text() == "Propose Fri 4 Dec, 14:00\u201315:30 GMT?"
    activate(coach_page, "Confirm")
    assert "you proposed Fri 4 Dec, 14:00\u201315:30 GMT" in messages(coach_page)
    assert (fresh(session).status, fresh(session).slot_id) == (Status.RESCHEDULING, agreed.pk)

    # The student opens the session from My sessions and confirms the new time.
    activate(student_page, "My sessions")
    activate(student_page, "Details of session 1, Endgame course")
    assert urlparse(student_page.url).path == f"/sessions/{session.pk}/"
    activate(student_page, "Confirm the new time")
    moved = fresh(session)
    assert (moved.status, moved.slot.start) == (Status.CONFIRMED, at(4, 14))
    assert TimeSlot.objects.get(pk=agreed.pk).status == SlotStatus.RELEASED

    # The coach cancels with a partial refund through the drawer, by keyboard only.
    activate(coach_page, "Upcoming")
    activate(coach_page, "Details of session 1, Endgame course")
    assert urlparse(coach_page.url).path == f"/sessions/{session.pk}/"
    tab_to(coach_page, "Cancel Session")
    coach_page.keyboard.press("Enter")
    drawer = coach_page.locator("dialog#refund-drawer")
    assert drawer.is_visible()
    assert drawer.evaluate("(d) => d.open")
    choices = drawer.locator("input[type=radio]")
    assert choices.count() >= 2
    assert not any(choices.nth(i).is_checked() for i in range(choices.count())), (
        "a refund choice is preselected"
    )
    amount = drawer.get_by_label("Amount to refund")
    assert amount.is_disabled(), "the amount is enabled before Partial refund is chosen"
    # Opening the dialog moves focus into it (its Close button), not left on the page; Tab
    # then reaches the radio group, and the arrows move within it.
    opened = focused(coach_page)
    assert opened and opened["inDialog"] and opened["visibleFocus"], opened
    first = opened if opened["type"] == "radio" else tab_to(coach_page, "refund")
    assert first["inDialog"] and first["type"] == "radio", first
    for _ in range(choices.count()):
        if focused(coach_page)["name"].startswith("Partial refund"):
            break
        coach_page.keyboard.press("ArrowDown")
    coach_page.keyboard.press("Space")
    chosen = focused(coach_page)
    assert chosen["name"].startswith("Partial refund") and chosen["checked"], chosen
    assert drawer.get_by_label("Partial refund").is_checked()
    assert amount.is_enabled(), "the amount stays disabled under Partial refund"
    # Leaving Partial refund by arrow disables the amount again; coming back enables it.
    coach_page.keyboard.press("ArrowDown")
    assert not focused(coach_page)["name"].startswith("Partial refund")
    assert amount.is_disabled(), "the amount stays enabled after leaving Partial refund"
    coach_page.keyboard.press("ArrowUp")
    assert focused(coach_page)["name"].startswith("Partial refund")
    assert drawer.get_by_label("Partial refund").is_checked() and amount.is_enabled()
    assert tab_to(coach_page, "Amount to refund")["inDialog"]
    coach_page.keyboard.type("12.50")
    assert amount.input_value() == "12.50"
    submit = tab_to(coach_page, "Cancel Session")
    assert submit["inDialog"] and submit["tag"] == "button", submit
    with coach_page.expect_navigation():
        coach_page.keyboard.press("Enter")
    coach_page.wait_for_load_state()

    canceled = fresh(session)
    assert canceled.status == Status.CANCELED
    assert canceled.slot.start == at(4, 14)
    assert list(Refund.objects.filter(session=session).values_list("kind", "amount_cents")) == [
        ("partial", 1250)
    ]
    assert TimeSlot.objects.get(pk=moved.slot_id).status == SlotStatus.RELEASED
