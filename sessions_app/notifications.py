"""Emails about sessions: every status change tells the other side, and reminders come 24 h and
1 h before a confirmed session.

Who hears about an event: the coach when the student acted, the student when the coach acted,
both when the system acted (expiry, completion) or someone else (an admin). Each email has a
subject, a plain-text and an HTML body, the time (start-end, the session's real length) in the
recipient's own timezone with its abbreviation, and a link to the session. While a new time is
being agreed the session keeps its agreed time: proposals name both, and a proposal that is
declined, withdrawn or expires says the session stays at the agreed time. Confirmations
(accept, confirm_reschedule) carry an .ics invitation and the cancellation of a published
session a canceled one, with the same UID and SEQUENCE as the calendar feed (`calendars.feeds`).

Emails go out from Celery tasks (`sessions_app.tasks.notify_event(s)`) that the services
schedule with `transaction.on_commit`, so a rolled-back change never sends anything. Sending
is idempotent: each (event, recipient) pair is claimed in the cache with an atomic `add` before
its email goes, so a task that runs twice (a redelivery, a retry) does not send twice.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import icalendar
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import User, one_line
from calendars.feeds import PRODID, session_uid, session_url
from calendars.models import TimeSlot
from calendars.selectors import slots_by_id
from refunds.money import format_money
from sessions_app.lifecycle import Action, Status
from sessions_app.models import RescheduleProposal, Session, SessionEvent

logger = logging.getLogger(__name__)

# A claim outlives any redelivery or retry of the task that made it.
CLAIM_TTL_SECONDS = 7 * 24 * 3600
# Events with no email: a purchase creates the credits, it does not change a status.
SILENT_ACTIONS = frozenset({Action.CREATE})
# Statuses in which a session had been put on calendars (its cancellation is published).
_PUBLISHED = (Status.CONFIRMED, Status.RESCHEDULING, Status.COMPLETED)
EN_DASH = "\u2013"


@dataclass
class Email:
    recipient: User
    subject: str
    context: dict
    template: str
    attachment: bytes | None = None
    headers: dict = field(default_factory=dict)

    def message(self) -> EmailMultiAlternatives:
        text = render_to_string(f"email/{self.template}.txt", self.context)
        html = render_to_string(f"email/{self.template}.html", self.context)
        message = EmailMultiAlternatives(
            # Names come from people: a newline in one must not break the header (BadHeaderError).
            subject=one_line(self.subject),
            body=text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[self.recipient.email],
            headers={"Auto-Submitted": "auto-generated", **self.headers},
        )
        message.attach_alternative(html, "text/html")
        if self.attachment is not None:
            message.attach("session.ics", self.attachment, "text/calendar; charset=utf-8")
        return message


# --- formatting -------------------------------------------------------------------------------


def format_when(start: datetime, end: datetime, user: User) -> str:
    """'Tue 4 Mar 2025, 14:00-15:00 CET (Europe/Berlin)' (an en dash) in `user`'s timezone."""
    tz = user.tzinfo
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    day = f"{local_start:%a} {local_start.day} {local_start:%b %Y}"
    end_part = f"{local_end:%H:%M}"
    if local_end.date() != local_start.date():
        end_part = f"{local_end:%a} {local_end.day} {local_end:%b} {end_part}"
    return f"{day}, {local_start:%H:%M}{EN_DASH}{end_part} {local_end:%Z} ({tz.key})"


def format_short(start: datetime, user: User) -> str:
    """'Tue 4 Mar, 14:00 CET' for subjects."""
    local = start.astimezone(user.tzinfo)
    return f"{local:%a} {local.day} {local:%b}, {local:%H:%M} {local:%Z}"


def format_moment(moment: datetime, user: User) -> str:
    local = moment.astimezone(user.tzinfo)
    return f"{local:%a} {local.day} {local:%b %Y}, {local:%H:%M} {local:%Z}"


def _until(start: datetime, now: datetime) -> str:
    minutes = max(int((start - now).total_seconds() // 60), 0)
    if minutes >= 90:
        return f"in about {round(minutes / 60)} hours"
    if minutes >= 50:
        return "in about an hour"
    return f"in {minutes} minutes"


# --- calendar attachments ------------------------------------------------------------------------


def session_ics(*, session: Session, slot: TimeSlot, recipient: User, canceled: bool = False):
    """An RFC 5545 invitation (times in UTC) for `session` at `slot`, as `recipient` sees it."""
    other = session.student if session.coach_id == recipient.pk else session.coach
    url = session_url(session.pk)
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", session_uid(session.pk))
    event.add("sequence", session.sequence)
    event.add("dtstamp", timezone.now().astimezone(UTC))
    event.add("dtstart", slot.start.astimezone(UTC))
    event.add("dtend", slot.end.astimezone(UTC))
    event.add("summary", f"{session.package.title} with {other.name}")
    event.add("description", f"Coachbook session {session.number}. Details: {url}")
    event.add("url", url)
    event.add("status", "CANCELLED" if canceled else "CONFIRMED")
    event.add("transp", "TRANSPARENT" if canceled else "OPAQUE")
    calendar.add_component(event)
    return calendar.to_ical()


# --- event emails --------------------------------------------------------------------------------


def event_recipients(*, event: SessionEvent, session: Session) -> list[User]:
    """The other side of the person who acted; both sides for the system or a third party."""
    if event.actor_id == session.coach_id and event.actor_id != session.student_id:
        people = [session.student]
    elif event.actor_id == session.student_id and event.actor_id != session.coach_id:
        people = [session.coach]
    else:
        people = [session.coach, session.student]
    return [person for person in people if person.is_active and person.email]


# Events about a proposal while the agreed time stands: their `slot_id` is the proposal's time.
_PROPOSAL_ACTIONS = (Action.PROPOSE_RESCHEDULE, Action.COUNTER_PROPOSE)
# Events that end a proposal and keep the agreed time: their `slot_id` is the agreed time.
_KEPT_ACTIONS = (Action.DECLINE_RESCHEDULE, Action.WITHDRAW_PROPOSAL, Action.EXPIRE_RESCHEDULE)
# Events whose time is a proposed one, shown beside the agreed time.
_PROPOSING = (Action.PROPOSE_RESCHEDULE, Action.COUNTER_PROPOSE)


def _event_slot(event: SessionEvent, session: Session, slots: dict[int, TimeSlot]):
    slot = slots.get((event.details or {}).get("slot_id"))
    if slot is None and event.action == Action.CANCEL and event.from_status != Status.UNSCHEDULED:
        slot = session.slot
    return slot


def _agreed_slot(event: SessionEvent, session: Session, slots: dict[int, TimeSlot]):
    """The agreed time that a proposal event leaves standing: the one the event names, else the
    session's (which a proposal never changes), or None for other events."""
    if event.action not in _PROPOSAL_ACTIONS:
        return None
    return slots.get((event.details or {}).get("agreed_slot_id")) or session.slot


def _event_text(event: SessionEvent, session: Session, recipient: User, extra: dict):
    """(subject, lines) for `recipient` about `event`; `extra` holds looked-up facts."""
    coaching = recipient.pk == session.coach_id
    actor = event.actor.name if event.actor_id else "Coachbook"
    coach, student = session.coach.name, session.student.name
    title = session.package.title
    when = f", {extra['short']}" if extra.get("short") else ""
    details = event.details or {}
    reason = (details.get("reason") or "").strip()
    action = Action(event.action)
    lines: list[str] = []

    if action == Action.BOOK:
        subject = f"New request from {student}{when}"
        lines.append(f"{student} asked to book session {session.number} of “{title}”.")
        if extra.get("expires_at"):
            lines.append(f"Accept or decline it before {extra['expires_at']}, or it expires.")
    elif action == Action.WITHDRAW:
        subject = f"{student} withdrew their request{when}"
        lines.append(f"{student} withdrew their request. The time is open again.")
    elif action == Action.ACCEPT:
        subject = f"Confirmed: {title} with {coach}{when}"
        lines.append(f"{coach} accepted your request: the session is confirmed.")
        lines.append("The attached invitation adds it to your calendar.")
    elif action == Action.DECLINE:
        subject = f"{coach} declined your request{when}"
        lines.append(
            f"{coach} declined your request. Your session credit is back: pick another time."
        )
        if reason:
            lines.append(f"Their note: {reason}")
    elif action == Action.EXPIRE:
        subject = f"Request expired{when}"
        if coaching:
            lines.append(
                f"The request from {student} expired before it was answered. "
                "The time is open again."
            )
        else:
            lines.append(
                f"{coach} did not answer your request in time, so it expired. "
                "Your session credit is back: pick another time."
            )
    elif action in (Action.PROPOSE_RESCHEDULE, Action.COUNTER_PROPOSE):
        another = "another" if action == Action.COUNTER_PROPOSE else "a new"
        subject = f"{actor} proposed {another} time{when}"
        proposed = f" to {extra['proposed']}" if extra.get("proposed") else ""
        lines.append(f"{actor} would like to move session {session.number} of “{title}”{proposed}.")
        answer = "Confirm the new time, propose another one or keep the current time"
        if extra.get("expires_at"):
            answer += f" before {extra['expires_at']}"
        lines.append(f"{answer}.")
        if extra.get("agreed"):
            lines.append(f"Until a new time is agreed, the session stays at {extra['agreed']}.")
    elif action == Action.CONFIRM_RESCHEDULE:
        subject = f"New time confirmed{when}"
        lines.append(f"{actor} confirmed the new time: the session is confirmed again.")
        lines.append("The attached invitation updates your calendar.")
    elif action == Action.DECLINE_RESCHEDULE:
        subject = f"{actor} kept the current time{when}"
        lines.append(f"{actor} kept the current time, {extra.get('agreed', 'as agreed')}.")
        lines.append("The proposed time was declined and is free again.")
    elif action == Action.WITHDRAW_PROPOSAL:
        subject = f"{actor} withdrew the proposed time{when}"
        lines.append(
            f"{actor} withdrew the proposed time; the session stays at "
            f"{extra.get('agreed', 'the agreed time')}."
        )
    elif action == Action.EXPIRE_RESCHEDULE:
        subject = f"Proposed time expired{when}"
        lines.append(
            "The proposed time expired; the session stays at "
            f"{extra.get('agreed', 'the agreed time')}."
        )
    elif action == Action.COMPLETE:
        subject = f"Session completed: {title}"
        other = student if coaching else coach
        lines.append(f"Your session with {other} is marked as completed.")
    elif action == Action.CANCEL:
        subject = f"Session canceled: {title}{when}"
        lines.append(f"{actor} canceled session {session.number} of “{title}”.")
        refund = details.get("refund")
        amount = details.get("refund_amount_cents")
        if refund == "full" and amount is not None:
            lines.append(f"Full refund: {format_money(amount, session.currency)}.")
        elif refund == "partial" and amount is not None:
            lines.append(f"Partial refund: {format_money(amount, session.currency)}.")
        elif refund == "none":
            lines.append("No refund was issued.")
        if reason:
            lines.append(f"Their note: {reason}")
    else:  # pragma: no cover - every lifecycle action is handled above
        subject = f"{title}: {event.get_action_display()}"
    return subject, lines


def _event_emails(event: SessionEvent, slots, proposals, now) -> list[Email]:
    session = event.session
    slot = _event_slot(event, session, slots)
    agreed = _agreed_slot(event, session, slots)
    if event.action in _KEPT_ACTIONS:
        agreed = slot
    emails = []
    for recipient in event_recipients(event=event, session=session):
        extra: dict = {}
        if slot is not None:
            extra["short"] = format_short(slot.start, recipient)
        if agreed is not None:
            extra["agreed"] = format_when(agreed.start, agreed.end, recipient)
        if event.action in (Action.PROPOSE_RESCHEDULE, Action.COUNTER_PROPOSE) and slot:
            extra["proposed"] = format_when(slot.start, slot.end, recipient)
        expires = None
        if event.action == Action.BOOK and session.status == Status.REQUESTED:
            expires = session.request_expires_at
        proposal = proposals.get((event.details or {}).get("proposal_id"))
        if event.action in (Action.PROPOSE_RESCHEDULE, Action.COUNTER_PROPOSE) and proposal:
            expires = proposal.expires_at
        if expires is not None and expires > now:
            extra["expires_at"] = format_moment(expires, recipient)
        subject, lines = _event_text(event, session, recipient, extra)
        other = session.student if recipient.pk == session.coach_id else session.coach
        attachment = None
        if (
            event.action in (Action.ACCEPT, Action.CONFIRM_RESCHEDULE)
            and slot is not None
            and session.status == Status.CONFIRMED
            and session.slot_id == slot.pk
        ):
            # Only while the confirmed time is still the current one; a later change sends its own.
            attachment = session_ics(session=session, slot=slot, recipient=recipient)
        elif event.action == Action.CANCEL and slot is not None and event.from_status in _PUBLISHED:
            attachment = session_ics(session=session, slot=slot, recipient=recipient, canceled=True)
        context = {
            "subject": subject,
            "recipient": recipient,
            "other": other,
            "other_role": "student" if recipient.pk == session.coach_id else "coach",
            "session": session,
            "title": session.package.title,
            "lines": lines,
            "when": format_when(slot.start, slot.end, recipient) if slot else "",
            "when_label": "Proposed" if event.action in _PROPOSING else "When",
            "agreed": extra.get("agreed", "") if event.action in _PROPOSING else "",
            "url": session_url(session.pk),
            "status": Status(session.status).label,
            "has_invitation": attachment is not None,
        }
        emails.append(
            Email(
                recipient=recipient,
                subject=subject,
                context=context,
                template="session_event",
                attachment=attachment,
                headers={"X-Coachbook-Event": str(event.pk)},
            )
        )
    return emails


def _claim_key(event_id: int, user_id: int) -> str:
    return f"coachbook:notified:event:{event_id}:user:{user_id}"


def events_notify(*, event_ids: Iterable[int]) -> int:
    """Email the people concerned by each of `event_ids`; returns how many emails went out.

    Events that no longer exist are skipped; an (event, recipient) pair already sent is not sent
    again. Every failure while an email is built or sent releases its claim (it was not sent).
    A send that fails with an `OSError` (SMTP, network) raises, so the task's retry sends it and
    what is still unsent; so does Celery's `SoftTimeLimitExceeded` (an `Exception` too), which
    is never swallowed. Any other failure (a template that does not render, a header the mail
    library refuses) cannot get better by retrying: that email, or an event whose emails cannot
    be built, is logged and skipped, and the rest of the chunk still goes.
    """
    ids = sorted(set(event_ids))
    if not ids:
        return 0
    now = timezone.now()
    events = list(
        SessionEvent.objects.filter(pk__in=ids)
        .exclude(action__in=SILENT_ACTIONS)
        .select_related(
            "actor", "session__coach", "session__student", "session__package", "session__slot"
        )
        .order_by("pk")
    )
    slot_ids = {
        (event.details or {}).get(key) for event in events for key in ("slot_id", "agreed_slot_id")
    } - {None}
    slots = slots_by_id(ids=slot_ids)
    proposal_ids = {(event.details or {}).get("proposal_id") for event in events} - {None}
    proposals = RescheduleProposal.objects.in_bulk(proposal_ids) if proposal_ids else {}
    sent = 0
    with get_connection() as connection:
        for event in events:
            try:
                emails = _event_emails(event, slots, proposals, now)
            except SoftTimeLimitExceeded:
                raise  # the task's time is up: stop, the retry carries on
            except Exception:
                logger.exception("emails for event %s could not be built and are skipped", event.pk)
                continue
            for email in emails:
                key = _claim_key(event.pk, email.recipient.pk)
                if not cache.add(key, 1, timeout=CLAIM_TTL_SECONDS):
                    continue
                # Built and sent under the claim: whatever fails releases it (nothing was sent).
                try:
                    message = email.message()
                    message.connection = connection
                    message.send()
                except (OSError, SoftTimeLimitExceeded):
                    cache.delete(key)
                    raise
                except Exception:
                    cache.delete(key)
                    logger.exception(
                        "email for event %s to user %s failed and is skipped",
                        event.pk,
                        email.recipient.pk,
                    )
                    continue
                sent += 1
    if sent:
        logger.info("sent %d email(s) for %d session event(s)", sent, len(events))
    return sent


# --- reminders -----------------------------------------------------------------------------------


def _reminder_claim_key(session: Session, field: str, user_id: int) -> str:
    # `sequence` changes with every new agreed time, so a new time is reminded again.
    return f"coachbook:reminded:session:{session.pk}:{session.sequence}:{field}:user:{user_id}"


def _reminder_email(*, session: Session, recipient: User, now: datetime) -> Email:
    slot = session.slot
    other = session.student if recipient.pk == session.coach_id else session.coach
    until = _until(slot.start, now)
    subject = f"Reminder: {session.package.title} with {other.name} {until}"
    lines = [f"Your session with {other.name} starts {until}."]
    context = {
        "subject": subject,
        "recipient": recipient,
        "other": other,
        "other_role": "student" if recipient.pk == session.coach_id else "coach",
        "session": session,
        "title": session.package.title,
        "lines": lines,
        "when": format_when(slot.start, slot.end, recipient),
        "url": session_url(session.pk),
        "status": Status(session.status).label,
        "has_invitation": False,
    }
    return Email(recipient=recipient, subject=subject, context=context, template="session_reminder")


def reminder_send(*, session: Session, field: str, now: datetime | None = None) -> int:
    """Email both sides that their confirmed `session` starts soon; returns how many went out.

    `field` names the reminder (`reminder_24h_sent_at` or `reminder_1h_sent_at`). Each
    (session, agreed time, reminder, recipient) is claimed in the cache before its email goes,
    as event emails are: when building or sending one recipient's email fails, its claim is
    released and the error raised after the other recipient was tried, so the retry sends only
    what did not go. Celery's `SoftTimeLimitExceeded` releases the claim and is raised at once.
    """
    now = now or timezone.now()
    sent = 0
    failure: Exception | None = None
    with get_connection() as connection:
        for recipient in (session.coach, session.student):
            if not (recipient.is_active and recipient.email):
                continue
            key = _reminder_claim_key(session, field, recipient.pk)
            if not cache.add(key, 1, timeout=CLAIM_TTL_SECONDS):
                continue
            # Built and sent under the claim: whatever fails releases it (nothing was sent).
            try:
                message = _reminder_email(session=session, recipient=recipient, now=now).message()
                message.connection = connection
                message.send()
            except SoftTimeLimitExceeded:
                cache.delete(key)
                raise  # the task's time is up: do not try the other recipient
            except Exception as exc:
                cache.delete(key)
                failure = failure or exc
                continue
            sent += 1
    if failure is not None:
        raise failure
    return sent


def reminder_horizons() -> tuple[tuple[str, timedelta], ...]:
    """(Session field, how long before the start) for each reminder, the later one first."""
    return (
        ("reminder_1h_sent_at", timedelta(hours=1)),
        ("reminder_24h_sent_at", timedelta(hours=24)),
    )
