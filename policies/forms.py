"""The policy form: a few numbers and two choices, validated before the service saves them."""

from django import forms

from policies.models import CancellationPolicy
from policies.services import EDITABLE_FIELDS


class PolicyForm(forms.ModelForm):
    class Meta:
        model = CancellationPolicy
        fields = EDITABLE_FIELDS
        labels = {
            "free_notice_hours": "Full refund or credit if a student cancels (hours before)",
            "partial_notice_hours": "Partial refund if a student cancels (hours before)",
            "partial_percent": "Partial refund (% of the session's price)",
            "coach_cancel_rule": "When you cancel, the student gets",
            "coach_no_show_rule": "If you don't show, the student gets",
            "student_reschedule_limit": "New times a student may propose per session",
            "reschedule_notice_hours": "No new times proposed within (hours of the start)",
        }
        widgets = {
            "coach_cancel_rule": forms.RadioSelect,
            "coach_no_show_rule": forms.RadioSelect,
        }

    def clean(self):
        data = super().clean()
        free, partial = data.get("free_notice_hours"), data.get("partial_notice_hours")
        if free is not None and partial is not None and partial > free:
            self.add_error(
                "partial_notice_hours",
                "The partial-refund notice can't be longer than the full-refund notice.",
            )
        return data
