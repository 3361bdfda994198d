"""Form fields shared by the apps' forms."""

from django import forms

from core.money import MESSAGES, MoneyInvalid, format_amount, parse_money


class MoneyField(forms.CharField):
    """An amount of money typed as units ("150.00", "150", "12,50") and cleaned to minor units
    (an int) with `core.money.parse_money`, the parser of every money field.

    `min_cents` / `max_cents` bound it. `error_messages` may word any code of
    `core.money.MESSAGES` ("invalid", "separator", "negative", "too_large", "decimals") and
    "min_value" / "max_value" (with `%(limit)s`, the bound as "100,000.00").
    """

    default_error_messages = {
        **MESSAGES,
        "min_value": "Enter at least %(limit)s.",
        "max_value": "Enter at most %(limit)s.",
    }

    MAX_INPUT_LENGTH = 20  # the widget's maxlength; the parser bounds the digits itself

    def __init__(self, *, min_cents: int | None = None, max_cents: int | None = None, **kwargs):
        self.min_cents, self.max_cents = min_cents, max_cents
        super().__init__(**kwargs)

    def widget_attrs(self, widget):
        return {
            **super().widget_attrs(widget),
            "maxlength": str(self.MAX_INPUT_LENGTH),
            "inputmode": "decimal",
        }

    def prepare_value(self, value):
        """Initial data in minor units shows as the plain decimal the parser reads back."""
        if isinstance(value, int) and not isinstance(value, bool):
            return format_amount(value)
        return value

    def to_python(self, value) -> int | None:
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            return parse_money(text)
        except MoneyInvalid as exc:
            raise forms.ValidationError(self.error_messages[exc.code], code=exc.code) from None

    def validate(self, value) -> None:
        super().validate(value)
        if value is None:
            return
        if self.min_cents is not None and value < self.min_cents:
            raise forms.ValidationError(
                self.error_messages["min_value"],
                code="min_value",
                params={"limit": format_amount(self.min_cents, grouping=True)},
            )
        if self.max_cents is not None and value > self.max_cents:
            raise forms.ValidationError(
                self.error_messages["max_value"],
                code="max_value",
                params={"limit": format_amount(self.max_cents, grouping=True)},
            )
