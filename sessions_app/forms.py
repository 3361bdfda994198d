"""Forms for the session pages: they parse and validate input; services do the writing."""

import re
from datetime import UTC, date, datetime

from django import forms

from core.money import MoneyInvalid, format_money, parse_money
from policies.rules import Choice

REFUND_CHOICES = Choice.choices
MAX_REASON = 500
AMOUNT_NEEDS_PARTIAL = "Choose Partial refund to refund an amount, or clear the amount."


# How the refund drawer words the parser's refusals (`core.money.parse_money`, the parser of
# every money field); the other codes keep the parser's own words.
REFUND_AT_LEAST = "A partial refund must be at least 0.01."
REFUND_AMOUNT_MESSAGES = {
    "required": "Enter the amount to refund, for example 12.50.",
    "negative": REFUND_AT_LEAST,
    "too_large": "That amount is far larger than anything that can be refunded.",
}


def parse_refund_amount(text: str | None) -> int:
    """A partial refund's amount as cents (at least 1); ValueError with a message otherwise."""
    try:
        cents = parse_money(text)
    except MoneyInvalid as exc:
        raise ValueError(REFUND_AMOUNT_MESSAGES.get(exc.code, exc.message)) from None
    if cents < 1:
        raise ValueError(REFUND_AT_LEAST)
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


START_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
START_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def parse_start(text: str | None) -> datetime:
    """'2026-12-03T11:00:00Z' -> an aware datetime in UTC; ValueError for anything else (no
    naive times, no dates alone, no spaces for a lost '+', at most MAX_START_LENGTH characters)."""
    cleaned = text or ""
    if not cleaned or len(cleaned) > MAX_START_LENGTH or not _START.fullmatch(cleaned):
        raise ValueError(START_REFUSAL)
    try:
        start = datetime.fromisoformat(cleaned).astimezone(UTC)
    except (ValueError, OverflowError):  # 25:00, 30 February, an offset past year 9999
        raise ValueError(START_REFUSAL) from None
    # Far from datetime.min/max, so adding a session's length or a day of padding, or showing
    # it in any timezone, never overflows; no booking lies outside anyway.
    if not START_EARLIEST <= start < START_LATEST:
        raise ValueError(START_REFUSAL)
    return start


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


CHOOSE_REFUND = (
    "Choose Full refund, Partial refund, Give a make-up credit or Cancel without refund."
)


class CancelForm(forms.Form):
    """The refund drawer: Full refund, Partial refund (an amount), Give a make-up credit or
    Cancel without refund. What the coach's policy allows is checked by the service."""

    refund = forms.ChoiceField(
        label="Refund",
        choices=REFUND_CHOICES,
        widget=forms.RadioSelect,
        error_messages={
            "required": CHOOSE_REFUND,
            "invalid_choice": CHOOSE_REFUND,
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
        if refund in ("full", "credit", "none") and (data.get("amount") or "").strip():
            # Without JavaScript the amount stays enabled: a typed amount is never ignored.
            self.add_error("amount", AMOUNT_NEEDS_PARTIAL)
            return data
        if refund in ("full", "partial") and self.refundable_cents <= 0:
            raise forms.ValidationError(
                "Nothing is left to refund for this session; choose Cancel without refund."
            )
        if refund == "partial":
            try:
                cents = parse_refund_amount(data.get("amount", ""))
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


class StudentCancelForm(forms.Form):
    """A student's cancel: what the coach's policy gives now, chosen when it offers a choice
    (a full refund or a make-up credit); the amount is the policy's, never typed."""

    refund = forms.ChoiceField(
        label="What you get back",
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose a full refund or a make-up credit.",
            "invalid_choice": "That is not what the policy gives now; choose one of the options.",
        },
    )

    def __init__(self, *args, choices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["refund"].choices = [(choice, Choice(choice).label) for choice in choices]
        if len(choices) == 1:
            self.fields["refund"].initial = choices[0]


class PackageExtendForm(forms.Form):
    """How many more days a package's credits get (the coach, on the student's page)."""

    MAX_DAYS = 365

    days = forms.IntegerField(
        label="Extend by (days)",
        min_value=1,
        max_value=MAX_DAYS,
        error_messages={
            "required": "Enter how many days to extend the credits by, like 30.",
            "invalid": "Enter a whole number of days, like 30.",
            "min_value": "Extend by at least 1 day.",
            "max_value": f"Extend by at most {MAX_DAYS} days at a time.",
        },
    )
