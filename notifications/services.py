"""Every write to the outbox: deliveries written with their events, sent once, retried, resent.

Writing. Each event someone must hear about writes its `Delivery` rows (recipient, kind, the
event, a unique key, the facts of that moment) in the event's own transaction, and queues the
send task for after the commit (`core.transactions.on_commit`: a broker that is down is logged,
never an error). A rolled-back event leaves no delivery; a committed one always has its rows,
whatever happens to the broker or the worker afterwards:

    deliveries_for_event                           a status change (sessions_app services)
    swept_deliveries_prepare, deliveries_for_events   a sweep's chunk of changes, set-based
    deliveries_for_purchase                        receipt (student) and package sold (coach)
    deliveries_for_reminders                       the 24 h and 1 h reminders (reminder sweep)
    deliveries_warn_expiring                       requests and proposals about to expire
    deliveries_for_expiring_credits                unused credits about to expire (14 d, 2 d)
    deliveries_for_busy_conflicts                  a busy time on an agreed session (calendar sync)

Keys say what a delivery is about and to whom (`event:<id>:to:<user>`,
`reminder:1h:session:<id>:seq:<n>:to:<user>`, ...), so writing one twice is a no-op.

Sending (`delivery_send`) claims the row with a conditional UPDATE: still pending, due, and no
live lease; the claim takes a lease (NOTIFICATIONS_CLAIM_LEASE_SECONDS), counts the attempt and
raises `claim_seq`, the fencing token every later write of that worker is conditional on. Then
it builds the email from the facts, sends it and marks the row SENT (the mark retried on its
own: an email the server took is never sent again because the mark failed), or records the
reason: a failure that may pass (the mail server or network, a greylisting 4xx, anything
unexpected) is retried with exponential backoff until the next attempt would fall more than
NOTIFICATIONS_GIVE_UP_HOURS after the delivery was written (or sent again), then FAILED; one
that retrying cannot fix (a template that does not render, an address the server refuses for
good) is FAILED at once. A delivery that is no longer true when its turn comes (a reminder of a
session since canceled) is SKIPPED. `deliveries_send_due` is the periodic sweep: pending rows
that are due, including those a dead broker never delivered and those a killed worker claimed
but never finished (its lease ran out), bounded per run (NOTIFICATIONS_SWEEP_SECONDS,
NOTIFICATIONS_SWEEP_MAX_ROWS; the rest waits for the next run). `delivery_resend` puts a FAILED
delivery back in the queue (the admin's "Send again").
"""

import json
import logging
import smtplib
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import get_connection
from django.db import DatabaseError, close_old_connections, transaction
from django.db import connection as db_connection
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from calendars import selectors as calendar_selectors
from core.bulk import PreparedInsert, draw_ids, insert_prepared, prepare_insert
from core.errors import DomainError, PermissionDenied
from core.transactions import on_commit
from notifications import emails, facts, selectors
from notifications.models import Delivery, DeliveryKind, DeliveryStatus
from sessions_app import selectors as session_selectors
from sessions_app.lifecycle import Action, Status

logger = logging.getLogger(__name__)

# A status change with no email: a purchase has its own receipt and sold notice.
SILENT_ACTIONS = frozenset({Action.CREATE})
# Deliveries per send task when a sweep writes many (100k expiries make 1,000 small tasks).
SEND_CHUNK = 100
# Deliveries the sweep reads at a time.
SWEEP_CHUNK = 200
# Reminders: (the Session field that claims it, its name in keys, how long before the start).
REMINDERS = (
    ("reminder_1h_sent_at", "1h", timedelta(hours=1)),
    ("reminder_24h_sent_at", "24h", timedelta(hours=24)),
)


class DeliveryNotResendable(DomainError):
    default_message = "Only a failed email can be sent again."


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def give_up_after() -> timedelta:
    """How long after a delivery was written (or sent again) its retries stop."""
    return timedelta(hours=_setting("NOTIFICATIONS_GIVE_UP_HOURS", 24))


def sweep_seconds() -> int:
    return _setting("NOTIFICATIONS_SWEEP_SECONDS", 50)


def sweep_max_rows() -> int:
    return _setting("NOTIFICATIONS_SWEEP_MAX_ROWS", 2000)


def claim_lease() -> timedelta:
    return timedelta(seconds=_setting("NOTIFICATIONS_CLAIM_LEASE_SECONDS", 600))


def retry_delay(attempt: int) -> timedelta:
    """After the `attempt`-th failure: 1, 2, 4, 8 ... minutes, at most an hour."""
    base = _setting("NOTIFICATIONS_RETRY_BASE_SECONDS", 60)
    ceiling = _setting("NOTIFICATIONS_RETRY_MAX_SECONDS", 3600)
    return timedelta(seconds=min(base * 2 ** max(attempt - 1, 0), ceiling))


def expiry_warning_lead() -> timedelta:
    return timedelta(hours=_setting("NOTIFICATIONS_EXPIRY_WARNING_HOURS", 6))


# --- writing deliveries ------------------------------------------------------------------------


def _reachable(user: User) -> bool:
    return bool(user.is_active and user.email)


def _row(*, recipient: User, kind: str, key: str, facts: dict, session, event=None) -> Delivery:
    # Due at once, whatever moment a sweep was asked to act at (`now` of a test or a backfill).
    written = timezone.now()
    return Delivery(
        recipient=recipient,
        kind=kind,
        key=key,
        facts=facts,
        session=session,
        event=event,
        created_at=written,
        next_attempt_at=written,
    )


def deliveries_queue(*, delivery_ids: list[int]) -> None:
    """Send these deliveries once the transaction commits: one task, or one per SEND_CHUNK,
    all queued by one after-commit hook (a sweep's chunk of thousands registers one, not one
    per task). Nothing is lost if the broker refuses: the sweep sends what is still pending."""
    from notifications.tasks import send_deliveries, send_delivery

    ids = list(delivery_ids)
    if not ids:
        return
    if len(ids) == 1:
        delivery_id = ids[0]
        on_commit(lambda: send_delivery.delay(delivery_id=delivery_id))
        return

    def send_in_chunks() -> None:
        # A broker that refuses one refuses the rest: the first failure is logged by
        # `on_commit` and the periodic sweep sends what is still pending.
        for start in range(0, len(ids), SEND_CHUNK):
            send_deliveries.delay(delivery_ids=ids[start : start + SEND_CHUNK])

    on_commit(send_in_chunks)


def _write(rows: list[Delivery]) -> list[int]:
    """Insert rows whose keys are new (each key is about a new event) and queue them."""
    created = Delivery.objects.bulk_create(rows)
    ids = [row.pk for row in created]
    if ids:
        deliveries_queue(delivery_ids=ids)
    return ids


def _write_once(rows: list[Delivery]) -> list[int]:
    """Insert the rows whose keys do not exist yet (a second run writes nothing) and return
    the ids of those still to send."""
    if not rows:
        return []
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    return selectors.pending_ids_for_keys(keys=[row.key for row in rows])


def event_recipients(*, actor_id: int | None, session, invitation: bool = False) -> list[User]:
    """The other side of the person who acted; both sides for the system or a third party, and
    for an event that carries a calendar invitation (the actor's calendar moves too)."""
    if invitation:
        people = [session.coach, session.student]
    elif actor_id == session.coach_id and actor_id != session.student_id:
        people = [session.student]
    elif actor_id == session.student_id and actor_id != session.coach_id:
        people = [session.coach]
    else:
        people = [session.coach, session.student]
    unique = list({person.pk: person for person in people}.values())
    return [person for person in unique if _reachable(person)]


def _event_rows(event, session, slots: dict, proposal=None) -> list[Delivery]:
    if event.action in SILENT_ACTIONS:
        return []
    snapshot = facts.event_facts(event=event, session=session, slots=slots, proposal=proposal)
    return [
        _row(
            recipient=recipient,
            kind=DeliveryKind.SESSION_EVENT,
            key=f"event:{event.pk}:to:{recipient.pk}",
            facts=snapshot,
            session=session,
            event=event,
        )
        for recipient in event_recipients(
            actor_id=event.actor_id, session=session, invitation=bool(snapshot.get("invitation"))
        )
    ]


def deliveries_for_event(*, event) -> list[int]:
    """Write the deliveries of one status change, in its transaction (`event.session` is the
    session as the service just left it), and queue their sending for after the commit.
    Returns the new deliveries' ids."""
    session = event.session
    slots = calendar_selectors.slots_by_id(ids=facts.event_slot_ids(event))
    proposal = None
    if event.action in facts.PROPOSING_ACTIONS:
        proposal = session_selectors.session_pending_proposal(session=session)
    return _write(_event_rows(event, session, slots, proposal))


# The Session lookups whose values a sweep hands over for its emails
# (`swept_deliveries_prepare`): it adds them to its one locked read per chunk.
SESSION_FACT_FIELDS = facts.SESSION_FACT_FIELDS

# The Delivery columns a sweep's rows fill; the rest take their NULL default.
_SWEPT_COLUMNS = (
    "id",
    "recipient_id",
    "kind",
    "session_id",
    "event_id",
    "key",
    "status",
    "facts",
    "attempts",
    "claim_seq",
    "next_attempt_at",
    "subject",
    "last_error",
    "created_at",
)


class SweptDeliveries(NamedTuple):
    """The outbox rows of a sweep's chunk, formatted for the database (`core.bulk`), and
    their ids."""

    insert: PreparedInsert
    ids: tuple[int, ...]


def deliveries_draw_ids(*, count: int) -> list[int]:
    """Ids for `count` deliveries a sweep's chunk may write (at most both sides of each
    event), drawn in its transaction before their rows are prepared; unused ones are gaps."""
    return draw_ids(model=Delivery, count=count)


def swept_deliveries_prepare(
    *,
    sessions: list[tuple],
    event_ids: dict[int, int],
    delivery_ids: Sequence[int],
    action: Action,
    from_status: str,
    to_status: str,
    occurred_at: datetime,
    connection,
) -> SweptDeliveries:
    """The deliveries of a sweep's chunk of status changes (all `action` from `from_status`
    to `to_status` at `occurred_at`, by the system), from plain values: each of `sessions` is
    (session id, the values of SESSION_FACT_FIELDS, the start and end the event is about);
    `event_ids` the chunk's events by session id; `delivery_ids` from `deliveries_draw_ids`;
    `connection` the sweep's (Django) connection, which will insert them.

    Pure: no query, no model instance, so a sweep runs it on a worker thread while the
    database applies the chunk. The rows are those `deliveries_for_event` would write for
    each event: the recipients `event_recipients` gives the system (both sides, each once,
    if reachable), the facts `facts.event_facts` gives (`facts.swept_event_facts`, one
    snapshot for both sides, serialised as JSONField writes it)."""
    if action in SILENT_ACTIONS:
        empty = prepare_insert(
            model=Delivery, columns=_SWEPT_COLUMNS, rows=[], connection=connection
        )
        return SweptDeliveries(empty, ())
    common = facts.swept_common_facts(
        action=action, from_status=from_status, to_status=to_status, occurred_at=occurred_at
    )
    # Due at once, whatever moment the sweep was asked to act at (as `_row`).
    written = Delivery._meta.get_field("created_at").get_db_prep_save(timezone.now(), connection)
    kind, pending = DeliveryKind.SESSION_EVENT.value, DeliveryStatus.PENDING.value
    names: dict = {}
    fresh = iter(delivery_ids)
    rows = []
    for session_id, values, start, end in sessions:
        session = facts.SweptSession.from_values(session_id, values)
        people = [(session.coach_id, session.coach_email, session.coach_is_active)]
        if session.student_id != session.coach_id:
            people.append((session.student_id, session.student_email, session.student_is_active))
        snapshot = json.dumps(
            facts.swept_event_facts(
                session=session, common=common, start=start, end=end, names=names
            )
        )
        event_id = event_ids[session_id]
        for recipient_id, email, is_active in people:
            if is_active and email:
                rows.append(
                    (
                        next(fresh),
                        recipient_id,
                        kind,
                        session_id,
                        event_id,
                        f"event:{event_id}:to:{recipient_id}",
                        pending,
                        snapshot,
                        0,
                        0,
                        written,
                        "",
                        "",
                        written,
                    )
                )
    return SweptDeliveries(
        prepare_insert(model=Delivery, columns=_SWEPT_COLUMNS, rows=rows, connection=connection),
        tuple(row[0] for row in rows),
    )


def deliveries_for_events(*, prepared: SweptDeliveries) -> list[int]:
    """Write a sweep chunk's deliveries (from `swept_deliveries_prepare`) in the sweep's
    transaction, one COPY (PostgreSQL) or multi-row INSERTs, and queue them for after its
    commit with one hook. Returns their ids."""
    insert_prepared(prepared.insert)
    ids = list(prepared.ids)
    deliveries_queue(delivery_ids=ids)
    return ids


def deliveries_for_event_ids(*, event_ids) -> list[int]:
    """Write the deliveries still missing for these events (a key already written is left as
    it is) and queue those still to send: the previous release's `sessions.notify_event(s)`
    tasks, queued before the deploy, land here. The facts are taken now, from the event's
    details and the session as it is."""
    events = session_selectors.events_by_id(
        ids=event_ids, exclude_actions=[action.value for action in SILENT_ACTIONS]
    )
    if not events:
        return []
    sessions = session_selectors.sessions_by_id(ids={event.session_id for event in events})
    slots = calendar_selectors.slots_by_id(
        ids=set().union(*(facts.event_slot_ids(event) for event in events))
    )
    rows = []
    with transaction.atomic():
        for event in events:
            session = sessions.get(event.session_id)
            if session is not None:
                rows.extend(_event_rows(event, session, slots))
        ids = _write_once(rows)
        if ids:
            deliveries_queue(delivery_ids=ids)
    return ids


def deliveries_for_purchase(*, package, sessions, events) -> list[int]:
    """The purchase receipt to the student and the "package sold" notice to the coach, in the
    purchase's transaction; both link to the first session (the first credit to book)."""
    first = min(sessions, key=lambda session: session.number)
    event = next((each for each in events if each.session_id == first.pk), None)
    coach, student = first.coach, first.student
    snapshot = facts.purchase_facts(package=package, coach=coach, student=student)
    rows = [
        _row(
            recipient=recipient,
            kind=kind,
            key=f"{kind}:package:{package.pk}",
            facts=snapshot,
            session=first,
            event=event,
        )
        for recipient, kind in (
            (student, DeliveryKind.PURCHASE_RECEIPT),
            (coach, DeliveryKind.PACKAGE_SOLD),
        )
        if _reachable(recipient)
    ]
    return _write(rows)


def deliveries_for_reminders(*, sessions, which: str, now: datetime) -> list[int]:
    """The `which` ("24h" or "1h") reminder of each confirmed session to both sides, once per
    agreed time (the key carries the session's sequence): written in the reminder sweep's
    claim transaction. Returns the ids still to send (the sweep sends them after its commit)."""
    rows = []
    for session in sessions:
        snapshot = {
            **facts.session_facts(session),
            **facts.interval("", session.slot.start, session.slot.end),
            "slot_id": session.slot_id,
            "reminder": which,
            "reminded_at": facts.iso(now),
        }
        for recipient in (session.coach, session.student):
            if _reachable(recipient):
                key = f"reminder:{which}:session:{session.pk}:seq:{session.sequence}"
                rows.append(
                    _row(
                        recipient=recipient,
                        kind=DeliveryKind.REMINDER,
                        key=f"{key}:to:{recipient.pk}",
                        facts=snapshot,
                        session=session,
                    )
                )
    return _write_once(rows)


def deliveries_for_expiring_credits(*, packages, which: str, now: datetime) -> list[int]:
    """The `which` ("14d" or "2d") reminder that a package's unused credits expire, to its
    student, once per package, expiry and lead (the key carries the expiry instant, so an
    extension brings new reminders): written in the credit-expiry sweep's chunk transaction.
    Each package carries `unused` (its unscheduled sessions) and `first_credit_id` (the one
    the email links to). Returns the ids still to send (the sweep sends them after commit)."""
    rows = []
    for package in packages:
        student = package.student
        if not _reachable(student):
            continue
        stamp = int(package.expires_at.timestamp())
        row = _row(
            recipient=student,
            kind=DeliveryKind.CREDITS_EXPIRING,
            key=f"credits_expiring:{which}:package:{package.pk}:expires:{stamp}:to:{student.pk}",
            facts={
                **facts.credits_expiring_facts(package=package, unused=package.unused),
                "reminder": which,
                "reminded_at": facts.iso(now),
            },
            session=None,
        )
        row.session_id = package.first_credit_id  # the first credit to book: the email's link
        rows.append(row)
    return _write_once(rows)


def deliveries_warn_expiring(*, now: datetime | None = None) -> list[int]:
    """Warn, once each, the coach of a request and the answering side of a reschedule proposal
    whose deadline is NOTIFICATIONS_EXPIRY_WARNING_HOURS away (default 6). Requests and
    proposals made closer to their deadline than that are not warned: their own email, just
    sent, names the deadline. Returns the ids of the new warnings (sent by the caller)."""
    now = now or timezone.now()
    lead = expiry_warning_lead()
    rows = []
    for session in session_selectors.requests_expiring(now=now, lead=lead):
        if not _reachable(session.coach):
            continue
        snapshot = {
            **facts.session_facts(session),
            **facts.interval("", session.slot.start, session.slot.end),
            "slot_id": session.slot_id,
            "expires_at": facts.iso(session.request_expires_at),
        }
        rows.append(
            _row(
                recipient=session.coach,
                kind=DeliveryKind.REQUEST_EXPIRING,
                key=f"request_expiring:slot:{session.slot_id}",
                facts=snapshot,
                session=session,
            )
        )
    for proposal in session_selectors.proposals_expiring(now=now, lead=lead):
        session = proposal.session
        responder = (
            session.student if proposal.proposed_by_id == session.coach_id else session.coach
        )
        if not _reachable(responder):
            continue
        snapshot = {
            **facts.session_facts(session),
            **facts.interval("", proposal.slot.start, proposal.slot.end),
            **facts.interval("agreed_", session.slot.start, session.slot.end),
            "proposal_id": proposal.pk,
            "proposer": proposal.proposed_by.name,
            "expires_at": facts.iso(proposal.expires_at),
        }
        rows.append(
            _row(
                recipient=responder,
                kind=DeliveryKind.PROPOSAL_EXPIRING,
                key=f"proposal_expiring:{proposal.pk}:to:{responder.pk}",
                facts=snapshot,
                session=session,
            )
        )
    return _write_once(rows)


def deliveries_for_busy_conflicts(*, coach_id: int, now: datetime | None = None) -> list[int]:
    """Tell the coach, once per (agreed time, busy time first seen), that a busy time from
    their external calendars now overlaps an agreed session: written in the calendar sync's
    transaction that stored the busy times, sent after its commit. The session is never moved.
    A coach who chose to keep the time hears again only of a busy time first seen after that."""
    now = now or timezone.now()
    newest = calendar_selectors.coach_conflicts_newest_busy(coach=coach_id, now=now)
    if not newest:
        return []  # the usual case: one query
    coach = User.objects.filter(pk=coach_id).first()
    if coach is None or not _reachable(coach):
        return []
    rows = []
    for session in session_selectors.coach_busy_conflicts(coach=coach, now=now):
        busy = newest.get(session.slot_id)
        if busy is None:
            continue
        snapshot = {
            **facts.session_facts(session),
            **facts.interval("", session.slot.start, session.slot.end),
            **facts.interval("busy_", busy.start, busy.end),
            "slot_id": session.slot_id,
            "busy_id": busy.pk,
            "busy_first_seen_at": facts.iso(busy.created_at),
        }
        rows.append(
            _row(
                recipient=coach,
                kind=DeliveryKind.CALENDAR_CONFLICT,
                key=f"calendar_conflict:slot:{session.slot_id}:busy:{busy.pk}",
                facts=snapshot,
                session=session,
            )
        )
    ids = _write_once(rows)
    if ids:
        deliveries_queue(delivery_ids=ids)
    return ids


# --- sending -------------------------------------------------------------------------------------


def _retryable(exc: Exception) -> bool:
    """A failure that may pass: the mail server or the network (smtplib's errors are OSErrors),
    except the server refusing this message or its recipient for good (5xx)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # Temporary refusals (4xx, greylisting) pass; only all-permanent ones are final.
        return not all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPDataError) and exc.smtp_code >= 500:
        return False
    return isinstance(exc, OSError)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000] if str(exc) else type(exc).__name__


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def stale_reason(*, delivery: Delivery, now: datetime) -> str:
    """Why `delivery` is no longer worth sending ("" when it is): a reminder or warning whose
    session has moved on since it was written. Status changes are always told."""
    session, kind, snapshot = delivery.session, delivery.kind, delivery.facts
    if session is None:
        return ""
    if kind == DeliveryKind.REMINDER:
        if session.status not in (Status.CONFIRMED, Status.RESCHEDULING):
            return "Not sent: the session is no longer confirmed."
        if session.sequence != snapshot.get("sequence"):
            return "Not sent: the session has a new time since; that time has its own reminder."
        start = _parse(snapshot.get("start"))
        if start is not None and start <= now:
            return "Not sent: the session had started before the reminder could go."
    elif kind == DeliveryKind.REQUEST_EXPIRING:
        if session.status != Status.REQUESTED or session.slot_id != snapshot.get("slot_id"):
            return "Not sent: the request was answered or withdrawn."
        if (_parse(snapshot.get("expires_at")) or now) <= now:
            return "Not sent: the request expired before the warning could go."
    elif kind == DeliveryKind.PROPOSAL_EXPIRING:
        pending = session_selectors.session_pending_proposal(session=session)
        if pending is None or pending.pk != snapshot.get("proposal_id"):
            return "Not sent: the proposal was answered or withdrawn."
        if (_parse(snapshot.get("expires_at")) or now) <= now:
            return "Not sent: the proposal expired before the warning could go."
    elif kind == DeliveryKind.SESSION_EVENT:
        own = snapshot.get("actor_id") == delivery.recipient_id
        if own and snapshot.get("invitation") and session.sequence != snapshot.get("sequence"):
            # The actor's copy exists only for their calendar, which a later change moved on.
            return "Not sent: the calendar entry has changed since; the later change tells it."
    elif kind == DeliveryKind.CREDITS_EXPIRING:
        package = session.package
        if facts_expiry(snapshot) != package.expires_at:
            return "Not sent: the credits' expiry has changed since; the new date has its own."
        if package.expires_at is None or package.expires_at <= now:
            return "Not sent: the credits expired before the reminder could go."
        if not session_selectors.package_has_unused_credits(package=package):
            return "Not sent: every credit of the package has been booked since."
    elif kind == DeliveryKind.CALENDAR_CONFLICT:
        moved = session.slot_id != snapshot.get("slot_id")
        if moved or session.status not in (Status.CONFIRMED, Status.RESCHEDULING):
            return "Not sent: the session has moved or ended since."
    return ""


def facts_expiry(snapshot: dict) -> datetime | None:
    return _parse(snapshot.get("expires_at"))


# Attempts at writing the SENT mark after the mail server took the email.
MARK_TRIES = 3


def delivery_claim(*, delivery_id: int, now: datetime) -> Delivery | None:
    """Claim the delivery if it is due and no live worker holds it: take a lease, count the
    attempt, raise the fencing token `claim_seq`. Returns the claimed row, or None."""
    claimed = (
        selectors.deliveries_due(now=now)
        .filter(pk=delivery_id)
        .update(
            claimed_until=now + claim_lease(),
            attempts=F("attempts") + 1,
            claim_seq=F("claim_seq") + 1,
        )
    )
    if not claimed:
        return None
    return selectors.delivery_for_send(pk=delivery_id)  # None if deleted since


def _retry_window_start(delivery: Delivery) -> datetime:
    return delivery.resent_at or delivery.created_at


def _record_failure(
    delivery: Delivery, mine, exc: Exception, subject: str, now: datetime, retryable: bool
) -> str:
    """Record a failed attempt: retried with backoff while the retry window lasts, FAILED once
    the next attempt would fall after it or at once when retrying cannot help."""
    reason = _describe(exc)
    retry_at = now + retry_delay(delivery.attempts)
    if retryable and retry_at <= _retry_window_start(delivery) + give_up_after():
        mine.update(
            claimed_until=None, next_attempt_at=retry_at, last_error=reason, subject=subject
        )
        logger.warning(
            "delivery %s failed (attempt %d), retried at %s: %s",
            delivery.pk,
            delivery.attempts,
            retry_at.isoformat(),
            reason,
        )
        return "retry"
    mine.update(
        status=DeliveryStatus.FAILED, claimed_until=None, last_error=reason, subject=subject
    )
    logger.error(
        "delivery %s failed after %d attempt(s): %s",
        delivery.pk,
        delivery.attempts,
        reason,
        exc_info=exc,
    )
    return "failed"


def _mark_sent(delivery: Delivery, mine, subject: str) -> None:
    """Mark the row SENT, retrying a database error a few times (a fresh connection each
    time): the email is gone, so a lost mark would send it again once the lease runs out."""
    for attempt in range(1, MARK_TRIES + 1):
        try:
            mine.update(
                status=DeliveryStatus.SENT,
                sent_at=timezone.now(),
                claimed_until=None,
                last_error="",
                subject=subject,
            )
            return
        except DatabaseError:
            if attempt == MARK_TRIES:
                logger.error(
                    "delivery %s was sent but could not be marked sent; it may go again "
                    "once its claim's lease runs out",
                    delivery.pk,
                    exc_info=True,
                )
                return
            if not db_connection.in_atomic_block:
                close_old_connections()
            time.sleep(0.1 * attempt)


def delivery_send(*, delivery_id: int, now: datetime | None = None, connection=None) -> str:
    """Send one delivery if it is still to send; returns what happened: "sent", "retry" (a
    failure that may pass, retried later with backoff), "failed" (given up, with the reason),
    "skipped" (no longer true), or "not_due" (already sent or given up, claimed by a live
    worker, waiting for its retry time, or gone). Safe to call twice or concurrently: only the
    caller whose conditional UPDATE claims the row sends it, and every later write is fenced on
    that claim's `claim_seq`. Nothing after the claim raises but Celery's
    `SoftTimeLimitExceeded`, which hands the row back (due at once) unless it was sent."""
    now = now or timezone.now()
    delivery = delivery_claim(delivery_id=delivery_id, now=now)
    if delivery is None:
        return "not_due"
    mine = Delivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.PENDING, claim_seq=delivery.claim_seq
    )
    sent = False
    subject = ""
    try:
        recipient = delivery.recipient
        reason = stale_reason(delivery=delivery, now=now)
        if not reason and not _reachable(recipient):
            reason = "Not sent: the recipient's account is inactive or has no email address."
        if reason:
            mine.update(status=DeliveryStatus.SKIPPED, claimed_until=None, last_error=reason)
            logger.info("delivery %s skipped: %s", delivery.pk, reason)
            return "skipped"
        try:
            email = emails.delivery_email(delivery=delivery, now=now)
            subject = email.subject[:300]
            message = email.message()
            if connection is not None:
                connection.open()  # under the claim: a mail server that hangs or refuses is
                message.connection = connection  # this delivery's failure, recorded on it
            message.send()
            sent = True
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            return _record_failure(delivery, mine, exc, subject, now, _retryable(exc))
        _mark_sent(delivery, mine, subject)
        return "sent"
    except SoftTimeLimitExceeded:
        if sent:
            _mark_sent(delivery, mine, subject)
        else:
            mine.update(
                claimed_until=None,
                next_attempt_at=now,
                last_error="Interrupted by the task's time limit; it goes again.",
            )
        raise
    except Exception as exc:  # unexpected: a failed attempt, never raised out of a sweep
        if sent:
            logger.exception("delivery %s: error after it was sent", delivery.pk)
            return "sent"
        try:
            return _record_failure(delivery, mine, exc, subject, now, retryable=True)
        except Exception:
            logger.exception("delivery %s: its failure could not be recorded", delivery.pk)
            return "retry"  # the lease runs out and the sweep tries again


def deliveries_send(*, delivery_ids, now: datetime | None = None, deadline=None) -> int:
    """Send these deliveries over one mail connection (each still claimed on its own); returns
    how many were sent. A failure is recorded on its delivery and the others still go; after a
    failure that may pass the connection is opened afresh. With a `deadline` (a
    `time.monotonic()` value) it stops there; the rest stays pending for the sweep."""
    sent = 0
    connection = get_connection()  # opened by the first send, not before any claim
    try:
        for delivery_id in delivery_ids:
            if deadline is not None and time.monotonic() >= deadline:
                break
            outcome = delivery_send(delivery_id=delivery_id, now=now, connection=connection)
            if outcome == "sent":
                sent += 1
            elif outcome in ("retry", "failed"):
                connection.close()  # the next send reconnects
    finally:
        connection.close()
    return sent


def deliveries_send_due(*, now: datetime | None = None) -> int:
    """The sweep: send the deliveries that are due, the longest waiting first: those whose
    on-commit task never reached a worker (the broker was down), retries whose time has come,
    and those a worker claimed but never finished (killed mid-send: its lease ran out). Each
    row is tried at most once per run, and a run stops after NOTIFICATIONS_SWEEP_SECONDS (50)
    or NOTIFICATIONS_SWEEP_MAX_ROWS (2,000) rows, whichever comes first: the rest waits for
    the next run, so overlapping runs never hold every worker. Safe to run concurrently (each
    row is claimed). Returns how many were sent."""
    deadline = time.monotonic() + sweep_seconds()
    budget = sweep_max_rows()
    tried: set[int] = set()
    sent = 0
    while len(tried) < budget and time.monotonic() < deadline:
        moment = now or timezone.now()
        limit = min(SWEEP_CHUNK, budget - len(tried))
        ids = [
            pk for pk in selectors.deliveries_due_ids(now=moment, limit=limit) if pk not in tried
        ]
        if not ids:
            break
        tried.update(ids)
        sent += deliveries_send(delivery_ids=ids, now=now, deadline=deadline)
    if sent:
        logger.info("outbox sweep: %d delivery(ies) sent", sent)
    return sent


def deliveries_send_new(*, delivery_ids) -> int:
    """Send what a sweep has just written and committed (reminders, warnings) in its own
    process; what fails or is cut short stays pending for the outbox sweep."""
    return deliveries_send(delivery_ids=delivery_ids) if delivery_ids else 0


def delivery_resend(
    *, delivery: Delivery, actor: User, now: datetime | None = None, record=None
) -> Delivery:
    """Put a FAILED delivery back in the queue, with a fresh round of attempts and a fresh
    retry window (`resent_at`), and send it after the commit (the admin's "Send again"). Its
    last error stays until the next attempt. `record(previous)`, when given, is called in the
    same transaction with the row as it was (its error and attempt count), so the admin's
    history entry and the resend commit or roll back together. Refused for anyone without the
    "Can send a failed delivery again" permission, and for a delivery that did not fail."""
    if not (actor.is_active and actor.is_staff and actor.has_perm("notifications.resend_delivery")):
        raise PermissionDenied("You are not allowed to send emails again.")
    now = now or timezone.now()
    with transaction.atomic():
        locked = Delivery.objects.select_for_update().filter(pk=delivery.pk).first()
        if locked is None:
            raise DeliveryNotResendable("That email no longer exists.")
        if locked.status != DeliveryStatus.FAILED:
            raise DeliveryNotResendable(
                f"Only a failed email can be sent again; this one is {locked.get_status_display()}."
            )
        Delivery.objects.filter(pk=locked.pk).update(
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            claimed_until=None,
            resent_at=now,
        )
        logger.info(
            "delivery %s sent again by user %s (was failed after %d attempt(s): %s)",
            locked.pk,
            actor.pk,
            locked.attempts,
            locked.last_error,
        )
        if record is not None:
            record(locked)
        deliveries_queue(delivery_ids=[locked.pk])
    locked.refresh_from_db()
    return locked
