"""Creating slots: validation, overlap refusal, and the database's own guard on PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from calendars.models import TimeSlot
from calendars.services import SlotInvalid, SlotUnavailable, slot_create
from sessions_app.lifecycle import PermissionDenied
from tests.factories import CoachFactory, StudentFactory, TimeSlotFactory

pytestmark = pytest.mark.django_db


def at(days: float, hours: float = 0) -> datetime:
    base = timezone.now().replace(minute=0, second=0, microsecond=0)
    return base + timedelta(days=days, hours=hours)


def test_slot_create_opens_a_slot():
    coach = CoachFactory()

    slot = slot_create(coach=coach, start=at(1), end=at(1, 1))

    assert (slot.coach, slot.status, slot.duration_minutes) == (coach, "OPEN", 60)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (lambda: at(1, 1), lambda: at(1), "end must be after"),
        (lambda: at(-1), lambda: at(-1, 1), "in the future"),
        (lambda: at(1), lambda: at(1, 13), "at most 12 hours"),
        (lambda: at(1).replace(tzinfo=None), lambda: at(1, 1).replace(tzinfo=None), "timezone"),
    ],
)
def test_slot_create_refuses_malformed_times(start, end, message):
    with pytest.raises(SlotInvalid, match=message):
        slot_create(coach=CoachFactory(), start=start(), end=end())
    assert TimeSlot.objects.count() == 0


@pytest.mark.parametrize(("start_h", "end_h"), [(0, 1), (0.5, 1.5), (-0.5, 0.5), (-1, 2)])
def test_slot_create_refuses_overlaps(start_h, end_h):
    coach = CoachFactory()
    existing = slot_create(coach=coach, start=at(2), end=at(2, 1))

    with pytest.raises(SlotUnavailable, match="overlaps"):
        slot_create(coach=coach, start=at(2, start_h), end=at(2, end_h))

    assert list(TimeSlot.objects.all()) == [existing]


def test_adjacent_slots_and_other_coaches_do_not_overlap():
    coach = CoachFactory()
    slot_create(coach=coach, start=at(2), end=at(2, 1))

    slot_create(coach=coach, start=at(2, 1), end=at(2, 2))
    slot_create(coach=CoachFactory(), start=at(2), end=at(2, 1))

    assert TimeSlot.objects.count() == 3


def test_only_coaches_have_slots():
    with pytest.raises(PermissionDenied):
        slot_create(coach=StudentFactory(), start=at(1), end=at(1, 1))


@pytest.mark.postgres
def test_postgres_exclusion_constraint_refuses_overlap_when_service_is_bypassed():
    coach = CoachFactory()
    TimeSlotFactory(
        coach=coach,
        start=datetime(2030, 1, 7, 9, tzinfo=UTC),
        end=datetime(2030, 1, 7, 10, tzinfo=UTC),
    )

    with pytest.raises(IntegrityError, match="timeslot_coach_no_overlap"), transaction.atomic():
        TimeSlot.objects.create(
            coach=coach,
            start=datetime(2030, 1, 7, 9, 30, tzinfo=UTC),
            end=datetime(2030, 1, 7, 10, 30, tzinfo=UTC),
        )
    TimeSlot.objects.create(
        coach=coach,
        start=datetime(2030, 1, 7, 10, tzinfo=UTC),
        end=datetime(2030, 1, 7, 11, tzinfo=UTC),
    )
    assert TimeSlot.objects.filter(coach=coach).count() == 2
