"""The admin page for offerings: read-only, like every other domain model's admin."""

from django.contrib import admin

from accounts.admin import CoachFilter
from catalog.models import Offering
from core.admin import ReadOnlyAdminMixin, money_column


@admin.register(Offering)
class OfferingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: coaches change their offerings on their Offerings page, through
    `offering_create` / `offering_update` / `offering_set_active`, which check the currency, the
    price cap and the bounds that a plain model form would skip."""

    list_display = [
        "title",
        "coach",
        "session_count",
        "duration_minutes",
        "price_display",
        "is_active",
        "created_at",
    ]
    list_filter = ["is_active", "currency", CoachFilter]
    search_fields = ["title", "coach__email"]
    list_select_related = ["coach"]
    fields = [
        "title",
        "coach",
        "description",
        "session_count",
        "duration_minutes",
        "price_display",
        "is_active",
        "created_at",
    ]
    readonly_fields = fields

    price_display = money_column("price_cents", "price")
