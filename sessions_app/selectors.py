"""Reads for sessions, scoped to whoever asks, with the joins that keep query counts flat."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from sessions_app.lifecycle import HOLDING_STATUSES, Action, Role, Status, allowed_actions
from sessions_app.models import ProposalStatus, RescheduleProposal, Session, SessionEvent


def slot_active_holders(*, slot) -> tuple[QuerySet, QuerySet]:
    """The sessions and pending proposals that hold `slot` (a slot, an id or an OuterRef)."""
    return (
        Session.objects.filter(slot=slot, status__in=HOLDING_STATUSES),
        RescheduleProposal.objects.filter(slot=slot, status=ProposalStatus.PENDING),
    )


def session_pending_proposal(*, session: Session) -> RescheduleProposal | None:
    return (
        RescheduleProposal.objects.select_related("slot", "proposed_by")
        .filter(session=session, status=ProposalStatus.PENDING)
        .first()
    )


def session_roles(
    *, session: Session, user, proposal: RescheduleProposal | None = None
) -> set[Role]:
    """The lifecycle roles `user` holds for `session` (empty for an outsider)."""
    if user is None:
        return {Role.SYSTEM}
    roles: set[Role] = set()
    if user.pk == session.coach_id:
        roles.add(Role.COACH)
    if user.pk == session.student_id:
        roles.add(Role.STUDENT)
    if roles and session.status == Status.RESCHEDULING:
        proposal = proposal or session_pending_proposal(session=session)
        if proposal is not None and proposal.proposed_by_id != user.pk:
            roles.add(Role.RESPONDER)
    return roles


def session_available_actions(*, session: Session, user) -> list[str]:
    """What `user` may do with `session` right now, as lifecycle action values."""
    return list(allowed_actions(session.status, session_roles(session=session, user=user)))


@dataclass(frozen=True)
class CancellationRate:
    canceled: int
    booked: int
    days: int

    @property
    def rate(self) -> float:
        return self.canceled / self.booked if self.booked else 0.0

    @property
    def percent(self) -> int:
        return round(self.rate * 100)


def coach_cancellation_rate(
    *, coach, days: int = 90, now: datetime | None = None
) -> CancellationRate:
    """Sessions the coach canceled after they had a time, over sessions booked, last `days`.

    Booked: distinct sessions of the coach with a `book` event in the window. Canceled: distinct
    sessions the coach canceled in the window from Requested, Confirmed or Rescheduling (an
    unused credit canceled costs no student a planned session). Two queries' worth in one.
    """
    since = (now or timezone.now()) - timedelta(days=days)
    counts = SessionEvent.objects.filter(session__coach=coach, created_at__gte=since).aggregate(
        booked=Count("session", filter=Q(action=Action.BOOK), distinct=True),
        canceled=Count(
            "session",
            filter=Q(
                action=Action.CANCEL,
                actor=coach,
                from_status__in=[Status.REQUESTED, Status.CONFIRMED, Status.RESCHEDULING],
            ),
            distinct=True,
        ),
    )
    return CancellationRate(canceled=counts["canceled"], booked=counts["booked"], days=days)


# --- pages (issue 3): lists scoped to the viewer ---------------------------------------------


def _awaiting_coach_proposal(*, coach, now: datetime) -> Exists:
    return Exists(
        RescheduleProposal.objects.filter(
            session=OuterRef("pk"), status=ProposalStatus.PENDING, expires_at__gt=now
        ).exclude(proposed_by=coach)
    )


def coach_tasks_filter(*, coach, now: datetime) -> Q:
    """Sessions waiting on `coach`: live requests and proposals the coach has to answer."""
    return Q(status=Status.REQUESTED, request_expires_at__gt=now) | (
        Q(status=Status.RESCHEDULING) & _awaiting_coach_proposal(coach=coach, now=now)
    )


def coach_task_count(*, coach, now: datetime | None = None) -> int:
    """How many sessions wait on `coach` (the Tasks badge): one COUNT query."""
    now = now or timezone.now()
    tasks = coach_tasks_filter(coach=coach, now=now)
    return Session.objects.filter(coach=coach).filter(tasks).count()
