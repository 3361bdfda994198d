"""Parsing a refund amount typed by a person: what is read, and what is refused with a reason."""

import pytest

from sessions_app.forms import parse_money


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("12.50", 1250),
        ("12,5", 1250),
        ("12,50", 1250),
        ("1000", 100000),
        ("1000.00", 100000),
        (".5", 50),
        (" 7 ", 700),
        ("999999999.99", 99999999999),
    ],
)
def test_parse_money_reads_a_dot_or_a_single_decimal_comma(text, cents):
    assert parse_money(text) == cents


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,000", "Use a dot for decimals and no thousands separator, e.g. 1000.00."),
        ("1,000.50", "Use a dot for decimals and no thousands separator, e.g. 1000.00."),
        ("12,505", "Use a dot for decimals and no thousands separator, e.g. 1000.00."),
        ("1e30", "Enter the amount as a number, for example 12.50."),
        ("1E3", "Enter the amount as a number, for example 12.50."),
        ("sNaN", "Enter the amount as a number, for example 12.50."),
        ("-Infinity", "Enter the amount as a number, for example 12.50."),
        ("1_000", "Enter the amount as a number, for example 12.50."),
        ("\u0663", "Enter the amount as a number, for example 12.50."),
        ("+5", "Enter the amount as a number, for example 12.50."),
        ("1" * 40, "That amount is far larger than anything that can be refunded."),
        ("1234567890", "That amount is far larger than anything that can be refunded."),
        ("12.345", "Use at most two decimal places, for example 12.50."),
        ("-5", "A partial refund must be at least 0.01."),
        ("0.00", "A partial refund must be at least 0.01."),
    ],
)
def test_parse_money_refuses_what_it_would_have_to_guess(text, message):
    with pytest.raises(ValueError) as refused:
        parse_money(text)
    assert str(refused.value) == message
