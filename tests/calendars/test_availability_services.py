"""Availability services and reads: the weekly-hours grid, weekly rules, one-off windows and
time off; their bounds; DST-correct expansion in the coach's wall-clock time; and which booked
sessions a new week would leave outside."""

from datetime import UTC, date, datetime, time, timedelta

import pytest

from calendars import selectors, services
from calendars.intervals import local_time_exists, local_to_utc
from calendars.models import AvailabilityRule, AvailabilityWindow, TimeOff
from calendars.services import (
    MAX_UPCOMING_TIME_OFF,
    MAX_UPCOMING_WINDOWS,
    MAX_WINDOWS_PER_DAY,
    AvailabilityInvalid,
)
from sessions_app.lifecycle import PermissionDenied
from sessions_app.services import session_accept, session_book, session_cancel
from tests.factories import CoachFactory, StudentFactory, make_package, make_rule

# Monday 12 October 2026, 06:00 UTC (08:00 in Berlin). Berlin leaves summer time (UTC+2) for
# winter time (UTC+1) on Sunday 25 October 2026; New York on Sunday 1 November 2026.
MONDAY = datetime(2026, 10, 12, 6, 0, tzinfo=UTC)
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("coaches_decide_refunds"),
    pytest.mark.time_machine(MONDAY, tick=False),
]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def rules_of(coach) -> list[tuple]:
    return list(
        AvailabilityRule.objects.filter(coach=coach)
        .order_by("weekday", "start_time")
        .values_list("weekday", "start_time", "end_time")
    )


def book(coach, start: datetime, *, accept: bool = True):
    package = make_package(coach=coach, duration_minutes=60)
    session = package.sessions.order_by("number").first()
    session_book(session=session, start=start, actor=package.student)
    if accept:
        session_accept(session=session, actor=coach)
    session.refresh_from_db()
    return session


# --- the weekly-hours grid ---------------------------------------------------------------------


def test_week_set_replaces_the_undated_rules_and_keeps_unchanged_ones():
    coach = CoachFactory()
    kept = make_rule(coach=coach, weekday=0, start_time=time(9), end_time=time(12))
    make_rule(coach=coach, weekday=0, start_time=time(13), end_time=time(17))
    other = make_rule(coach=CoachFactory(), weekday=0, start_time=time(13), end_time=time(17))

    change = services.availability_week_set(
        coach=coach,
        week={0: [(time(9), time(12))], 2: [(time(18), time(0)), (time(7), time(8))]},
    )

    assert (change.added, change.removed, change.hours_per_week) == (2, 1, 10.0)
    assert rules_of(coach) == [
        (0, time(9), time(12)),
        (2, time(7), time(8)),
        (2, time(18), time(0)),
    ]
    assert AvailabilityRule.objects.filter(pk=kept.pk).exists()
    assert AvailabilityRule.objects.filter(pk=other.pk).exists()


def test_week_set_with_the_same_grid_writes_nothing():
    coach = CoachFactory()
    rule = make_rule(coach=coach, weekday=4, start_time=time(9), end_time=time(17))

    change = services.availability_week_set(coach=coach, week={4: [(time(9), time(17))]})

    assert (change.added, change.removed) == (0, 0)
    assert list(AvailabilityRule.objects.filter(coach=coach)) == [rule]


def test_week_set_leaves_dated_rules_alone():
    coach = CoachFactory()
    dated = make_rule(
        coach=coach, weekday=1, start_time=time(9), end_time=time(10), valid_from=date(2026, 1, 1)
    )

    services.availability_week_set(coach=coach, week={})

    assert list(AvailabilityRule.objects.filter(coach=coach)) == [dated]


@pytest.mark.parametrize(
    ("week", "message"),
    [
        (
            {0: [(time(h), time(h, 30)) for h in range(MAX_WINDOWS_PER_DAY + 1)]},
            f"Monday: at most {MAX_WINDOWS_PER_DAY} windows a day.",
        ),
        ({1: [(time(9), time(12)), (time(11), time(13))]}, "Tuesday: two windows overlap"),
        ({2: [(time(9), time(9, 4))]}, "at least 5 minutes after it starts"),
        ({3: [(time(23), time(1))]}, "cannot cross midnight"),
        ({4: [(time(9, 0, 30), time(10))]}, "Friday: use whole minutes."),
        ({True: [(time(9), time(10))]}, "Choose a weekday."),
    ],
)
def test_week_set_refuses_a_bad_grid_and_writes_nothing(week, message):
    coach = CoachFactory()
    make_rule(coach=coach, weekday=6, start_time=time(9), end_time=time(10))

    with pytest.raises(AvailabilityInvalid, match=message):
        services.availability_week_set(coach=coach, week=week)

    assert rules_of(coach) == [(6, time(9), time(10))]


def test_week_set_refuses_a_weekday_out_of_range():
    with pytest.raises(AvailabilityInvalid, match="Choose a weekday"):
        services.availability_week_set(coach=CoachFactory(), week={7: [(time(9), time(10))]})


def test_touching_windows_are_allowed():
    coach = CoachFactory()

    services.availability_week_set(
        coach=coach, week={0: [(time(9), time(12)), (time(12), time(0))]}
    )

    assert rules_of(coach) == [(0, time(9), time(12)), (0, time(12), time(0))]


def test_only_coaches_have_weekly_hours():
    with pytest.raises(PermissionDenied):
        services.availability_week_set(coach=StudentFactory(), week={0: [(time(9), time(10))]})
    assert AvailabilityRule.objects.count() == 0


def test_week_hours_counts_an_end_of_midnight_as_24_00():
    assert services.week_hours({0: [(time(22), time(0))], 1: [(time(9), time(9, 45))]}) == 2.75


# --- single weekly rules -----------------------------------------------------------------------


def test_weekly_add_refuses_an_overlap_on_that_weekday_only():
    coach = CoachFactory()
    make_rule(coach=coach, weekday=0, start_time=time(9), end_time=time(12))

    with pytest.raises(AvailabilityInvalid, match="overlap"):
        make_rule(coach=coach, weekday=0, start_time=time(11), end_time=time(13))
    make_rule(coach=coach, weekday=1, start_time=time(11), end_time=time(13))

    assert rules_of(coach) == [(0, time(9), time(12)), (1, time(11), time(13))]


def test_weekly_add_refuses_more_than_the_daily_limit():
    coach = CoachFactory()
    for hour in range(MAX_WINDOWS_PER_DAY):
        make_rule(coach=coach, weekday=2, start_time=time(hour), end_time=time(hour, 30))

    with pytest.raises(AvailabilityInvalid, match="at most"):
        make_rule(coach=coach, weekday=2, start_time=time(20), end_time=time(21))

    assert AvailabilityRule.objects.filter(coach=coach).count() == MAX_WINDOWS_PER_DAY


def test_weekly_add_refuses_a_last_date_before_the_first():
    with pytest.raises(AvailabilityInvalid, match="must not be before the first"):
        make_rule(
            coach=CoachFactory(),
            weekday=0,
            start_time=time(9),
            end_time=time(10),
            valid_from=date(2026, 11, 2),
            valid_until=date(2026, 11, 1),
        )


def test_removing_another_coachs_rule_is_refused():
    rule = make_rule(coach=CoachFactory(), weekday=0, start_time=time(9), end_time=time(10))

    with pytest.raises(PermissionDenied):
        services.availability_weekly_remove(rule=rule, coach=CoachFactory())

    assert AvailabilityRule.objects.filter(pk=rule.pk).exists()


# --- DST: weekly rules keep their wall-clock time ---------------------------------------------


@pytest.mark.parametrize(
    ("tz", "first", "expected"),
    [
        # 09:00 local: UTC+2 before the change, UTC+1 after it.
        (
            "Europe/Berlin",
            date(2026, 10, 12),
            [utc(2026, 10, 12, 7), utc(2026, 10, 19, 7), utc(2026, 10, 26, 8)],
        ),
        # 09:00 local: UTC-4 (EDT) until 1 November, then UTC-5 (EST).
        (
            "America/New_York",
            date(2026, 10, 19),
            [utc(2026, 10, 19, 13), utc(2026, 10, 26, 13), utc(2026, 11, 2, 14)],
        ),
    ],
)
def test_weekly_rule_keeps_local_wall_time_across_the_autumn_dst_change(tz, first, expected):
    coach = CoachFactory(timezone=tz)
    make_rule(coach=coach, weekday=0, start_time=time(9), end_time=time(10))
    start = local_to_utc(first, time(0), coach.tzinfo)

    free = selectors.coach_availability_between(
        coach=coach, start=start, end=start + timedelta(days=21)
    )

    assert free == [(begin, begin + timedelta(hours=1)) for begin in expected]


def test_weekly_rule_keeps_local_wall_time_across_the_spring_dst_change():
    coach = CoachFactory(timezone="Europe/Berlin")
    make_rule(coach=coach, weekday=0, start_time=time(9), end_time=time(10))

    free = selectors.coach_availability_between(
        coach=coach, start=utc(2027, 3, 15), end=utc(2027, 4, 1)
    )

    # Berlin goes to summer time on Sunday 28 March 2027: 09:00 is 08:00 UTC, then 07:00 UTC.
    assert [begin for begin, _ in free] == [
        utc(2027, 3, 15, 8),
        utc(2027, 3, 22, 8),
        utc(2027, 3, 29, 7),
    ]


def test_a_window_through_the_night_the_clocks_go_back_has_every_real_hour():
    coach = CoachFactory(timezone="Europe/Berlin")
    make_rule(coach=coach, weekday=6, start_time=time(1), end_time=time(4))

    free = selectors.coach_availability_between(
        coach=coach, start=utc(2026, 10, 24), end=utc(2026, 10, 26)
    )

    # 01:00 CEST (23:00 UTC the day before) to 04:00 CET (03:00 UTC) is four real hours.
    assert free == [(utc(2026, 10, 24, 23), utc(2026, 10, 25, 3))]


def test_a_window_through_the_night_the_clocks_go_forward_loses_the_skipped_hour():
    coach = CoachFactory(timezone="Europe/Berlin")
    make_rule(coach=coach, weekday=6, start_time=time(1), end_time=time(4))

    free = selectors.coach_availability_between(
        coach=coach, start=utc(2027, 3, 27), end=utc(2027, 3, 29)
    )

    # 01:00 CET (00:00 UTC) to 04:00 CEST (02:00 UTC): two real hours.
    assert free == [(utc(2027, 3, 28, 0), utc(2027, 3, 28, 2))]


def test_bookable_starts_follow_the_wall_clock_across_the_change():
    coach = CoachFactory(timezone="Europe/Berlin")
    make_rule(coach=coach, weekday=0, start_time=time(9), end_time=time(10))

    starts = selectors.bookable_starts(
        coach=coach, duration_minutes=60, start=utc(2026, 10, 19), end=utc(2026, 10, 27)
    )

    assert starts == [utc(2026, 10, 19, 7), utc(2026, 10, 26, 8)]


@pytest.mark.parametrize(
    ("tz", "day", "wall", "exists"),
    [
        ("Europe/London", date(2027, 3, 28), time(1, 30), False),
        ("Europe/Berlin", date(2027, 3, 28), time(2, 30), False),
        ("Europe/Berlin", date(2027, 3, 28), time(3, 0), True),
        ("Europe/Berlin", date(2026, 10, 25), time(2, 30), True),  # happens twice
        ("America/New_York", date(2027, 3, 14), time(2, 30), False),
    ],
)
def test_a_time_the_clocks_skip_does_not_exist(tz, day, wall, exists):
    from zoneinfo import ZoneInfo

    assert local_time_exists(day, wall, ZoneInfo(tz)) is exists


# --- one-off windows ---------------------------------------------------------------------------


def test_window_add_opens_a_one_off_window():
    coach = CoachFactory()

    window = services.availability_window_add(
        coach=coach, start=utc(2026, 10, 20, 9), end=utc(2026, 10, 20, 11)
    )

    assert (window.coach, window.start, window.end) == (
        coach,
        utc(2026, 10, 20, 9),
        utc(2026, 10, 20, 11),
    )


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (utc(2026, 10, 20, 11), utc(2026, 10, 20, 9), "The end must be after the start."),
        (utc(2026, 10, 20, 9), utc(2026, 10, 21, 9, 1), "can last at most 24 hours"),
        (utc(2026, 10, 11, 9), utc(2026, 10, 12, 5), "must end in the future"),
        (utc(2028, 10, 11, 7), utc(2028, 10, 11, 8), "must start within two years"),
        (
            datetime(2026, 10, 20, 9),  # naive: what is refused
            datetime(2026, 10, 20, 10),
            "Times must carry a timezone.",
        ),
    ],
)
def test_window_add_refuses_bad_times_and_writes_nothing(start, end, message):
    with pytest.raises(AvailabilityInvalid, match=message):
        services.availability_window_add(coach=CoachFactory(), start=start, end=end)
    assert AvailabilityWindow.objects.count() == 0


def test_a_window_that_has_started_but_not_ended_may_be_added():
    coach = CoachFactory()

    services.availability_window_add(
        coach=coach, start=utc(2026, 10, 12, 5), end=utc(2026, 10, 12, 7)
    )

    assert AvailabilityWindow.objects.filter(coach=coach).count() == 1


def test_window_add_refuses_more_than_the_upcoming_limit_but_past_ones_do_not_count():
    coach = CoachFactory()
    AvailabilityWindow.objects.bulk_create(
        AvailabilityWindow(
            coach=coach,
            start=utc(2026, 11, 1) + timedelta(days=n),
            end=utc(2026, 11, 1, 1) + timedelta(days=n),
        )
        for n in range(MAX_UPCOMING_WINDOWS - 1)
    )
    AvailabilityWindow.objects.create(coach=coach, start=utc(2026, 10, 1), end=utc(2026, 10, 2))
    services.availability_window_add(coach=coach, start=utc(2026, 10, 20), end=utc(2026, 10, 21))

    with pytest.raises(AvailabilityInvalid, match="remove some first"):
        services.availability_window_add(
            coach=coach, start=utc(2026, 10, 22), end=utc(2026, 10, 23)
        )

    assert AvailabilityWindow.objects.filter(coach=coach).count() == MAX_UPCOMING_WINDOWS + 1


def test_only_coaches_have_one_off_windows():
    with pytest.raises(PermissionDenied):
        services.availability_window_add(
            coach=StudentFactory(), start=utc(2026, 10, 20, 9), end=utc(2026, 10, 20, 10)
        )


def test_removing_another_coachs_window_is_refused():
    window = services.availability_window_add(
        coach=CoachFactory(), start=utc(2026, 10, 20, 9), end=utc(2026, 10, 20, 10)
    )

    with pytest.raises(PermissionDenied):
        services.availability_window_remove(window=window, coach=CoachFactory())

    assert AvailabilityWindow.objects.filter(pk=window.pk).exists()


# --- time off ----------------------------------------------------------------------------------


def test_time_off_add_collapses_the_note_to_one_line():
    off = services.time_off_add(
        coach=CoachFactory(), start=utc(2026, 10, 20), end=utc(2026, 10, 22), reason=" A\n  trip "
    )

    assert off.reason == "A trip"


@pytest.mark.parametrize(
    ("start", "end", "reason", "message"),
    [
        (utc(2026, 10, 20), utc(2027, 10, 21, 0, 1), "", "Time off can last at most 366 days."),
        (utc(2026, 10, 20), utc(2026, 10, 21), "x" * 201, "under 200 characters"),
        (utc(2026, 10, 1), utc(2026, 10, 12, 6), "", "must end in the future"),
        (utc(2028, 10, 12), utc(2028, 10, 13), "", "must start within two years"),
    ],
)
def test_time_off_add_refuses_bad_input_and_writes_nothing(start, end, reason, message):
    with pytest.raises(AvailabilityInvalid, match=message):
        services.time_off_add(coach=CoachFactory(), start=start, end=end, reason=reason)
    assert TimeOff.objects.count() == 0


def test_time_off_add_refuses_more_than_the_upcoming_limit():
    coach = CoachFactory()
    TimeOff.objects.bulk_create(
        TimeOff(
            coach=coach,
            start=utc(2027, 1, 1) + timedelta(days=2 * n),
            end=utc(2027, 1, 2) + timedelta(days=2 * n),
        )
        for n in range(MAX_UPCOMING_TIME_OFF)
    )

    with pytest.raises(AvailabilityInvalid, match="remove some first"):
        services.time_off_add(coach=coach, start=utc(2026, 10, 20), end=utc(2026, 10, 21))


def test_time_off_takes_its_days_out_of_availability():
    coach = CoachFactory(timezone="UTC")
    make_rule(coach=coach, weekday=1, start_time=time(9), end_time=time(17))
    services.time_off_add(coach=coach, start=utc(2026, 10, 20), end=utc(2026, 10, 21))

    free = selectors.coach_availability_between(
        coach=coach, start=utc(2026, 10, 19), end=utc(2026, 10, 28)
    )

    assert free == [(utc(2026, 10, 27, 9), utc(2026, 10, 27, 17))]


def test_removing_another_coachs_time_off_is_refused():
    off = services.time_off_add(
        coach=CoachFactory(), start=utc(2026, 10, 20), end=utc(2026, 10, 21)
    )

    with pytest.raises(PermissionDenied):
        services.time_off_remove(time_off=off, coach=CoachFactory())

    assert TimeOff.objects.filter(pk=off.pk).exists()


# --- which booked sessions a new week leaves outside -------------------------------------------


def test_reservations_outside_a_new_week():
    coach = CoachFactory(timezone="Europe/Berlin")
    make_rule(coach=coach, weekday=1, start_time=time(9), end_time=time(17))
    make_rule(
        coach=coach, weekday=3, start_time=time(9), end_time=time(12), valid_from=date(2026, 1, 1)
    )
    services.availability_window_add(
        coach=coach, start=utc(2026, 10, 17, 8), end=utc(2026, 10, 17, 9)
    )
    afternoon = book(coach, utc(2026, 10, 13, 13))  # Tuesday 15:00: outside the new hours
    book(coach, utc(2026, 10, 13, 7))  # Tuesday 09:00: inside
    book(coach, utc(2026, 10, 15, 7))  # Thursday 09:00: a dated rule, kept as it is
    book(coach, utc(2026, 10, 17, 8))  # Saturday 10:00: a one-off window
    canceled = book(coach, utc(2026, 10, 20, 13))
    session_cancel(session=canceled, actor=coach, refund="none")

    outside = selectors.coach_reservations_outside_week(
        coach=coach, week={1: [(time(9), time(12))]}
    )

    assert [slot.session_id for slot in outside] == [afternoon.pk]


def test_a_session_across_midnight_fits_two_touching_windows():
    coach = CoachFactory(timezone="UTC")
    make_rule(coach=coach, weekday=0, start_time=time(22), end_time=time(0))
    make_rule(coach=coach, weekday=1, start_time=time(0), end_time=time(2))
    book(coach, utc(2026, 10, 12, 23, 30))

    week = {0: [(time(22), time(0))], 1: [(time(0), time(2))]}

    assert selectors.coach_reservations_outside_week(coach=coach, week=week) == []
    assert len(selectors.coach_reservations_outside_week(coach=coach, week={0: week[0]})) == 1


def test_active_reservations_are_the_coachs_own_held_and_booked_ones():
    coach = CoachFactory(timezone="UTC")
    make_rule(coach=coach, weekday=1, start_time=time(9), end_time=time(17))
    booked = book(coach, utc(2026, 10, 13, 9))
    held = book(coach, utc(2026, 10, 13, 11), accept=False)
    other = CoachFactory(timezone="UTC")
    make_rule(coach=other, weekday=1, start_time=time(9), end_time=time(17))
    book(other, utc(2026, 10, 13, 9))

    everything = selectors.coach_active_reservations(coach=coach, start=MONDAY)
    morning = selectors.coach_active_reservations(
        coach=coach, start=MONDAY, end=utc(2026, 10, 13, 10)
    )

    assert [slot.session_id for slot in everything] == [booked.pk, held.pk]
    assert [slot.session_id for slot in morning] == [booked.pk]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (utc(2026, 12, 10, 9, 0, 30), utc(2026, 12, 10, 12)),
        (utc(2026, 12, 10, 9), utc(2026, 12, 10, 12, 0, 0, 5)),
    ],
)
def test_one_off_windows_and_time_off_take_whole_minutes_only(start, end):
    """Starts are counted from a window's start: a window at 09:00:30 would offer 09:00:30."""
    coach = CoachFactory()
    with pytest.raises(AvailabilityInvalid, match="Use whole minutes"):
        services.availability_window_add(coach=coach, start=start, end=end)
    with pytest.raises(AvailabilityInvalid, match="Use whole minutes"):
        services.time_off_add(coach=coach, start=start, end=end)
    assert (AvailabilityWindow.objects.count(), TimeOff.objects.count()) == (0, 0)
