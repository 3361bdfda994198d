"""Forms for the session pages: they parse and validate input; services do the writing."""

import re
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


class SlotChoiceForm(forms.Form):
    """The time a student books, or either side proposes, by its slot id."""

    slot = forms.IntegerField(
        min_value=1,
        error_messages={
            "required": "Choose one of the times listed.",
            "invalid": "Choose one of the times listed.",
            "min_value": "Choose one of the times listed.",
        },
    )


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
