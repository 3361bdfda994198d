"""Forms for the session pages: they parse and validate input; services do the writing."""

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from django import forms

from refunds.money import format_money

REFUND_CHOICES = [
    ("full", "Full refund"),
    ("partial", "Partial refund"),
    ("none", "Cancel without refund"),
]
MAX_REASON = 500


# Digits only (ASCII), at most nine before the decimal mark: no exponents ("1e30"), no
# underscores, no signs, no thousands separators; Decimal would accept several of those.
MAX_INTEGER_DIGITS = 9
_AMOUNT = re.compile(r"([0-9]*)(?:\.([0-9]*))?", re.ASCII)
_DECIMAL_COMMA = re.compile(r"[0-9]+,[0-9]{1,2}", re.ASCII)
_NEGATIVE = re.compile(r"-\s*[0-9]*(?:[.,][0-9]*)?", re.ASCII)


def parse_money(text: str) -> int:
    """'12.50' (or '12,50', '12') -> 1250 cents; ValueError with a message for anything else.

    A dot is the decimal mark. A comma is read as one only in "12,5" or "12,50" (one or two
    digits after it and no dot); "1,000" or "1,000.00" is refused rather than guessed at.
    """
    cleaned = (text or "").strip()
    if not cleaned:
        raise ValueError("Enter the amount to refund, for example 12.50.")
    if "," in cleaned:
        if not _DECIMAL_COMMA.fullmatch(cleaned):
            raise ValueError("Use a dot for decimals and no thousands separator, e.g. 1000.00.")
        cleaned = cleaned.replace(",", ".")
    if _NEGATIVE.fullmatch(cleaned):
        raise ValueError("A partial refund must be at least 0.01.")
    match = _AMOUNT.fullmatch(cleaned)
    if match is None or not (match.group(1) or match.group(2)):
        raise ValueError("Enter the amount as a number, for example 12.50.")
    whole, fraction = match.group(1), (match.group(2) or "").rstrip("0")
    if len(whole.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise ValueError("That amount is far larger than anything that can be refunded.")
    if len(fraction) > 2:
        raise ValueError("Use at most two decimal places, for example 12.50.")
    try:
        cents = int((Decimal(cleaned) * 100).to_integral_exact())
    except (InvalidOperation, ValueError):  # pragma: no cover - the pattern rules these out
        raise ValueError("Enter the amount as a number, for example 12.50.") from None
    if cents < 1:
        raise ValueError("A partial refund must be at least 0.01.")
    return cents


# A start time as the picker links and the confirm step's form carry it: ISO 8601 with a UTC
# offset ("2026-12-03T11:00:00Z", "2026-12-03T11:00:00+00:00"), nothing looser.
MAX_START_LENGTH = 40
_START = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
_WEEK = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
START_REFUSAL = "That is not one of the times listed. Pick one of them."


def parse_start(text: str | None) -> datetime:
    """'2026-12-03T11:00:00Z' -> an aware datetime in UTC; ValueError for anything else (no
    naive times, no dates alone, no spaces for a lost '+', at most MAX_START_LENGTH characters)."""
    cleaned = text or ""
    if not cleaned or len(cleaned) > MAX_START_LENGTH or not _START.fullmatch(cleaned):
        raise ValueError(START_REFUSAL)
    try:
        return datetime.fromisoformat(cleaned).astimezone(UTC)
    except (ValueError, OverflowError):  # 25:00, 30 February, an offset past year 9999
        raise ValueError(START_REFUSAL) from None


def format_start(value: datetime) -> str:
    """The form `parse_start` reads: UTC with a Z ("2026-12-03T11:00:00Z")."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_week(text: str | None) -> date:
    """'2026-12-03' -> that date; ValueError for anything else (the picker shows its week)."""
    cleaned = text or ""
    if len(cleaned) != 10 or not _WEEK.fullmatch(cleaned):
        raise ValueError("That is not a date.")
    return date.fromisoformat(cleaned)


class StartChoiceForm(forms.Form):
    """The time a student books, or either side proposes: its start (see `parse_start`)."""

    start = forms.CharField(
        max_length=MAX_START_LENGTH,
        strip=False,
        error_messages={"required": START_REFUSAL, "max_length": START_REFUSAL},
    )

    def clean_start(self) -> datetime:
        try:
            return parse_start(self.cleaned_data["start"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class DeclineForm(forms.Form):
    reason = forms.CharField(
        label="Reason for declining (optional)",
        required=False,
        max_length=MAX_REASON,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class CancelForm(forms.Form):
    """The refund drawer: Full refund, Partial refund (an amount) or Cancel without refund."""

    refund = forms.ChoiceField(
        label="Refund",
        choices=REFUND_CHOICES,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose Full refund, Partial refund or Cancel without refund.",
            "invalid_choice": "Choose Full refund, Partial refund or Cancel without refund.",
        },
    )
    amount = forms.CharField(label="Amount to refund", required=False, max_length=20)
    reason = forms.CharField(
        label="Reason (optional, the student sees it)",
        required=False,
        max_length=MAX_REASON,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args, refundable_cents: int, currency: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.refundable_cents = refundable_cents
        self.currency = currency
        most = format_money(refundable_cents, currency)
        self.fields["amount"].help_text = f"In {currency}, at most {most}."

    def clean(self):
        data = super().clean()
        refund = data.get("refund")
        data["amount_cents"] = None
        if refund in ("full", "partial") and self.refundable_cents <= 0:
            raise forms.ValidationError(
                "Nothing is left to refund for this session; choose Cancel without refund."
            )
        if refund == "partial":
            try:
                cents = parse_money(data.get("amount", ""))
            except ValueError as exc:
                self.add_error("amount", str(exc))
                return data
            if cents > self.refundable_cents:
                self.add_error(
                    "amount",
                    f"At most {format_money(self.refundable_cents, self.currency)} "
                    "can be refunded for this session.",
                )
                return data
            data["amount_cents"] = cents
        return data
