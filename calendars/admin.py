"""Read-only admin pages for when coaches can be booked (weekly rules, one-off windows, time
off), what is busy elsewhere (busy times from external calendars) and what is taken
(reservations).

Nothing is added, changed or deleted here: availability changes through the coach's
Availability page (`calendars.services`), reservations only through the session services, and
busy times through the calendar sync. Every time is shown in its coach's own timezone with its
abbreviation ("Thu 03 Dec 2026 10:00-11:30 GMT"), the way the coach sees it.
"""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from accounts.admin import CoachFilter
from calendars.models import AvailabilityRule, AvailabilityWindow, BusyTime, TimeOff, TimeSlot
from core.admin import LargeTableAdminMixin, NumberOrTextSearchMixin, ReadOnlyAdminMixin


class _CoachTimeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """An interval of one coach's time, listed soonest first, named in the coach's zone."""

    list_display = ["when", "coach", "created_at"]
    list_filter = [CoachFilter]
    search_fields = ["coach__email"]
    search_help_text = "The coach's email."
    list_select_related = ["coach"]
    date_hierarchy = "start"
    ordering = ["-start", "-id"]
    list_per_page = 100

    @admin.display(description="when (coach's time)", ordering="start")
    def when(self, obj):
        return str(obj)


@admin.register(AvailabilityRule)
class AvailabilityRuleAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Weekly windows in the coach's own wall-clock time (DST-correct on every date)."""

    list_display = ["__str__", "coach", "coach_timezone", "valid_from", "valid_until"]
    list_filter = ["weekday", CoachFilter]
    search_fields = ["coach__email"]
    search_help_text = "The coach's email."
    list_select_related = ["coach"]
    ordering = ["coach__email", "weekday", "start_time", "id"]
    list_per_page = 100

    @admin.display(description="timezone", ordering="coach__timezone")
    def coach_timezone(self, obj):
        return obj.coach.timezone


@admin.register(AvailabilityWindow)
class AvailabilityWindowAdmin(_CoachTimeAdmin):
    """One-off extra windows of bookable time."""


@admin.register(TimeOff)
class TimeOffAdmin(_CoachTimeAdmin):
    list_display = ["when", "coach", "reason", "created_at"]


@admin.register(BusyTime)
class BusyTimeAdmin(_CoachTimeAdmin):
    """Busy times read from the coaches' external calendars (the calendar's secret address is
    not shown)."""

    list_display = ["when", "coach", "calendar_name", "created_at"]
    list_select_related = ["coach", "calendar"]
    exclude = ["calendar"]

    @admin.display(description="calendar")
    def calendar_name(self, obj):
        if obj.calendar_id is None:
            return "carried over"
        return obj.calendar.name or f"Calendar {obj.calendar_id}"


@admin.register(TimeSlot)
class TimeSlotAdmin(
    LargeTableAdminMixin, NumberOrTextSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    """Reservations: a session's agreed time (BOOKED, or HELD while requested) or a pending
    proposal's time (HELD); RELEASED ones are history."""

    list_display = [
        "id",
        "when",
        "length",
        "coach",
        "student",
        "session_link",
        "released_at",
    ]
    list_filter = ["status", CoachFilter]
    search_fields = ["coach__email", "student__email"]
    number_search_field = "session_id"
    search_help_text = "A coach's or student's email, or a session number."
    list_select_related = ["coach", "student"]
    date_hierarchy = "start"
    ordering = ["-start", "-id"]
    list_per_page = 100
    fields = [
        "when",
        "length",
        "status",
        "coach",
        "student",
        "session_link",
        "start",
        "end",
        "reserved_start",
        "reserved_end",
        "conflict_kept_at",
        "created_at",
        "released_at",
    ]
    readonly_fields = fields

    @admin.display(description="when (coach's time), status", ordering="start")
    def when(self, obj):
        return str(obj)

    @admin.display(description="length")
    def length(self, obj):
        return f"{obj.duration_minutes} min"

    @admin.display(description="session", ordering="session_id")
    def session_link(self, obj):
        if obj.session_id is None:
            return "-"
        url = reverse("admin:sessions_app_session_change", args=[obj.session_id])
        return format_html('<a href="{}">Session {}</a>', url, obj.session_id)
