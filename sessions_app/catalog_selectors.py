"""Reads for the catalog: the coaches directory, a coach's page, what is for sale, and a
coach's own offerings. Each keeps its page's query count constant as rows grow."""

from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet

from accounts.models import User
from sessions_app.models import Offering


def _active_offerings() -> Prefetch:
    return Prefetch(
        "offerings",
        queryset=Offering.objects.filter(is_active=True).order_by("price_cents", "pk"),
        to_attr="active_offerings",
    )


def _coaches() -> QuerySet:
    return User.objects.filter(is_active=True, coach_profile__isnull=False).select_related(
        "coach_profile"
    )


def coaches_directory() -> QuerySet:
    """Coaches with at least one offering on sale, by name, each with `active_offerings`."""
    on_sale = Offering.objects.filter(coach=OuterRef("pk"), is_active=True)
    return (
        _coaches()
        .filter(Exists(on_sale))
        .prefetch_related(_active_offerings())
        .order_by("display_name", "email", "pk")
    )


def coach_public(*, coach_id: int) -> User | None:
    """A coach's public page: profile and `active_offerings` (None if no such coach)."""
    return _coaches().prefetch_related(_active_offerings()).filter(pk=coach_id).first()


def offering_for_sale(*, pk: int) -> Offering | None:
    """An offering a student can buy now: on sale, from an active coach (else None)."""
    return (
        Offering.objects.select_related("coach__coach_profile")
        .filter(pk=pk, is_active=True, coach__is_active=True, coach__coach_profile__isnull=False)
        .first()
    )


def coach_offerings(*, coach) -> QuerySet:
    """All of the coach's offerings, on sale first, each with `packages_sold`."""
    return (
        Offering.objects.filter(coach=coach)
        .annotate(packages_sold=Count("packages"))
        .order_by("-is_active", "price_cents", "pk")
    )


def coach_offering(*, coach, pk: int) -> Offering | None:
    """One of the coach's own offerings (None for anyone else's or an unknown id)."""
    return Offering.objects.filter(coach=coach, pk=pk).first()
