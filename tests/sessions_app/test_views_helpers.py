"""Helpers for the view tests (this module holds no tests)."""

from datetime import datetime, timedelta

from calendars.models import TimeSlot
from calendars.services import availability_window_add
from refunds.models import Refund
from sessions_app.forms import format_start
from sessions_app.models import RescheduleProposal, Session, SessionEvent


def db_state() -> dict:
    """Everything an action may change, to assert that a refused one changed nothing."""
    return {
        "sessions": list(
            Session.objects.order_by("pk").values_list(
                "pk", "status", "slot_id", "request_expires_at", "sequence"
            )
        ),
        "slots": list(
            TimeSlot.objects.order_by("pk").values_list("pk", "status", "conflict_kept_at")
        ),
        "proposals": list(
            RescheduleProposal.objects.order_by("pk").values_list("pk", "status", "slot_id")
        ),
        "events": SessionEvent.objects.count(),
        "refunds": list(Refund.objects.order_by("pk").values_list("pk", "amount_cents")),
    }


def open_at(coach, start: datetime, minutes: int = 60) -> datetime:
    """Open a one-off window of `minutes` for `coach` at `start` (through the service); a
    session of that length is bookable exactly at `start`. Returns `start`."""
    availability_window_add(coach=coach, start=start, end=start + timedelta(minutes=minutes))
    return start


def iso(start: datetime) -> str:
    """A start as the picker's links and the confirm step's form carry it."""
    return format_start(start)


def unknown_session_pk() -> int:
    last = Session.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    return last + 1
