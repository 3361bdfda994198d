"""One money parser and one formatter for every money field: an offering's price and a refund read
"1e5" and "12,50" the same way (refused and 12.50), and every amount prints the same."""

import pytest
from django import forms

from catalog.forms import OfferingForm
from core.forms import MoneyField
from core.money import MoneyInvalid, format_amount, format_money, parse_money
from sessions_app.forms import CancelForm


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("12.50", 1250),
        ("12,5", 1250),
        ("12,50", 1250),
        ("12,05", 1205),
        ("1000", 100000),
        ("1000.00", 100000),
        ("150.", 15000),
        (".5", 50),
        (" 7 ", 700),
        ("0", 0),
        ("0.00", 0),
        ("007.10", 710),
        ("999999999.99", 99999999999),
    ],
)
def test_parse_money_reads_a_dot_or_a_single_decimal_comma(text, cents):
    assert parse_money(text) == cents


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "required"),
        ("   ", "required"),
        (None, "required"),
        ("1,000", "separator"),
        ("1,000.50", "separator"),
        ("12,505", "separator"),
        ("12,", "separator"),
        ("1e5", "invalid"),
        ("1E3", "invalid"),
        ("1e30", "invalid"),
        ("sNaN", "invalid"),
        ("NaN", "invalid"),
        ("Infinity", "invalid"),
        ("-Infinity", "invalid"),
        ("1_000", "invalid"),
        ("\u0663", "invalid"),  # ARABIC-INDIC DIGIT THREE: isdigit(), but not an ASCII digit
        ("\uff11\uff12", "invalid"),  # full-width digits
        ("+5", "invalid"),
        ("1 000", "invalid"),
        ("0x10", "invalid"),
        (".", "invalid"),
        ("$5", "invalid"),
        ("-5", "negative"),
        ("- 5.00", "negative"),
        ("1" * 40, "too_large"),
        ("1234567890", "too_large"),
        ("12.345", "decimals"),
        ("0.001", "decimals"),
    ],
)
def test_parse_money_refuses_what_it_would_have_to_guess(text, code):
    with pytest.raises(MoneyInvalid) as refused:
        parse_money(text)

    assert refused.value.code == code
    assert isinstance(refused.value, ValueError)
    assert str(refused.value) == refused.value.message != ""


@pytest.mark.parametrize(
    ("cents", "currency", "text"),
    [
        (123450, "USD", "$1,234.50"),
        (-500, "USD", "-$5.00"),
        (1250, "EUR", "€12.50"),
        (99, "GBP", "£0.99"),
        (123450, "CHF", "1,234.50 CHF"),
        (0, "USD", "$0.00"),
        (None, "USD", "-"),
    ],
)
def test_format_money_writes_every_amount_the_same_way(cents, currency, text):
    assert format_money(cents, currency) == text


@pytest.mark.parametrize("cents", [0, 1, 50, 1250, 100000, 99999999999])
def test_format_amount_is_what_parse_money_reads_back(cents):
    assert parse_money(format_amount(cents)) == cents
    assert format_amount(123450, grouping=True) == "1,234.50"


# --- every money field reads the same way ----------------------------------------------------


def _offering_form(price: str) -> OfferingForm:
    return OfferingForm(
        data={
            "title": "Pack",
            "session_count": "2",
            "duration_minutes": "60",
            "price": price,
            "currency": "USD",
        }
    )


def _refund_form(amount: str) -> CancelForm:
    return CancelForm(
        data={"refund": "partial", "amount": amount}, refundable_cents=10_000_000, currency="USD"
    )


@pytest.mark.parametrize(("text", "cents"), [("12,50", 1250), ("12.50", 1250), ("12,5", 1250)])
def test_a_price_and_a_refund_both_read_a_decimal_comma(text, cents):
    offering, refund = _offering_form(text), _refund_form(text)

    assert offering.is_valid(), offering.errors
    assert refund.is_valid(), refund.errors
    assert (offering.terms()["price_cents"], refund.cleaned_data["amount_cents"]) == (cents, cents)


@pytest.mark.parametrize("text", ["1e5", "1E3", "1_000", "1,000", "Infinity", "+5", "12.345"])
def test_a_price_and_a_refund_both_refuse_exponents_and_guesses(text):
    offering, refund = _offering_form(text), _refund_form(text)

    assert (offering.is_valid(), refund.is_valid()) == (False, False)
    assert list(offering.errors) == ["price"]
    assert list(refund.errors) == ["amount"]


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ("abc", "Enter the price as a number, like 150.00."),
        ("1e5", "Enter the price as a number, like 150.00."),
        ("-1", "The price cannot be negative."),
        ("1.234", "Use at most two decimal places, for example 12.50."),
        ("100000.01", "The price can be at most 100,000.00."),
        ("1234567890", "The price can be at most 100,000.00."),
        ("", "Enter the price, like 150.00 (0 for free sessions)."),
    ],
)
def test_a_bad_price_says_why(price, message):
    form = _offering_form(price)

    assert form.errors["price"] == [message]


def test_money_field_shows_cents_as_the_amount_it_reads_back():
    class Form(forms.Form):
        amount = MoneyField(min_cents=100, max_cents=5000)

    shown = Form(initial={"amount": 12345})
    assert 'value="123.45"' in str(shown["amount"])
    assert 'inputmode="decimal"' in str(shown["amount"])
    assert Form(data={"amount": "49,5"}).is_valid()
    assert Form(data={"amount": "0.99"}).errors["amount"] == ["Enter at least 1.00."]
    assert Form(data={"amount": "50.01"}).errors["amount"] == ["Enter at most 50.00."]
