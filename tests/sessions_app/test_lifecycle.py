"""The transition table, row by row: the right actor moves a session, everything else is refused
and changes nothing."""

import pytest

from calendars.models import TimeSlot
from sessions_app import services
from sessions_app.lifecycle import (
    TRANSITIONS,
    Action,
    PermissionDenied,
    Role,
    Status,
    TransitionNotAllowed,
    allowed_actions,
)
from tests.factories import StudentFactory, TimeSlotFactory, make_session

pytestmark = pytest.mark.django_db

USER_ACTIONS = [
    Action.BOOK,
    Action.WITHDRAW,
    Action.ACCEPT,
    Action.DECLINE,
    Action.PROPOSE_RESCHEDULE,
    Action.CONFIRM_RESCHEDULE,
    Action.COUNTER_PROPOSE,
    Action.CANCEL,
]


def perform(action: Action, session, actor, slot=None):
    """Call the service for `action`; `slot` is the time for booking and proposals."""
    calls = {
        Action.BOOK: lambda: services.session_book(session=session, slot=slot, actor=actor),
        Action.WITHDRAW: lambda: services.session_withdraw(session=session, actor=actor),
        Action.ACCEPT: lambda: services.session_accept(session=session, actor=actor),
        Action.DECLINE: lambda: services.session_decline(session=session, actor=actor),
        Action.PROPOSE_RESCHEDULE: lambda: services.session_propose_reschedule(
            session=session, slot=slot, actor=actor
        ),
        Action.CONFIRM_RESCHEDULE: lambda: services.session_confirm_reschedule(
            session=session, actor=actor
        ),
        Action.COUNTER_PROPOSE: lambda: services.session_counter_propose(
            session=session, slot=slot, actor=actor
        ),
        Action.CANCEL: lambda: services.session_cancel(session=session, actor=actor, refund="none"),
    }
    return calls[action]()


def actor_for(role: Role, session):
    """In a session made by make_session, the coach proposed the pending reschedule."""
    return {
        Role.COACH: session.coach,
        Role.STUDENT: session.student,
        Role.RESPONDER: session.student,
    }[role]


def snapshot(session):
    session.refresh_from_db()
    slots = sorted(TimeSlot.objects.values_list("pk", "status"))
    return session.status, session.slot_id, session.events.count(), slots


USER_ROWS = [row for row in TRANSITIONS.values() if Role.SYSTEM not in row.roles]


@pytest.mark.parametrize(
    ("row", "role"),
    [(row, role) for row in USER_ROWS for role in sorted(row.roles)],
    ids=lambda value: (
        str(value.action) + ":" + value.source if hasattr(value, "action") else str(value)
    ),
)
def test_each_table_row_moves_the_session_and_writes_one_event(row, role):
    session = make_session(row.source)
    actor = actor_for(role, session)
    events_before = session.events.count()

    perform(row.action, session, actor, TimeSlotFactory(coach=session.coach))

    session.refresh_from_db()
    assert session.status == row.target
    assert session.events.count() == events_before + 1
    event = session.events.order_by("-id").first()
    assert (event.action, event.from_status, event.to_status, event.actor) == (
        row.action,
        row.source,
        row.target,
        actor,
    )


ILLEGAL = [
    (status, action)
    for status in Status
    for action in USER_ACTIONS
    if (status, action) not in TRANSITIONS
]


@pytest.mark.parametrize(("status", "action"), ILLEGAL, ids=lambda v: str(v))
def test_illegal_action_is_refused_and_changes_nothing(status, action):
    session = make_session(status)
    # Status is checked before role, so either party gets the transition refusal.
    actor = (
        session.coach
        if action in (Action.ACCEPT, Action.DECLINE, Action.CANCEL)
        else (session.student)
    )
    slot = TimeSlotFactory(coach=session.coach)
    before = snapshot(session)

    with pytest.raises(TransitionNotAllowed):
        perform(action, session, actor, slot)

    assert snapshot(session) == before


WRONG_ACTOR_ROWS = [
    (row, wrong)
    for row in USER_ROWS
    for wrong in (Role.COACH, Role.STUDENT)
    if wrong not in row.roles and not (Role.RESPONDER in row.roles and wrong == Role.STUDENT)
]


@pytest.mark.parametrize(("row", "wrong_role"), WRONG_ACTOR_ROWS, ids=lambda v: str(v))
def test_wrong_party_is_refused_and_changes_nothing(row, wrong_role):
    session = make_session(row.source)
    actor = session.coach if wrong_role == Role.COACH else session.student
    slot = TimeSlotFactory(coach=session.coach)
    before = snapshot(session)

    with pytest.raises(PermissionDenied):
        perform(row.action, session, actor, slot)

    assert snapshot(session) == before


@pytest.mark.parametrize("row", USER_ROWS, ids=lambda r: f"{r.action}:{r.source}")
def test_outsider_is_refused_and_changes_nothing(row):
    session = make_session(row.source)
    slot = TimeSlotFactory(coach=session.coach)
    before = snapshot(session)

    with pytest.raises(PermissionDenied, match="not yours"):
        perform(row.action, session, StudentFactory(), slot)

    assert snapshot(session) == before


def test_proposer_cannot_answer_their_own_proposal():
    session = make_session("RESCHEDULING")  # the coach proposed

    with pytest.raises(PermissionDenied, match="the other side answers"):
        services.session_confirm_reschedule(session=session, actor=session.coach)

    assert snapshot(session)[0] == Status.RESCHEDULING


def test_refusal_messages_read_as_sentences():
    session = make_session("CONFIRMED")
    with pytest.raises(TransitionNotAllowed) as caught:
        services.session_accept(session=session, actor=session.coach)
    assert caught.value.message == "You can't accept a confirmed session."

    canceled = make_session("CANCELED")
    with pytest.raises(TransitionNotAllowed) as caught:
        services.session_cancel(session=canceled, actor=canceled.coach, refund="none")
    assert caught.value.message == "This session was canceled; it cannot change any more."


def test_allowed_actions_follow_the_table():
    assert allowed_actions(Status.REQUESTED, {Role.COACH}) == [
        Action.ACCEPT,
        Action.DECLINE,
        Action.CANCEL,
    ]
    assert allowed_actions(Status.REQUESTED, {Role.STUDENT}) == [Action.WITHDRAW]
    assert allowed_actions(Status.CANCELED, {Role.COACH, Role.STUDENT}) == []


def test_only_expire_expire_reschedule_and_complete_are_system_actions_and_only_the_systems():
    system_rows = [row for row in TRANSITIONS.values() if Role.SYSTEM in row.roles]
    assert {row.action for row in system_rows} == {
        Action.EXPIRE,
        Action.EXPIRE_RESCHEDULE,
        Action.COMPLETE,
    }
    # No person may perform them: they happen only in the sweeps.
    assert [set(row.roles) for row in system_rows] == [{Role.SYSTEM}] * len(system_rows)
