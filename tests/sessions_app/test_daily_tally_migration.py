"""sessions_app 0006 run on real rows made with the historical models of 0005: the coaches'
daily tallies are counted from the events that were already there."""

from datetime import UTC, date, datetime, timedelta

import pytest

from tests.migration_support import historical_package, rows_across_migration

BEFORE = ("sessions_app", "0005_session_start_and_end_on_the_session")
AFTER = ("sessions_app", "0006_coach_daily_tally")
# 23:30 UTC: late enough that a naive local-date truncation would put it on the next day.
LATE = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)


def _arrange(apps) -> dict:
    coach, student, package = historical_package(apps, title="Focus", session_count=3, minutes=60)
    Session = apps.get_model("sessions_app", "Session")
    SessionEvent = apps.get_model("sessions_app", "SessionEvent")
    sessions = [
        Session.objects.create(
            package=package,
            coach=coach,
            student=student,
            number=number,
            price_share_cents=3000,
            currency="USD",
        )
        for number in (1, 2, 3)
    ]

    def event(session, action, actor, source, target, at):
        SessionEvent.objects.create(
            session=session,
            actor=actor,
            action=action,
            from_status=source,
            to_status=target,
            created_at=at,
        )

    # Day one: session 1 booked, withdrawn and booked again (one booked session); session 2
    # booked and canceled by the coach while confirmed; session 3's unused credit canceled.
    event(sessions[0], "book", student, "UNSCHEDULED", "REQUESTED", LATE - timedelta(hours=3))
    event(sessions[0], "withdraw", student, "REQUESTED", "UNSCHEDULED", LATE - timedelta(hours=2))
    event(sessions[0], "book", student, "UNSCHEDULED", "REQUESTED", LATE - timedelta(hours=1))
    event(sessions[1], "book", student, "UNSCHEDULED", "REQUESTED", LATE - timedelta(hours=1))
    event(sessions[1], "cancel", coach, "CONFIRMED", "CANCELED", LATE)
    event(sessions[2], "cancel", coach, "UNSCHEDULED", "CANCELED", LATE)
    # Three days later: session 1 expired and booked once more.
    event(sessions[0], "book", student, "UNSCHEDULED", "REQUESTED", LATE + timedelta(days=3))
    return {"coach": coach.pk}


@pytest.fixture(scope="module")
def migrated(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        yield from rows_across_migration("sessions_app", BEFORE, AFTER, _arrange)


def test_tallies_count_booked_sessions_and_coach_cancellations_per_utc_day(migrated, db):
    from sessions_app.models import CoachDailyTally

    tallies = list(
        CoachDailyTally.objects.filter(coach_id=migrated["coach"])
        .order_by("day")
        .values_list("day", "booked", "coach_canceled")
    )

    assert tallies == [(date(2026, 10, 24), 2, 1), (date(2026, 10, 27), 1, 0)]
