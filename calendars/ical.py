"""The one iCalendar event builder: the subscription feed and the emailed invitations use it.

A session is one calendar event everywhere: UID `session-<id>@coachbook`, `SEQUENCE` =
`Session.sequence` (raised on every agreed new time and on cancellation), times in UTC. The
feed (`calendars.feeds`) publishes these events as a subscription (a PUBLISH-style snapshot,
no ORGANIZER or ATTENDEE); emails carry them as real iTIP (RFC 5546) messages:

- `METHOD:REQUEST` on confirmation and on every agreed new time (same UID, higher SEQUENCE),
  so Gmail, Outlook and Apple Calendar add the event and later move it in place;
- `METHOD:CANCEL` (`STATUS:CANCELLED`) on cancellation, so they remove it.

ORGANIZER and ATTENDEE, and why. An iTIP message needs both, as calendar addresses
(`mailto:`). The organizer is the coach: `ORGANIZER;CN="Carla Coach";SENT-BY="mailto:<site
sender>":mailto:carla@...`. The email itself comes from the site's `DEFAULT_FROM_EMAIL`, so the
builder adds `SENT-BY` (RFC 5545 3.2.18: a calendar user acting on the organizer's behalf)
whenever the organizer's address is not the site's sender: that is how a calendar tells "sent
on behalf of", and Gmail, Outlook and Apple Calendar all accept an organizer that differs from
the From address (booking tools send invitations this way). A copy for the coach themself names
the site's sender as organizer (`site_sender()`) and the coach as attendee, because a calendar
receiving an invitation "from itself" treats it as its own event and does not add it. Attendees
are `ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;RSVP=FALSE`: both sides agreed the time in
Coachbook, so nobody is asked to reply (a reply would go to a no-reply mailbox).

MIME (`attach_invitation`): the calendar goes inline as the last part of the
multipart/alternative (after text and HTML), `text/calendar; method=REQUEST; charset="utf-8"`
(one charset: the mail library adds it, so it is never passed in the type), which is the part
Gmail and Outlook read to show the event card and add, move or remove the event; and once more
as an `invite.ics` attachment of type `application/ics`, the way Google Calendar sends its own
invitations: clients that ignore the inline part (and people) can open it, and Outlook does not
treat a second `text/calendar` part as a second invitation.
"""

from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parseaddr

import icalendar
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from accounts.models import one_line

PRODID = "-//Coachbook//Coachbook sessions//EN"
METHODS = ("REQUEST", "CANCEL")
STATUSES = ("CONFIRMED", "TENTATIVE", "CANCELLED")
INVITATION_FILENAME = "invite.ics"
INVITATION_ATTACHMENT_TYPE = f'application/ics; name="{INVITATION_FILENAME}"'


def session_uid(session_id: int) -> str:
    """The iCalendar UID of a session, shared by the feed and the emailed invitations."""
    return f"session-{session_id}@coachbook"


def site_sender() -> tuple[str, str]:
    """(name, address) of the site's sender, `DEFAULT_FROM_EMAIL` ("Coachbook <no-reply@...>")."""
    name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    return (name or "Coachbook", address)


def _utc(value: datetime) -> datetime:
    if timezone.is_naive(value):
        raise ValueError(f"calendar times must be aware datetimes, not {value!r}")
    return value.astimezone(UTC)


def _address(name: str, email: str) -> icalendar.vCalAddress:
    if not email or any(char.isspace() for char in email):
        raise ValueError(f"not a calendar address: {email!r}")
    address = icalendar.vCalAddress(f"mailto:{email}")
    cleaned = one_line(name or "")
    if cleaned:
        address.params["CN"] = cleaned
    return address


def _organizer(name: str, email: str) -> icalendar.vCalAddress:
    organizer = _address(name, email)
    sender = site_sender()[1]
    if sender and sender.lower() != email.lower():
        organizer.params["SENT-BY"] = f"mailto:{sender}"
    return organizer


def _attendee(name: str, email: str) -> icalendar.vCalAddress:
    attendee = _address(name, email)
    attendee.params["CUTYPE"] = "INDIVIDUAL"
    attendee.params["ROLE"] = "REQ-PARTICIPANT"
    attendee.params["PARTSTAT"] = "ACCEPTED"
    attendee.params["RSVP"] = "FALSE"
    return attendee


def session_vevent(
    *,
    session_id: int,
    start: datetime,
    end: datetime,
    summary: str,
    description: str,
    url: str,
    sequence: int,
    status: str = "CONFIRMED",
    organizer: tuple[str, str] | None = None,
    attendees: Iterable[tuple[str, str]] = (),
    stamp: datetime | None = None,
) -> icalendar.Event:
    """The VEVENT of a session: UID, SEQUENCE, DTSTAMP (`stamp`, else now), DTSTART/DTEND in
    UTC, SUMMARY, DESCRIPTION, URL, STATUS (CONFIRMED, TENTATIVE or CANCELLED; a cancelled
    event is TRANSPARENT) and, when given, ORGANIZER and ATTENDEEs as (name, email) pairs."""
    status = status.upper()
    if status not in STATUSES:
        raise ValueError(f"unknown event status {status!r}; one of {', '.join(STATUSES)}")
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise ValueError("an event ends after it starts")
    event = icalendar.Event()
    event.add("uid", session_uid(session_id))
    event.add("sequence", int(sequence))
    event.add("dtstamp", _utc(stamp or timezone.now()))
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", summary)
    event.add("description", description)
    event.add("url", url)
    event.add("status", status)
    event.add("transp", "TRANSPARENT" if status == "CANCELLED" else "OPAQUE")
    if organizer is not None:
        event.add("organizer", _organizer(*organizer))
    for name, email in attendees:
        event.add("attendee", _attendee(name, email))
    return event


def invitation_ics(
    *,
    session_id: int,
    start: datetime,
    end: datetime,
    summary: str,
    description: str,
    url: str,
    organizer: tuple[str, str],
    attendees: Iterable[tuple[str, str]],
    sequence: int,
    method: str,
) -> bytes:
    """An iTIP message (RFC 5546) for one session: a VCALENDAR with PRODID, VERSION and METHOD
    (REQUEST: add or move the event, STATUS:CONFIRMED; CANCEL: remove it, STATUS:CANCELLED)
    around the session's event, stamped now. Every change must carry a higher `sequence` than
    the last message about the same session, or calendars ignore it."""
    method = _method(method)
    attendees = list(attendees)
    if not attendees:
        raise ValueError("an invitation needs at least one attendee")
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    calendar.add_component(
        session_vevent(
            session_id=session_id,
            start=start,
            end=end,
            summary=summary,
            description=description,
            url=url,
            sequence=sequence,
            status="CANCELLED" if method == "CANCEL" else "CONFIRMED",
            organizer=organizer,
            attendees=attendees,
        )
    )
    return calendar.to_ical()


def _method(method: str) -> str:
    method = (method or "").upper()
    if method not in METHODS:
        raise ValueError(f"unknown iTIP method {method!r}; one of {', '.join(METHODS)}")
    return method


def invitation_content_type(method: str) -> str:
    """The inline part's type as given to Django; the mail library appends `charset="utf-8"`
    itself (passing a charset here too is what produced two of them)."""
    return f"text/calendar; method={_method(method)}"


def attach_invitation(*, message: EmailMultiAlternatives, ics: bytes, method: str) -> None:
    """Add `ics` (from `invitation_ics`) to `message`: inline as the last alternative,
    `text/calendar; method=<METHOD>; charset="utf-8"`, and attached as `invite.ics`
    (`application/ics; name="invite.ics"`). `method` must be the one inside `ics`."""
    content_type = invitation_content_type(method)
    text = ics.decode("utf-8") if isinstance(ics, bytes) else ics
    message.attach_alternative(text, content_type)
    message.attach(INVITATION_FILENAME, text.encode("utf-8"), INVITATION_ATTACHMENT_TYPE)


# --- the feed's writer --------------------------------------------------------------------------
#
# The feed writes its events as text rather than through icalendar: building and serializing
# icalendar objects was 80 % of a feed's time (about 0.2 ms an event), and a feed carries up to
# a year of sessions. The writer emits exactly what icalendar's `to_ical()` gives for the event
# `session_vevent` builds (same properties, order, escaping and folding), and a test holds the
# two byte for byte, so the feed and the invitations still show one event.

# RFC 5545 3.1: a content line SHOULD be at most 75 octets; icalendar (and so this writer) puts
# at most 74 on each physical line, after the leading space on continuation lines.
FOLD_OCTETS = 74
# Control characters are not allowed in TEXT (RFC 5545 3.3.11), except HTAB; line breaks are
# escaped as \n, the others dropped.
_CONTROLS = {code: None for code in [*range(0x00, 0x09), *range(0x0B, 0x0D), *range(0x0E, 0x20)]}
_CONTROLS[0x7F] = None


def ics_text(value: str) -> str:
    """`value` as an RFC 5545 TEXT value: backslash, semicolon and comma escaped, every line
    break (CRLF, LF or CR) written `\\n`, other control characters dropped."""
    escaped = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    if escaped.isprintable():  # a quick test that there is no control character or line break
        return escaped
    return (
        escaped.replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
        .translate(_CONTROLS)
    )


def ics_utc(value: datetime) -> str:
    """An aware datetime as an RFC 5545 UTC DATE-TIME (`20250303T090000Z`, whole seconds)."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"calendar times must be aware datetimes, not {value!r}")
    if offset:
        value = value.astimezone(UTC)
    # %-formatting: over three times as fast as strftime, and a feed formats thousands.
    return "%04d%02d%02dT%02d%02d%02dZ" % (  # noqa: UP031
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
    )


def _fold(line: bytes) -> bytes:
    """One content line folded (RFC 5545 3.1): at most FOLD_OCTETS octets a physical line, cut
    between UTF-8 characters, never right after a backslash or caret (some clients do not
    unfold an escape split in two; icalendar keeps them whole the same way)."""
    parts = []
    start, length = 0, len(line)
    while length - start > FOLD_OCTETS:
        end = start + FOLD_OCTETS
        while line[end] & 0xC0 == 0x80:  # a UTF-8 continuation byte: cut before its character
            end -= 1
        last = end - 1
        while line[last] & 0xC0 == 0x80:
            last -= 1
        if line[last] in b"\\^" and last > start:
            end = last
        parts.append(line[start:end])
        start = end
    parts.append(line[start:])
    return b"\r\n ".join(parts)


def ics_fold(line: str) -> str:
    """`line` folded for an iCalendar stream (see `_fold`); most lines come back as they are."""
    if len(line) <= FOLD_OCTETS and line.isascii():
        return line
    encoded = line.encode("utf-8")
    if len(encoded) <= FOLD_OCTETS:
        return line
    return _fold(encoded).decode("utf-8")


def ics_lines(lines: Iterable[str]) -> bytes:
    """Content lines as an iCalendar stream: UTF-8, each folded, each ended by CRLF."""
    return ("\r\n".join(map(ics_fold, lines)) + "\r\n").encode("utf-8")


def session_vevent_lines(
    *,
    session_id: int,
    start: datetime,
    end: datetime,
    summary: str,
    description: str,
    url: str,
    sequence: int,
    status: str,
    stamp: datetime,
    created: datetime,
    last_modified: datetime,
) -> list[str]:
    """The content lines (unfolded) of the VEVENT `session_vevent` builds for a subscription
    (no ORGANIZER or ATTENDEE) with CREATED and LAST-MODIFIED added, in icalendar's order."""
    status = status.upper()
    if status not in STATUSES:
        raise ValueError(f"unknown event status {status!r}; one of {', '.join(STATUSES)}")
    if end <= start:  # aware datetimes compare as instants (a naive one raises below)
        raise ValueError("an event ends after it starts")
    if "\r" in url or "\n" in url:
        raise ValueError(f"not a URL: {url!r}")
    stamped = ics_utc(stamp)
    return [
        "BEGIN:VEVENT",
        f"SUMMARY:{ics_text(summary)}",
        f"DTSTART:{ics_utc(start)}",
        f"DTEND:{ics_utc(end)}",
        f"DTSTAMP:{stamped}",
        f"UID:{session_uid(session_id)}",
        f"SEQUENCE:{int(sequence)}",
        f"CREATED:{ics_utc(created)}",
        f"DESCRIPTION:{ics_text(description)}",
        f"LAST-MODIFIED:{stamped if last_modified == stamp else ics_utc(last_modified)}",
        f"STATUS:{status}",
        f"TRANSP:{'TRANSPARENT' if status == 'CANCELLED' else 'OPAQUE'}",
        f"URL:{url}",
        "END:VEVENT",
    ]
