"""The session lifecycle: statuses, actions, who may act, and the one table of transitions.

Nothing but `sessions_app.services._transition` (and the set-based sweeps that apply the same
rows in bulk) changes a session's status. This module imports no models, so templates, forms,
tasks and other apps can import it freely.
"""

from dataclasses import dataclass

from django.db import models

# The refusals live in the shared kernel; re-exported here for code that imported them from
# the lifecycle before `core` existed. New code imports them from `core.errors`.
from core.errors import DomainError, PermissionDenied  # noqa: F401


class TransitionNotAllowed(DomainError):
    default_message = "This session cannot do that in its current state."


class Status(models.TextChoices):
    UNSCHEDULED = "UNSCHEDULED", "Unscheduled"
    REQUESTED = "REQUESTED", "Requested"
    CONFIRMED = "CONFIRMED", "Confirmed"
    RESCHEDULING = "RESCHEDULING", "Rescheduling"
    COMPLETED = "COMPLETED", "Completed"
    CANCELED = "CANCELED", "Canceled"


class Action(models.TextChoices):
    CREATE = "create", "Purchased"
    BOOK = "book", "Booked"
    WITHDRAW = "withdraw", "Withdrawn"
    ACCEPT = "accept", "Accepted"
    DECLINE = "decline", "Declined"
    EXPIRE = "expire", "Request expired"
    PROPOSE_RESCHEDULE = "propose_reschedule", "Reschedule proposed"
    CONFIRM_RESCHEDULE = "confirm_reschedule", "New time confirmed"
    COUNTER_PROPOSE = "counter_propose", "Another time proposed"
    DECLINE_RESCHEDULE = "decline_reschedule", "Current time kept"
    WITHDRAW_PROPOSAL = "withdraw_proposal", "Proposal withdrawn"
    EXPIRE_RESCHEDULE = "expire_reschedule", "Proposal expired"
    COMPLETE = "complete", "Completed"
    CANCEL = "cancel", "Canceled"
    # A make-up credit the student turns into a full refund (coach-side "student's choice").
    REFUND_CREDIT = "refund_credit", "Make-up credit refunded"
    # Attendance, after the session's end: recorded as events, status kept (issue 15).
    MARK_ATTENDED = "mark_attended", "Marked attended"
    MARK_NO_SHOW = "mark_no_show", "Student didn't show"
    REPORT_COACH_NO_SHOW = "report_coach_no_show", "Coach no-show reported"
    DISPUTE_COACH_NO_SHOW = "dispute_coach_no_show", "Coach no-show disputed"


# Attendance actions record what happened at a held session; they change no status, so they
# are no rows of the table below (`sessions_app.services` checks who may record what).
ATTENDANCE_ACTIONS = (
    Action.MARK_ATTENDED,
    Action.MARK_NO_SHOW,
    Action.REPORT_COACH_NO_SHOW,
    Action.DISPUTE_COACH_NO_SHOW,
)


class Attendance(models.TextChoices):
    """Whether a held session took place, as the coach marked it or the student reported."""

    UNRECORDED = "", "Not recorded"
    ATTENDED = "ATTENDED", "Attended"
    STUDENT_NO_SHOW = "STUDENT_NO_SHOW", "Student didn't show"
    COACH_NO_SHOW_REPORTED = "COACH_NO_SHOW_REPORTED", "Coach didn't show (reported)"
    COACH_NO_SHOW_DISPUTED = "COACH_NO_SHOW_DISPUTED", "Coach no-show disputed"
    COACH_NO_SHOW = "COACH_NO_SHOW", "Coach didn't show"


class Role(models.TextChoices):
    STUDENT = "student", "Student"
    COACH = "coach", "Coach"
    # The party (coach or student) who did not make the pending reschedule proposal.
    RESPONDER = "responder", "The other side"
    # The party who made the pending reschedule proposal.
    PROPOSER = "proposer", "The side that proposed"
    SYSTEM = "system", "System"


@dataclass(frozen=True)
class Transition:
    source: Status
    action: Action
    target: Status
    roles: frozenset[Role]


def _rows(sources, action, target, *roles):
    return [Transition(source, action, target, frozenset(roles)) for source in sources]


S = Status
TRANSITIONS: dict[tuple[Status, Action], Transition] = {
    (t.source, t.action): t
    for t in [
        *_rows([S.UNSCHEDULED], Action.BOOK, S.REQUESTED, Role.STUDENT),
        *_rows([S.REQUESTED], Action.WITHDRAW, S.UNSCHEDULED, Role.STUDENT),
        *_rows([S.REQUESTED], Action.ACCEPT, S.CONFIRMED, Role.COACH),
        *_rows([S.REQUESTED], Action.DECLINE, S.UNSCHEDULED, Role.COACH),
        *_rows([S.REQUESTED], Action.EXPIRE, S.UNSCHEDULED, Role.SYSTEM),
        *_rows([S.CONFIRMED], Action.PROPOSE_RESCHEDULE, S.RESCHEDULING, Role.COACH, Role.STUDENT),
        *_rows([S.RESCHEDULING], Action.CONFIRM_RESCHEDULE, S.CONFIRMED, Role.RESPONDER),
        *_rows([S.RESCHEDULING], Action.COUNTER_PROPOSE, S.RESCHEDULING, Role.RESPONDER),
        *_rows([S.RESCHEDULING], Action.DECLINE_RESCHEDULE, S.CONFIRMED, Role.RESPONDER),
        *_rows([S.RESCHEDULING], Action.WITHDRAW_PROPOSAL, S.CONFIRMED, Role.PROPOSER),
        *_rows([S.RESCHEDULING], Action.EXPIRE_RESCHEDULE, S.CONFIRMED, Role.SYSTEM),
        *_rows([S.CONFIRMED], Action.COMPLETE, S.COMPLETED, Role.SYSTEM),
        *_rows([S.UNSCHEDULED, S.REQUESTED, S.COMPLETED], Action.CANCEL, S.CANCELED, Role.COACH),
        # A student cancels a booked session themselves, under the coach's policy (issue 15).
        *_rows([S.CONFIRMED, S.RESCHEDULING], Action.CANCEL, S.CANCELED, Role.COACH, Role.STUDENT),
        *_rows([S.UNSCHEDULED], Action.REFUND_CREDIT, S.CANCELED, Role.STUDENT),
    ]
}

# Statuses in which a session holds its time (`Session.slot`): HELD while requested, BOOKED
# once confirmed, and still BOOKED while a new time is being agreed.
HOLDING_STATUSES = (Status.REQUESTED, Status.CONFIRMED, Status.RESCHEDULING)
# Statuses in which a session's time has been put on calendars (feed and invitations): its
# cancellation is published, with SEQUENCE raised.
PUBLISHED_STATUSES = (Status.CONFIRMED, Status.RESCHEDULING, Status.COMPLETED)
# Statuses listed under Upcoming: an agreed time, possibly being moved.
UPCOMING_STATUSES = (Status.CONFIRMED, Status.RESCHEDULING)
# Statuses a session ends in: a student's past sessions.
ENDED_STATUSES = (Status.COMPLETED, Status.CANCELED)

_VERBS = {
    Action.BOOK: "book",
    Action.WITHDRAW: "withdraw",
    Action.ACCEPT: "accept",
    Action.DECLINE: "decline",
    Action.EXPIRE: "expire",
    Action.PROPOSE_RESCHEDULE: "reschedule",
    Action.CONFIRM_RESCHEDULE: "confirm a new time for",
    Action.COUNTER_PROPOSE: "propose another time for",
    Action.DECLINE_RESCHEDULE: "keep the current time of",
    Action.WITHDRAW_PROPOSAL: "withdraw the proposal of",
    Action.EXPIRE_RESCHEDULE: "expire the proposal of",
    Action.COMPLETE: "complete",
    Action.CANCEL: "cancel",
    Action.REFUND_CREDIT: "refund",
}
_REFUSALS = {
    Status.CANCELED: "This session was canceled; it cannot change any more.",
    Status.COMPLETED: "This session is already completed.",
}


def transition_for(status: str, action: str) -> Transition:
    """The table row for `action` from `status`, or `TransitionNotAllowed` with a reason."""
    row = TRANSITIONS.get((Status(status), Action(action)))
    if row is None:
        label = Status(status).label.lower()
        article = "an" if label[0] in "aeiou" else "a"
        reason = _REFUSALS.get(Status(status)) or (
            f"You can't {_VERBS.get(Action(action), action)} {article} {label} session."
        )
        raise TransitionNotAllowed(reason)
    return row


def allowed_actions(status: str, roles: set[Role]) -> list[Action]:
    """The actions the table allows from `status` to someone holding `roles`."""
    return [
        row.action
        for (source, _), row in TRANSITIONS.items()
        if source == status and row.roles & roles
    ]
