"""Parsing what a person sends: a refund amount typed in (read by `core.money.parse_money`, in
the refund drawer's words), and the picker's start times and weeks; what is read, and what is
refused with a reason."""

from datetime import UTC, date, datetime

import pytest

from sessions_app.forms import (
    StartChoiceForm,
    format_start,
    parse_refund_amount,
    parse_start,
    parse_week,
)


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
def test_refund_amount_reads_a_dot_or_a_single_decimal_comma(text, cents):
    assert parse_refund_amount(text) == cents


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
def test_refund_amount_refuses_what_it_would_have_to_guess(text, message):
    with pytest.raises(ValueError) as refused:
        parse_refund_amount(text)
    assert str(refused.value) == message


# --- the picker's start times and weeks -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-12-03T11:00:00Z", datetime(2026, 12, 3, 11, 0, tzinfo=UTC)),
        ("2026-12-03T11:00Z", datetime(2026, 12, 3, 11, 0, tzinfo=UTC)),
        ("2026-12-03T11:00:00+00:00", datetime(2026, 12, 3, 11, 0, tzinfo=UTC)),
        ("2026-12-03T12:00:00+01:00", datetime(2026, 12, 3, 11, 0, tzinfo=UTC)),
        ("2026-12-03T06:00:00-05:00", datetime(2026, 12, 3, 11, 0, tzinfo=UTC)),
        ("2026-12-03T11:00:00.000000Z", datetime(2026, 12, 3, 11, 0, tzinfo=UTC)),
    ],
)
def test_parse_start_reads_iso_8601_with_an_offset(text, moment):
    assert parse_start(text) == moment
    assert parse_start(text).tzinfo == UTC


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "2026-12-03",
        "2026-12-03T11:00:00",  # naive
        "2026-12-03 11:00:00Z",  # a space for the T
        "2026-12-03T11:00:00 01:00",  # a '+' lost in a query string
        "2026-12-03T11:00:00+0100",
        "2026-12-03T11:00:00+01",
        "20261203T110000Z",
        " 2026-12-03T11:00:00Z",
        "2026-12-03T11:00:00Z\n",
        "2026-02-30T11:00:00Z",
        "2026-12-03T24:00:00Z",
        "2026-12-03T11:00:00+24:00",
        "9999-12-31T23:00:00-05:00",  # past the last representable moment in UTC
        "0001-01-01T00:30:00+01:00",
        "\u0662026-12-03T11:00:00Z",
        "2026-12-03T11:00:00.1234567Z",
        "2026-12-03T11:00:00Z" + "0" * 40,
    ],
)
def test_parse_start_refuses_anything_looser(text):
    with pytest.raises(ValueError) as refused:
        parse_start(text)
    assert str(refused.value) == "That is not one of the times listed. Pick one of them."


def test_format_start_is_what_parse_start_reads():
    moment = datetime(2026, 12, 3, 11, 30, tzinfo=UTC)
    assert format_start(moment) == "2026-12-03T11:30:00Z"
    assert parse_start(format_start(moment)) == moment


def test_start_choice_form_bounds_the_length_before_parsing():
    form = StartChoiceForm({"start": "2026-12-03T11:00:00Z" + " " * 5000})
    assert not form.is_valid()
    assert form.errors["start"] == ["That is not one of the times listed. Pick one of them."]


@pytest.mark.parametrize(
    ("text", "day"), [("2026-12-03", date(2026, 12, 3)), ("2024-02-29", date(2024, 2, 29))]
)
def test_parse_week_reads_a_date(text, day):
    assert parse_week(text) == day


@pytest.mark.parametrize(
    "text", [None, "", "20261203", "2026-12-3", "2026-02-30", "2026-12-03T00:00", "next week"]
)
def test_parse_week_refuses_anything_else(text):
    with pytest.raises(ValueError):
        parse_week(text)
