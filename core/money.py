"""Money for people: integer minor units plus an ISO currency code, read and written in one place.

Reading (`parse_money`), the same rules for every money field (a price, a refund):

    parse_money("12.50") -> 1250      parse_money("12,5") -> 1250     parse_money("12,50") -> 1250
    parse_money("1000")  -> 100000    parse_money(".5")   -> 50       parse_money(" 7 ")   -> 700

A dot is the decimal mark. A comma is read as one only in "12,5" or "12,50" (one or two digits
after it and no dot); "1,000" and "1,000.00" are refused rather than guessed at. ASCII digits
only, at most nine before the decimal mark and two after it: no exponents ("1e5"), signs,
underscores, spaces inside, thousands separators, NaN or Infinity (Python's Decimal and float
accept several of those). Each refusal is a `MoneyInvalid` (a ValueError) with a `code` and a
message fit to show a person; a form may word a code its own way.

Writing (`format_money`, `format_amount`):

    format_money(123450, "USD") -> "$1,234.50"     format_money(-500, "USD") -> "-$5.00"
    format_money(1250, "EUR")   -> "€12.50"        format_money(99, "GBP")   -> "£0.99"
    format_money(123450, "CHF") -> "1,234.50 CHF"  format_money(None, "USD") -> "-"
    format_amount(123450)       -> "1234.50"       (what `parse_money` reads back)

Integer arithmetic only (no floats), two decimal places (every currency offered has them).
"""

import re

MAX_INTEGER_DIGITS = 9  # up to 999,999,999.99
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}

_AMOUNT = re.compile(r"([0-9]*)(?:\.([0-9]*))?", re.ASCII)
_DECIMAL_COMMA = re.compile(r"([0-9]+),([0-9]{1,2})", re.ASCII)
_NEGATIVE = re.compile(r"-\s*[0-9]*(?:[.,][0-9]*)?", re.ASCII)

MESSAGES = {
    "required": "Enter the amount, for example 12.50.",
    "separator": "Use a dot for decimals and no thousands separator, e.g. 1000.00.",
    "invalid": "Enter the amount as a number, for example 12.50.",
    "negative": "Enter the amount without a minus sign, for example 12.50.",
    "too_large": "That amount is far too large.",
    "decimals": "Use at most two decimal places, for example 12.50.",
}


class MoneyInvalid(ValueError):
    """Text that is not an amount of money; `code` is a key of MESSAGES."""

    def __init__(self, code: str):
        self.code = code
        self.message = MESSAGES[code]
        super().__init__(self.message)


def parse_money(text: str | None) -> int:
    """An amount typed by a person as minor units (cents, >= 0); MoneyInvalid for anything
    else. Callers check their own bounds (a price may be 0, a refund may not)."""
    cleaned = (text or "").strip()
    if not cleaned:
        raise MoneyInvalid("required")
    if "," in cleaned:
        if not _DECIMAL_COMMA.fullmatch(cleaned):
            raise MoneyInvalid("separator")
        cleaned = cleaned.replace(",", ".")
    if _NEGATIVE.fullmatch(cleaned):
        raise MoneyInvalid("negative")
    match = _AMOUNT.fullmatch(cleaned)
    if match is None or not (match.group(1) or match.group(2)):
        raise MoneyInvalid("invalid")
    whole, fraction = match.group(1).lstrip("0"), (match.group(2) or "").rstrip("0")
    if len(whole) > MAX_INTEGER_DIGITS:
        raise MoneyInvalid("too_large")
    if len(fraction) > 2:
        raise MoneyInvalid("decimals")
    return int(whole or "0") * 100 + int(fraction.ljust(2, "0"))


def format_amount(cents: int, *, grouping: bool = False) -> str:
    """Minor units as a plain decimal: 123450 -> "1234.50" ("1,234.50" with grouping)."""
    sign = "-" if cents < 0 else ""
    whole, fraction = divmod(abs(int(cents)), 100)
    return f"{sign}{whole:,}.{fraction:02d}" if grouping else f"{sign}{whole}.{fraction:02d}"


def format_money(cents: int | None, currency: str) -> str:
    """Minor units as money: a symbol for USD, EUR and GBP, the code after the number otherwise."""
    if cents is None:
        return "-"
    sign = "-" if cents < 0 else ""
    number = format_amount(abs(int(cents)), grouping=True)
    symbol = CURRENCY_SYMBOLS.get(currency)
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {currency}".rstrip()
