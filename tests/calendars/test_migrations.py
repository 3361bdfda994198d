"""The move from pre-cut slots to availability and reservations (calendars 0003-0005, sessions_app
0003), run from the state before it on real rows made with the historical models."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.db import IntegrityError, transaction

from tests.migration_support import latest_migrations, migrate_to

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
BEFORE = [
    ("accounts", "0003_user_display_name_one_line"),
    ("calendars", "0002_timeslot_no_overlap_postgres"),
    ("sessions_app", "0002_package_purchase_token"),
]
# Wednesday 10 June 2026, 13:00 in London (BST): the moment the migration runs.
NOW = datetime(2026, 6, 10, 13, 0, tzinfo=LONDON)
MONDAY = date(2026, 6, 15)


def _at(day: date, hour: int, minute: int = 0, tz=LONDON) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=tz)


def _day(offset: int) -> date:
    """MONDAY plus `offset` days."""
    return MONDAY + timedelta(days=offset)


class _Old:
    """Rows as the pre-cut design stored them, made with its historical models."""

    def __init__(self, apps):
        self.User = apps.get_model("accounts", "User")
        self.CoachProfile = apps.get_model("accounts", "CoachProfile")
        self.Pattern = apps.get_model("calendars", "AvailabilityPattern")
        self.TimeSlot = apps.get_model("calendars", "TimeSlot")
        self.Offering = apps.get_model("sessions_app", "Offering")
        self.Package = apps.get_model("sessions_app", "Package")
        self.Session = apps.get_model("sessions_app", "Session")
        self.Proposal = apps.get_model("sessions_app", "RescheduleProposal")

    def user(self, email: str, tz: str = "UTC"):
        return self.User.objects.create(email=email, display_name=email.split("@")[0], timezone=tz)

    def coach(self, email: str, tz: str):
        coach = self.user(email, tz)
        self.CoachProfile.objects.create(user=coach, minimum_notice_hours=0)
        self.offering = self.Offering.objects.create(
            coach=coach, title="Lesson", session_count=1, duration_minutes=60, price_cents=5000
        )
        return coach

    def slot(self, coach, start, *, status="OPEN", minutes=60, **fields):
        return self.TimeSlot.objects.create(
            coach=coach,
            start=start,
            end=start + timedelta(minutes=minutes),
            status=status,
            **fields,
        )

    def session(self, student, status, slot=None, minutes=60):
        offering = self.offering
        package = self.Package.objects.create(
            offering=offering,
            coach=offering.coach,
            student=student,
            title=offering.title,
            session_count=1,
            duration_minutes=minutes,
            price_cents=5000,
            currency="USD",
        )
        return self.Session.objects.create(
            package=package,
            coach=offering.coach,
            student=student,
            number=1,
            status=status,
            slot=slot,
            price_share_cents=5000,
            currency="USD",
        )

    def proposal(self, session, slot, status="PENDING"):
        return self.Proposal.objects.create(
            session=session,
            slot=slot,
            proposed_by=session.coach,
            status=status,
            expires_at=NOW + timedelta(hours=48),
        )


def _arrange(apps) -> dict:
    """Every kind of row the migration carries over; returns their ids by name."""
    old = _Old(apps)
    coach = old.coach("coach@example.com", "Europe/London")
    ann, ben, cat, dan = (old.user(f"{name}@example.com") for name in ("ann", "ben", "cat", "dan"))
    mondays = old.Pattern.objects.create(
        coach=coach,
        weekday=0,
        start_time=time(9),
        end_time=time(17),
        timezone="Europe/London",
        valid_from=date(2026, 1, 5),
    )
    later = old.Pattern.objects.create(
        coach=coach,
        weekday=3,
        start_time=time(13),
        end_time=time(15),
        timezone="Europe/London",
        valid_from=date(2026, 9, 3),
        valid_until=date(2026, 12, 17),
    )
    old.Pattern.objects.create(  # stopped
        coach=coach,
        weekday=1,
        start_time=time(9),
        end_time=time(17),
        timezone="Europe/London",
        valid_from=date(2026, 1, 6),
        is_active=False,
    )
    old.Pattern.objects.create(  # ended before today
        coach=coach,
        weekday=2,
        start_time=time(9),
        end_time=time(17),
        timezone="Europe/London",
        valid_from=date(2026, 1, 7),
        valid_until=date(2026, 6, 3),
    )
    ids = {"coach": coach.pk, "ann": ann.pk, "ben": ben.pk, "cat": cat.pk, "dan": dan.pk}
    ids["rules"] = (mondays.pk, later.pk)

    # Monday, made by the weekly pattern: an open hour, a request, a confirmed lesson.
    old.slot(coach, _at(_day(0), 14), pattern=mondays)
    held = old.slot(coach, _at(_day(0), 11), status="HELD", pattern=mondays)
    requested = old.session(ann, "REQUESTED", held)
    booked = old.slot(coach, _at(_day(0), 12), status="BOOKED", pattern=mondays)
    confirmed = old.session(ann, "CONFIRMED", booked)
    # Tuesday: being rescheduled; the old design reopened the agreed time (nobody took it).
    agreed = old.slot(coach, _at(_day(1), 9))
    rescheduling = old.session(ben, "RESCHEDULING", agreed)
    superseded = old.slot(coach, _at(_day(1), 13))
    old.proposal(rescheduling, superseded, status="SUPERSEDED")
    proposed = old.slot(coach, _at(_day(1), 11), status="HELD")
    old.proposal(rescheduling, proposed)
    # Wednesday: being rescheduled, and someone else booked the reopened agreed time.
    taken = old.slot(coach, _at(_day(2), 9), status="BOOKED")
    robbed = old.session(cat, "RESCHEDULING", taken)
    taker = old.session(dan, "CONFIRMED", taken)
    robbed_proposed = old.slot(coach, _at(_day(2), 11), status="HELD")
    old.proposal(robbed, robbed_proposed)
    # Thursday: busy in an external calendar, and blocked by the coach.
    old.slot(coach, _at(_day(3), 9), status="BLOCKED", block_source="external")
    old.slot(coach, _at(_day(3), 11), minutes=90, status="BLOCKED", block_source="coach")
    # Friday: a canceled session's time (reopened by the cancel).
    canceled_slot = old.slot(coach, _at(_day(4), 9))
    canceled = old.session(dan, "CANCELED", canceled_slot)
    # Saturday: one-off open hours, two of them adjacent.
    for hour in (10, 11, 14):
        old.slot(coach, _at(_day(5), hour))
    # Sunday: a 30-minute lesson booked on a 60-minute slot (slots were cut by the pattern).
    short_slot = old.slot(coach, _at(_day(6), 10), status="BOOKED")
    short = old.session(ann, "CONFIRMED", short_slot, minutes=30)
    # In the past: an open slot nobody used, a block.
    old.slot(coach, _at(date(2026, 6, 1), 9))
    old.slot(coach, _at(date(2026, 6, 1), 11), status="BLOCKED", block_source="coach")

    # A coach who moved from New York to Berlin: the pattern was defined in New York time.
    mover = old.coach("mover@example.com", "Europe/Berlin")
    moved = old.Pattern.objects.create(
        coach=mover,
        weekday=0,
        start_time=time(9),
        end_time=time(11),
        timezone="America/New_York",
        valid_from=date(2026, 1, 5),
    )
    for hour in (9, 10):
        old.slot(mover, _at(_day(0), hour, tz=NEW_YORK), pattern=moved)
    ids["mover"] = mover.pk

    # The pre-cut design's own guard is in place (PostgreSQL): a coach's slots never overlap.
    ids["old_overlap_refused"] = _refused(lambda: old.slot(coach, _at(_day(5), 10, 30)))

    ids.update(
        held=held.pk,
        requested=requested.pk,
        booked=booked.pk,
        confirmed=confirmed.pk,
        agreed=agreed.pk,
        rescheduling=rescheduling.pk,
        superseded=superseded.pk,
        proposed=proposed.pk,
        taken=taken.pk,
        robbed=robbed.pk,
        taker=taker.pk,
        robbed_proposed=robbed_proposed.pk,
        canceled_slot=canceled_slot.pk,
        canceled=canceled.pk,
        short_slot=short_slot.pk,
        short=short.pk,
    )
    return ids


class _Allowed(Exception):
    """Raised to roll back a write the database allowed."""


def _refused(write) -> bool:
    """Whether the database refuses `write` (which is rolled back either way)."""
    try:
        with transaction.atomic():
            write()
            raise _Allowed
    except IntegrityError:
        return True
    except _Allowed:
        return False


@pytest.fixture(scope="module")
def _migrated_once(django_db_setup, django_db_blocker):
    """The rows of `_arrange`, migrated once from the pre-cut state to the latest one (the
    migrations are slow); each test then runs in its own rolled-back transaction, and the rows
    are flushed after the last."""
    with django_db_blocker.unblock():
        try:
            with time_machine.travel(NOW, tick=False):
                try:
                    ids = _arrange(migrate_to(BEFORE))
                finally:
                    migrate_to(latest_migrations())
            yield ids
        finally:
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def migrated(_migrated_once, db):
    with time_machine.travel(NOW, tick=False):
        yield _migrated_once


def _slots(**filters):
    from calendars.models import TimeSlot

    return TimeSlot.objects.filter(**filters)


def test_reservations_keep_their_sessions_and_students(migrated):
    from calendars.models import TimeSlot

    rows = {
        slot.pk: (slot.status, slot.session_id, slot.student_id, slot.start, slot.end)
        for slot in TimeSlot.objects.all()
    }
    m = migrated
    hour = timedelta(hours=1)

    def row(name, status, session, student):
        start = {
            "held": _at(_day(0), 11),
            "booked": _at(_day(0), 12),
            "agreed": _at(_day(1), 9),
            "superseded": _at(_day(1), 13),
            "proposed": _at(_day(1), 11),
            "taken": _at(_day(2), 9),
            "robbed_proposed": _at(_day(2), 11),
            "canceled_slot": _at(_day(4), 9),
        }[name]
        return m[name], (status, m[session], m[student], start, start + hour)

    expected = dict(
        [
            row("held", "HELD", "requested", "ann"),
            row("booked", "BOOKED", "confirmed", "ann"),
            row("agreed", "BOOKED", "rescheduling", "ben"),  # booked again
            row("superseded", "RELEASED", "rescheduling", "ben"),
            row("proposed", "HELD", "rescheduling", "ben"),
            row("taken", "BOOKED", "taker", "dan"),
            row("robbed_proposed", "HELD", "robbed", "cat"),
            row("canceled_slot", "RELEASED", "canceled", "dan"),
        ]
    )
    # Trimmed to its 30-minute session (test_a_reservation_is_trimmed_to_its_sessions_length).
    expected[m["short_slot"]] = rows[m["short_slot"]]
    copies = {pk: value for pk, value in rows.items() if pk not in expected}
    assert {pk: rows.get(pk) for pk in expected} == expected
    # The session whose agreed time was taken keeps a released copy of it as its last time.
    assert list(copies.values()) == [
        ("RELEASED", m["robbed"], m["cat"], _at(_day(2), 9), _at(_day(2), 9) + hour)
    ]
    assert all(slot.reserved_start == slot.start for slot in TimeSlot.objects.all())
    assert all(slot.reserved_end == slot.end for slot in TimeSlot.objects.all())
    released = TimeSlot.objects.filter(status="RELEASED")
    assert set(released.values_list("released_at", flat=True)) == {NOW}


def test_sessions_point_at_their_agreed_times(migrated):
    from sessions_app.models import RescheduleProposal, Session

    m = migrated
    [copy] = _slots(session_id=m["robbed"], status="RELEASED").values_list("pk", flat=True)
    slots = dict(Session.objects.values_list("pk", "slot_id"))
    assert {name: slots[m[name]] for name in ("requested", "confirmed", "rescheduling")} == {
        "requested": m["held"],
        "confirmed": m["booked"],
        "rescheduling": m["agreed"],
    }
    assert (slots[m["taker"]], slots[m["robbed"]]) == (m["taken"], copy)
    pending = dict(
        RescheduleProposal.objects.filter(status="PENDING").values_list("session_id", "slot_id")
    )
    assert pending == {m["rescheduling"]: m["proposed"], m["robbed"]: m["robbed_proposed"]}


def test_running_patterns_become_weekly_rules_and_stopped_ones_nothing(migrated):
    from calendars.models import AvailabilityRule

    rules = AvailabilityRule.objects.order_by("coach_id", "weekday")
    assert list(
        rules.values_list(
            "coach_id", "weekday", "start_time", "end_time", "valid_from", "valid_until"
        )
    ) == [
        # Already running: no first date, so the weekly-hours grid manages it.
        (migrated["coach"], 0, time(9), time(17), None, None),
        # Still to start: it keeps its dates.
        (migrated["coach"], 3, time(13), time(15), date(2026, 9, 3), date(2026, 12, 17)),
    ]


def test_open_and_booked_one_off_times_become_windows_adjacent_ones_merged(migrated):
    from calendars.models import AvailabilityWindow

    windows = AvailabilityWindow.objects.order_by("coach_id", "start")
    hour = timedelta(hours=1)
    coach, mover = migrated["coach"], migrated["mover"]
    assert list(windows.values_list("coach_id", "start", "end")) == [
        # Tuesday: the agreed time, the proposed time, the superseded proposal's time.
        (coach, _at(_day(1), 9), _at(_day(1), 9) + hour),
        (coach, _at(_day(1), 11), _at(_day(1), 11) + hour),
        (coach, _at(_day(1), 13), _at(_day(1), 13) + hour),
        # Wednesday: the agreed time someone else took, and the proposed time.
        (coach, _at(_day(2), 9), _at(_day(2), 9) + hour),
        (coach, _at(_day(2), 11), _at(_day(2), 11) + hour),
        # Friday: the canceled session's time, bookable again as its reopened slot was.
        (coach, _at(_day(4), 9), _at(_day(4), 9) + hour),
        # Saturday: 10-11 and 11-12 merged; 14-15 alone.
        (coach, _at(_day(5), 10), _at(_day(5), 12)),
        (coach, _at(_day(5), 14), _at(_day(5), 15)),
        # Sunday: the 60-minute slot of a 30-minute lesson, all of it bookable when released.
        (coach, _at(_day(6), 10), _at(_day(6), 10) + hour),
        # The coach who moved keeps the New York times as one-off windows, not a moved rule.
        (mover, _at(_day(0), 9, tz=NEW_YORK), _at(_day(0), 11, tz=NEW_YORK)),
    ]


def test_blocks_become_busy_times_or_time_off_and_the_past_is_dropped(migrated):
    from calendars.models import BusyTime, TimeOff

    assert list(BusyTime.objects.values_list("coach_id", "calendar_id", "start", "end")) == [
        (migrated["coach"], None, _at(_day(3), 9), _at(_day(3), 10))
    ]
    assert list(TimeOff.objects.values_list("coach_id", "start", "end")) == [
        (migrated["coach"], _at(_day(3), 11), _at(_day(3), 12, 30))
    ]
    # Open hours made by a pattern (now a rule), blocks, and the unused past are gone.
    assert not _slots(start__lt=NOW).exists()
    assert not _slots(start__in=[_at(_day(0), 14), _at(_day(3), 9), _at(_day(5), 10)]).exists()
    assert _slots(coach_id=migrated["mover"]).count() == 0


def test_migrated_rows_work_with_the_services(migrated):
    """The agreed time stands when the proposal is declined; the rules and windows give the
    bookable times, minus what is taken."""
    from accounts.models import User
    from calendars.models import TimeSlot
    from calendars.selectors import bookable_starts
    from sessions_app import services
    from sessions_app.models import Session

    session = Session.objects.get(pk=migrated["rescheduling"])
    services.session_decline_reschedule(session=session, actor=session.student)

    session.refresh_from_db()
    assert (session.status, session.slot_id) == ("CONFIRMED", migrated["agreed"])
    assert TimeSlot.objects.get(pk=migrated["proposed"]).status == "RELEASED"
    coach = User.objects.get(pk=migrated["coach"])
    monday = bookable_starts(
        coach=coach, duration_minutes=60, start=_at(_day(0), 0), end=_at(_day(1), 0)
    )
    assert _at(_day(0), 9) in monday and _at(_day(0), 14) in monday
    assert _at(_day(0), 11) not in monday and _at(_day(0), 12) not in monday
    tuesday = bookable_starts(
        coach=coach, duration_minutes=60, start=_at(_day(1), 0), end=_at(_day(2), 0)
    )
    assert tuesday == [_at(_day(1), 11), _at(_day(1), 13)]  # 09:00 is still agreed


def test_a_reservation_is_trimmed_to_its_sessions_length(migrated):
    from calendars.models import TimeSlot

    slot = TimeSlot.objects.get(pk=migrated["short_slot"])
    assert (slot.start, slot.end, slot.reserved_end, slot.status, slot.session_id) == (
        _at(_day(6), 10),
        _at(_day(6), 10, 30),
        _at(_day(6), 10, 30),
        "BOOKED",
        migrated["short"],
    )


def test_a_session_whose_agreed_time_was_taken_cannot_keep_it(migrated):
    """Keeping, withdrawing or letting the proposal expire would confirm a time another
    session holds; only confirming the proposed time (or another) settles it."""
    from sessions_app import services
    from sessions_app.lifecycle import TransitionNotAllowed
    from sessions_app.models import Session

    session = Session.objects.get(pk=migrated["robbed"])
    with pytest.raises(TransitionNotAllowed, match="no longer held for it"):
        services.session_decline_reschedule(session=session, actor=session.student)
    with time_machine.travel(NOW + timedelta(days=3), tick=False):
        assert services.sessions_expire_stale() == 1  # the other session's proposal only
    session.refresh_from_db()
    assert session.status == "RESCHEDULING"

    services.session_confirm_reschedule(session=session, actor=session.student)

    session.refresh_from_db()
    assert (session.status, session.slot_id) == ("CONFIRMED", migrated["robbed_proposed"])


def test_a_reservation_of_a_london_coach_in_summer_says_bst(migrated):
    from calendars.models import TimeSlot

    slot = TimeSlot.objects.select_related("coach").get(pk=migrated["booked"])

    assert str(slot) == "Mon 15 Jun 2026 12:00\u201313:00 BST (Booked)"


@pytest.mark.postgres
def test_on_postgresql_the_guards_hold_on_both_sides_of_the_migration(migrated):
    from calendars.models import TimeSlot
    from sessions_app.models import Session

    requested = Session.objects.get(pk=migrated["requested"])
    start = _at(_day(2), 9, 30)  # across the time `taker` holds

    def overlapping():
        TimeSlot.objects.create(
            coach_id=migrated["coach"],
            student_id=migrated["ann"],
            session=requested,
            start=start,
            end=start + timedelta(hours=1),
            reserved_start=start,
            reserved_end=start + timedelta(hours=1),
            status="HELD",
        )

    assert migrated["old_overlap_refused"] is True
    assert _refused(overlapping) is True
