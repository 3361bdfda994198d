"""The coaches' cancellation policies in the admin: read-only, with their coach.

A coach changes their policy on their own Policy page, through `policies.services.policy_update`,
which checks the tiers against each other; the admin edits nothing that has a service
(decision 11). Each policy is shown in the plain language the coach's page and the checkout
use, next to its numbers. A coach without a row follows the defaults.
"""

from django.contrib import admin
from django.utils.html import format_html_join

from core.admin import (
    LargeTableAdminMixin,
    NumberOrTextSearchMixin,
    ReadOnlyAdminMixin,
    admin_link,
    user_label,
)
from policies.models import CancellationPolicy
from policies.rules import policy_summary


@admin.register(CancellationPolicy)
class CancellationPolicyAdmin(
    LargeTableAdminMixin, NumberOrTextSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    list_display = [
        "coach_display",
        "free_notice_hours",
        "partial_notice_hours",
        "partial_percent",
        "coach_cancel_rule",
        "coach_no_show_rule",
        "student_reschedule_limit",
        "updated_at",
    ]
    list_filter = ["coach_cancel_rule", "coach_no_show_rule"]
    search_fields = ["coach__email", "coach__display_name"]
    search_help_text = "A coach's email or name, or a policy number."
    list_select_related = ["coach"]
    fields = [
        "coach_link",
        "in_plain_language",
        "free_notice_hours",
        "partial_notice_hours",
        "partial_percent",
        "coach_cancel_rule",
        "coach_no_show_rule",
        "student_reschedule_limit",
        "reschedule_notice_hours",
        "updated_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("coach")

    @admin.display(description="coach", ordering="coach__email")
    def coach_display(self, obj):
        return user_label(obj.coach)

    @admin.display(description="coach")
    def coach_link(self, obj):
        return admin_link(obj.coach, user_label(obj.coach))

    @admin.display(description="in plain language")
    def in_plain_language(self, obj):
        lines = policy_summary(obj)
        return format_html_join("", "<p>{}</p>", ((line,) for line in lines))
