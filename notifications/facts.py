"""The facts a delivery keeps: a JSON snapshot taken in its event's transaction.

Times are ISO 8601 in UTC; names, addresses and amounts as they were at that moment. The email
is built from these alone (plus the recipient's timezone when it goes), so it tells what was
true when the event happened, however late it is sent.
"""

from datetime import datetime

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


def purchase_facts(*, package, coach, student) -> dict:
    return {
        "package_id": package.pk,
        "title": package.title,
        "session_count": package.session_count,
        "duration_minutes": package.duration_minutes,
        "price_cents": package.price_cents,
        "currency": package.currency,
        "purchased_at": iso(package.purchased_at),
        # How it was paid: by card through a processor (with its reference), or settled with
        # the coach directly (the manual gateway).
        **_paid_by(package),
        **people(coach=coach, student=student),
    }


def _paid_by(package) -> dict:
    payment = getattr(package, "payment", None)
    if payment is None or payment.gateway == "manual":
        return {"paid_by_card": False, "payment_reference": ""}
    return {"paid_by_card": True, "payment_reference": payment.reference}
