"""sessions_app 0005 run on real rows made with the historical models of 0004: every session
with a reservation gets its start and end copied onto it; unscheduled ones stay empty."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.migration_support import historical_package, rows_across_migration

BEFORE = ("sessions_app", "0004_offering_moves_to_catalog")
AFTER = ("sessions_app", "0005_session_start_and_end_on_the_session")
START = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)  # the Monday after the change to summer time


def _arrange(apps) -> dict:
    coach, student, package = historical_package(
        apps, title="Deep work", session_count=3, minutes=45
    )
    Session = apps.get_model("sessions_app", "Session")
    TimeSlot = apps.get_model("calendars", "TimeSlot")
    ids = {}
    for number, (name, status, start) in enumerate(
        [
            ("confirmed", "CONFIRMED", START),
            ("completed", "COMPLETED", START - timedelta(days=7, minutes=15)),
            ("unscheduled", "UNSCHEDULED", None),
        ],
        start=1,
    ):
        session = Session.objects.create(
            package=package,
            coach=coach,
            student=student,
            number=number,
            price_share_cents=3000,
            currency="USD",
        )
        if start is not None:
            end = start + timedelta(minutes=45)
            session.slot = TimeSlot.objects.create(
                coach=coach,
                student=student,
                session=session,
                start=start,
                end=end,
                reserved_start=start,
                reserved_end=end,
                status="BOOKED",
            )
        session.status = status
        session.save(update_fields=["slot", "status"])
        ids[name] = session.pk
    return ids


@pytest.fixture(scope="module")
def migrated(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        yield from rows_across_migration("sessions_app", BEFORE, AFTER, _arrange)


def test_sessions_with_a_reservation_carry_its_start_and_end(migrated, db):
    from sessions_app.models import Session

    times = {
        pk: (starts_at, ends_at)
        for pk, starts_at, ends_at in Session.objects.filter(pk__in=migrated.values()).values_list(
            "pk", "starts_at", "ends_at"
        )
    }

    assert times[migrated["confirmed"]] == (START, START + timedelta(minutes=45))
    earlier = START - timedelta(days=7, minutes=15)
    assert times[migrated["completed"]] == (earlier, earlier + timedelta(minutes=45))
    assert times[migrated["unscheduled"]] == (None, None)
