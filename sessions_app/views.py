"""Pages for coaches and students: thin views over sessions_app.selectors and services.

Every change is a POST that calls exactly one service. A `DomainError` becomes a message (or a
form error on the cancel page), never a 500. A form carries the status (and the pending proposal)
the page showed, so a double submission or a stale page gets a clear message and changes nothing.
"""

from collections.abc import Callable
from datetime import date, datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from refunds.money import format_money
from refunds.selectors import session_refundable_cents
from sessions_app import selectors, services
from sessions_app.forms import CancelForm, DeclineForm, SlotChoiceForm
from sessions_app.lifecycle import Action, DomainError, Status
from sessions_app.models import Session

LIST_PAGE_SIZE = 25
SLOT_PAGE_SIZE = 40
TIME_FORMAT = "D j M Y, H:i T"


def home(request):
    """Coaches land on Tasks, students on My sessions, visitors on the landing page."""
    if request.user.is_authenticated:
        return redirect("sessions:tasks" if request.user.is_coach else "sessions:my_sessions")
    return render(request, "home.html")


# --- helpers ----------------------------------------------------------------------------------


def local(value: datetime | None) -> str:
    """A datetime as the viewer reads it: their timezone, with its abbreviation."""
    return date_format(timezone.localtime(value), TIME_FORMAT) if value else ""


def _coach_only(request):
    if not request.user.is_coach:
        messages.info(request, "Tasks, Upcoming and Completed are pages for coaches.")
        return redirect("sessions:my_sessions")
    return None


def _session_or_404(request, pk: int) -> Session:
    session = selectors.session_for_user(user=request.user, pk=pk)
    if session is None:
        raise Http404("No such session.")
    return session


def _next_url(request, session: Session) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("sessions:detail", args=[session.pk])


def _stale_message(request, session: Session) -> str | None:
    """Why the page the form came from no longer matches the session, or None."""
    seen_status = request.POST.get("seen_status")
    if seen_status and seen_status != session.status:
        label = Status(session.status).label if session.status in Status.values else "changed"
        return (
            f"This session changed since the page was loaded: it is now {label}. "
            "Nothing was done; check it and try again if needed."
        )
    seen_proposal = request.POST.get("seen_proposal")
    if seen_proposal:
        proposal = selectors.session_pending_proposal(session=session)
        if proposal is None or str(proposal.pk) != seen_proposal:
            return (
                "The proposed time changed since the page was loaded. "
                "Nothing was done; check the new proposal."
            )
    return None


def _act(request, pk: int, run: Callable[[Session], Session], success: Callable[[Session], str]):
    """Run one service on the viewer's session: stale pages and refusals become messages.

    `success` words the message from the session the service returned.
    """
    session = _session_or_404(request, pk)
    stale = _stale_message(request, session)
    if stale:
        messages.warning(request, stale)
        return redirect(_next_url(request, session))
    try:
        result = run(session)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success(result))
    return redirect(_next_url(request, session))


def _group_by_day(items, when: Callable) -> list[tuple[date | None, list]]:
    """[(local date, [items])] in the given order; items without a time group under None."""
    groups: list[tuple[date | None, list]] = []
    for item in items:
        moment = when(item)
        day = timezone.localtime(moment).date() if moment else None
        if not groups or groups[-1][0] != day:
            groups.append((day, []))
        groups[-1][1].append(item)
    return groups


def _page(request, queryset, size: int | None = None):
    """One page of `queryset`; a missing or malformed page number gives the first or last."""
    return Paginator(queryset, size or LIST_PAGE_SIZE).get_page(request.GET.get("page"))


def _describe(session: Session) -> str:
    when = local(session.slot.start) if session.slot_id else "no time yet"
    return f"{session.package.title} ({session.number} of {session.package.session_count}), {when}"


# --- coach lists ------------------------------------------------------------------------------


@login_required
@require_GET
def tasks(request):
    """Booking requests and reschedule proposals waiting on the coach, oldest expiry first."""
    if response := _coach_only(request):
        return response
    return render(
        request,
        "sessions_app/tasks.html",
        {"tasks": selectors.coach_tasks(coach=request.user)},
    )


@login_required
@require_GET
def upcoming(request):
    """Confirmed and rescheduling sessions from now on, grouped by day, paginated."""
    if response := _coach_only(request):
        return response
    page = _page(request, selectors.coach_upcoming_sessions(coach=request.user))
    days = _group_by_day(page.object_list, lambda s: s.slot.start if s.slot_id else None)
    return render(
        request, "sessions_app/upcoming.html", {"page_obj": page, "days": days, "tab": "upcoming"}
    )


@login_required
@require_GET
def completed(request):
    """Completed sessions, newest first, paginated."""
    if response := _coach_only(request):
        return response
    page = _page(request, selectors.coach_completed_sessions(coach=request.user))
    return render(request, "sessions_app/completed.html", {"page_obj": page, "tab": "completed"})


@login_required
@require_GET
def canceled(request):
    """Canceled sessions with what was refunded, newest first, paginated."""
    if response := _coach_only(request):
        return response
    page = _page(request, selectors.coach_canceled_sessions(coach=request.user))
    return render(request, "sessions_app/canceled.html", {"page_obj": page, "tab": "canceled"})


# --- student list -----------------------------------------------------------------------------


@login_required
@require_GET
def my_sessions(request):
    """A student's credits, requests, proposals to answer, upcoming and past sessions."""
    sections = selectors.student_session_sections(student=request.user)
    past = _page(request, selectors.student_past_sessions(student=request.user))
    return render(request, "sessions_app/my_sessions.html", {**vars(sections), "page_obj": past})


# --- one session ------------------------------------------------------------------------------


@login_required
@require_GET
def detail(request, pk: int):
    """Everything about one session, and only the actions the lifecycle allows now."""
    session = selectors.session_detail_for_user(user=request.user, pk=pk)
    if session is None:
        raise Http404("No such session.")
    proposal = session.pending_proposals[0] if session.pending_proposals else None
    actions = set(
        selectors.session_available_actions(session=session, user=request.user, proposal=proposal)
    )
    context = {
        "session": session,
        "actions": actions,
        "proposal": proposal,
        "as_coach": session.coach_id == request.user.pk,
        "refunded_cents": session.refunded_cents,
        "decline_form": DeclineForm(),
    }
    if Action.CANCEL in actions:
        context.update(_cancel_context(session, actions))
    return render(request, "sessions_app/detail.html", context)


def _cancel_context(session: Session, actions: set, form: CancelForm | None = None) -> dict:
    refundable = session_refundable_cents(session=session)
    return {
        "refundable_cents": refundable,
        "cancel_form": form or CancelForm(refundable_cents=refundable, currency=session.currency),
        "rate": selectors.coach_cancellation_rate(
            coach=session.coach, days=settings.CANCELLATION_RATE_DAYS
        ),
        "can_reschedule": Action.PROPOSE_RESCHEDULE in actions,
    }


@login_required
@require_http_methods(["GET", "POST"])
def cancel(request, pk: int):
    """The refund drawer as its own page (the detail page opens it as a <dialog>)."""
    session = _session_or_404(request, pk)
    if request.method == "POST" and (stale := _stale_message(request, session)):
        messages.warning(request, stale)
        return redirect("sessions:detail", pk=session.pk)
    actions = set(selectors.session_available_actions(session=session, user=request.user))
    if Action.CANCEL not in actions:
        messages.error(request, _cannot(session, "cancel"))
        return redirect("sessions:detail", pk=session.pk)
    form = None
    if request.method == "POST":
        refundable = session_refundable_cents(session=session)
        form = CancelForm(request.POST, refundable_cents=refundable, currency=session.currency)
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.session_cancel(
                    session=session,
                    actor=request.user,
                    refund=data["refund"],
                    amount_cents=data["amount_cents"],
                    reason=data["reason"],
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, _cancel_message(session, data))
                return redirect("sessions:detail", pk=session.pk)
    context = {"session": session, **_cancel_context(session, actions, form)}
    return render(request, "sessions_app/cancel.html", context)


def _cancel_message(session: Session, data: dict) -> str:
    if data["refund"] == "none":
        return "Session canceled without refund."
    refund = session.refunds.order_by("-created_at", "-id").first()
    amount = format_money(refund.amount_cents, refund.currency) if refund else ""
    kind = "full" if data["refund"] == "full" else "partial"
    return f"Session canceled with a {kind} refund of {amount}."


def _cannot(session: Session, verb: str) -> str:
    return f"You can't {verb} this session now: it is {session.get_status_display()}."


# --- choosing a time: book, reschedule, propose another time ----------------------------------

CHOOSERS = {
    "book": {
        "action": Action.BOOK,
        "verb": "book",
        "title": "Book a time",
        "intro": "Choose one of the coach's open times. The coach then accepts or declines it.",
        "button": "Book",
        "url": "sessions:book",
    },
    "reschedule": {
        "action": Action.PROPOSE_RESCHEDULE,
        "verb": "reschedule",
        "title": "Reschedule: choose a new time",
        "intro": "Propose one of the coach's open times. The other side confirms it or "
        "proposes another; until then the current time is released.",
        "button": "Propose",
        "url": "sessions:reschedule",
    },
    "counter": {
        "action": Action.COUNTER_PROPOSE,
        "verb": "propose another time for",
        "title": "Propose another time",
        "intro": "Pick a different open time instead of the one proposed to you.",
        "button": "Propose",
        "url": "sessions:counter_propose",
    },
}


def _chooser_url(request, url_name: str, session: Session) -> str:
    """Back to the chooser after a refusal, keeping where the person came from."""
    url = reverse(url_name, args=[session.pk])
    target = request.POST.get("next")
    return f"{url}?{urlencode({'next': target})}" if target else url


def _choose_slot(request, pk: int, kind: str):
    chooser = CHOOSERS[kind]
    session = _session_or_404(request, pk)
    actions = set(selectors.session_available_actions(session=session, user=request.user))
    if request.method == "POST":
        stale = _stale_message(request, session)
        if stale:
            messages.warning(request, stale)
            return redirect(_next_url(request, session))
    if chooser["action"] not in actions:
        messages.error(request, _cannot(session, chooser["verb"]))
        return redirect("sessions:detail", pk=session.pk)
    if request.method == "POST":
        form = SlotChoiceForm(request.POST)
        slot = None
        if form.is_valid():
            slot = selectors.session_slot_choice(session=session, slot_id=form.cleaned_data["slot"])
        if slot is None:
            messages.error(request, "That time is not one of the coach's open times. Pick another.")
            return redirect(_chooser_url(request, chooser["url"], session))
        run = {
            "book": services.session_book,
            "reschedule": services.session_propose_reschedule,
            "counter": services.session_counter_propose,
        }[kind]
        try:
            run(session=session, slot=slot, actor=request.user)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect(_chooser_url(request, chooser["url"], session))
        if kind == "book":
            messages.success(request, f"Requested {local(slot.start)}. The coach will answer.")
        else:
            messages.success(
                request, f"Proposed {local(slot.start)}. The other side confirms it or not."
            )
        return redirect(_next_url(request, session))
    page = _page(request, selectors.session_choosable_slots(session=session), SLOT_PAGE_SIZE)
    proposal = selectors.session_pending_proposal(session=session) if kind == "counter" else None
    context = {
        "session": session,
        "chooser": chooser,
        "page_obj": page,
        "days": _group_by_day(page.object_list, lambda slot: slot.start),
        "proposal": proposal,
        "action_url": reverse(chooser["url"], args=[session.pk]),
    }
    return render(request, "sessions_app/choose_slot.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def book(request, pk: int):
    """A student's credit: choose one of the coach's open times (session_book)."""
    return _choose_slot(request, pk, "book")


@login_required
@require_http_methods(["GET", "POST"])
def reschedule(request, pk: int):
    """Either side proposes a new time for a confirmed session (session_propose_reschedule)."""
    return _choose_slot(request, pk, "reschedule")


@login_required
@require_http_methods(["GET", "POST"])
def counter_propose(request, pk: int):
    """The side that did not propose offers another time (session_counter_propose)."""
    return _choose_slot(request, pk, "counter")


# --- one-click actions ------------------------------------------------------------------------


@login_required
@require_POST
def withdraw(request, pk: int):
    return _act(
        request,
        pk,
        lambda s: services.session_withdraw(session=s, actor=request.user),
        lambda s: f"Request withdrawn: {s.package.title} is a credit to book again.",
    )


@login_required
@require_POST
def accept(request, pk: int):
    return _act(
        request,
        pk,
        lambda s: services.session_accept(session=s, actor=request.user),
        lambda s: f"Accepted: {s.student.name}, {_describe(s)}.",
    )


@login_required
@require_POST
def decline(request, pk: int):
    form = DeclineForm(request.POST)
    if not form.is_valid():
        session = _session_or_404(request, pk)
        messages.error(request, "Keep the reason under 500 characters. Nothing was changed.")
        return redirect(_next_url(request, session))
    reason = form.cleaned_data["reason"]
    return _act(
        request,
        pk,
        lambda s: services.session_decline(session=s, actor=request.user, reason=reason),
        lambda s: f"Declined: {s.student.name} keeps the credit to book another time.",
    )


@login_required
@require_POST
def confirm_reschedule(request, pk: int):
    return _act(
        request,
        pk,
        lambda s: services.session_confirm_reschedule(session=s, actor=request.user),
        lambda s: f"New time confirmed: {local(s.slot.start)}.",
    )
