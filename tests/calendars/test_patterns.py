"""Weekly availability patterns: DST-correct materialisation, overlaps, idempotent rolling."""

import threading
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.db import connection

from calendars import services
from calendars.models import AvailabilityPattern, BlockSource, SlotStatus, TimeSlot
from calendars.services import SlotInvalid
from sessions_app.lifecycle import PermissionDenied
from tests.factories import (
    CoachFactory,
    StudentFactory,
    TimeSlotFactory,
    make_pattern,
    make_session,
)

pytestmark = pytest.mark.django_db

# Monday 12 October 2026, 06:00 UTC (08:00 in Berlin). Berlin leaves summer time (UTC+2) for
# winter time (UTC+1) on Sunday 25 October 2026; New York on Sunday 1 November 2026.
MONDAY = datetime(2026, 10, 12, 6, 0, tzinfo=UTC)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def starts(coach) -> list[datetime]:
    return list(
        TimeSlot.objects.filter(coach=coach).order_by("start").values_list("start", flat=True)
    )


def weekly(coach, **overrides):
    fields = {
        "coach": coach,
        "weekday": 0,
        "start_time": time(9, 0),
        "end_time": time(10, 0),
        "slot_minutes": 60,
        "weeks": 3,
        "now": MONDAY,
    }
    fields.update(overrides)
    return make_pattern(**fields)


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        # 09:00 local: UTC+2 before the change, UTC+1 after it.
        ("Europe/Berlin", [utc(2026, 10, 12, 7), utc(2026, 10, 19, 7), utc(2026, 10, 26, 8)]),
        # 09:00 local: UTC-4 (EDT) until 1 November, then UTC-5 (EST).
        ("America/New_York", [utc(2026, 10, 19, 13), utc(2026, 10, 26, 13), utc(2026, 11, 2, 14)]),
    ],
)
def test_weekly_pattern_keeps_local_wall_time_across_the_autumn_dst_change(tz, expected):
    coach = CoachFactory(timezone=tz)
    valid_from = date(2026, 10, 12) if tz == "Europe/Berlin" else date(2026, 10, 19)

    pattern = weekly(coach, valid_from=valid_from)

    assert starts(coach) == expected
    assert pattern.timezone == tz
    assert pattern.valid_until == valid_from + timedelta(days=20)
    assert set(TimeSlot.objects.values_list("pattern_id", "status")) == {(pattern.pk, "OPEN")}


def test_weekly_pattern_keeps_local_wall_time_across_the_spring_dst_change():
    coach = CoachFactory(timezone="Europe/Berlin")
    with time_machine.travel(utc(2027, 3, 15, 6), tick=False):
        weekly(coach, now=None)

    # Berlin goes to summer time on Sunday 28 March 2027: 09:00 is 08:00 UTC, then 07:00 UTC.
    assert starts(coach) == [utc(2027, 3, 15, 8), utc(2027, 3, 22, 8), utc(2027, 3, 29, 7)]


def test_window_through_the_night_clocks_go_back_gives_every_real_hour():
    coach = CoachFactory(timezone="Europe/Berlin")

    result = services.availability_patterns_create(
        coach=coach,
        weekdays=[6],
        start_time=time(1, 0),
        end_time=time(4, 0),
        slot_minutes=60,
        weeks=1,
        valid_from=date(2026, 10, 25),
        now=MONDAY,
    )

    # 01:00 CEST (23:00 UTC the day before) to 04:00 CET (03:00 UTC) is four real hours.
    assert (result.created, result.skipped) == (4, 0)
    assert starts(coach) == [
        utc(2026, 10, 24, 23),
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 1),
        utc(2026, 10, 25, 2),
    ]


def test_several_weekdays_make_one_pattern_each_with_their_slots():
    coach = CoachFactory(timezone="UTC")

    result = services.availability_patterns_create(
        coach=coach,
        weekdays=[2, 0],
        start_time=time(9, 0),
        end_time=time(11, 0),
        slot_minutes=30,
        weeks=2,
        now=MONDAY,
    )

    assert [p.weekday for p in result.patterns] == [0, 2]
    assert (result.created, result.skipped) == (16, 0)
    assert TimeSlot.objects.filter(coach=coach).count() == 16
    assert starts(coach)[:5] == [
        utc(2026, 10, 12, 9),
        utc(2026, 10, 12, 9, 30),
        utc(2026, 10, 12, 10),
        utc(2026, 10, 12, 10, 30),
        utc(2026, 10, 14, 9),
    ]


def test_overlapping_times_are_skipped_and_counted():
    coach = CoachFactory(timezone="UTC")
    existing = TimeSlotFactory(coach=coach, start=utc(2026, 10, 19, 9, 30))

    result = services.availability_patterns_create(
        coach=coach,
        weekdays=[0],
        start_time=time(9, 0),
        end_time=time(11, 0),
        slot_minutes=60,
        weeks=3,
        now=MONDAY,
    )

    assert (result.created, result.skipped) == (4, 2)
    assert starts(coach) == [
        utc(2026, 10, 12, 9),
        utc(2026, 10, 12, 10),
        existing.start,
        utc(2026, 10, 26, 9),
        utc(2026, 10, 26, 10),
    ]


def test_times_already_started_today_are_left_out():
    coach = CoachFactory(timezone="UTC")

    result = services.availability_patterns_create(
        coach=coach,
        weekdays=[0],
        start_time=time(9, 0),
        end_time=time(12, 0),
        slot_minutes=60,
        weeks=1,
        now=utc(2026, 10, 12, 9, 30),
    )

    assert (result.created, result.skipped) == (2, 0)
    assert starts(coach) == [utc(2026, 10, 12, 10), utc(2026, 10, 12, 11)]


def test_pattern_without_any_future_time_is_refused_and_writes_nothing():
    coach = CoachFactory(timezone="UTC")

    with pytest.raises(SlotInvalid, match="no future times"):
        weekly(coach, weeks=1, now=utc(2026, 10, 12, 18))

    assert AvailabilityPattern.objects.count() == 0
    assert TimeSlot.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"end_time": time(9, 0)}, "end must be after the start"),
        ({"end_time": time(8, 0)}, "end must be after the start"),
        ({"slot_minutes": 3}, "A slot lasts 5 to 720 minutes"),
        ({"slot_minutes": 721}, "A slot lasts 5 to 720 minutes"),
        ({"slot_minutes": 90}, "shorter than one slot"),
        ({"weeks": 0}, "Repeat for 1 to 52 weeks"),
        ({"weeks": 53}, "Repeat for 1 to 52 weeks"),
        ({"weekday": 7}, "Choose at least one weekday"),
        ({"valid_from": date(2026, 10, 11)}, "cannot start in the past"),
        ({"valid_from": date(2027, 12, 1)}, "within a year"),
    ],
)
def test_malformed_pattern_is_refused_with_a_reason_and_writes_nothing(overrides, message):
    coach = CoachFactory(timezone="UTC")

    with pytest.raises(SlotInvalid, match=message):
        weekly(coach, **overrides)

    assert AvailabilityPattern.objects.count() == 0
    assert TimeSlot.objects.count() == 0


def test_pattern_by_a_non_coach_is_refused():
    with pytest.raises(PermissionDenied):
        weekly(StudentFactory())

    assert AvailabilityPattern.objects.count() == 0


# --- the daily materialisation -----------------------------------------------------------------


def test_materialise_rolls_an_ongoing_pattern_forward_and_is_idempotent():
    coach = CoachFactory(timezone="UTC")
    weekly(coach, weeks=1, ongoing=True)

    first = services.availability_patterns_materialise(now=MONDAY, weeks_ahead=3)
    again = services.availability_patterns_materialise(now=MONDAY, weeks_ahead=3)

    assert (first, again) == (3, 0)
    assert starts(coach) == [utc(2026, 10, d, 9) for d in (12, 19, 26)] + [utc(2026, 11, 2, 9)]

    with time_machine.travel(MONDAY + timedelta(days=7), tick=False):
        later = services.availability_patterns_materialise(weeks_ahead=3)
    assert later == 1
    assert starts(coach)[-1] == utc(2026, 11, 9, 9)


def test_materialise_uses_the_weeks_ahead_setting_by_default(settings):
    settings.AVAILABILITY_WEEKS_AHEAD = 2
    coach = CoachFactory(timezone="UTC")
    weekly(coach, weeks=1, ongoing=True)

    assert services.availability_patterns_materialise(now=MONDAY) == 2
    assert starts(coach)[-1] == utc(2026, 10, 26, 9)


def test_materialise_does_not_recreate_a_slot_the_coach_removed():
    coach = CoachFactory(timezone="UTC")
    weekly(coach, weeks=3, ongoing=True)
    removed = TimeSlot.objects.get(coach=coach, start=utc(2026, 10, 19, 9))
    services.slot_delete(slot=removed, coach=coach)

    created = services.availability_patterns_materialise(now=MONDAY, weeks_ahead=3)

    assert created == 1
    assert starts(coach) == [utc(2026, 10, 12, 9), utc(2026, 10, 26, 9), utc(2026, 11, 2, 9)]


def test_materialise_skips_a_time_that_now_overlaps_another_slot():
    coach = CoachFactory(timezone="UTC")
    weekly(coach, weeks=1, ongoing=True)
    blocker = TimeSlotFactory(coach=coach, start=utc(2026, 10, 19, 8, 30))

    created = services.availability_patterns_materialise(now=MONDAY, weeks_ahead=2)

    assert created == 1
    assert starts(coach) == [utc(2026, 10, 12, 9), blocker.start, utc(2026, 10, 26, 9)]


def test_materialise_stops_at_the_end_of_a_pattern_made_for_n_weeks():
    coach = CoachFactory(timezone="UTC")
    weekly(coach, weeks=2)

    assert services.availability_patterns_materialise(now=MONDAY, weeks_ahead=8) == 0
    assert TimeSlot.objects.filter(coach=coach).count() == 2


def test_materialise_ignores_deleted_patterns_and_coaches_without_a_profile():
    gone = CoachFactory(timezone="UTC")
    services.availability_pattern_delete(pattern=weekly(gone, weeks=1, ongoing=True), coach=gone)
    former = CoachFactory(timezone="UTC")
    weekly(former, weeks=1, ongoing=True)
    former.coach_profile.delete()

    assert services.availability_patterns_materialise(now=MONDAY, weeks_ahead=4) == 0


# --- stopping a pattern ------------------------------------------------------------------------


def test_deleting_a_pattern_removes_its_open_future_slots_and_keeps_taken_ones():
    coach = CoachFactory(timezone="UTC")
    with time_machine.travel(MONDAY, tick=False):
        pattern = weekly(coach, now=None, weeks=4, ongoing=True)
        taken = TimeSlot.objects.get(coach=coach, start=utc(2026, 10, 19, 9))
        session = make_session("UNSCHEDULED", coach=coach)
        from sessions_app.services import session_book

        session_book(session=session, slot=taken, actor=session.student)
        removed = services.availability_pattern_delete(pattern=pattern, coach=coach)

    pattern.refresh_from_db()
    assert removed == 3
    assert pattern.is_active is False
    assert list(TimeSlot.objects.filter(coach=coach).values_list("start", "status")) == [
        (utc(2026, 10, 19, 9), SlotStatus.HELD)
    ]
    assert services.availability_patterns_materialise(now=MONDAY, weeks_ahead=4) == 0


def test_deleting_a_pattern_blocks_an_open_slot_a_session_still_names():
    from sessions_app import services as session_services

    coach = CoachFactory(timezone="UTC")
    with time_machine.travel(MONDAY, tick=False):
        pattern = weekly(coach, now=None, weeks=2)
        old, new = TimeSlot.objects.filter(coach=coach).order_by("start")
        session = make_session("UNSCHEDULED", coach=coach)
        session_services.session_book(session=session, slot=old, actor=session.student)
        session_services.session_accept(session=session, actor=coach)
        # Rescheduling reopens the old slot, which the session still names.
        session_services.session_propose_reschedule(session=session, slot=new, actor=coach)
        removed = services.availability_pattern_delete(pattern=pattern, coach=coach)

    old.refresh_from_db()
    new.refresh_from_db()
    assert removed == 1
    assert (old.status, old.block_source) == (SlotStatus.BLOCKED, BlockSource.COACH)
    assert new.status == SlotStatus.HELD


def test_deleting_another_coachs_pattern_is_refused_and_changes_nothing():
    owner, other = CoachFactory(timezone="UTC"), CoachFactory()
    pattern = weekly(owner)

    with pytest.raises(PermissionDenied):
        services.availability_pattern_delete(pattern=pattern, coach=other)

    pattern.refresh_from_db()
    assert pattern.is_active is True
    assert TimeSlot.objects.filter(coach=owner).count() == 3


# --- PostgreSQL: concurrent writers never overlap ------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_patterns_create_each_slot_once_on_postgres():
    assert connection.vendor == "postgresql"
    coach = CoachFactory(timezone="UTC")
    barrier = threading.Barrier(2)
    results, errors = [], []

    def create():
        try:
            barrier.wait(timeout=10)
            results.append(
                services.availability_patterns_create(
                    coach=coach,
                    weekdays=[0, 1, 2, 3, 4],
                    start_time=time(9, 0),
                    end_time=time(17, 0),
                    slot_minutes=30,
                    weeks=4,
                    now=MONDAY,
                )
            )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sum(r.created for r in results) == 320
    assert sum(r.skipped for r in results) == 320
    assert TimeSlot.objects.filter(coach=coach).count() == 320


def _wait_until_a_backend_waits_for_a_lock(deadline_seconds: float = 10) -> bool:
    """Poll pg_stat_activity until another connection is blocked on a row lock."""
    import time

    from django.db import connections

    deadline = time.monotonic() + deadline_seconds
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return True
            threading.Event().wait(0.02)
    return False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_stopping_a_pattern_while_one_of_its_slots_is_being_booked_keeps_that_slot_on_postgres():
    from django.db import transaction

    from sessions_app.services import session_book

    assert connection.vendor == "postgresql"
    coach = CoachFactory(timezone="UTC")
    pattern = make_pattern(
        coach=coach,
        weekday=(datetime.now(UTC).weekday() + 3) % 7,
        start_time=time(9, 0),
        end_time=time(12, 0),
        slot_minutes=60,
        weeks=2,
    )
    session = make_session(coach=coach)
    target = TimeSlot.objects.filter(pattern=pattern).order_by("-start").first()
    booked, release = threading.Event(), threading.Event()
    errors, removed = [], []

    def book():
        try:
            with transaction.atomic():
                session_book(session=session, slot=target, actor=session.student)
                booked.set()
                release.wait(timeout=10)  # commit only once the stop is waiting for the slot
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            booked.set()
            connection.close()

    def stop():
        try:
            removed.append(services.availability_pattern_delete(pattern=pattern, coach=coach))
        except Exception as exc:  # reported below: this is the 500 the lock prevents
            errors.append(exc)
        finally:
            connection.close()

    booker = threading.Thread(target=book)
    booker.start()
    assert booked.wait(timeout=10)
    stopper = threading.Thread(target=stop)
    stopper.start()
    waiting = _wait_until_a_backend_waits_for_a_lock()
    release.set()
    booker.join(timeout=30)
    stopper.join(timeout=30)

    assert waiting is True
    assert errors == []
    target.refresh_from_db()
    session.refresh_from_db()
    assert (target.status, session.slot_id, session.status) == ("HELD", target.pk, "REQUESTED")
    assert list(TimeSlot.objects.filter(pattern=pattern).values_list("pk", flat=True)) == [
        target.pk
    ]
    assert removed == [5]
