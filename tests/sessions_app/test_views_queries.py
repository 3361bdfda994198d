"""Each list page costs the same number of queries with 5 rows as with 200."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.db.models import Max
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from calendars.models import TimeSlot
from sessions_app import services
from sessions_app.views import LIST_PAGE_SIZE, SLOT_PAGE_SIZE
from tests.factories import CoachFactory, StudentFactory, TimeSlotFactory, make_package

pytestmark = pytest.mark.django_db

# The most queries each page may run, whatever the number of rows (sessions, events).
BUDGETS = {
    # auth session + user, coach profile (is_coach), the Tasks count, then the page's own reads
    "tasks": 7,
    "upcoming": 7,
    "completed": 6,
    "canceled": 6,
    "my_sessions": 7,
    # + events, refunds, proposals (read once), refundable (2), cancellation rate
    "detail": 11,
    "book": 6,
}


def credits(coach, count, student=None):
    """`count` unscheduled sessions of `coach`, in packages of up to 50 from several students."""
    sessions = []
    while len(sessions) < count:
        size = min(50, count - len(sessions))
        package = make_package(
            coach=coach, student=student, session_count=size, price_cents=1000 * size
        )
        sessions += list(package.sessions.order_by("number"))
    return sessions


def book(session):
    slot = TimeSlotFactory(coach=session.coach)
    services.session_book(session=session, slot=slot, actor=session.student)
    return session


def confirm(session):
    book(session)
    services.session_accept(session=session, actor=session.coach)
    return session


def propose(session, actor):
    services.session_propose_reschedule(
        session=session, slot=TimeSlotFactory(coach=session.coach), actor=actor
    )
    return session


def complete_all(coach):
    """Complete every confirmed session of `coach`: travel past the end of the coach's last
    slot (the slot factory's sequence pushes slots further out the later a test runs)."""
    last_end = TimeSlot.objects.filter(coach=coach).aggregate(last=Max("end"))["last"]
    with time_machine.travel(last_end + timedelta(hours=1)):
        services.sessions_complete_past()


def build(page, rows):
    """The viewer and the URL of `page`, with `rows` rows of data behind it."""
    coach = CoachFactory()
    if page == "tasks":
        half = max(1, rows // 2)
        for session in credits(coach, half):
            book(session)
        for session in credits(coach, rows - half):
            propose(confirm(session), session.student)
        return coach, reverse("sessions:tasks")
    if page == "upcoming":
        for index, session in enumerate(credits(coach, rows)):
            confirm(session)
            if index % 3 == 0:
                propose(session, coach)
        return coach, reverse("sessions:upcoming")
    if page == "completed":
        for session in credits(coach, rows):
            confirm(session)
        complete_all(coach)
        return coach, reverse("sessions:completed")
    if page == "canceled":
        for index, session in enumerate(credits(coach, rows)):
            refund = ["full", "partial", "none"][index % 3]
            services.session_cancel(
                session=session,
                actor=coach,
                refund=refund,
                amount_cents=100 if refund == "partial" else None,
            )
        return coach, reverse("sessions:canceled")
    if page == "my_sessions":
        student = StudentFactory()
        sessions = credits(coach, rows, student=student)
        for index, session in enumerate(sessions):
            kind = index % 5
            if kind == 1:
                book(session)
            elif kind == 2:
                confirm(session)
            elif kind == 3:
                propose(confirm(session), coach)
            elif kind == 4:
                confirm(session)
                services.session_cancel(
                    session=session, actor=coach, refund="partial", amount_cents=100
                )
        return student, reverse("sessions:my_sessions")
    if page == "detail":
        (session,) = credits(coach, 1)
        confirm(session)
        propose(session, coach)
        # Every counter-proposal adds an event: `rows` events on the timeline.
        for index in range(max(0, rows - 4)):
            actor = session.student if index % 2 == 0 else coach
            services.session_counter_propose(
                session=session, slot=TimeSlotFactory(coach=coach), actor=actor
            )
        return coach, reverse("sessions:detail", args=[session.pk])
    if page == "book":
        (session,) = credits(coach, 1)
        for _ in range(rows):
            TimeSlotFactory(coach=coach)
        return session.student, reverse("sessions:book", args=[session.pk])
    raise ValueError(page)


def rows_shown(page, html):
    """How many rows (sessions; events on the detail timeline; slots to book) `html` shows."""
    if page == "detail":
        (timeline,) = re.findall(r'<ol class="timeline">(.*?)</ol>', html, flags=re.S)
        return timeline.count("<li>")
    if page == "book":
        return len(re.findall(r'<input type="hidden" name="slot" value="\d+">', html))
    return len(re.findall(r'<tr id="session-\d+">', html))


def expected_rows(page, rows):
    """How many rows `build(page, rows)` puts on the page's first page."""
    if page in ("upcoming", "completed", "canceled"):
        return min(rows, LIST_PAGE_SIZE)
    if page == "my_sessions":
        # credits, requests, upcoming (confirmed), proposals to answer, and the first page of
        # the past (the canceled fifth).
        per_kind = [len(range(kind, rows, 5)) for kind in range(5)]
        return sum(per_kind[:4]) + min(per_kind[4], LIST_PAGE_SIZE)
    if page == "detail":
        # purchased, booked, accepted, proposed, then one counter-proposal per row beyond four.
        return 4 + max(0, rows - 4)
    if page == "book":
        return min(rows, SLOT_PAGE_SIZE)
    return rows  # tasks: requests and proposals, unpaginated


@pytest.fixture
def slots_far_out():
    """Start the slot factory's sequence where a full run leaves it (months ahead), so these
    pages are checked the way they are late in a full run; restored afterwards."""
    counter = TimeSlotFactory._meta._counter
    saved = counter.seq if counter is not None else None
    TimeSlotFactory.reset_sequence(24 * 90)
    yield
    if saved is not None:
        TimeSlotFactory.reset_sequence(saved)


@pytest.mark.parametrize("rows", [5, 200])
@pytest.mark.parametrize("page", list(BUDGETS))
def test_page_query_count_does_not_grow_with_rows(
    client, django_assert_max_num_queries, slots_far_out, page, rows
):
    viewer, url = build(page, rows)
    client.force_login(viewer)
    with django_assert_max_num_queries(BUDGETS[page]):
        response = client.get(url)
    assert response.status_code == 200
    assert rows_shown(page, response.content.decode()) == expected_rows(page, rows)


@pytest.mark.parametrize("viewer", ["coach", "student"])
def test_detail_page_reads_the_pending_proposal_once(client, viewer):
    (session,) = credits(CoachFactory(), 1)
    propose(confirm(session), session.coach)
    client.force_login(getattr(session, viewer))

    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("sessions:detail", args=[session.pk]))

    # Reads of proposal rows (the Tasks badge's EXISTS subquery is not one).
    proposal_reads = [
        q["sql"] for q in queries if q["sql"].startswith('SELECT "sessions_app_rescheduleproposal"')
    ]
    assert (response.status_code, len(proposal_reads)) == (200, 1)
    assert ("confirm_reschedule" in response.context["actions"]) == (viewer == "student")
