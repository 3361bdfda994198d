"""Building blocks shared by every app's admin (no admin is registered here).

Read-only pages, number-or-text search, a coach filter, links to admin pages, and the columns
every money page repeats: an amount in minor units shown as money, and a related person's email.
"""

from collections.abc import Callable
from operator import attrgetter

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from core.money import format_money


def admin_link(obj, label: str | None = None) -> str:
    """A link to `obj`'s admin page (which opens read-only where editing is refused)."""
    if obj is None:
        return "-"
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label or str(obj))


def user_label(user) -> str:
    return "-" if user is None else f"{user.name} <{user.email}>"


def money_column(field: str, description: str, *, sortable: bool = True) -> Callable:
    """A column showing `obj.<field>` (minor units) in `obj.currency`: "$12.50", "€3.00".

    `field` may be an annotation; `sortable` orders the column by it.
    """

    @admin.display(description=description, ordering=field if sortable else None)
    def column(self, obj) -> str:
        return format_money(getattr(obj, field), obj.currency)

    return column


def email_column(path: str, description: str) -> Callable:
    """A column showing the email of the user at `path` ("session__coach"), sortable by it."""
    user_of = attrgetter(path.replace("__", "."))

    @admin.display(description=description, ordering=f"{path}__email")
    def column(self, obj) -> str:
        return user_of(obj).email

    return column


class ReadOnlyAdminMixin:
    """Nobody adds, changes or deletes through these pages; viewing follows the permissions.

    Viewing needs an active staff account and the model's "view" permission (superusers hold
    every permission).
    """

    def has_view_permission(self, request, obj=None):
        user = request.user
        return user.is_active and user.is_staff and super().has_view_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# An admin list counts its rows up to this many (then says "more than"): the count is a
# bounded LIMIT subquery, so a list of millions of events pages as fast as one of hundreds.
ADMIN_COUNT_MAX = 10_000


class BoundedCountPaginator(Paginator):
    """Django's paginator counting at most ADMIN_COUNT_MAX + 1 rows (pages beyond are not
    linked; filters and search narrow a list that long)."""

    @cached_property
    def count(self) -> int:
        return self.object_list[: ADMIN_COUNT_MAX + 1].count()

    @property
    def count_max(self) -> int:
        return ADMIN_COUNT_MAX

    @property
    def capped(self) -> bool:
        """Whether the list is longer than it was counted (the page says "More than")."""
        return self.count > ADMIN_COUNT_MAX


class LargeTableAdminMixin:
    """For admin lists that grow with the business (sessions, events, refunds, payments,
    reservations, emails): a bounded count, no second count of the unfiltered table, and the
    newest rows first through the primary key."""

    paginator = BoundedCountPaginator
    show_full_result_count = False
    ordering = ["-id"]
    list_per_page = 100


MAX_ID = 2**63 - 1  # the largest BigAutoField value


def as_id(text: str) -> int | None:
    """`text` as a primary key when it is one: ASCII digits only ("²".isdigit() is True, but
    int() refuses it) and within the BigAutoField range; None otherwise."""
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


class NumberOrTextSearchMixin:
    """A search term that is a number ("42" or "#42") finds that id; text searches the rest.

    `number_search_field` names the id lookup; `search_fields` hold the text fields (emails).
    """

    number_search_field = "id"

    def get_search_results(self, request, queryset, search_term):
        number = as_id(search_term.strip().removeprefix("#"))
        if number is not None:
            return queryset.filter(**{self.number_search_field: number}), False
        return super().get_search_results(request, queryset, search_term)


class CoachListFilter(admin.SimpleListFilter):
    """Rows by coach. Subclasses say which coaches to offer (`coaches`) and how a row names
    its coach (`coach_field`); a value that is not a user id shows the admin's error page."""

    title = "coach"
    parameter_name = "coach"
    coach_field = "coach_id"

    def coaches(self) -> QuerySet:
        raise NotImplementedError

    def lookups(self, request, model_admin):
        coaches = self.coaches().order_by("email").values_list("pk", "email")
        return [(str(pk), email) for pk, email in coaches]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        coach_id = as_id(self.value())
        if coach_id is None:
            raise IncorrectLookupParameters(f"Unknown coach {self.value()!r}")
        return queryset.filter(**{self.coach_field: coach_id})
