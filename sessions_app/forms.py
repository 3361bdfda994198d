"""Forms for the session pages: they parse and validate input; services do the writing."""

from decimal import Decimal, InvalidOperation

from django import forms

from refunds.money import format_money

REFUND_CHOICES = [
    ("full", "Full refund"),
    ("partial", "Partial refund"),
    ("none", "Cancel without refund"),
]
MAX_REASON = 500


def parse_money(text: str) -> int:
    """'12.50' (or '12,50', '12') -> 1250 cents; ValueError with a message for anything else."""
    cleaned = (text or "").strip().replace(",", ".")
    if not cleaned:
        raise ValueError("Enter the amount to refund, for example 12.50.")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError("Enter the amount as a number, for example 12.50.") from None
    if not amount.is_finite():
        raise ValueError("Enter the amount as a number, for example 12.50.")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("Use at most two decimal places, for example 12.50.")
    cents = int(amount * 100)
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
