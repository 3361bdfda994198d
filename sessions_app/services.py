"""Every write to sessions. Each service is atomic, locks what it changes, checks the transition
table in `lifecycle.py` and the actor's role, and writes exactly one `SessionEvent` per status
change. Refusals raise a `DomainError` whose message is fit to show a person.
"""

import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F, Value
from django.db.models.fields.tuple_lookups import TupleGreaterThan
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from accounts.selectors import coach_windows
from calendars import services as calendar_services
from calendars.models import SlotStatus, TimeSlot
from calendars.services import SlotUnavailable
from catalog import services as catalog_services
from catalog.models import Offering
from core.bulk import draw_ids, insert_prepared, prepare_insert, update_rows
from core.errors import PermissionDenied
from notifications import services as notification_services
from policies.rules import (
    Choice,
    Outcome,
    Rule,
    cancellation_outcome,
    no_show_outcome,
    outcome_sentence,
)
from policies.selectors import policy_for_coach
from refunds import services as refund_services
from refunds.models import PaymentState
from refunds.selectors import session_refundable_cents
from refunds.services import RefundNotAllowed
from sessions_app import expiry
from sessions_app.expiry import package_extend_expiry, packages_remind_expiring  # noqa: F401
from sessions_app.lifecycle import (
    HOLDING_STATUSES,
    PUBLISHED_STATUSES,
    Action,
    Attendance,
    Role,
    Status,
    Transition,
    TransitionNotAllowed,
    transition_for,
)
from sessions_app.models import (
    CoachDailyTally,
    Package,
    ProposalStatus,
    RescheduleProposal,
    Session,
    SessionEvent,
)
from sessions_app.selectors import session_pending_proposal, session_roles

REFUND_CHOICES = ("full", "partial", "credit", "none")
logger = logging.getLogger(__name__)


# --- internals: the one write path for a status --------------------------------------------


def _lock(session: Session) -> Session:
    """Re-read `session` under a row lock, so every check sees the committed state."""
    return (
        Session.objects.select_for_update(of=("self",))
        .select_related("package", "coach__coach_profile", "coach__cancellation_policy")
        .get(pk=session.pk)
    )


def _authorize(session: Session, action: Action, actor, proposal=None) -> Transition:
    """The table row for `action`, or a refusal: outsiders first, then status, then role."""
    roles = session_roles(session=session, user=actor, proposal=proposal)
    if not roles:
        raise PermissionDenied("This session is not yours.")
    row = transition_for(session.status, action)
    if not row.roles & roles:
        raise PermissionDenied(_role_refusal(row))
    return row


def _role_refusal(row: Transition) -> str:
    who = ", ".join(sorted(role.label.lower() for role in row.roles))
    if Role.RESPONDER in row.roles:
        return "You proposed this time; the other side answers it."
    if Role.PROPOSER in row.roles:
        return "Only the side that proposed this time can withdraw it."
    return f"Only the {who} can do that."


def _transition(
    session: Session,
    row: Transition,
    actor,
    *,
    now: datetime,
    fields: tuple[str, ...] = (),
    details: dict | None = None,
) -> SessionEvent:
    """Apply an authorized table row: save the new status (and `fields`) and log the event."""
    source = session.status
    session.status = row.target
    if "slot" in fields:
        slot = session.slot
        session.starts_at, session.ends_at = (slot.start, slot.end) if slot else (None, None)
        fields = (*fields, "starts_at", "ends_at")
    session.save(update_fields=["status", "updated_at", *fields])
    event = SessionEvent.objects.create(
        session=session,
        actor=actor,
        action=row.action,
        from_status=source,
        to_status=row.target,
        details=details or {},
        created_at=now,
    )
    # The outbox: its emails are written with the event, and sent once the change commits.
    notification_services.deliveries_for_event(event=event)
    return event


def _tally(coach_id: int, now: datetime, field: str) -> None:
    """Add one to today's (UTC) `CoachDailyTally.<field>` of the coach, creating the row."""
    day = now.astimezone(UTC).date()
    today = CoachDailyTally.objects.filter(coach_id=coach_id, day=day)
    if today.update(**{field: F(field) + 1}):
        return
    try:
        with transaction.atomic():  # a savepoint: a concurrent first write may win the row
            CoachDailyTally.objects.create(coach_id=coach_id, day=day, **{field: 1})
    except IntegrityError:
        today.update(**{field: F(field) + 1})


def _slot_details(slot: TimeSlot) -> dict:
    return {"slot_id": slot.pk, "start": slot.start.isoformat(), "end": slot.end.isoformat()}


def _lock_people(session: Session) -> None:
    """Lock the coach's and the student's rows (in id order, so two bookings never wait on
    each other): bookings involving the same person are then checked one after the other,
    including those the exclusion constraints cannot compare (a coach who is also a student
    elsewhere). On SQLite the IMMEDIATE transaction serialises every booking anyway."""
    list(
        User.objects.select_for_update()
        .filter(pk__in=[session.coach_id, session.student_id])
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _reserve(session: Session, start: datetime, now: datetime) -> TimeSlot:
    """Hold [start, start + the session's length) for `session`, or `SlotUnavailable`."""
    _lock_people(session)
    return calendar_services.reservation_hold(
        coach=session.coach,
        student=session.student,
        session=session,
        start=start,
        duration_minutes=session.package.duration_minutes,
        now=now,
    )


# --- purchase --------------------------------------------------------------------------------


def split_price(total_cents: int, parts: int) -> list[int]:
    """Split evenly; the remainder cents go to the first sessions, one each."""
    base, remainder = divmod(total_cents, parts)
    return [base + (1 if index < remainder else 0) for index in range(parts)]


def package_purchase(*, student, offering: Offering, purchase_token: str | None = None) -> Package:
    """Buy `offering`: the package, its payment, and (once paid) its sessions as credits.

    With the manual gateway the payment is recorded paid at once and the sessions are created
    here. With a card processor the package waits for its payment (`package.payment.state`
    CREATED): its sessions appear when the payment succeeds (`package_credits_create`, called by
    `refunds.services` exactly once).

    `purchase_token` (the confirmation page's one-time nonce) makes buying idempotent: the
    package is stored with it, and a second call with the same token returns that package with
    `already_purchased` True instead of buying again. The token is stored in the purchase's own
    transaction, so a purchase that fails spends nothing. A new package has `already_purchased`
    False.
    """
    if student.pk == offering.coach_id:
        raise PermissionDenied("You cannot buy your own offering.")
    with transaction.atomic():
        offering = catalog_services.offering_lock(offering=offering)
        if purchase_token:
            # The offering lock serialises purchases of it, so a concurrent twin waits here.
            existing = Package.objects.filter(purchase_token=purchase_token).first()
            if existing is not None:
                if (existing.student_id, existing.offering_id) != (student.pk, offering.pk):
                    raise PermissionDenied("This confirmation belongs to another purchase.")
                existing.already_purchased = True
                return existing
        if not offering.is_active:
            raise TransitionNotAllowed("This offering is no longer available.")
        package = Package.objects.create(
            offering=offering,
            coach_id=offering.coach_id,
            student=student,
            title=offering.title,
            session_count=offering.session_count,
            duration_minutes=offering.duration_minutes,
            price_cents=offering.price_cents,
            currency=offering.currency,
            purchase_token=purchase_token or None,
            # Provisional: the credits' expiry counts from when they come into being.
            expires_at=expiry.expiry_at_purchase(
                validity_days=offering.credit_validity_days, now=timezone.now()
            ),
        )
        package.already_purchased = False
        payment = refund_services.payment_record(package=package, purchase_token=purchase_token)
        if payment.state == PaymentState.DONE:
            package_credits_create(package=package)
    return package


def package_credits_create(*, package: Package) -> list[Session]:
    """Create a paid package's sessions as unscheduled credits, once: a second call (a webhook
    and the return page both learning of the same payment) creates nothing and returns [].

    Called in the transaction that marks the payment paid, with the payment row locked, so the
    check below cannot race. Writes the receipt to the student and the "package sold" notice
    to the coach in the same transaction.
    """
    now = timezone.now()
    with transaction.atomic():
        package = Package.objects.select_for_update().get(pk=package.pk)
        if Session.objects.filter(package=package).exists():
            return []
        if package.expires_at is not None:  # expiring credits: counted from now
            package.expires_at = expiry.credits_expire_at(package=package, now=now)
            package.save(update_fields=["expires_at"])
        shares = split_price(package.price_cents, package.session_count)
        sessions = Session.objects.bulk_create(
            Session(
                package=package,
                coach_id=package.coach_id,
                student_id=package.student_id,
                number=number,
                price_share_cents=share,
                currency=package.currency,
            )
            for number, share in enumerate(shares, start=1)
        )
        events = SessionEvent.objects.bulk_create(
            SessionEvent(
                session=session,
                actor_id=package.student_id,
                action=Action.CREATE,
                from_status="",
                to_status=Status.UNSCHEDULED,
                details={"package_id": package.pk, "price_share_cents": session.price_share_cents},
                created_at=now,
            )
            for session in sessions
        )
        # The receipt to the student and the "package sold" notice to the coach.
        notification_services.deliveries_for_purchase(
            package=package, sessions=sessions, events=events
        )
    return sessions


# --- booking -----------------------------------------------------------------------------------


def session_book(*, session: Session, start: datetime, actor) -> Session:
    """The student asks for the time starting at `start` (one of the bookable starts):
    UNSCHEDULED -> REQUESTED, with a HELD reservation of the session's length.

    The request waits for the coach until min(now + the coach's request window, the start).
    A credit of a package past its `expires_at` is refused (`sessions_app.expiry`).
    """
    now = timezone.now()
    with transaction.atomic():
        session = _lock(session)
        row = _authorize(session, Action.BOOK, actor)
        if expiry.is_expired(session.package.expires_at, now):
            raise TransitionNotAllowed(expiry.expired_refusal(session.package, session.coach.name))
        slot = _reserve(session, start, now)
        window = coach_windows(coach=session.coach).request_window_hours
        session.slot = slot
        session.request_expires_at = min(now + timedelta(hours=window), slot.start)
        # A rebooking (after a withdrawal, decline or expiry) within the rate's window is still
        # one booked session for the cancellation rate.
        rebooked = SessionEvent.objects.filter(
            session=session,
            action=Action.BOOK,
            created_at__gte=now - timedelta(days=settings.CANCELLATION_RATE_DAYS),
        ).exists()
        if not rebooked:
            _tally(session.coach_id, now, "booked")
        _transition(
            session,
            row,
            actor,
            now=now,
            fields=("slot", "request_expires_at"),
            details=_slot_details(slot),
        )
    return session


def session_withdraw(*, session: Session, actor) -> Session:
    """The student takes back a request: REQUESTED -> UNSCHEDULED, the time released."""
    return _unbook(session, Action.WITHDRAW, actor)


def session_decline(*, session: Session, actor, reason: str = "") -> Session:
    """The coach turns a request down: the credit goes back to the student, the time is
    released."""
    return _unbook(session, Action.DECLINE, actor, reason=reason)


def _unbook(session: Session, action: Action, actor, reason: str = "") -> Session:
    now = timezone.now()
    with transaction.atomic():
        session = _lock(session)
        row = _authorize(session, action, actor)
        slot = session.slot
        session.slot = None
        session.request_expires_at = None
        details = _slot_details(slot)
        if reason:
            details["reason"] = reason.strip()
        _transition(
            session, row, actor, now=now, fields=("slot", "request_expires_at"), details=details
        )
        calendar_services.reservations_release(slot_ids=[slot.pk], now=now)
    return session


def session_accept(*, session: Session, actor) -> Session:
    """The coach accepts a request: REQUESTED -> CONFIRMED, the time HELD -> BOOKED."""
    now = timezone.now()
    with transaction.atomic():
        session = _lock(session)
        row = _authorize(session, Action.ACCEPT, actor)
        if session.request_expires_at and session.request_expires_at <= now:
            raise TransitionNotAllowed("This request has expired; the student can book again.")
        calendar_services.reservation_book(slot=session.slot)
        session.request_expires_at = None
        _transition(
            session,
            row,
            actor,
            now=now,
            fields=("request_expires_at",),
            details=_slot_details(session.slot),
        )
    return session


# --- rescheduling ------------------------------------------------------------------------------
#
# The agreed time (`session.slot`) stays BOOKED while a new time is being agreed; a proposal
# holds its own reservation. Only confirming a proposal moves the session.


def _proposal_deadline(session: Session, slot: TimeSlot, now: datetime) -> datetime:
    """min(now + reschedule window, the proposed start, the agreed start)."""
    window = coach_windows(coach=session.coach).reschedule_window_hours
    return min(now + timedelta(hours=window), slot.start, session.slot.start)


def _propose(session: Session, start: datetime, actor, now: datetime) -> RescheduleProposal:
    """Hold the time at `start` and record it as the pending proposal."""
    if start == session.slot.start:
        raise SlotUnavailable("That is the time already agreed; pick a different one.")
    slot = _reserve(session, start, now)
    return RescheduleProposal.objects.create(
        session=session,
        slot=slot,
        proposed_by=actor,
        expires_at=_proposal_deadline(session, slot, now),
    )


def _check_not_started(session: Session, now: datetime) -> None:
    if session.slot.start <= now:
        # Before the completion sweep runs, the session still reads Confirmed.
        raise TransitionNotAllowed("This session has already started; it can't be rescheduled.")


def _check_reschedule_policy(session: Session, actor, now: datetime) -> None:
    """A student proposes new times within the coach's policy: not within its reschedule
    notice of the start, and at most its limit of proposals per session (counter-proposals
    count too). The coach is not limited: rescheduling is what we offer instead of canceling."""
    if actor.pk != session.student_id:
        return
    policy = policy_for_coach(coach=session.coach)
    notice = timedelta(hours=policy.reschedule_notice_hours)
    if session.slot.start - now < notice:
        raise TransitionNotAllowed(
            f"Under {session.coach.name}'s policy, new times can't be proposed within "
            f"{policy.reschedule_notice_hours} h of the start."
        )
    proposed = SessionEvent.objects.filter(
        session=session,
        actor=actor,
        action__in=(Action.PROPOSE_RESCHEDULE, Action.COUNTER_PROPOSE),
    ).count()
    if proposed >= policy.student_reschedule_limit:
        limit = policy.student_reschedule_limit
        times = (
            "no new times"
            if limit == 0
            else ("one new time" if limit == 1 else f"{limit} new times")
        )
        raise TransitionNotAllowed(
            f"{session.coach.name}'s policy allows {times} per session from you; "
            "ask your coach to propose one."
        )


def session_propose_reschedule(*, session: Session, start: datetime, actor) -> RescheduleProposal:
    """Either side proposes a new time: CONFIRMED -> RESCHEDULING.

    The proposed time is HELD; the agreed time stays BOOKED until a new one is agreed. The
    other side confirms it, proposes another, or keeps the current time. Once the agreed time
    has started the session can no longer be moved.
    """
    now = timezone.now()
    with transaction.atomic():
        session = _lock(session)
        row = _authorize(session, Action.PROPOSE_RESCHEDULE, actor)
        _check_not_started(session, now)
        _check_reschedule_policy(session, actor, now)
        proposal = _propose(session, start, actor, now)
        _transition(
            session,
            row,
            actor,
            now=now,
            details={
                "proposal_id": proposal.pk,
                "agreed_slot_id": session.slot_id,
                **_slot_details(proposal.slot),
            },
        )
    return proposal


def _live_proposal(session: Session, action: Action, actor, now: datetime):
    """The pending proposal and the table row for `action` on it, or a refusal (including a
    proposal past its deadline, even before the expiry sweep has run)."""
    proposal = session_pending_proposal(session=session)
    row = _authorize(session, action, actor, proposal)
    if proposal.expires_at <= now:
        raise TransitionNotAllowed("This proposal has expired; the current time stands.")
    return proposal, row


def session_confirm_reschedule(*, session: Session, actor) -> Session:
    """The side that did not propose accepts the new time: RESCHEDULING -> CONFIRMED.

    The proposed time becomes the agreed one (BOOKED); the old agreed time is released.
    """
    now = timezone.now()
    with transaction.atomic():
        session = _lock(session)
        proposal, row = _live_proposal(session, Action.CONFIRM_RESCHEDULE, actor, now)
        calendar_services.reservation_book(slot=proposal.slot)
        RescheduleProposal.objects.filter(pk=proposal.pk).update(
            status=ProposalStatus.ACCEPTED, decided_at=now
        )
        previous = session.slot
        session.slot = proposal.slot
        session.sequence += 1
        session.reminder_24h_sent_at = session.reminder_1h_sent_at = None
        _transition(
            session,
            row,
            actor,
            now=now,
            fields=("slot", "sequence", "reminder_24h_sent_at", "reminder_1h_sent_at"),
            details={
                "proposal_id": proposal.pk,
                "previous_slot_id": previous.pk,
                "previous_start": previous.start.isoformat(),
                **_slot_details(proposal.slot),
            },
        )
        calendar_services.reservations_release(slot_ids=[previous.pk], now=now)
    return session


def session_counter_propose(*, session: Session, start: datetime, actor) -> RescheduleProposal:
    """The side that did not propose offers another time; now the other side answers.

    The previous proposal is superseded and its time released; the agreed time stays BOOKED.
    To keep the agreed time, `session_decline_reschedule` is the way, not a counter-proposal.
    """
    now = timezone.now()
    with transaction.atomic():
        session = _lock(session)
        previous, row = _live_proposal(session, Action.COUNTER_PROPOSE, actor, now)
        _check_reschedule_policy(session, actor, now)
        if start == previous.slot.start:
            raise SlotUnavailable(
                "That is the time already proposed; confirm it or pick a different one."
            )
        RescheduleProposal.objects.filter(pk=previous.pk).update(
            status=ProposalStatus.SUPERSEDED, decided_at=now
        )
        calendar_services.reservations_release(slot_ids=[previous.slot_id], now=now)
        proposal = _propose(session, start, actor, now)
        _transition(
            session,
            row,
            actor,
            now=now,
            details={
                "proposal_id": proposal.pk,
                "superseded_proposal_id": previous.pk,
                "agreed_slot_id": session.slot_id,
                **_slot_details(proposal.slot),
            },
        )
    return proposal


def _end_proposal(session: Session, action: Action, actor, outcome: ProposalStatus) -> Session:
    """Close the pending proposal with `outcome` and release its time: the agreed time stands
    (RESCHEDULING -> CONFIRMED)."""
    now = timezone.now()
    with transaction.atomic():
        session = _lock(session)
        proposal, row = _live_proposal(session, action, actor, now)
        if session.slot.status != SlotStatus.BOOKED:
            # Only a session carried over from before the agreed time was kept booked can lose
            # it (decision 22): keeping a time it no longer holds would double-book the coach.
            raise TransitionNotAllowed(
                "The agreed time of this session is no longer held for it; confirm the "
                "proposed time or propose another."
            )
        RescheduleProposal.objects.filter(pk=proposal.pk).update(status=outcome, decided_at=now)
        _transition(
            session,
            row,
            actor,
            now=now,
            details={
                "proposal_id": proposal.pk,
                "proposed_start": proposal.slot.start.isoformat(),
                **_slot_details(session.slot),
            },
        )
        calendar_services.reservations_release(slot_ids=[proposal.slot_id], now=now)
    return session


def session_decline_reschedule(*, session: Session, actor) -> Session:
    """The side that did not propose keeps the current time: the proposal is declined and
    released, the agreed time stands (RESCHEDULING -> CONFIRMED)."""
    return _end_proposal(session, Action.DECLINE_RESCHEDULE, actor, ProposalStatus.DECLINED)


def session_withdraw_proposal(*, session: Session, actor) -> Session:
    """The side that proposed takes the proposal back: released, the agreed time stands
    (RESCHEDULING -> CONFIRMED)."""
    return _end_proposal(session, Action.WITHDRAW_PROPOSAL, actor, ProposalStatus.WITHDRAWN)


# --- cancel ------------------------------------------------------------------------------------


def session_cancel_outcome(*, session: Session, actor, now: datetime | None = None) -> Outcome:
    """What canceling `session` now gives back to its student when `actor` cancels, under the
    coach's policy and the clock: the one computation behind the refund drawer, the student's
    cancel page and `session_cancel` (policies.rules).

    A session the coach did not show for (attendance reported or confirmed) follows the
    coach's no-show rule; a booked session ahead of its start follows the notice tiers (the
    student) or the coach-side rule (the coach); anything else is the coach's to decide.
    """
    now = now or timezone.now()
    policy = policy_for_coach(coach=session.coach)
    refundable = session_refundable_cents(session=session)
    by_coach = actor is not None and actor.pk == session.coach_id
    if by_coach and session.attendance in COACH_NO_SHOW_ATTENDANCE:
        return no_show_outcome(policy=policy, coach_missing=True, refundable_cents=refundable)
    outcome = cancellation_outcome(
        policy=policy,
        by_coach=by_coach,
        booked_ahead=_booked_ahead(session, now),
        start=session.starts_at,
        share_cents=session.price_share_cents,
        refundable_cents=refundable,
        now=now,
    )
    if outcome.rule == Rule.COACH_DISCRETION and session.status == Status.UNSCHEDULED:
        # A credit never booked: canceling it for another credit would change nothing.
        return replace(outcome, choices=tuple(c for c in outcome.choices if c != Choice.CREDIT))
    return outcome


# Attendance marks under which the coach's no-show rule binds a cancel by the coach.
COACH_NO_SHOW_ATTENDANCE = (
    Attendance.COACH_NO_SHOW_REPORTED,
    Attendance.COACH_NO_SHOW_DISPUTED,
    Attendance.COACH_NO_SHOW,
)


def _booked_ahead(session: Session, now: datetime) -> bool:
    """An agreed time that has not started: what the notice tiers and coach-side rule bind."""
    return (
        session.status in (Status.CONFIRMED, Status.RESCHEDULING)
        and session.starts_at is not None
        and session.starts_at > now
    )


def _outcome_refusal(session: Session, outcome: Outcome, by_coach: bool) -> str:
    if by_coach:
        offered = " or ".join(Choice(choice).label for choice in outcome.choices)
        return f"Your policy promises this: {outcome.summary} Choose {offered}."
    sentence = outcome_sentence(outcome, name="", currency=session.currency, you=True)
    return f"Under {session.coach.name}'s policy, canceling now: {sentence}"


def session_cancel(
    *,
    session: Session,
    actor,
    refund: str,
    amount_cents: int | None = None,
    reason: str = "",
    idempotency_key: str | None = None,
) -> Session:
    """Cancel: CANCELED, with what the student gets back, under the coach's policy.

    The coach may cancel any non-terminal session; the student a booked one before its start
    (CONFIRMED or RESCHEDULING). `refund` is "full" (the session's refundable share),
    "partial" (`amount_cents`), "credit" (a make-up credit: a new unscheduled session of the
    package, linked to this one, worth what this one had left to refund) or "none" (no
    `Refund` row). The choice must be one the policy's outcome allows
    (`session_cancel_outcome`): a student takes what the notice tier gives (a partial tier's
    amount is computed, not typed), a coach gives at least what the coach-side rule promises.
    The rule and its result are kept in the cancel event's details. The session's agreed time
    and any pending proposal's time are released, so they are bookable again. A second
    submission of the same cancel is refused, so it refunds (or credits) once.
    """
    if refund not in REFUND_CHOICES:
        raise RefundNotAllowed(
            "Choose Full refund, Partial refund, Give a make-up credit or Cancel without refund."
        )
    if refund != "partial" and amount_cents is not None:
        raise RefundNotAllowed("An amount goes only with a partial refund.")
    now = timezone.now()
    with transaction.atomic():
        session = _lock(session)
        row = _authorize(session, Action.CANCEL, actor)
        by_coach = actor.pk == session.coach_id
        if not by_coach and not _booked_ahead(session, now):
            raise TransitionNotAllowed("This session has already started; it can't be canceled.")
        outcome = session_cancel_outcome(session=session, actor=actor, now=now)
        if not by_coach and refund == "partial" and amount_cents is None:
            amount_cents = outcome.refund_cents  # the tier's amount; the student types none
        if not outcome.allows(refund, amount_cents):
            raise RefundNotAllowed(_outcome_refusal(session, outcome, by_coach))
        # Every active reservation of the session is released, as the table says: its time (a
        # completed session's too) and its pending proposal's.
        release = [session.slot_id]
        proposal = session_pending_proposal(session=session)
        if proposal is not None:
            RescheduleProposal.objects.filter(pk=proposal.pk).update(
                status=ProposalStatus.CANCELED, decided_at=now
            )
            release.append(proposal.slot_id)
        details = {
            "refund": refund,
            "reason": reason.strip(),
            "canceled_by": "coach" if by_coach else "student",
            **outcome.details(),
        }
        if refund in ("full", "partial"):
            issued = refund_services.refund_issue(
                session=session,
                kind=refund,
                amount_cents=amount_cents,
                issued_by=actor,
                reason=reason.strip(),
                idempotency_key=idempotency_key or f"session-{session.pk}-cancel",
            )
            details.update(refund_id=issued.pk, refund_amount_cents=issued.amount_cents)
        if by_coach and session.status in HOLDING_STATUSES:
            _tally(session.coach_id, now, "coach_canceled")  # the cancellation rate's count
        session.request_expires_at = None
        if session.status in PUBLISHED_STATUSES:
            session.sequence += 1  # the calendar entry becomes a cancellation
        if refund == "credit":
            credit = _makeup_create(
                session, actor, now, refundable=by_coach and outcome.student_may_swap
            )
            details.update(makeup_session_id=credit.pk, makeup_value_cents=credit.price_share_cents)
        _transition(
            session, row, actor, now=now, fields=("request_expires_at", "sequence"), details=details
        )
        calendar_services.reservations_release(slot_ids=release, now=now)
    return session


def _makeup_create(session: Session, actor, now: datetime, *, refundable: bool) -> Session:
    """The make-up credit of `session` (being canceled): one new UNSCHEDULED session of its
    package, labelled as such, worth what `session` had left to refund.

    The payment row is locked first, as a refund would lock it, so concurrent cancels of one
    package's sessions value their credits one after the other from committed refunds; the
    one-to-one link refuses a second credit for the same session.
    """
    refund_services.payment_lock(package=session.package)
    value = session_refundable_cents(session=session)
    package = Package.objects.select_for_update().get(pk=session.package_id)
    last = Session.objects.filter(package=package).order_by("-number").values_list("number")[0][0]
    credit = Session.objects.create(
        package=package,
        coach_id=session.coach_id,
        student_id=session.student_id,
        number=last + 1,
        price_share_cents=value,
        currency=session.currency,
        makeup_for=session,
        makeup_refundable=refundable,
    )
    SessionEvent.objects.create(
        session=credit,
        actor=actor,
        action=Action.CREATE,
        from_status="",
        to_status=Status.UNSCHEDULED,
        details={"package_id": package.pk, "price_share_cents": value, "makeup_for": session.pk},
        created_at=now,
    )
    return credit


def session_refund_credit(*, session: Session, actor) -> Session:
    """The student takes a make-up credit as a full refund instead: UNSCHEDULED -> CANCELED,
    refunding its value. Only a credit the coach's cancel left to the student's choice
    (`makeup_refundable`), and only once."""
    now = timezone.now()
    with transaction.atomic():
        session = _lock(session)
        row = _authorize(session, Action.REFUND_CREDIT, actor)
        if session.makeup_for_id is None or not session.makeup_refundable:
            raise RefundNotAllowed("This credit cannot be exchanged for a refund.")
        issued = refund_services.refund_issue(
            session=session,
            kind="full",
            issued_by=actor,
            reason="Make-up credit taken as a refund",
            idempotency_key=f"session-{session.pk}-refund-credit",
        )
        session.makeup_refundable = False
        _transition(
            session,
            row,
            actor,
            now=now,
            fields=("makeup_refundable",),
            details={
                "refund": "full",
                "refund_id": issued.pk,
                "refund_amount_cents": issued.amount_cents,
                "makeup_for": session.makeup_for_id,
            },
        )
    return session


# --- system sweeps -----------------------------------------------------------------------------

# Rows per chunk: each chunk is one transaction of a constant number of statements.
SWEEP_CHUNK = 1000


def _sweep(claim, apply, position) -> int:
    """Run a sweep in keyset chunks, each its own transaction, until the rows run out.

    `claim(after)` is a chunk's one read: the next SWEEP_CHUNK matching rows past the keyset
    position `after` (None for the first chunk), in keyset order, locked FOR UPDATE SKIP
    LOCKED and carrying every column the chunk writes or tells about. `apply(rows, worker)`
    writes the chunk with set-based statements and returns how many sessions changed;
    `worker` is a one-thread pool for its pure Python work (the emails' facts), which so runs
    while the database applies the chunk instead of after it. `position(row)` is a row's
    keyset position. Each chunk starts after the last row seen, so none rescans what earlier
    chunks passed. A row another transaction holds is skipped, not waited for, and is left
    for the next run; a concurrent sweep skips what this one holds, so no row is processed
    twice.
    """
    total, after = 0, None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweep-facts") as worker:
        while True:
            with transaction.atomic():
                rows = claim(after)
                if not rows:
                    return total
                total += apply(rows, worker)
            if len(rows) < SWEEP_CHUNK:
                return total  # a short chunk was the last: no empty read to prove it
            after = position(rows[-1])


def _by_pk(row) -> int:
    """The keyset position of a row whose first column is its primary key."""
    return row[0]


def _bulk_events_prepare(worker, rows, action: Action, source: Status, now: datetime) -> Future:
    """Start writing a sweep chunk's events and their emails: draw their ids here (in the
    chunk's transaction), then format the rows on `worker` (pure Python, no I/O) while the
    caller applies the chunk's updates; `_bulk_events` inserts them. Each of `rows` is
    (session id, details, the values of SESSION_FACT_FIELDS, the start and end the event is
    about)."""
    event_ids = dict(
        zip(
            [row[0] for row in rows],
            draw_ids(model=SessionEvent, count=len(rows)),
            strict=True,
        )
    )
    # At most both sides of each event; an unused id is a gap in the sequence.
    delivery_ids = notification_services.deliveries_draw_ids(count=2 * len(rows))
    # This thread's connection: the worker formats for it (a thread has its own otherwise).
    connection = connections[router.db_for_write(SessionEvent)]
    return worker.submit(
        _events_prepare, rows, event_ids, delivery_ids, action, source, now, connection
    )


# The SessionEvent columns a sweep's events fill (the actor is the system: NULL).
_SWEPT_EVENT_COLUMNS = (
    "id",
    "session_id",
    "action",
    "from_status",
    "to_status",
    "details",
    "created_at",
)


def _events_prepare(
    rows, event_ids: dict, delivery_ids, action: Action, source: Status, now, connection
):
    """The formatted rows of a chunk's events and of their deliveries, for `connection`
    (pure: a worker's)."""
    target = transition_for(source, action).target
    created_at = SessionEvent._meta.get_field("created_at").get_db_prep_save(now, connection)
    events = prepare_insert(
        connection=connection,
        model=SessionEvent,
        columns=_SWEPT_EVENT_COLUMNS,
        rows=[
            (
                event_ids[session_id],
                session_id,
                action.value,
                source.value,
                target.value,
                json.dumps(details),  # JSON text, as JSONField writes it
                created_at,
            )
            for session_id, details, *_ in rows
        ],
    )
    deliveries = notification_services.swept_deliveries_prepare(
        sessions=[(session_id, values, start, end) for session_id, _, values, start, end in rows],
        event_ids=event_ids,
        delivery_ids=delivery_ids,
        action=action,
        from_status=source,
        to_status=target,
        occurred_at=now,
        connection=connection,
    )
    return events, deliveries


def _bulk_events(prepared: Future) -> int:
    """Insert a chunk's events and their outbox rows as `_bulk_events_prepare` formatted them
    (one COPY each on PostgreSQL), the emails queued for after the commit. Returns how many
    events."""
    events, deliveries = prepared.result()
    insert_prepared(events)
    notification_services.deliveries_for_events(prepared=deliveries)
    return events.count


def sessions_expire_stale(*, now: datetime | None = None) -> int:
    """Expire requests and reschedule proposals past their window, set-based and chunked.

    Each expired request goes REQUESTED -> UNSCHEDULED (the credit stays with the student) and
    its time is released, whether or not its start has passed. Each expired proposal is
    released and its session goes back RESCHEDULING -> CONFIRMED at the agreed time, which it
    never lost. Every one writes its event and its emails' outbox rows in its chunk's
    transaction; the emails go once the chunk commits. Safe to run twice or concurrently.
    Returns how many sessions changed.
    """
    now = now or timezone.now()
    facts_fields = notification_services.SESSION_FACT_FIELDS

    def claim_requests(after: int | None) -> list[tuple]:
        return list(
            Session.objects.filter(
                status=Status.REQUESTED, request_expires_at__lte=now, pk__gt=after or 0
            )
            .order_by("pk")
            # Only the session is locked: its people and package are read for the emails,
            # and locking them would hold up (or skip past) their bookings elsewhere.
            .select_for_update(of=("self",), skip_locked=True)
            .values_list("pk", "slot_id", "slot__start", "slot__end", *facts_fields)[:SWEEP_CHUNK]
        )

    def expire_requests(rows: list[tuple], worker) -> int:
        events = _bulk_events_prepare(
            worker,
            [
                (pk, {"slot_id": slot_id} if slot_id else {}, values, start, end)
                for pk, slot_id, start, end, *values in rows
            ],
            Action.EXPIRE,
            Status.REQUESTED,
            now,
        )
        # The rows are locked and FOR UPDATE re-checked their status: no second read.
        changed = update_rows(
            model=Session,
            pks=[row[0] for row in rows],
            values={
                "status": Status.UNSCHEDULED,
                "slot_id": None,
                "starts_at": None,
                "ends_at": None,
                "request_expires_at": None,
                "updated_at": now,
            },
        )
        calendar_services.reservations_release(slot_ids=[row[1] for row in rows], now=now)
        _bulk_events(events)
        return changed

    def claim_proposals(after: int | None) -> list[tuple]:
        # Read from the session's side and lock the session alone: every service locks the
        # session before it touches its proposal, so holding it holds the proposal too (and
        # `of` can name no joined table in a values read). A session has one pending
        # proposal at most. A session whose agreed time is no longer held (carried over from
        # before it was kept booked, decision 22) is left for its people to settle: going
        # back to it would double-book.
        return list(
            Session.objects.filter(
                status=Status.RESCHEDULING,
                slot__status=SlotStatus.BOOKED,
                proposals__status=ProposalStatus.PENDING,
                proposals__expires_at__lte=now,
                pk__gt=after or 0,
            )
            .order_by("pk")
            .select_for_update(of=("self",), skip_locked=True)
            .values_list(
                "pk",
                "proposals__id",
                "proposals__slot_id",
                "proposals__slot__start",
                "slot_id",
                "slot__start",
                "slot__end",
                *facts_fields,
            )[:SWEEP_CHUNK]
        )

    def expire_proposals(rows: list[tuple], worker) -> int:
        # The session lock re-checked the session, not the proposal row read beside it: one
        # superseded by a counter-proposal that committed just before the lock was taken still
        # reads PENDING here. The conditional UPDATE says which are still pending, in the
        # same statement; the others are left alone (their session has a newer proposal).
        expired = {
            proposal_id
            for (proposal_id,) in update_rows(
                model=RescheduleProposal,
                pks=[row[1] for row in rows],
                values={"status": ProposalStatus.EXPIRED, "decided_at": now},
                where={"status": ProposalStatus.PENDING},
                returning=("id",),
            )
        }
        rows = [row for row in rows if row[1] in expired]
        if not rows:
            return 0
        # Like a kept or withdrawn proposal: `slot_id` names the agreed time that stands, and
        # the emails tell that time.
        events = _bulk_events_prepare(
            worker,
            [
                (
                    session_id,
                    {
                        "proposal_id": proposal_id,
                        "proposed_start": proposed_start.isoformat(),
                        "slot_id": agreed_slot_id,
                    },
                    values,
                    agreed_start,
                    agreed_end,
                )
                for (
                    session_id,
                    proposal_id,
                    _,
                    proposed_start,
                    agreed_slot_id,
                    agreed_start,
                    agreed_end,
                    *values,
                ) in rows
            ],
            Action.EXPIRE_RESCHEDULE,
            Status.RESCHEDULING,
            now,
        )
        changed = update_rows(
            model=Session,
            pks=[row[0] for row in rows],
            values={"status": Status.CONFIRMED, "updated_at": now},
        )
        calendar_services.reservations_release(slot_ids=[row[2] for row in rows], now=now)
        _bulk_events(events)
        return changed

    return _sweep(claim_requests, expire_requests, _by_pk) + _sweep(
        claim_proposals, expire_proposals, _by_pk
    )


def sessions_complete_past(*, now: datetime | None = None) -> int:
    """Mark confirmed sessions whose end has passed as completed (set-based, chunked).

    The chunks walk the partial index of confirmed sessions by (end, id) from the earliest
    end: the keyset is that pair, so a chunk is one index range read however many sessions
    end at the same moment. Safe to run twice or concurrently. Returns how many completed.
    """
    now = now or timezone.now()
    facts_fields = notification_services.SESSION_FACT_FIELDS

    def claim(after: tuple | None) -> list[tuple]:
        past = Session.objects.filter(status=Status.CONFIRMED, ends_at__lte=now)
        if after is not None:
            # (ends_at, id) > (last end, last id): a row comparison PostgreSQL reads as one
            # range of the index (an OR of the two would rescan the sessions ending at the
            # last end on every chunk).
            past = past.filter(TupleGreaterThan((F("ends_at"), F("pk")), after))
        return list(
            past.order_by("ends_at", "pk")
            .select_for_update(of=("self",), skip_locked=True)
            .values_list("pk", "ends_at", "slot_id", "starts_at", *facts_fields)[:SWEEP_CHUNK]
        )

    def complete(rows: list[tuple], worker) -> int:
        # The session's own start and end are its agreed reservation's (kept in step).
        events = _bulk_events_prepare(
            worker,
            [
                (pk, {"slot_id": slot_id}, values, starts_at, ends_at)
                for pk, ends_at, slot_id, starts_at, *values in rows
            ],
            Action.COMPLETE,
            Status.CONFIRMED,
            now,
        )
        changed = update_rows(
            model=Session,
            pks=[row[0] for row in rows],
            values={"status": Status.COMPLETED, "updated_at": now},
        )
        _bulk_events(events)
        return changed

    return _sweep(claim, complete, lambda row: (row[1], row[0]))


def sessions_send_reminders(*, now: datetime | None = None) -> int:
    """Send the 1 h and 24 h reminders of confirmed sessions, each once per agreed time.

    Rows are claimed in locked chunks with a conditional UPDATE (the reminder field still empty)
    and, in the same transaction, each claimed session's reminders are written to the outbox
    (`notifications`, one delivery per side, keyed by session, agreed time and reminder), so a
    claim never exists without its emails, nor the other way round. They are sent once the
    chunk commits; one that fails is retried by the outbox, never by claiming the session again.
    A session already within its last hour gets only the 1 h reminder (the 24 h one is claimed
    silently). Returns how many sessions were reminded.
    """
    now = now or timezone.now()
    reminded = 0
    for field, which, ahead in notification_services.REMINDERS:
        # A session being rescheduled keeps its agreed time until a new one is agreed.
        due = Session.objects.filter(
            status__in=[Status.CONFIRMED, Status.RESCHEDULING],
            slot__status=SlotStatus.BOOKED,
            slot__start__gt=now,
            slot__start__lte=now + ahead,
            **{f"{field}__isnull": True},
        ).order_by("pk")
        claim = {field: now}
        if field == "reminder_1h_sent_at":
            claim["reminder_24h_sent_at"] = Coalesce("reminder_24h_sent_at", Value(now))
        while True:
            with transaction.atomic():
                ids = list(
                    due.select_for_update(of=("self",), skip_locked=True).values_list(
                        "pk", flat=True
                    )[:SWEEP_CHUNK]
                )
                if not ids:
                    break
                Session.objects.filter(pk__in=ids, **{f"{field}__isnull": True}).update(**claim)
                claimed = list(
                    Session.objects.filter(pk__in=ids, **{field: now})
                    .select_related("slot", "package", "coach", "student")
                    .order_by("pk")
                )
                deliveries = notification_services.deliveries_for_reminders(
                    sessions=claimed, which=which, now=now
                )
            reminded += len(claimed)
            notification_services.deliveries_send_new(delivery_ids=deliveries)
    return reminded
