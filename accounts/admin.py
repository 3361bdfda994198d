from django.conf import settings
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import Case, F, FloatField, OuterRef, Value, When
from django.db.models.functions import Cast

from accounts.forms import NormalizedEmailInputMixin
from accounts.models import CoachProfile, User
from core.admin import CoachListFilter, ReadOnlyAdminMixin
from sessions_app.selectors import coach_cancellation_counts_annotation


class CoachFilter(CoachListFilter):
    """Rows by coach, listing every user who has a coach profile (the other apps' admin lists
    of a coach's rows use it too)."""

    def coaches(self):
        return User.objects.filter(coach_profile__isnull=False)


class UserAddForm(NormalizedEmailInputMixin, AdminUserCreationForm):
    """The admin's Add user: the address normalised as at sign-up (a look-alike of an existing
    account's address is refused as taken)."""

    email_field_names = ("email",)


class UserEditForm(NormalizedEmailInputMixin, UserChangeForm):
    email_field_names = ("email",)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = UserAddForm
    form = UserEditForm
    ordering = ["email"]
    list_display = ["email", "display_name", "timezone", "is_staff", "date_joined"]
    search_fields = ["email", "display_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("display_name", "timezone")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


@admin.register(CoachProfile)
class CoachProfileAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: a coach changes their profile on the Profile page (`coach_profile_update`
    checks the windows), and deleting a profile would orphan the coach's sessions."""

    list_display = [
        "user",
        "request_window_hours",
        "reschedule_window_hours",
        "cancellation_rate",
        "created_at",
    ]
    search_fields = ["user__email", "user__display_name"]
    list_select_related = ["user"]

    def get_queryset(self, request):
        """Annotate the cancellation rate of `coach_cancellation_rate`, in the list's one query.

        Canceled by the coach (from Requested, Confirmed or Rescheduling) over sessions booked in
        the last CANCELLATION_RATE_DAYS, summed from each coach's daily tallies.
        """
        return (
            super()
            .get_queryset(request)
            .annotate(
                **coach_cancellation_counts_annotation(
                    coach=OuterRef("user"), days=settings.CANCELLATION_RATE_DAYS
                )
            )
            .annotate(
                cancellation_ratio=Case(
                    When(booked_recent=0, then=Value(0.0)),
                    default=Cast("canceled_recent", FloatField()) / F("booked_recent"),
                    output_field=FloatField(),
                )
            )
        )

    @admin.display(
        description=f"canceled by coach ({settings.CANCELLATION_RATE_DAYS} days)",
        ordering="cancellation_ratio",
    )
    def cancellation_rate(self, obj):
        if not obj.booked_recent:
            return "no bookings"
        percent = round(obj.canceled_recent * 100 / obj.booked_recent)
        return f"{percent}% ({obj.canceled_recent} of {obj.booked_recent})"
