"""Each list page, and each picker, costs the same number of queries with 5 rows as with 200."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.db.models import Max
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from calendars.models import BusyTime, TimeSlot
from sessions_app import services
from sessions_app.forms import format_start
from sessions_app.selectors import STUDENT_ACTIVE_SHOWN, STUDENT_CREDITS_SHOWN, TASKS_SHOWN
from sessions_app.views import LIST_PAGE_SIZE
from tests.factories import (
    AvailabilityWindowFactory,
    CoachFactory,
    StudentFactory,
    make_package,
    next_free_start,
)

# A Monday night: the pickers show the whole week ahead.
NOW = datetime(2030, 1, 7, 0, 30, tzinfo=UTC)
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("coaches_decide_refunds"),
    pytest.mark.time_machine(NOW, tick=False),
]

# The most queries each page may run, whatever the number of rows (sessions, events, times).
BUDGETS = {
    # auth session + user, coach profile (is_coach), the Tasks count, then the page's own reads:
    # requests, proposals (+ their pending proposals), conflicts
    "tasks": 8,
    # The lists also read the coach's offerings once, for their filter form.
    "upcoming": 8,
    "completed": 7,
    # + the page's refunds (prefetched once: each refund's amount and state is listed)
    "canceled": 8,
    # + the packages awaiting payment, + the student's My sessions badge (proposals waiting),
    # + the student's packages with their progress
    "my_sessions": 10,
    # + events, refunds, proposals (read once), refundable (2), cancellation rate
    "detail": 11,
    # the pickers: auth session + user, the session, the coach's schedule (rules, windows, time
    # off, reservations, busy times, the student's reservations), is_coach for the navigation,
    # the student's My sessions badge
    "book": 11,
    "book_confirm": 11,
    # + the Tasks count for a coach
    "reschedule": 11,
    # + the pending proposal (read once: for the roles and for the times it excludes), + the
    # student's My sessions badge
    "counter": 12,
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
    start = next_free_start(session.coach, session.package.duration_minutes)
    services.session_book(session=session, start=start, actor=session.student)
    return session


def confirm(session):
    book(session)
    services.session_accept(session=session, actor=session.coach)
    return session


def propose(session, actor):
    start = next_free_start(session.coach, session.package.duration_minutes)
    services.session_propose_reschedule(session=session, start=start, actor=actor)
    return session


def complete_all(coach):
    """Complete every confirmed session of `coach`: travel past the end of the coach's last
    reservation."""
    last_end = TimeSlot.objects.filter(coach=coach).aggregate(last=Max("end"))["last"]
    with time_machine.travel(last_end + timedelta(hours=1)):
        services.sessions_complete_past()


# The picker's times: `rows` half-hour windows this week, 40 minutes apart from Monday 01:00
# (200 of them end on Saturday), each holding exactly one start for a half-hour session.
FIRST_TIME = datetime(2030, 1, 7, 1, 0, tzinfo=UTC)


def open_week(coach, rows):
    AvailabilityWindowFactory.create_batch(
        rows,
        coach=coach,
        start=factory_iter(FIRST_TIME + index * timedelta(minutes=40) for index in range(rows)),
        end=factory_iter(
            FIRST_TIME + index * timedelta(minutes=40) + timedelta(minutes=30)
            for index in range(rows)
        ),
    )


def factory_iter(values):
    import factory

    return factory.Iterator(list(values), cycle=False)


def half_hour_credit(coach, student=None):
    return make_package(coach=coach, student=student, duration_minutes=30).sessions.first()


def build(page, rows):
    """The viewer and the URL of `page`, with `rows` rows of data behind it."""
    coach = CoachFactory()
    if page == "tasks":
        half = max(1, rows // 2)
        for session in credits(coach, half):
            book(session)
        for index, session in enumerate(credits(coach, rows - half)):
            propose(confirm(session), session.student)
            if index % 2 == 0:  # an external busy time lands on the agreed time
                session.refresh_from_db()
                BusyTime.objects.create(coach=coach, start=session.slot.start, end=session.slot.end)
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
        # The student keeps the current time, the coach proposes again (the student's own new
        # times are limited by the policy): an event each, `rows` events on the timeline.
        for index in range(max(0, rows - 4)):
            if index % 2 == 0:
                services.session_decline_reschedule(session=session, actor=session.student)
            else:
                propose(session, coach)
        return coach, reverse("sessions:detail", args=[session.pk])
    if page in ("book", "book_confirm"):
        session = half_hour_credit(coach)
        open_week(coach, rows)
        # Other students' requests and the student's own elsewhere: reservations to subtract.
        for index in range(0, rows, 10):
            taken = half_hour_credit(coach)
            start = FIRST_TIME + index * timedelta(minutes=40)
            services.session_book(session=taken, start=start, actor=taken.student)
        url = reverse("sessions:book", args=[session.pk])
        if page == "book_confirm":
            return (
                session.student,
                f"{url}?start={format_start(FIRST_TIME + timedelta(minutes=40))}",
            )
        return session.student, url
    if page in ("reschedule", "counter"):
        session = half_hour_credit(coach)
        confirm(session)
        open_week(coach, rows)
        if page == "counter":
            propose(session, coach)
            return session.student, reverse("sessions:counter_propose", args=[session.pk])
        return coach, reverse("sessions:reschedule", args=[session.pk])
    raise ValueError(page)


def rows_shown(page, html):
    """How many rows (sessions; events on the detail timeline; slots to book) `html` shows."""
    if page == "detail":
        (timeline,) = re.findall(r'<ol class="timeline">(.*?)</ol>', html, flags=re.S)
        return timeline.count("<li>")
    if page in ("book", "reschedule", "counter"):
        return len(re.findall(r'aria-label="(?:Book|Propose) ', html))
    if page == "book_confirm":
        return html.count('<input type="hidden" name="start"')
    return len(re.findall(r'<(?:tr|div) id="(?:session|conflict)-\d+"', html))


def expected_rows(page, rows):
    """How many rows `build(page, rows)` puts on the page's first page."""
    if page in ("upcoming", "completed", "canceled"):
        return min(rows, LIST_PAGE_SIZE)
    if page == "my_sessions":
        # credits, requests, upcoming (confirmed), proposals to answer, and the first page of
        # the past (the canceled fifth).
        # Credits and booked sessions are each bounded, the past paginated.
        per_kind = [len(range(kind, rows, 5)) for kind in range(5)]
        return (
            min(per_kind[0], STUDENT_CREDITS_SHOWN)
            + min(sum(per_kind[1:4]), STUDENT_ACTIVE_SHOWN)
            + min(per_kind[4], LIST_PAGE_SIZE)
        )
    if page == "detail":
        # purchased, booked, accepted, proposed, then a kept time or a new proposal per row
        # beyond four.
        return 4 + max(0, rows - 4)
    if page == "book":
        return rows - len(range(0, rows, 10))  # every tenth is taken
    if page == "book_confirm":
        return 1
    if page in ("reschedule", "counter"):
        return rows
    # tasks: requests, proposals, and a conflict for every other proposal, TASKS_SHOWN of each
    half = max(1, rows // 2)
    conflicts = len(range(0, rows - half, 2))
    return sum(min(count, TASKS_SHOWN) for count in (half, rows - half, conflicts))


@pytest.mark.parametrize("rows", [5, 200])
@pytest.mark.parametrize("page", list(BUDGETS))
def test_page_query_count_does_not_grow_with_rows(
    client, django_assert_max_num_queries, page, rows
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
