"""The transition table, row by row, through the real services on a frozen clock.

Every row of `TRANSITIONS` moves a session to its target, writes exactly one `SessionEvent` and
leaves the reservations the table describes; every action the table lacks is refused in every
status; the wrong side and outsiders are refused; a refusal changes nothing.
"""

from datetime import UTC, datetime

import pytest
import time_machine

from calendars.models import ACTIVE_SLOT_STATUSES, TimeSlot
from policies.services import policy_update
from refunds.models import Refund
from sessions_app import services
from sessions_app.lifecycle import (
    ATTENDANCE_ACTIONS,
    TRANSITIONS,
    Action,
    PermissionDenied,
    Role,
    Status,
    Transition,
    TransitionNotAllowed,
    allowed_actions,
)
from sessions_app.models import RescheduleProposal, Session, SessionEvent
from sessions_app.selectors import session_available_actions
from tests.factories import CoachFactory, StudentFactory, make_session, next_free_start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("coaches_decide_refunds")]

# A Monday morning; the fresh times `next_free_start` hands out lie days after it.
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


SYSTEM_ACTIONS = (Action.EXPIRE, Action.EXPIRE_RESCHEDULE, Action.COMPLETE)
# Every action a person performs through a service (all but purchase and the sweeps' actions).
USER_ACTIONS = [
    action
    for action in Action
    if action != Action.CREATE and action not in SYSTEM_ACTIONS and action not in ATTENDANCE_ACTIONS
]
USER_ROWS = [row for row in TRANSITIONS.values() if Role.SYSTEM not in row.roles]
SYSTEM_ROWS = [row for row in TRANSITIONS.values() if Role.SYSTEM in row.roles]


def perform(action: Action, session, actor):
    """Call the service for `action`; booking and proposals ask for a fresh bookable start."""

    def start():
        return next_free_start(session.coach, session.package.duration_minutes)

    calls = {
        Action.BOOK: lambda: services.session_book(session=session, start=start(), actor=actor),
        Action.WITHDRAW: lambda: services.session_withdraw(session=session, actor=actor),
        Action.ACCEPT: lambda: services.session_accept(session=session, actor=actor),
        Action.DECLINE: lambda: services.session_decline(session=session, actor=actor),
        Action.PROPOSE_RESCHEDULE: lambda: services.session_propose_reschedule(
            session=session, start=start(), actor=actor
        ),
        Action.CONFIRM_RESCHEDULE: lambda: services.session_confirm_reschedule(
            session=session, actor=actor
        ),
        Action.COUNTER_PROPOSE: lambda: services.session_counter_propose(
            session=session, start=start(), actor=actor
        ),
        Action.DECLINE_RESCHEDULE: lambda: services.session_decline_reschedule(
            session=session, actor=actor
        ),
        Action.WITHDRAW_PROPOSAL: lambda: services.session_withdraw_proposal(
            session=session, actor=actor
        ),
        # A full refund: what every side may choose in every status it may cancel from.
        Action.CANCEL: lambda: services.session_cancel(session=session, actor=actor, refund="full"),
        Action.REFUND_CREDIT: lambda: services.session_refund_credit(session=session, actor=actor),
    }
    assert set(calls) == set(USER_ACTIONS)
    return calls[action]()


def perform_system(action: Action, session, clock) -> int:
    """Move the clock to the deadline of `action` and run its sweep; how many it changed."""
    if action == Action.EXPIRE:
        clock.move_to(session.request_expires_at)
        return services.sessions_expire_stale()
    if action == Action.EXPIRE_RESCHEDULE:
        clock.move_to(RescheduleProposal.objects.get(session=session).expires_at)
        return services.sessions_expire_stale()
    assert action == Action.COMPLETE
    clock.move_to(session.slot.end)
    return services.sessions_complete_past()


def arrange(status: Status, proposer: str | None = None, action: Action | None = None):
    """A session in `status` made through the services; a rescheduling one with the pending
    proposal made by `proposer` ("coach" or "student"); for `refund_credit`, the make-up
    credit a coach's cancel left to the student's choice."""
    if action == Action.REFUND_CREDIT:
        canceled = make_session(Status.CONFIRMED)
        policy_update(coach=canceled.coach, coach_cancel_rule="student_choice")
        services.session_cancel(session=canceled, actor=canceled.coach, refund="credit")
        return Session.objects.get(makeup_for=canceled)
    if status != Status.RESCHEDULING:
        return make_session(status)
    session = make_session(Status.CONFIRMED)
    services.session_propose_reschedule(
        session=session,
        start=next_free_start(session.coach, session.package.duration_minutes),
        actor=getattr(session, proposer),
    )
    session.refresh_from_db()
    return session


def roles_of(who: str, status: Status, proposer: str | None) -> set[Role]:
    """The roles the table speaks of that the session's coach or student holds."""
    roles = {Role.COACH if who == "coach" else Role.STUDENT}
    if status == Status.RESCHEDULING:
        roles.add(Role.PROPOSER if who == proposer else Role.RESPONDER)
    return roles


def proposers_for(status: Status) -> list[str | None]:
    return ["coach", "student"] if status == Status.RESCHEDULING else [None]


def snapshot(session):
    """Everything a refused action must leave as it was."""
    session.refresh_from_db()
    return {
        "session": (
            session.status,
            session.slot_id,
            session.request_expires_at,
            session.sequence,
        ),
        "events": list(SessionEvent.objects.order_by("pk").values_list("pk", flat=True)),
        "reservations": list(TimeSlot.objects.order_by("pk").values_list("pk", "status")),
        "proposals": list(RescheduleProposal.objects.order_by("pk").values_list("pk", "status")),
        "refunds": Refund.objects.count(),
    }


def active_reservations(session) -> list[tuple[str, bool, int]]:
    """The session's active reservations: (status, whether it is the agreed time, minutes)."""
    session.refresh_from_db()
    return [
        (slot.status, slot.pk == session.slot_id, slot.duration_minutes)
        for slot in TimeSlot.objects.filter(
            session=session, status__in=ACTIVE_SLOT_STATUSES
        ).order_by("status", "pk")
    ]


AGREED_ONLY = [("BOOKED", True, 60)]
# What each action leaves of the session's reservations (the table's last column).
RESERVATIONS_AFTER = {
    Action.BOOK: [("HELD", True, 60)],
    Action.WITHDRAW: [],
    Action.ACCEPT: AGREED_ONLY,
    Action.DECLINE: [],
    Action.EXPIRE: [],
    Action.PROPOSE_RESCHEDULE: [("BOOKED", True, 60), ("HELD", False, 60)],
    Action.CONFIRM_RESCHEDULE: AGREED_ONLY,
    Action.COUNTER_PROPOSE: [("BOOKED", True, 60), ("HELD", False, 60)],
    Action.DECLINE_RESCHEDULE: AGREED_ONLY,
    Action.WITHDRAW_PROPOSAL: AGREED_ONLY,
    Action.EXPIRE_RESCHEDULE: AGREED_ONLY,
    Action.COMPLETE: AGREED_ONLY,
    Action.CANCEL: [],
    Action.REFUND_CREDIT: [],
}


def _row_id(row) -> str:
    return f"{row.action}-from-{row.source}"


# --- every row of the table -------------------------------------------------------------------

ROW_CASES = [
    pytest.param(row, role, proposer, id=f"{_row_id(row)}-by-{role}-{proposer or 'none'}")
    for row in USER_ROWS
    for role in sorted(row.roles)
    for proposer in proposers_for(row.source)
]


def actor_for(role: Role, session, proposer: str | None):
    if role == Role.COACH:
        return session.coach
    if role == Role.STUDENT:
        return session.student
    other = "student" if proposer == "coach" else "coach"
    return getattr(session, proposer if role == Role.PROPOSER else other)


def test_the_cases_cover_every_row_of_the_table():
    covered = {(case.values[0].source, case.values[0].action) for case in ROW_CASES}
    covered |= {(row.source, row.action) for row in SYSTEM_ROWS}
    assert covered == set(TRANSITIONS)
    assert len(TRANSITIONS) == 18


@pytest.mark.parametrize(("row", "role", "proposer"), ROW_CASES)
def test_each_row_moves_the_session_writes_one_event_and_sets_its_reservations(row, role, proposer):
    session = arrange(row.source, proposer, row.action)
    actor = actor_for(role, session, proposer)
    events_before = list(session.events.values_list("pk", flat=True))

    perform(row.action, session, actor)

    session.refresh_from_db()
    assert session.status == row.target
    new_events = list(session.events.exclude(pk__in=events_before))
    assert [(e.action, e.from_status, e.to_status, e.actor, e.created_at) for e in new_events] == [
        (row.action, row.source, row.target, actor, NOW)
    ]
    assert active_reservations(session) == RESERVATIONS_AFTER[row.action]


@pytest.mark.parametrize("row", SYSTEM_ROWS, ids=_row_id)
def test_each_system_row_is_applied_by_its_sweep_with_one_event_and_no_actor(row, clock):
    session = arrange(row.source, "coach")
    events_before = list(session.events.values_list("pk", flat=True))

    changed = perform_system(row.action, session, clock)

    session.refresh_from_db()
    assert (changed, session.status) == (1, row.target)
    assert [
        (e.action, e.from_status, e.to_status, e.actor)
        for e in session.events.exclude(pk__in=events_before)
    ] == [(row.action, row.source, row.target, None)]
    assert active_reservations(session) == RESERVATIONS_AFTER[row.action]


def test_sweeps_touch_only_the_statuses_their_rows_start_from(clock):
    # The completed one first: making it runs the completion sweep over every session.
    order = [Status.COMPLETED, *(status for status in Status if status != Status.COMPLETED)]
    sessions = {status: arrange(status, "student") for status in order}
    before = {status: s.status for status, s in sessions.items()}
    events_before = list(SessionEvent.objects.values_list("pk", flat=True))
    latest_end = max(s.slot.end for s in sessions.values() if s.slot_id)
    clock.move_to(latest_end)

    expired = services.sessions_expire_stale()
    completed = services.sessions_complete_past()

    after = {status: Session.objects.get(pk=s.pk).status for status, s in sessions.items()}
    assert before == {status: status for status in Status}
    assert (expired, completed) == (2, 2)
    assert after == {
        Status.UNSCHEDULED: Status.UNSCHEDULED,
        Status.REQUESTED: Status.UNSCHEDULED,  # expire
        Status.CONFIRMED: Status.COMPLETED,  # complete
        Status.RESCHEDULING: Status.COMPLETED,  # expire_reschedule, then complete
        Status.COMPLETED: Status.COMPLETED,
        Status.CANCELED: Status.CANCELED,
    }
    assert sorted(
        SessionEvent.objects.exclude(pk__in=events_before).values_list("session_id", "action")
    ) == sorted(
        [
            (sessions[Status.REQUESTED].pk, Action.EXPIRE),
            (sessions[Status.RESCHEDULING].pk, Action.EXPIRE_RESCHEDULE),
            (sessions[Status.CONFIRMED].pk, Action.COMPLETE),
            (sessions[Status.RESCHEDULING].pk, Action.COMPLETE),
        ]
    )


# --- every action the table lacks, in every status --------------------------------------------

VERBS = {
    Action.BOOK: "book",
    Action.WITHDRAW: "withdraw",
    Action.ACCEPT: "accept",
    Action.DECLINE: "decline",
    Action.PROPOSE_RESCHEDULE: "reschedule",
    Action.CONFIRM_RESCHEDULE: "confirm a new time for",
    Action.COUNTER_PROPOSE: "propose another time for",
    Action.DECLINE_RESCHEDULE: "keep the current time of",
    Action.WITHDRAW_PROPOSAL: "withdraw the proposal of",
    Action.CANCEL: "cancel",
    Action.REFUND_CREDIT: "refund",
}


def status_refusal(status: Status, action: Action) -> str:
    if status == Status.CANCELED:
        return "This session was canceled; it cannot change any more."
    if status == Status.COMPLETED:
        return "This session is already completed."
    label = status.label.lower()
    article = "an" if label[0] in "aeiou" else "a"
    return f"You can't {VERBS[action]} {article} {label} session."


ILLEGAL = [
    pytest.param(status, action, who, id=f"{action}-in-{status}-by-{who}")
    for status in Status
    for action in USER_ACTIONS
    if (status, action) not in TRANSITIONS
    for who in ("coach", "student")
]


def test_every_status_has_illegal_actions_and_canceled_allows_none():
    illegal = {(case.values[0], case.values[1]) for case in ILLEGAL}
    assert {action for status, action in illegal if status == Status.CANCELED} == set(USER_ACTIONS)
    assert len(illegal) == len(Status) * len(USER_ACTIONS) - len(USER_ROWS)


@pytest.mark.parametrize(("status", "action", "who"), ILLEGAL)
def test_illegal_action_is_refused_with_the_reason_and_changes_nothing(status, action, who):
    # Status is checked before the side, so either party is told why it is impossible.
    session = arrange(status, "coach")
    before = snapshot(session)

    with pytest.raises(TransitionNotAllowed) as refused:
        perform(action, session, getattr(session, who))

    assert refused.value.message == status_refusal(status, action)
    assert snapshot(session) == before


# --- the wrong side and outsiders -------------------------------------------------------------

ROLE_REFUSALS = {
    frozenset({Role.STUDENT}): "Only the student can do that.",
    frozenset({Role.COACH}): "Only the coach can do that.",
    frozenset({Role.RESPONDER}): "You proposed this time; the other side answers it.",
    frozenset({Role.PROPOSER}): "Only the side that proposed this time can withdraw it.",
}
WRONG_SIDE = [
    pytest.param(row, who, proposer, id=f"{_row_id(row)}-by-{who}-{proposer or 'none'}")
    for row in USER_ROWS
    for proposer in proposers_for(row.source)
    for who in ("coach", "student")
    if not roles_of(who, row.source, proposer) & row.roles
]


def test_every_row_but_those_both_sides_may_take_has_a_wrong_side():
    rows = {(case.values[0].source, case.values[0].action) for case in WRONG_SIDE}
    both_sides = {Role.COACH, Role.STUDENT}
    assert rows == {(row.source, row.action) for row in USER_ROWS if row.roles != both_sides}
    assert {(row.source, row.action) for row in USER_ROWS if row.roles == both_sides} == {
        (Status.CONFIRMED, Action.PROPOSE_RESCHEDULE),
        (Status.CONFIRMED, Action.CANCEL),
        (Status.RESCHEDULING, Action.CANCEL),
    }


@pytest.mark.parametrize(("row", "who", "proposer"), WRONG_SIDE)
def test_wrong_side_is_refused_with_the_reason_and_changes_nothing(row, who, proposer):
    session = arrange(row.source, proposer, row.action)
    before = snapshot(session)

    with pytest.raises(PermissionDenied) as refused:
        perform(row.action, session, getattr(session, who))

    assert refused.value.message == ROLE_REFUSALS[row.roles]
    assert snapshot(session) == before


OUTSIDERS = {"another student": StudentFactory, "another coach": CoachFactory}


@pytest.mark.parametrize("outsider", sorted(OUTSIDERS))
@pytest.mark.parametrize("row", USER_ROWS, ids=_row_id)
def test_outsider_is_refused_and_changes_nothing(row, outsider):
    session = arrange(row.source, "coach", row.action)
    stranger = OUTSIDERS[outsider]()
    before = snapshot(session)

    with pytest.raises(PermissionDenied) as refused:
        perform(row.action, session, stranger)

    assert refused.value.message == "This session is not yours."
    assert snapshot(session) == before


@pytest.mark.parametrize("action", USER_ACTIONS)
def test_outsider_learns_nothing_even_where_the_status_forbids_the_action(action):
    session = arrange(Status.CANCELED)

    with pytest.raises(PermissionDenied) as refused:
        perform(action, session, StudentFactory())

    assert refused.value.message == "This session is not yours."


# --- what the table offers each side ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "roles", "actions"),
    [
        (Status.UNSCHEDULED, {Role.STUDENT}, [Action.BOOK, Action.REFUND_CREDIT]),
        (Status.UNSCHEDULED, {Role.COACH}, [Action.CANCEL]),
        (Status.REQUESTED, {Role.STUDENT}, [Action.WITHDRAW]),
        (Status.REQUESTED, {Role.COACH}, [Action.ACCEPT, Action.DECLINE, Action.CANCEL]),
        (Status.CONFIRMED, {Role.STUDENT}, [Action.PROPOSE_RESCHEDULE, Action.CANCEL]),
        (Status.CONFIRMED, {Role.COACH}, [Action.PROPOSE_RESCHEDULE, Action.CANCEL]),
        (
            Status.RESCHEDULING,
            {Role.STUDENT, Role.RESPONDER},
            [
                Action.CONFIRM_RESCHEDULE,
                Action.COUNTER_PROPOSE,
                Action.DECLINE_RESCHEDULE,
                Action.CANCEL,
            ],
        ),
        (
            Status.RESCHEDULING,
            {Role.STUDENT, Role.PROPOSER},
            [Action.WITHDRAW_PROPOSAL, Action.CANCEL],
        ),
        (
            Status.RESCHEDULING,
            {Role.COACH, Role.RESPONDER},
            [
                Action.CONFIRM_RESCHEDULE,
                Action.COUNTER_PROPOSE,
                Action.DECLINE_RESCHEDULE,
                Action.CANCEL,
            ],
        ),
        (
            Status.RESCHEDULING,
            {Role.COACH, Role.PROPOSER},
            [Action.WITHDRAW_PROPOSAL, Action.CANCEL],
        ),
        (Status.COMPLETED, {Role.COACH}, [Action.CANCEL]),
        (Status.COMPLETED, {Role.STUDENT}, []),
        (Status.CANCELED, {Role.COACH, Role.STUDENT}, []),
        (Status.CONFIRMED, {Role.SYSTEM}, [Action.COMPLETE]),
        (Status.RESCHEDULING, {Role.SYSTEM}, [Action.EXPIRE_RESCHEDULE]),
    ],
)
def test_allowed_actions_follow_the_table(status, roles, actions):
    assert allowed_actions(status, roles) == actions


@pytest.mark.parametrize("proposer", ["coach", "student"])
def test_available_actions_while_rescheduling_depend_on_who_proposed(proposer):
    session = arrange(Status.RESCHEDULING, proposer)
    responder = "student" if proposer == "coach" else "coach"
    answers = ["confirm_reschedule", "counter_propose", "decline_reschedule"]
    cancel = ["cancel"]

    offered = {
        who: session_available_actions(session=session, user=getattr(session, who))
        for who in (proposer, responder)
    }

    assert offered == {
        proposer: ["withdraw_proposal", *cancel],
        responder: [*answers, *cancel],
    }
    assert session_available_actions(session=session, user=StudentFactory()) == []


def test_only_expire_expire_reschedule_and_complete_are_system_actions_and_only_the_systems():
    assert {row.action for row in SYSTEM_ROWS} == set(SYSTEM_ACTIONS)
    # No person may perform them: they happen only in the sweeps.
    assert [set(row.roles) for row in SYSTEM_ROWS] == [{Role.SYSTEM}] * len(SYSTEM_ROWS)


def test_keeping_withdrawing_and_expiring_a_proposal_return_to_the_agreed_time():
    rows = [
        TRANSITIONS[(Status.RESCHEDULING, action)]
        for action in (
            Action.DECLINE_RESCHEDULE,
            Action.WITHDRAW_PROPOSAL,
            Action.EXPIRE_RESCHEDULE,
        )
    ]

    assert rows == [
        Transition(
            Status.RESCHEDULING,
            Action.DECLINE_RESCHEDULE,
            Status.CONFIRMED,
            frozenset({Role.RESPONDER}),
        ),
        Transition(
            Status.RESCHEDULING,
            Action.WITHDRAW_PROPOSAL,
            Status.CONFIRMED,
            frozenset({Role.PROPOSER}),
        ),
        Transition(
            Status.RESCHEDULING,
            Action.EXPIRE_RESCHEDULE,
            Status.CONFIRMED,
            frozenset({Role.SYSTEM}),
        ),
    ]
