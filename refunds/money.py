"""Moved to `core.money` (the one money parser and formatter); these names stay importable from
here for code written before the move. Import them from `core.money`."""

from core.money import CURRENCY_SYMBOLS, format_amount, format_money  # noqa: F401
