"""On PostgreSQL, each list query walks the index made for it, in the order it shows, and stops
after a page: no sequential scan of the sessions, no sort of them (issue 14).

The data is the benchmark's (`bench/pages.py`): one coach with 5,000 sessions in the real mix,
analyzed, so the planner chooses as it would in production.
"""

import re

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection

from bench.pages import NOW, seed_coach
from sessions_app import selectors
from sessions_app.lifecycle import Status
from sessions_app.models import CoachDailyTally, Session

pytestmark = [pytest.mark.postgres]
PAGE = 26  # a page and the row that says there is a next one


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        try:
            with time_machine.travel(NOW, tick=False):
                ids = seed_coach("plans", 5000)
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE")
            yield ids
        finally:
            call_command("flush", interactive=False, verbosity=0)  # seeded outside a test


def _plan(queryset) -> str:
    return queryset.explain()


def _lists(ids) -> dict:
    coach, student = ids["coach"], ids["heavy"]
    return {
        "session_coach_upcoming": selectors.coach_upcoming_sessions(coach=coach, now=NOW),
        "session_coach_status_start": selectors.coach_completed_sessions(coach=coach),
        "session_coach_status_changed": selectors.coach_canceled_sessions(coach=coach),
        "session_coach_status_expiry": Session.objects.filter(
            coach=coach, status=Status.REQUESTED, request_expires_at__gt=NOW
        ).order_by("request_expires_at", "pk"),
        "session_student_holding": Session.objects.filter(
            student=student, status__in=[Status.REQUESTED, Status.CONFIRMED, Status.RESCHEDULING]
        ).order_by("starts_at", "pk"),
        "session_student_past": selectors.student_past_sessions(student=student),
    }


@pytest.mark.parametrize(
    "index",
    [
        "session_coach_upcoming",
        "session_coach_status_start",
        "session_coach_status_changed",
        "session_coach_status_expiry",
        "session_student_holding",
        "session_student_past",
    ],
)
def test_each_list_page_is_an_index_scan_in_its_order(seeded, db, index):
    with time_machine.travel(NOW, tick=False):
        plan = _plan(_lists(seeded)[index][:PAGE])

    assert re.search(
        rf"Index (Only )?Scan( Backward)? using {index} on sessions_app_session", plan
    ), plan
    assert "Seq Scan on sessions_app_session" not in plan, plan
    assert "Sort" not in plan, plan  # the order comes from the index: nothing sorts


def test_the_cancellation_rate_reads_a_range_of_days_of_one_coach(seeded, db):
    # The tallies of one coach are few, so the planner may well read them all; what matters is
    # that the unique index can bound the read to the coach's window.
    rate = CoachDailyTally.objects.filter(coach=seeded["coach"], day__gte=NOW.date())
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = _plan(rate.values("booked"))

    assert "using coach_daily_tally_unique" in plan, plan
    assert re.search(r"Index Cond: \(\(coach_id = \S+\) AND \(day >= ", plan), plan
