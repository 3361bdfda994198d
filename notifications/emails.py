"""The emails of the outbox: one builder per delivery kind, one template pair per kind
(`templates/email/<kind>.txt` and `.html`, sharing `_layout.html` and the `_details` partials).

An email is built from its delivery's `facts`, the snapshot its event took in its own
transaction, never from the session's later state: an email sent an hour late (the broker was
down) still tells what happened then, at the time agreed then. Times are shown in the
recipient's own timezone with its abbreviation and zone name, and the real length of the
session ("Wed 8 Jan 2025, 14:00-15:00 CET (Europe/Berlin)", an en dash); words in the site's
language (`LANGUAGE_CODE`). Every email links to its session.

Who hears about a status change: the coach when the student acted, the student when the coach
acted, both when the system acted (expiry, completion) or someone else (an admin). A change that
carries a calendar invitation (accept, a confirmed new time, canceling a session that was on
calendars) goes to both sides, the one who acted included, so both calendars move in place; the
actor's copy just says their calendar is updated. While a new
time is being agreed the session keeps its agreed time: proposals name both, and a proposal
that is declined, withdrawn or expires says the session stays at the agreed time.

Calendar invitations are iTIP (`calendars.ical`): METHOD:REQUEST on accept and on a confirmed
new time, METHOD:CANCEL when a session that was on calendars is canceled, with the UID of the
feed and the SEQUENCE the session had at that moment. An invitation goes only while no later
change has moved the calendar entry on (the session's sequence is still the one in the facts),
so a late email never puts an old time back on a calendar; the later change sends its own.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import User, one_line
from calendars import ical
from calendars.feeds import session_url
from core.money import format_money
from notifications.facts import KEPT_ACTIONS, PROPOSING_ACTIONS
from notifications.models import Delivery, DeliveryKind
from sessions_app.lifecycle import Action

EN_DASH = "\u2013"


@dataclass
class Invitation:
    ics: bytes
    method: str  # "REQUEST" or "CANCEL"


@dataclass
class Email:
    recipient: User
    subject: str
    context: dict
    template: str
    invitation: Invitation | None = None
    headers: dict = field(default_factory=dict)

    def message(self) -> EmailMultiAlternatives:
        context = {
            "subject": self.subject,
            "recipient": self.recipient,
            "language_code": settings.LANGUAGE_CODE,
            **self.context,
        }
        with translation.override(settings.LANGUAGE_CODE):
            text = render_to_string(f"email/{self.template}.txt", context)
            html = render_to_string(f"email/{self.template}.html", context)
        message = EmailMultiAlternatives(
            # Names come from people: a newline in one must not break the header (BadHeaderError).
            subject=one_line(self.subject),
            body=text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[self.recipient.email],
            headers={"Auto-Submitted": "auto-generated", **self.headers},
        )
        message.attach_alternative(html, "text/html")
        if self.invitation is not None:
            ical.attach_invitation(
                message=message, ics=self.invitation.ics, method=self.invitation.method
            )
        return message


# --- formatting -------------------------------------------------------------------------------
#
# Emails are read away from the site, days later, and forwarded: they always name the year and
# the zone itself, beside its abbreviation (the pages word times with `core.times`).


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


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


def until(start: datetime, now: datetime) -> str:
    minutes = max(int((start - now).total_seconds() // 60), 0)
    if minutes >= 90:
        return f"in about {round(minutes / 60)} hours"
    if minutes >= 50:
        return "in about an hour"
    return f"in {minutes} minutes"


def _when(facts: dict, user: User, prefix: str = "") -> str:
    start, end = parse_time(facts.get(f"{prefix}start")), parse_time(facts.get(f"{prefix}end"))
    return format_when(start, end, user) if start and end else ""


def _short(facts: dict, user: User) -> str:
    start = parse_time(facts.get("start"))
    return format_short(start, user) if start else ""


def _moment(facts: dict, name: str, user: User) -> str:
    moment = parse_time(facts.get(name))
    return format_moment(moment, user) if moment else ""


def _base_context(delivery: Delivery, facts: dict, recipient: User) -> dict:
    """What every session email shows: the session, the other side, the link."""
    coaching = recipient.pk == facts.get("coach_id")
    return {
        "title": facts.get("title", ""),
        "number": facts.get("number"),
        "session_count": facts.get("session_count"),
        "other_name": facts.get("student" if coaching else "coach", ""),
        "other_role": "student" if coaching else "coach",
        "url": session_url(delivery.session_id) if delivery.session_id else settings.SITE_URL,
        "status": facts.get("status_label", ""),
        "when": _when(facts, recipient),
        "when_label": "When",
        "agreed": "",
        "has_invitation": False,
    }


# --- calendar invitations -----------------------------------------------------------------------


def invitation_for(delivery: Delivery, facts: dict, recipient: User) -> Invitation | None:
    """The iTIP invitation a session email carries, or None.

    Only while the calendar entry is still the one the facts describe: once the session's
    sequence moved on, a later email carries the entry as it is now. The student's copy is
    organized by the coach; the coach's own copy by the site's sender on the coach's behalf (a
    calendar does not add an invitation it organized itself)."""
    method = facts.get("invitation")
    session = delivery.session
    if not method or session is None or session.sequence != facts.get("sequence"):
        return None
    start, end = parse_time(facts.get("start")), parse_time(facts.get("end"))
    if not (start and end):
        return None
    coach = (facts.get("coach", ""), facts.get("coach_email", ""))
    student = (facts.get("student", ""), facts.get("student_email", ""))
    if recipient.pk == facts.get("coach_id"):
        organizer, attendees, other = ical.site_sender(), [coach, student], student[0]
    else:
        organizer, attendees, other = coach, [student], coach[0]
    url = session_url(delivery.session_id)
    ics = ical.invitation_ics(
        session_id=delivery.session_id,
        start=start,
        end=end,
        summary=f"{facts.get('title', '')} with {other}",
        description=f"Coachbook session {facts.get('number')}. Details: {url}",
        url=url,
        organizer=organizer,
        attendees=attendees,
        sequence=facts["sequence"],
        method=method,
    )
    return Invitation(ics=ics, method=method)


# --- status changes -----------------------------------------------------------------------------


def _event_text(facts: dict, recipient: User, extra: dict) -> tuple[str, list[str]]:
    """(subject, lines) for `recipient` about the event in `facts`; `extra` holds the times
    already worded for the recipient."""
    coaching = recipient.pk == facts.get("coach_id")
    actor = facts.get("actor") or "Coachbook"
    coach, student = facts.get("coach", ""), facts.get("student", "")
    title, number = facts.get("title", ""), facts.get("number")
    when = f", {extra['short']}" if extra.get("short") else ""
    reason = (facts.get("reason") or "").strip()
    action = Action(facts["action"])
    invited = extra.get("invited", False)
    lines: list[str] = []
    other = student if coaching else coach

    if facts.get("invitation") and recipient.pk == facts.get("actor_id"):
        return _own_change_text(action, facts, other, when, invited)
    if action == Action.BOOK:
        subject = f"New request from {student}{when}"
        lines.append(f"{student} asked to book session {number} of “{title}”.")
        if extra.get("expires_at"):
            lines.append(f"Accept or decline it before {extra['expires_at']}, or it expires.")
    elif action == Action.WITHDRAW:
        subject = f"{student} withdrew their request{when}"
        lines.append(f"{student} withdrew their request. The time is open again.")
    elif action == Action.ACCEPT:
        subject = f"Confirmed: {title} with {coach}{when}"
        lines.append(f"{coach} accepted your request: the session is confirmed.")
        if invited:
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
    elif action in PROPOSING_ACTIONS:
        another = "another" if action == Action.COUNTER_PROPOSE else "a new"
        subject = f"{actor} proposed {another} time{when}"
        proposed = f" to {extra['proposed']}" if extra.get("proposed") else ""
        lines.append(f"{actor} would like to move session {number} of “{title}”{proposed}.")
        answer = "Confirm the new time, propose another one or keep the current time"
        if extra.get("expires_at"):
            answer += f" before {extra['expires_at']}"
        lines.append(f"{answer}.")
        if extra.get("agreed"):
            lines.append(f"Until a new time is agreed, the session stays at {extra['agreed']}.")
    elif action == Action.CONFIRM_RESCHEDULE:
        subject = f"New time confirmed{when}"
        lines.append(f"{actor} confirmed the new time: the session is confirmed again.")
        if invited:
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
        lines.append(f"Your session with {other} is marked as completed.")
    elif action == Action.CANCEL:
        subject = f"Session canceled: {title}{when}"
        lines.append(f"{actor} canceled session {number} of “{title}”.")
        refund, amount = facts.get("refund"), facts.get("refund_amount_cents")
        currency = facts.get("currency", "")
        if refund == "full" and amount is not None:
            lines.append(f"Full refund: {format_money(amount, currency)}.")
        elif refund == "partial" and amount is not None:
            lines.append(f"Partial refund: {format_money(amount, currency)}.")
        elif refund == "none":
            lines.append("No refund was issued.")
        if reason:
            lines.append(f"Their note: {reason}")
        if invited:
            lines.append("The attached cancellation removes it from your calendar.")
    else:  # pragma: no cover - every lifecycle action with an email is handled above
        subject = f"{title}: {action.label}"
    return subject, lines


def _own_change_text(
    action: Action, facts: dict, other: str, when: str, invited: bool
) -> tuple[str, list[str]]:
    """The actor's own copy of a change that moves calendars: brief, for the invitation."""
    title, number = facts.get("title", ""), facts.get("number")
    if action == Action.CANCEL:
        subject = f"Canceled: {title} with {other}{when}"
        lines = [f"You canceled session {number} of “{title}” with {other}."]
        calendar = "The attached cancellation removes it from your calendar."
    elif action == Action.CONFIRM_RESCHEDULE:
        subject = f"New time confirmed: {title} with {other}{when}"
        lines = [f"You confirmed the new time of session {number} of “{title}” with {other}."]
        calendar = "The attached invitation updates your calendar."
    else:
        subject = f"Confirmed: {title} with {other}{when}"
        lines = [f"You accepted session {number} of “{title}” with {other}."]
        calendar = "The attached invitation updates your calendar."
    if invited:
        lines.append(calendar)
    return subject, lines


def _session_event(delivery: Delivery, recipient: User, now: datetime) -> Email:
    facts = delivery.facts
    action = facts["action"]
    extra: dict = {}
    if facts.get("start"):
        extra["short"] = _short(facts, recipient)
    agreed = _when(facts, recipient, "agreed_") if action in PROPOSING_ACTIONS else ""
    if action in KEPT_ACTIONS:
        agreed = _when(facts, recipient)
    if agreed:
        extra["agreed"] = agreed
    if action in PROPOSING_ACTIONS and facts.get("start"):
        extra["proposed"] = _when(facts, recipient)
    expires = parse_time(facts.get("expires_at"))
    if expires is not None and expires > now:
        extra["expires_at"] = format_moment(expires, recipient)
    invitation = invitation_for(delivery, facts, recipient)
    extra["invited"] = invitation is not None
    subject, lines = _event_text(facts, recipient, extra)
    context = _base_context(delivery, facts, recipient)
    context.update(
        lines=lines,
        when_label="Proposed" if action in PROPOSING_ACTIONS else "When",
        agreed=extra.get("agreed", "") if action in PROPOSING_ACTIONS else "",
        has_invitation=invitation is not None,
    )
    headers = {"X-Coachbook-Event": str(delivery.event_id)} if delivery.event_id else {}
    return Email(
        recipient=recipient,
        subject=subject,
        context=context,
        template=DeliveryKind.SESSION_EVENT,
        invitation=invitation,
        headers=headers,
    )


# --- reminders and warnings ---------------------------------------------------------------------


def _reminder(delivery: Delivery, recipient: User, now: datetime) -> Email:
    facts = delivery.facts
    context = _base_context(delivery, facts, recipient)
    soon = until(parse_time(facts["start"]), now)
    other = context["other_name"]
    subject = f"Reminder: {facts.get('title', '')} with {other} {soon}"
    context["lines"] = [f"Your session with {other} starts {soon}."]
    return Email(
        recipient=recipient, subject=subject, context=context, template=DeliveryKind.REMINDER
    )


def _request_expiring(delivery: Delivery, recipient: User, now: datetime) -> Email:
    facts = delivery.facts
    context = _base_context(delivery, facts, recipient)
    expires = parse_time(facts["expires_at"])
    student, title = facts.get("student", ""), facts.get("title", "")
    deadline = format_moment(expires, recipient)
    subject = f"Answer soon: {student}'s request expires {until(expires, now)}"
    context["lines"] = [
        f"{student} asked to book session {facts.get('number')} of “{title}” at "
        f"{context['when']}, and the request is still waiting for your answer.",
        f"Accept or decline it before {deadline}; after that it expires and the time is open "
        "again.",
    ]
    context["deadline"] = deadline
    return Email(
        recipient=recipient,
        subject=subject,
        context=context,
        template=DeliveryKind.REQUEST_EXPIRING,
    )


def _proposal_expiring(delivery: Delivery, recipient: User, now: datetime) -> Email:
    facts = delivery.facts
    context = _base_context(delivery, facts, recipient)
    expires = parse_time(facts["expires_at"])
    proposer = facts.get("proposer", "")
    agreed = _when(facts, recipient, "agreed_")
    deadline = format_moment(expires, recipient)
    subject = f"Answer soon: the time {proposer} proposed expires {until(expires, now)}"
    context["lines"] = [
        f"{proposer} proposed to move session {facts.get('number')} of "
        f"“{facts.get('title', '')}” to {context['when']}.",
        f"Confirm it, propose another time or keep the current time before {deadline}. "
        f"If nobody answers, the session stays at {agreed}.",
    ]
    context.update(when_label="Proposed", agreed=agreed, deadline=deadline)
    return Email(
        recipient=recipient,
        subject=subject,
        context=context,
        template=DeliveryKind.PROPOSAL_EXPIRING,
    )


def _calendar_conflict(delivery: Delivery, recipient: User, now: datetime) -> Email:
    facts = delivery.facts
    context = _base_context(delivery, facts, recipient)
    busy = _when(facts, recipient, "busy_")
    student, title = facts.get("student", ""), facts.get("title", "")
    subject = f"Calendar conflict: {title} with {student}, {_short(facts, recipient)}"
    context["lines"] = [
        f"Your calendar now shows you busy {busy}, which overlaps your session with {student} "
        f"at {context['when']}.",
        "The session has not moved. Propose a new time to your student, or keep this time, "
        "from the session page.",
    ]
    context["busy"] = busy
    return Email(
        recipient=recipient,
        subject=subject,
        context=context,
        template=DeliveryKind.CALENDAR_CONFLICT,
    )


# --- credits about to expire ------------------------------------------------------------------


def _credits_expiring(delivery: Delivery, recipient: User, now: datetime) -> Email:
    facts = delivery.facts
    expires = parse_time(facts["expires_at"])
    unused, title, coach = facts.get("unused", 0), facts.get("title", ""), facts.get("coach", "")
    credits = f"{unused} session{'s' if unused != 1 else ''}"
    deadline = format_moment(expires, recipient)
    days = max(int((expires - now).total_seconds() // 86400), 0)
    soon = f"in {days} day{'s' if days != 1 else ''}" if days else "within a day"
    subject = f"Your {credits} of “{title}” expire {soon}"
    url = settings.SITE_URL
    if delivery.session_id:
        url = f"{settings.SITE_URL}{reverse('sessions:book', args=[delivery.session_id])}"
    context = {
        "title": title,
        "coach": coach,
        "credits": credits,
        "deadline": deadline,
        "package_id": facts.get("package_id"),
        "url": url,
        "cta": "Book a session",
        "lines": [
            f"You still have {credits} of “{title}” with {coach} to book. "
            f"{'They' if unused != 1 else 'It'} expire{'' if unused != 1 else 's'} on "
            f"{deadline}; after that {'they' if unused != 1 else 'it'} can no longer be booked.",
            "Book a time now, or ask your coach to extend them if you need longer. Sessions "
            "you have already booked are not affected.",
        ],
    }
    return Email(
        recipient=recipient,
        subject=subject,
        context=context,
        template=DeliveryKind.CREDITS_EXPIRING,
    )


# --- purchases ----------------------------------------------------------------------------------


def _purchase_context(delivery: Delivery, facts: dict, recipient: User) -> dict:
    return {
        "title": facts.get("title", ""),
        "session_count": facts.get("session_count"),
        "duration_minutes": facts.get("duration_minutes"),
        "price": format_money(facts.get("price_cents"), facts.get("currency", "")),
        "purchased": _moment(facts, "purchased_at", recipient),
        "package_id": facts.get("package_id"),
        "coach": facts.get("coach", ""),
        "student": facts.get("student", ""),
        "coaching": recipient.pk == facts.get("coach_id"),
        "url": session_url(delivery.session_id) if delivery.session_id else settings.SITE_URL,
    }


def _paid_by_line(facts: dict, coach: str) -> str:
    reference = facts.get("payment_reference")
    if facts.get("paid_by_card") and reference:
        return f"Paid by card (payment reference {reference})."
    return f"You settle the payment with {coach} directly."


def _purchase_receipt(delivery: Delivery, recipient: User, now: datetime) -> Email:
    context = _purchase_context(delivery, delivery.facts, recipient)
    subject = f"Receipt: {context['title']} from {context['coach']}"
    context["lines"] = [
        f"Thank you for buying “{context['title']}” from {context['coach']}.",
        f"You paid {context['price']} for {context['session_count']} sessions of "
        f"{context['duration_minutes']} minutes. Each session is a credit: pick a time for "
        "your first one from the session page.",
        _paid_by_line(delivery.facts, context["coach"]),
    ]
    expires = parse_time(delivery.facts.get("expires_at"))
    if expires is not None:
        context["lines"].append(
            f"Book them by {format_moment(expires, recipient)}: sessions not booked by then "
            "expire. You'll get a reminder 14 and 2 days before."
        )
    context["cta"] = "Book your first session"
    return Email(
        recipient=recipient,
        subject=subject,
        context=context,
        template=DeliveryKind.PURCHASE_RECEIPT,
    )


def _package_sold(delivery: Delivery, recipient: User, now: datetime) -> Email:
    context = _purchase_context(delivery, delivery.facts, recipient)
    subject = f"{context['student']} bought “{context['title']}”"
    context["lines"] = [
        f"{context['student']} bought “{context['title']}” ({context['session_count']} "
        f"sessions) for {context['price']}.",
        "They pick times from your availability; each request waits for your answer.",
    ]
    context["cta"] = "Open the first session"
    return Email(
        recipient=recipient, subject=subject, context=context, template=DeliveryKind.PACKAGE_SOLD
    )


BUILDERS: dict[str, Callable[[Delivery, User, datetime], Email]] = {
    DeliveryKind.SESSION_EVENT: _session_event,
    DeliveryKind.REMINDER: _reminder,
    DeliveryKind.PURCHASE_RECEIPT: _purchase_receipt,
    DeliveryKind.PACKAGE_SOLD: _package_sold,
    DeliveryKind.REQUEST_EXPIRING: _request_expiring,
    DeliveryKind.PROPOSAL_EXPIRING: _proposal_expiring,
    DeliveryKind.CALENDAR_CONFLICT: _calendar_conflict,
    DeliveryKind.CREDITS_EXPIRING: _credits_expiring,
}


def delivery_email(*, delivery: Delivery, now: datetime | None = None) -> Email:
    """The email `delivery` sends, built from its facts for its recipient (as they are now:
    their timezone, their address). `now` words "in 40 minutes" and drops passed deadlines."""
    now = now or timezone.now()
    email = BUILDERS[delivery.kind](delivery, delivery.recipient, now)
    email.headers.setdefault("X-Coachbook-Delivery", str(delivery.pk))
    # The same Message-ID on every attempt: should a worker die after the mail server took an
    # email but before the row was marked sent, the copy sent again is recognisably the same.
    email.headers.setdefault("Message-ID", message_id(delivery))
    return email


def message_id(delivery: Delivery) -> str:
    domain = ical.site_sender()[1].rpartition("@")[2] or "coachbook.local"
    return f"<delivery-{delivery.pk}.{int(delivery.created_at.timestamp())}@{domain}>"
