"""Reads the pages rely on, tested without the pages: sections of My sessions, refunded totals."""

from datetime import UTC, datetime

import pytest
import time_machine

from refunds.models import Refund, RefundState
from refunds.services import refund_issue
from sessions_app import selectors, services
from tests.factories import make_package, next_free_start

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), tick=False) as traveller:
        yield traveller


def _free(session):
    return next_free_start(session.coach, session.package.duration_minutes)


def _booked(session, *, accept=False):
    services.session_book(session=session, start=_free(session), actor=session.student)
    if accept:
        services.session_accept(session=session, actor=session.coach)
    return session


def test_student_session_sections_sort_active_sessions_by_what_the_student_can_do():
    package = make_package(session_count=6)
    credit, requested, awaiting, mine, confirmed, canceled = package.sessions.order_by("number")
    coach, student = package.coach, package.student
    _booked(requested)
    services.session_propose_reschedule(
        session=_booked(awaiting, accept=True), start=_free(awaiting), actor=coach
    )
    services.session_propose_reschedule(
        session=_booked(mine, accept=True), start=_free(mine), actor=student
    )
    _booked(confirmed, accept=True)
    services.session_cancel(session=canceled, actor=coach, refund="none")

    sections = selectors.student_session_sections(student=student)

    assert (
        [s.pk for s in sections.credits],
        [s.pk for s in sections.requested],
        [s.pk for s in sections.awaiting],
        sorted(s.pk for s in sections.upcoming),
    ) == ([credit.pk], [requested.pk], [awaiting.pk], sorted([mine.pk, confirmed.pk]))
    shown = {
        s.pk: s.pending_proposal
        for s in [*sections.requested, *sections.awaiting, *sections.upcoming]
    }
    assert shown[awaiting.pk].proposed_by == coach
    assert shown[mine.pk].proposed_by == student
    assert (shown[requested.pk], shown[confirmed.pk]) == (None, None)


def test_student_session_sections_are_empty_for_someone_else():
    package = make_package()
    sections = selectors.student_session_sections(student=package.coach)
    assert vars(sections) == {
        "credits": [],
        "requested": [],
        "awaiting": [],
        "upcoming": [],
        "more_credits": False,
        "more_booked": False,
    }


def test_session_detail_counts_created_and_done_refunds_but_not_failed_ones(deferred_gateway):
    package = make_package(price_cents=30000, session_count=1)
    (session,) = package.sessions.all()
    services.session_cancel(
        session=session, actor=package.coach, refund="partial", amount_cents=500
    )
    failed = Refund.objects.get(session=session)
    failed.state = RefundState.FAILED
    failed.save(update_fields=["state"])
    done = refund_issue(
        session=session, kind="partial", amount_cents=700, issued_by=None, idempotency_key="k2"
    )
    done.state = RefundState.DONE  # as its settle task would leave it
    done.save(update_fields=["state"])
    # The asynchronous gateway leaves the refund CREATED until its settle task runs.
    created = refund_issue(
        session=session, kind="partial", amount_cents=300, issued_by=None, idempotency_key="k3"
    )
    assert (done.state, created.state) == (RefundState.DONE, RefundState.CREATED)

    as_student = selectors.session_detail_for_user(user=package.student, pk=session.pk)
    as_coach = selectors.session_detail_for_user(user=package.coach, pk=session.pk)

    assert (as_student.refunded_cents, as_coach.refunded_cents) == (1000, 1000)
