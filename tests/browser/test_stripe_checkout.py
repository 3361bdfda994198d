"""Paying for a package by card in a real browser, against localstripe.

The student buys on the coach's page, continues to the payment page, types the card into the
card element (localstripe's Stripe.js stand-in: plain inputs inside #card-element) and pays.
No webhook is needed: the return page asks the processor for the PaymentIntent itself.
"""

from pathlib import Path

import pytest

from refunds.models import Payment, PaymentState
from sessions_app.lifecycle import Status
from sessions_app.models import Session
from tests.browser.conftest import log_in, serious_violations
from tests.factories import PASSWORD, CoachFactory, OfferingFactory, StudentFactory
from tests.stripe_support import CARD_3DS, CARD_DECLINED, CARD_OK

pytestmark = pytest.mark.django_db(transaction=True)

SHOTS = Path("/tmp/shots")


@pytest.fixture
def offering(stripe_settings):
    coach = CoachFactory(display_name="Alex Coach", timezone="Europe/London")
    return OfferingFactory(
        coach=coach,
        title="Five-lesson bundle",
        session_count=5,
        duration_minutes=60,
        price_cents=27500,
        currency="USD",
    )


@pytest.fixture
def student():
    return StudentFactory(display_name="Jamie Student", timezone="America/New_York")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_payment_page(page, student, offering):
    """Log in, open the coach's page, Buy, Continue to payment: the payment page."""
    log_in(page, student, PASSWORD)
    page.goto("/coaches/")
    page.get_by_role("link", name=offering.coach.display_name, exact=True).click()
    page.get_by_role("link", name=f"Buy {offering.title}").click()
    page.get_by_role("button", name="Continue to payment").click()
    page.wait_for_load_state()
    payment = Payment.objects.get(package__student=student)
    assert page.url.endswith(f"/payments/{payment.pk}/pay/")
    assert page.locator("main h1").inner_text() == "Pay for your package"
    assert payment.state == PaymentState.CREATED
    return payment


def enter_card(page, number: str) -> None:
    """Type a card into the card element as a person would, field by field."""
    element = page.locator("#card-element")
    for placeholder, value in (
        ("number", number),
        ("exp_month", "12"),
        ("exp_year", "34"),
        ("cvc", "123"),
        ("postal_code", "12345"),
    ):
        element.get_by_placeholder(placeholder, exact=True).fill(value)


def pay(page) -> None:
    page.get_by_role("button", name="Pay $275.00").click()


def credits_of(student) -> int:
    return Session.objects.filter(student=student, status=Status.UNSCHEDULED).count()


def test_a_card_pays_the_package_and_its_five_sessions_become_credits(page, student, offering):
    open_payment_page(page, student, offering)
    main = page.locator("main").inner_text()
    assert "Five-lesson bundle" in main
    assert "$275.00" in main
    assert "Awaiting payment" in main
    assert serious_violations(page) == []
    enter_card(page, CARD_OK)
    shot(page, "pay-desktop")
    pay(page)
    page.wait_for_url("**/sessions/my/")
    shot(page, "paid-desktop")

    assert "Payment received for \u201cFive-lesson bundle\u201d: 5 sessions ready to book." in (
        page.locator(".messages").inner_text()
    )
    assert page.locator("#credits-title").inner_text() == "Sessions to book (5)"
    assert "Awaiting payment" not in page.locator("main").inner_text()
    payment = Payment.objects.get(package__student=student)
    assert payment.state == PaymentState.DONE
    assert payment.reference.startswith("pi_")
    assert credits_of(student) == 5


def test_a_declined_card_says_so_on_the_page_and_makes_no_credits(page, student, offering):
    payment = open_payment_page(page, student, offering)
    enter_card(page, CARD_DECLINED)
    pay(page)
    errors = page.locator("#card-errors")
    errors.wait_for(state="visible")
    shot(page, "declined-desktop")

    assert "Nothing was charged. Try another card." in errors.inner_text()
    assert page.url.endswith(f"/payments/{payment.pk}/pay/")
    # The button is usable again for another card.
    assert page.get_by_role("button", name="Pay $275.00").is_enabled()
    payment.refresh_from_db()
    assert payment.state == PaymentState.FAILED
    assert credits_of(student) == 0

    # My sessions lists it as awaiting payment, with a way to try again.
    page.goto("/sessions/my/")
    assert "Awaiting payment" in page.locator("main").inner_text()
    assert page.locator("#credits-title").inner_text() == "Sessions to book (0)"
    # Back on the payment page, it says why the last attempt failed.
    page.get_by_role("link", name="Try again for Five-lesson bundle").click()
    page.wait_for_url(f"**/payments/{payment.pk}/pay/")
    assert "Your last payment did not go through: Your card was declined." in (
        page.get_by_role("alert").first.inner_text()
    )


def test_a_3d_secure_card_asks_the_bank_then_pays(page, student, offering):
    open_payment_page(page, student, offering)
    enter_card(page, CARD_3DS)
    pay(page)
    complete = page.get_by_role("button", name="Complete authentication")
    complete.wait_for()
    assert page.get_by_role("button", name="Fail authentication").is_visible()
    shot(page, "3ds-modal-desktop")
    complete.click()
    page.wait_for_url("**/sessions/my/")

    assert "5 sessions ready to book" in page.locator(".messages").inner_text()
    assert page.locator("#credits-title").inner_text() == "Sessions to book (5)"
    assert Payment.objects.get(package__student=student).state == PaymentState.DONE
    assert credits_of(student) == 5


def test_paying_on_a_phone(phone_page, student, offering):
    """The card element fits a 375px-wide screen and the payment goes through there too."""
    page = phone_page
    open_payment_page(page, student, offering)
    enter_card(page, CARD_OK)
    shot(page, "pay-phone")
    viewport = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport
    box = page.locator("#card-element").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport
    for field in ("number", "exp_month", "exp_year", "cvc", "postal_code"):
        input_box = page.get_by_placeholder(field, exact=True).bounding_box()
        assert input_box["x"] + input_box["width"] <= box["x"] + box["width"], field
    button = page.get_by_role("button", name="Pay $275.00").bounding_box()
    assert button["x"] + button["width"] <= viewport
    pay(page)
    page.wait_for_url("**/sessions/my/")
    shot(page, "paid-phone")
    assert page.locator("#credits-title").inner_text() == "Sessions to book (5)"
    assert credits_of(student) == 5


def test_a_failed_3d_secure_step_is_refused_and_another_card_pays_as_a_new_attempt(
    page, student, offering
):
    payment = open_payment_page(page, student, offering)
    enter_card(page, CARD_3DS)
    pay(page)
    page.get_by_role("button", name="Fail authentication").click()
    page.wait_for_url(f"**/payments/{payment.pk}/pay/")
    page.locator("#card-element input").first.wait_for()
    shot(page, "3ds-failed-desktop")
    assert "Your payment did not go through" in page.locator(".messages").inner_text()
    payment.refresh_from_db()
    first_attempt = payment.reference
    assert (payment.state, payment.attempts) == (PaymentState.FAILED, 1)
    assert credits_of(student) == 0

    enter_card(page, CARD_OK)
    pay(page)
    page.wait_for_url("**/sessions/my/")
    assert page.locator("#credits-title").inner_text() == "Sessions to book (5)"
    payment.refresh_from_db()
    assert (payment.state, payment.attempts) == (PaymentState.DONE, 2)
    assert payment.reference != first_attempt
    assert credits_of(student) == 5
