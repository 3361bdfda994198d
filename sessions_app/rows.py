"""Display values of a coach's day-grouped lists (Upcoming, Completed), computed once per row.

The list templates then only print strings: no include per row, no filter chains, no URL
reversing inside a loop (issue 14: on Upcoming, rendering was 60 % of the time). What a row
says is the same as the shared row partial's (`_partials/session_row.html`): the agreed time
under its day, the proposal and who it waits for, the student, the package and its position,
the status badge, the row's action and its Details link. `cached_day_table` renders a page's
table once for the same viewer and rows.
"""

import hashlib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from urllib.parse import quote

from django.core.cache import cache
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from core import times
from sessions_app.lifecycle import Status

# The symbol beside each status word (colour is never the only signal); `status_badge.html`
# reads it through the `status_icon` filter.
STATUS_ICONS = {
    Status.UNSCHEDULED: "○",
    Status.REQUESTED: "?",
    Status.CONFIRMED: "✓",
    Status.RESCHEDULING: "↻",
    Status.COMPLETED: "●",
    Status.CANCELED: "✕",
}


@dataclass(frozen=True)
class Proposed:
    label: str  # "Wed 16 Jan, 13:00-14:00 CET"
    iso: str
    note: str  # "waiting for Ada" / "proposed by Ada; answer by ..."


@dataclass(frozen=True)
class Row:
    pk: int
    clock: str  # "10:00-11:00", under the day row
    start_iso: str
    proposed: Proposed | None
    student: str
    title: str
    number: int
    position: str  # "(2 of 5)"
    status: str  # "confirmed": the badge's modifier
    status_label: str
    status_icon: str
    detail_url: str
    # The row's action: "reschedule", "answer" (the other side proposed) or "withdraw" (the
    # coach proposed); "" for none. `guard`: the hidden fields of its forms.
    action: str
    action_urls: dict
    guard: SafeString

    def __getitem__(self, name: str):
        # Django's templates try `row[name]` first; answering it saves a caught TypeError
        # per variable per row.
        return getattr(self, name)


# `_partials/guard_fields.html` as one string per row: CSRF, what the page showed, and where to
# go back to, so a stale page or a double submit changes nothing.
_GUARD = (
    '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
    '<input type="hidden" name="seen_status" value="{}">'
    '<input type="hidden" name="seen_slot" value="{}">'
    '<input type="hidden" name="seen_proposal" value="{}">'
    '<input type="hidden" name="next" value="{}">'
)


_PK = 2_147_483_646  # a placeholder id in a reversed URL, replaced by each row's


@lru_cache(maxsize=32)
def _url_pattern(name: str) -> str:
    """A session URL reversed once, with `_PK` in place of the id (URLs are fixed at start)."""
    return reverse(name, args=[_PK])


def _urls(name: str, pk: int) -> str:
    """`reverse(name, args=[pk])` without resolving each time: a list page needs ~70."""
    return _url_pattern(name).replace(str(_PK), str(pk), 1)


def coach_row(session, *, coach_id: int, back: str, next_path: str, csrf_token: str) -> Row:
    """One session of a coach's list (slot, package and student loaded; on Upcoming the
    pending proposal prefetched as `pending_proposals`)."""
    proposal = (getattr(session, "pending_proposals", None) or [None])[0]
    proposed = None
    action, action_urls = "", {}
    next_query = f"?next={quote(next_path, safe='')}"
    if proposal is not None:
        if proposal.proposed_by_id == coach_id:
            note = f"waiting for {session.student.name}"
            action = "withdraw"
            action_urls = {"withdraw": _urls("sessions:withdraw_proposal", session.pk)}
        else:
            note = (
                f"proposed by {proposal.proposed_by.name}; answer by "
                f"{times.moment_label(proposal.expires_at)}"
            )
            action = "answer"
            action_urls = {
                "confirm": _urls("sessions:confirm_reschedule", session.pk),
                "counter": _urls("sessions:counter_propose", session.pk) + next_query,
                "decline": _urls("sessions:decline_reschedule", session.pk),
            }
        proposed = Proposed(
            label=times.slot_label(proposal.slot),
            iso=timezone.localtime(proposal.slot.start).isoformat(),
            note=note,
        )
    elif session.status == Status.CONFIRMED and session.slot_id:
        action = "reschedule"
        action_urls = {"reschedule": _urls("sessions:reschedule", session.pk) + next_query}
    start, end = session.starts_at, session.ends_at
    return Row(
        pk=session.pk,
        clock=times.clock_range(start, end) if start else "",
        start_iso=timezone.localtime(start).isoformat() if start else "",
        proposed=proposed,
        student=session.student.name,
        title=session.package.title,
        number=session.number,
        position=f"({session.number} of {session.package.session_count})",
        status=session.status.lower(),
        status_label=session.get_status_display(),
        status_icon=STATUS_ICONS.get(session.status, "○"),
        detail_url=f"{_urls('sessions:detail', session.pk)}?from={back}",
        action=action,
        action_urls=action_urls,
        guard=format_html(
            _GUARD,
            csrf_token,
            session.status,
            session.slot_id or "",
            proposal.pk if proposal is not None else "",
            next_path,
        )
        if action in ("answer", "withdraw")
        else SafeString(""),
    )


# A rendered day table is kept this long at most (a student renaming themselves changes no
# session, so their new name shows within this time).
DAY_TABLE_SECONDS = 600
DAY_TABLE_VERSION = 1  # raise when `_day_table.html` or a Row changes


def day_table_key(request, marks: list[tuple], tab: str) -> str:
    """The cache key of one rendered day table: who sees it (their CSRF secret, since its forms
    carry a token for it), in which zone and on which day (the headings), the page's URL
    (cursor and filters, and where its actions return), and what each row shows (`marks`:
    id, last change, pending proposal of each row, from `session_marks` or the list's
    stamps)."""
    parts = [
        DAY_TABLE_VERSION,
        tab,
        request.user.pk,
        request.META.get("CSRF_COOKIE", ""),
        timezone.get_current_timezone_name(),
        timezone.localdate().isoformat(),
        request.get_full_path(),
        *((pk, updated_at.isoformat(), proposal_id) for pk, updated_at, proposal_id in marks),
    ]
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()
    return f"daytable:{request.user.pk}:{digest}"


def session_marks(days: list[tuple[date | None, list]]) -> list[tuple]:
    """(id, last change, pending proposal id) of each session of a grouped page (pending
    proposals given by `selectors.with_pending_proposals`): what `day_table_key` keys on."""
    marks = []
    for _day, sessions in days:
        for session in sessions:
            proposal = (getattr(session, "pending_proposals", None) or [None])[0]
            marks.append((session.pk, session.updated_at, proposal and proposal.pk))
    return marks


def coach_day_rows(request, days: list[tuple[date | None, list]], *, back: str) -> list:
    """`(day heading, rows)` for each day of a grouped page ("Not scheduled" for no day), for
    the coach viewing it; actions return to the page as it is now."""
    context = {
        "coach_id": request.user.pk,
        "back": back,
        "next_path": request.get_full_path(),
        "csrf_token": get_token(request),
    }
    return [
        (
            times.day_label(day, long=True) if day else "Not scheduled",
            [coach_row(session, **context) for session in sessions],
        )
        for day, sessions in days
    ]


DAY_TABLE_CAPTIONS = {
    "upcoming": "Upcoming sessions by day, soonest first",
    "completed": "Completed sessions by day, newest first",
}


def day_table_from_cache(request, marks: list[tuple], tab: str) -> SafeString | None:
    """The table rendered before for the same viewer and rows (`day_table_key`), or None."""
    get_token(request)  # the cached forms carry a token for this secret; keep its cookie set
    html = cache.get(day_table_key(request, marks, tab))
    return None if html is None else mark_safe(html)  # our own template escaped every value


def cached_day_table(request, days, tab: str) -> SafeString:
    """The page's table, rendered from display rows, or the same table rendered before for
    the same viewer and rows (`rows.day_table_key`): a reload costs the list query only."""
    get_token(request)  # the cached forms carry a token for this secret; keep its cookie set
    key = day_table_key(request, session_marks(days), tab)
    html = cache.get(key)
    if html is None:
        context = {
            "day_rows": coach_day_rows(request, days, back=tab),
            "caption": DAY_TABLE_CAPTIONS[tab],
        }
        html = render_to_string("sessions_app/_day_table.html", context, request)
        cache.set(key, html, DAY_TABLE_SECONDS)
    return mark_safe(html)  # rendered by our own template, which escaped every value
