"""Reads for sessions, scoped to whoever asks, with the joins that keep query counts flat."""

from django.db.models import QuerySet

from sessions_app.lifecycle import HOLDING_STATUSES, Role, Status, allowed_actions
from sessions_app.models import ProposalStatus, RescheduleProposal, Session


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
