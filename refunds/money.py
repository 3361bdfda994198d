"""Money for people: integer minor units plus an ISO currency code, formatted in one place.

format_money(123450, "USD") -> "$1,234.50"     format_money(-500, "USD") -> "-$5.00"
format_money(1250, "EUR")   -> "€12.50"        format_money(99, "GBP")   -> "£0.99"
format_money(123450, "CHF") -> "1,234.50 CHF"  format_money(None, "USD") -> "-"

Integer arithmetic only (no floats), two decimal places (every currency offered has them).
"""

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


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
