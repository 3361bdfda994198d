"""Reads of the outbox: what is due, one delivery ready to send, what a user was sent."""

from datetime import datetime

from django.db.models import Q, QuerySet

from notifications.models import Delivery, DeliveryStatus


def _lease_free(now: datetime) -> Q:
    """Nobody is sending it: never claimed, or the claim's lease ran out (its worker died)."""
    return Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)


def deliveries_due(*, now: datetime) -> QuerySet:
    """Pending deliveries whose time has come and that no live worker holds."""
    return Delivery.objects.filter(
        _lease_free(now), status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    )


def deliveries_due_ids(*, now: datetime, limit: int) -> list[int]:
    """Up to `limit` due deliveries, the longest waiting first (one query)."""
    due = deliveries_due(now=now).order_by("next_attempt_at", "pk")
    return list(due.values_list("pk", flat=True)[:limit])


def delivery_for_send(*, pk: int) -> Delivery | None:
    """The delivery with its recipient and session (one query), or None if it is gone."""
    return Delivery.objects.select_related("recipient", "session").filter(pk=pk).first()


def pending_ids_for_keys(*, keys) -> list[int]:
    """The never-attempted pending deliveries among these keys (what a sweep has just written)."""
    keys = list(keys)
    if not keys:
        return []
    return list(
        Delivery.objects.filter(key__in=keys, status=DeliveryStatus.PENDING, attempts=0)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
