"""Helpers for the view tests (this module holds no tests)."""

from datetime import datetime, timedelta

from calendars.models import TimeSlot
from refunds.models import Refund
from sessions_app.models import RescheduleProposal, Session, SessionEvent
from tests.factories import TimeSlotFactory


def db_state() -> dict:
    """Everything an action may change, to assert that a refused one changed nothing."""
    return {
        "sessions": list(
            Session.objects.order_by("pk").values_list(
                "pk", "status", "slot_id", "request_expires_at", "sequence"
            )
        ),
        "slots": list(TimeSlot.objects.order_by("pk").values_list("pk", "status")),
        "proposals": list(
            RescheduleProposal.objects.order_by("pk").values_list("pk", "status", "slot_id")
        ),
        "events": SessionEvent.objects.count(),
        "refunds": list(Refund.objects.order_by("pk").values_list("pk", "amount_cents")),
    }


def slot_at(coach, start: datetime, minutes: int = 60, **fields) -> TimeSlot:
    return TimeSlotFactory(
        coach=coach, start=start, end=start + timedelta(minutes=minutes), **fields
    )


def unknown_session_pk() -> int:
    last = Session.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    return last + 1
