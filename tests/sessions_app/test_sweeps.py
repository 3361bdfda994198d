"""The expiry and completion sweeps at scale: keyset chunks that visit every item once, a
constant number of statements per chunk whatever its size, one event and one email to each
side per item with the facts `event_facts` gives, one after-commit hook per chunk, and no
double processing when two sweeps run at once (PostgreSQL)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from calendars.models import SlotStatus, TimeSlot
from calendars.services import availability_window_add
from notifications import facts
from notifications.models import Delivery
from sessions_app import selectors, services
from sessions_app.lifecycle import Action, Status
from sessions_app.models import ProposalStatus, RescheduleProposal, Session, SessionEvent
from tests.factories import CoachFactory, OfferingFactory, StudentFactory
from tests.sessions_app.test_tasks import _concurrently  # the same two-thread harness

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
START = datetime(2025, 3, 7, 10, 0, tzinfo=UTC)
EXPIRED = NOW + timedelta(days=2, hours=1)  # past the 48 h windows, before every start


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _open(coach, start):
    availability_window_add(coach=coach, start=start, end=start + timedelta(hours=1))
    return start


def _requested(coach, hours):
    package = services.package_purchase(
        student=StudentFactory(), offering=OfferingFactory(coach=coach)
    )
    session = package.sessions.order_by("number").first()
    start = _open(coach, START + timedelta(hours=hours))
    services.session_book(session=session, start=start, actor=session.student)
    return Session.objects.get(pk=session.pk)


def _confirmed(coach, hours):
    session = _requested(coach, hours)
    services.session_accept(session=session, actor=session.coach)
    return Session.objects.get(pk=session.pk)


def _proposed(coach, hours):
    """A confirmed session with the coach's pending proposal a day later."""
    session = _confirmed(coach, hours)
    proposed = _open(coach, START + timedelta(days=1, hours=hours))
    services.session_propose_reschedule(session=session, start=proposed, actor=coach)
    return Session.objects.get(pk=session.pk)


def _events(action):
    return SessionEvent.objects.filter(action=action)


def _assert_once_each(sessions, action):
    """Each session has exactly one `action` event, with exactly one delivery to each side,
    keyed by the event, whose facts are those `facts.event_facts` builds for it."""
    events = list(_events(action).order_by("pk"))
    assert sorted(event.session_id for event in events) == sorted(s.pk for s in sessions)
    by_id = selectors.sessions_by_id(ids=[event.session_id for event in events])
    slots = {slot.pk: slot for slot in TimeSlot.objects.all()}
    for event in events:
        deliveries = sorted(
            Delivery.objects.filter(event=event), key=lambda delivery: delivery.recipient_id
        )
        session = by_id[event.session_id]
        assert [(d.recipient_id, d.key, d.session_id) for d in deliveries] == [
            (person, f"event:{event.pk}:to:{person}", session.pk)
            for person in sorted([session.coach_id, session.student_id])
        ]
        wanted = facts.event_facts(event=event, session=session, slots=slots)
        assert [d.facts for d in deliveries] == [wanted, wanted]


# --- keyset chunks ------------------------------------------------------------------------------


def test_expiry_in_small_chunks_expires_every_request_and_proposal_exactly_once(
    clock, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(services, "SWEEP_CHUNK", 2)
    coach = CoachFactory()
    requests = [_requested(coach, hours) for hours in range(5)]
    proposals = [_proposed(coach, 10 + hours) for hours in range(3)]

    with django_capture_on_commit_callbacks() as callbacks:
        expired = services.sessions_expire_stale(now=EXPIRED)

    assert expired == 8
    # One hook per chunk that wrote emails: requests in chunks of 2, 2, 1; proposals 2, 1.
    assert len(callbacks) == 5
    _assert_once_each(requests, Action.EXPIRE)
    _assert_once_each(proposals, Action.EXPIRE_RESCHEDULE)
    assert (
        Session.objects.filter(pk__in=[s.pk for s in requests])
        .filter(status=Status.UNSCHEDULED, slot=None, starts_at=None, ends_at=None)
        .count()
        == 5
    )
    assert set(
        RescheduleProposal.objects.filter(session__in=proposals).values_list("status", flat=True)
    ) == {ProposalStatus.EXPIRED}
    for session in proposals:
        fresh = Session.objects.get(pk=session.pk)
        assert (fresh.status, fresh.slot_id, fresh.starts_at) == (
            Status.CONFIRMED,
            session.slot_id,
            session.starts_at,
        )
        assert TimeSlot.objects.get(pk=fresh.slot_id).status == SlotStatus.BOOKED
    assert services.sessions_expire_stale(now=EXPIRED) == 0  # a second run finds nothing


def test_completion_in_small_chunks_completes_every_session_once_even_at_one_end_time(
    clock, monkeypatch
):
    # Sessions of different coaches ending at the same moment: the (end, id) keyset still
    # moves past each one exactly once.
    monkeypatch.setattr(services, "SWEEP_CHUNK", 2)
    confirmed = [_confirmed(CoachFactory(), 0) for _ in range(3)] + [
        _confirmed(CoachFactory(), hours) for hours in (1, 2)
    ]

    completed = services.sessions_complete_past(now=START + timedelta(hours=4))

    assert completed == 5
    _assert_once_each(confirmed, Action.COMPLETE)
    assert services.sessions_complete_past(now=START + timedelta(hours=4)) == 0


def test_completion_leaves_sessions_whose_end_has_not_passed(clock):
    past, later = _confirmed(CoachFactory(), 0), _confirmed(CoachFactory(), 5)

    assert services.sessions_complete_past(now=START + timedelta(hours=2)) == 1

    assert Session.objects.get(pk=past.pk).status == Status.COMPLETED
    assert Session.objects.get(pk=later.pk).status == Status.CONFIRMED


# --- statements per chunk -----------------------------------------------------------------------


def _statements(function) -> int:
    with CaptureQueriesContext(connection) as queries:
        function()
    return len(queries)


@pytest.mark.parametrize("chunk", [3, 6])
def test_expiry_runs_the_same_statements_per_chunk_whatever_its_size(clock, monkeypatch, chunk):
    monkeypatch.setattr(services, "SWEEP_CHUNK", chunk)
    coach = CoachFactory()
    idle = _statements(lambda: services.sessions_expire_stale(now=EXPIRED))
    for hours in range(chunk):
        _requested(coach, hours)
    one_chunk = _statements(lambda: services.sessions_expire_stale(now=EXPIRED))
    for hours in range(2 * chunk):
        _requested(coach, 10 + hours)
    two_chunks = _statements(lambda: services.sessions_expire_stale(now=EXPIRED))

    per_chunk = one_chunk - idle
    assert two_chunks - one_chunk == per_chunk
    assert per_chunk == _per_chunk()


def _per_chunk() -> int:
    """An expiry chunk's statements: the chunk's savepoint (a test runs in a transaction),
    the claim, two id draws, the sessions' update, the release, the events' and the
    deliveries' insert (a COPY each on PostgreSQL), the savepoint's release; none per row."""
    return 9


@pytest.mark.parametrize("chunk", [3, 6])
def test_completion_runs_the_same_statements_per_chunk_whatever_its_size(clock, monkeypatch, chunk):
    monkeypatch.setattr(services, "SWEEP_CHUNK", chunk)
    later = START + timedelta(days=30)
    idle = _statements(lambda: services.sessions_complete_past(now=later))
    for hours in range(chunk):
        _confirmed(CoachFactory(), hours)
    one_chunk = _statements(lambda: services.sessions_complete_past(now=later))
    for hours in range(2 * chunk):
        _confirmed(CoachFactory(), 10 + hours)
    two_chunks = _statements(lambda: services.sessions_complete_past(now=later))

    assert two_chunks - one_chunk == one_chunk - idle == _per_chunk() - 1  # no release


# --- concurrency (PostgreSQL) -------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sweeps_in_small_chunks_process_each_item_once(clock, monkeypatch):
    monkeypatch.setattr(services, "SWEEP_CHUNK", 2)
    coach = CoachFactory()
    requests = [_requested(coach, hours) for hours in range(8)]
    proposals = [_proposed(coach, 20 + hours) for hours in range(4)]
    ended = [_confirmed(CoachFactory(), hours) for hours in range(-80, -74)]

    expired = _concurrently(lambda: services.sessions_expire_stale(now=EXPIRED))
    completed = _concurrently(lambda: services.sessions_complete_past(now=EXPIRED))

    assert (sum(expired), sum(completed)) == (12, 6)
    _assert_once_each(requests, Action.EXPIRE)
    _assert_once_each(proposals, Action.EXPIRE_RESCHEDULE)
    _assert_once_each(ended, Action.COMPLETE)
