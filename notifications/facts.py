"""The facts a delivery keeps: a JSON snapshot taken in its event's transaction.

Times are ISO 8601 in UTC; names, addresses and amounts as they were at that moment. The email
is built from these alone (plus the recipient's timezone when it goes), so it tells what was
true when the event happened, however late it is sent.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from accounts.models import User
from sessions_app.lifecycle import PUBLISHED_STATUSES, Action, Status

# Events about a proposal while the agreed time stands: their time is the proposed one.
PROPOSING_ACTIONS = (Action.PROPOSE_RESCHEDULE, Action.COUNTER_PROPOSE)
# Events that end a proposal and keep the agreed time: their time is the agreed one.
KEPT_ACTIONS = (Action.DECLINE_RESCHEDULE, Action.WITHDRAW_PROPOSAL, Action.EXPIRE_RESCHEDULE)
# Events that put the session on calendars at a time (an invitation, METHOD:REQUEST).
INVITING_ACTIONS = (Action.ACCEPT, Action.CONFIRM_RESCHEDULE)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def people(*, coach, student) -> dict:
    return {
        "coach_id": coach.pk,
        "coach": coach.name,
        "coach_email": coach.email,
        "student_id": student.pk,
        "student": student.name,
        "student_email": student.email,
    }


def session_facts(session) -> dict:
    """What every email about `session` names: the package, the session, both sides."""
    package = session.package
    return {
        "session_id": session.pk,
        "title": package.title,
        "number": session.number,
        "session_count": package.session_count,
        "duration_minutes": package.duration_minutes,
        "currency": session.currency,
        "sequence": session.sequence,
        "status_label": Status(session.status).label,
        **people(coach=session.coach, student=session.student),
    }


def interval(prefix: str, start: datetime | None, end: datetime | None) -> dict:
    if start is None or end is None:
        return {}
    return {f"{prefix}start": iso(start), f"{prefix}end": iso(end)}


def _stored_interval(details: dict, slots: dict) -> tuple[datetime | None, datetime | None]:
    """The time an event names: its stored start/end, else its reservation's."""
    if details.get("start") and details.get("end"):
        return datetime.fromisoformat(details["start"]), datetime.fromisoformat(details["end"])
    slot = slots.get(details.get("slot_id"))
    return (slot.start, slot.end) if slot is not None else (None, None)


def event_slot_ids(event) -> set[int]:
    details = event.details or {}
    return {details.get(key) for key in ("slot_id", "agreed_slot_id")} - {None}


def event_facts(*, event, session, slots: dict, proposal=None) -> dict:
    """The snapshot of one status change, as the session was right after it.

    `slots` holds the reservations the event names (by id); `proposal` is the pending proposal
    a proposing event made (for its deadline). The time is the one the event is about: the
    requested, agreed or proposed one; the agreed time beside a proposal; the time a kept or
    expired proposal leaves standing; the agreed time of a canceled session.
    """
    details = event.details or {}
    action = Action(event.action)
    start, end = _stored_interval(details, slots)
    if start is None and action == Action.CANCEL and event.from_status != Status.UNSCHEDULED:
        slot = session.slot
        start, end = (slot.start, slot.end) if slot is not None else (None, None)
    facts = {
        **session_facts(session),
        "action": action.value,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "status_label": Status(event.to_status).label,
        "actor_id": event.actor_id,
        "actor": event.actor.name if event.actor_id else None,
        "occurred_at": iso(event.created_at),
        "reason": (details.get("reason") or "").strip(),
        **interval("", start, end),
    }
    if action in PROPOSING_ACTIONS:
        agreed = slots.get(details.get("agreed_slot_id")) or session.slot
        if agreed is not None:
            facts.update(interval("agreed_", agreed.start, agreed.end))
        if proposal is not None:
            facts["proposal_id"] = proposal.pk
            facts["expires_at"] = iso(proposal.expires_at)
    if action == Action.BOOK and session.request_expires_at is not None:
        facts["expires_at"] = iso(session.request_expires_at)
    if action == Action.CANCEL:
        facts["refund"] = details.get("refund")
        facts["refund_amount_cents"] = details.get("refund_amount_cents")
    if start is not None:
        if action in INVITING_ACTIONS and event.to_status == Status.CONFIRMED:
            facts["invitation"] = "REQUEST"
        elif action == Action.CANCEL and event.from_status in PUBLISHED_STATUSES:
            facts["invitation"] = "CANCEL"
    return facts


# --- the same facts from plain values, for the sweeps ---------------------------------------

# What `session_facts` reads of a session, as `values_list` lookups on Session: a sweep adds
# these to its one locked read per chunk and hands the values over as they come, so the facts
# of a hundred thousand emails are taken without a model instance or a second query.
SESSION_FACT_FIELDS = (
    "number",
    "currency",
    "sequence",
    "package__title",
    "package__session_count",
    "package__duration_minutes",
    "coach",
    "coach__display_name",
    "coach__email",
    "coach__is_active",
    "student",
    "student__display_name",
    "student__email",
    "student__is_active",
)
# The actions a sweep makes: system events with no reason, no proposal, no invitation, whose
# time is the one their reservation names. `swept_event_facts` covers exactly these.
SWEPT_ACTIONS = (Action.EXPIRE, Action.EXPIRE_RESCHEDULE, Action.COMPLETE)


class _Person(NamedTuple):
    display_name: str
    email: str


# `User.name` applied to two values (its one definition, without a User instance).
_user_name = User.name.fget


def person_name(display_name: str, email: str) -> str:
    """The name `User.name` shows for this display name and address."""
    return _user_name(_Person(display_name, email))


class SweptSession(NamedTuple):
    """A session as a sweep read it: its id, the values of SESSION_FACT_FIELDS, in order."""

    session_id: int
    number: int
    currency: str
    sequence: int
    title: str
    session_count: int
    duration_minutes: int
    coach_id: int
    coach_display_name: str
    coach_email: str
    coach_is_active: bool
    student_id: int
    student_display_name: str
    student_email: str
    student_is_active: bool

    @classmethod
    def from_values(cls, session_id: int, values: Sequence) -> "SweptSession":
        return cls(session_id, *values)


def swept_event_facts(
    *,
    session: SweptSession,
    common: dict,
    start: datetime | None,
    end: datetime | None,
    names: dict | None = None,
) -> dict:
    """`event_facts` of a sweep's event (`SWEPT_ACTIONS`), from plain values: the session as
    read, `common` (from `swept_common_facts`: what every event of the chunk shares) and the
    time the event is about. `names` caches person names across a chunk (coaches repeat)."""
    names = {} if names is None else names
    coach = (session.coach_display_name, session.coach_email)
    student = (session.student_display_name, session.student_email)
    if coach not in names:
        names[coach] = person_name(*coach)
    if student not in names:
        names[student] = person_name(*student)
    snapshot = {
        "session_id": session.session_id,
        "title": session.title,
        "number": session.number,
        "session_count": session.session_count,
        "duration_minutes": session.duration_minutes,
        "currency": session.currency,
        "sequence": session.sequence,
        "status_label": common["status_label"],
        "coach_id": session.coach_id,
        "coach": names[coach],
        "coach_email": session.coach_email,
        "student_id": session.student_id,
        "student": names[student],
        "student_email": session.student_email,
        **common,
    }
    if start is not None and end is not None:
        snapshot["start"], snapshot["end"] = iso(start), iso(end)
    return snapshot


def swept_common_facts(*, action: Action, from_status: str, to_status: str, occurred_at) -> dict:
    """The facts every event of one sweep chunk shares (one action, one moment, no actor)."""
    if action not in SWEPT_ACTIONS:
        raise ValueError(f"{action} is not a sweep's action; use event_facts.")
    return {
        "action": Action(action).value,
        "from_status": from_status,
        "to_status": to_status,
        "status_label": Status(to_status).label,
        "actor_id": None,
        "actor": None,
        "occurred_at": iso(occurred_at),
        "reason": "",
    }


def purchase_facts(*, package, coach, student) -> dict:
    return {
        "package_id": package.pk,
        "title": package.title,
        "session_count": package.session_count,
        "duration_minutes": package.duration_minutes,
        "price_cents": package.price_cents,
        "currency": package.currency,
        "purchased_at": iso(package.purchased_at),
        "expires_at": iso(package.expires_at),
        # How it was paid: by card through a processor (with its reference), or settled with
        # the coach directly (the manual gateway).
        **_paid_by(package),
        **people(coach=coach, student=student),
    }


def credits_expiring_facts(*, package, unused: int) -> dict:
    """A package whose `unused` credits expire at its `expires_at` (the expiry reminders)."""
    return {
        "package_id": package.pk,
        "title": package.title,
        "session_count": package.session_count,
        "duration_minutes": package.duration_minutes,
        "unused": unused,
        "expires_at": iso(package.expires_at),
        **people(coach=package.coach, student=package.student),
    }


def _paid_by(package) -> dict:
    payment = getattr(package, "payment", None)
    if payment is None or payment.gateway == "manual":
        return {"paid_by_card": False, "payment_reference": ""}
    return {"paid_by_card": True, "payment_reference": payment.reference}
