"""Forms for offerings and buying. Money is entered as units (150.00) and kept in cents, read
by `core.money.parse_money` like every money field."""

import secrets

from django import forms
from django.core import signing

from catalog.models import MAX_CREDIT_VALIDITY_DAYS
from catalog.services import MAX_OFFERING_PRICE_CENTS, OFFERING_CURRENCIES
from core.forms import MoneyField
from core.money import format_amount
from sessions_app import selectors as sessions_selectors

PURCHASE_TOKEN_SALT = "coachbook.catalog.purchase"
PURCHASE_TOKEN_MAX_AGE = 3600  # seconds a confirmation page stays valid


class OfferingForm(forms.Form):
    """An offering's terms. `terms()` gives the keyword arguments of the offering services."""

    title = forms.CharField(max_length=120)
    description = forms.CharField(
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="What the student gets; shown on your coach page.",
    )
    session_count = forms.IntegerField(label="Number of sessions", min_value=1, max_value=100)
    duration_minutes = forms.IntegerField(
        label="Minutes per session", min_value=5, max_value=600, initial=60
    )
    price = MoneyField(
        label="Price for the whole package",
        min_cents=0,
        max_cents=MAX_OFFERING_PRICE_CENTS,
        help_text="For example 150.00. It is split evenly across the sessions for refunds.",
        error_messages={
            "required": "Enter the price, like 150.00 (0 for free sessions).",
            "invalid": "Enter the price as a number, like 150.00.",
            "negative": "The price cannot be negative.",
            "max_value": "The price can be at most %(limit)s.",
            "too_large": "The price can be at most "
            f"{format_amount(MAX_OFFERING_PRICE_CENTS, grouping=True)}.",
        },
    )
    currency = forms.ChoiceField(choices=[(code, code) for code in OFFERING_CURRENCIES])
    credit_validity_days = forms.IntegerField(
        label="Credits expire this many days after purchase (optional)",
        required=False,
        min_value=1,
        max_value=MAX_CREDIT_VALIDITY_DAYS,
        help_text="For example 90. Sessions not booked by then expire; you can extend them "
        "for a student. Leave empty for sessions that never expire.",
        error_messages={
            "invalid": "Enter a whole number of days, like 90, or leave it empty.",
            "min_value": "Enter at least 1 day, or leave it empty for no expiry.",
            "max_value": f"Enter at most {MAX_CREDIT_VALIDITY_DAYS} days (three years).",
        },
    )

    @classmethod
    def for_offering(cls, offering, data=None):
        initial = {
            "title": offering.title,
            "description": offering.description,
            "session_count": offering.session_count,
            "duration_minutes": offering.duration_minutes,
            "price": offering.price_cents,
            "currency": offering.currency,
            "credit_validity_days": offering.credit_validity_days,
        }
        return cls(data=data, initial=initial)

    def terms(self) -> dict:
        data = self.cleaned_data
        return {
            "title": data["title"],
            "description": data["description"],
            "session_count": data["session_count"],
            "duration_minutes": data["duration_minutes"],
            "price_cents": data["price"],
            "currency": data["currency"],
            "credit_validity_days": data.get("credit_validity_days"),
        }


def purchase_token_issue(*, user, offering) -> str:
    """A signed one-time token for one confirmation page: this user, this offering, a nonce."""
    return signing.dumps(
        {"u": user.pk, "o": offering.pk, "n": secrets.token_urlsafe(16)}, salt=PURCHASE_TOKEN_SALT
    )


class PurchaseForm(forms.Form):
    """The Buy confirmation. The token proves the page was shown to this user for this
    offering within the last hour; `nonce` is stored on the package it buys, so it buys once."""

    token = forms.CharField(widget=forms.HiddenInput)
    again = forms.BooleanField(required=False, label="Yes, buy another package")

    def __init__(self, *args, user, offering, unused=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user, self.offering, self.unused = user, offering, unused

    def clean_token(self) -> str:
        try:
            payload = signing.loads(
                self.cleaned_data["token"], salt=PURCHASE_TOKEN_SALT, max_age=PURCHASE_TOKEN_MAX_AGE
            )
        except signing.SignatureExpired as exc:
            raise forms.ValidationError(
                "This confirmation page has expired. Check the details and confirm again."
            ) from exc
        except signing.BadSignature as exc:
            raise forms.ValidationError(
                "This confirmation could not be checked. Check the details and confirm again."
            ) from exc
        if payload.get("u") != self.user.pk or payload.get("o") != self.offering.pk:
            raise forms.ValidationError(
                "This confirmation is for another purchase. Check the details and confirm again."
            )
        self.nonce = str(payload.get("n", ""))
        return self.cleaned_data["token"]

    def clean(self):
        """With sessions of this offering still to book (or a package of it still to pay),
        buying another needs "Yes, buy another package", unless this page's token already
        bought one (a double click or a resent page finds that package instead)."""
        cleaned = super().clean()
        nonce = getattr(self, "nonce", "")
        if (
            self.unused
            and not cleaned.get("again")
            and nonce
            and not sessions_selectors.purchase_token_used(student=self.user, nonce=nonce)
        ):
            self.add_error(
                "again",
                "You still have sessions of this package to use. Tick “Yes, buy another "
                "package” to buy one more, or book the ones you have in My sessions.",
            )
        return cleaned
