"""Bookable start times, computed from availability and everything that takes time away from
it, on a frozen clock, for a coach in Europe/London (so DST changes are real).

Times are written as the coach's wall clock ("09:30"); `bookable_starts` answers in aware
datetimes, and the DST tests check the UTC instants too.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from accounts.models import User
from calendars.models import BusyTime, SlotStatus, TimeSlot
from calendars.selectors import bookable_starts
from calendars.services import availability_window_add, time_off_add
from sessions_app import services
from sessions_app.selectors import session_bookable_starts
from tests.factories import (
    CoachFactory,
    ExternalCalendarFactory,
    StudentFactory,
    make_package,
    make_rule,
)

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
MONDAY, TUESDAY, WEDNESDAY, SATURDAY, SUNDAY = 0, 1, 2, 5, 6
# A Monday before every date below; the factories' coaches have no notice and a two-year horizon.
NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
DAY = date(2026, 3, 9)  # a Monday in winter (London = UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def at(day: date, wall: str) -> datetime:
    """The aware instant of wall-clock `wall` ("09:30") on `day` in London."""
    hours, minutes = map(int, wall.split(":"))
    return datetime.combine(day, time(hours, minutes), tzinfo=LONDON)


def london_coach(**profile) -> User:
    return CoachFactory(
        timezone="Europe/London", **{f"profile__{name}": value for name, value in profile.items()}
    )


def starts_on(day: date, coach, minutes: int = 60, **kwargs) -> list[datetime]:
    """The bookable starts on the local date `day` (midnight to midnight in London)."""
    begin = datetime.combine(day, time(0), tzinfo=LONDON)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=LONDON)
    return bookable_starts(coach=coach, duration_minutes=minutes, start=begin, end=end, **kwargs)


def wall(starts: list[datetime]) -> list[str]:
    return [f"{timezone.localtime(moment, LONDON):%H:%M}" for moment in starts]


def grid(first: str, last: str, step: int = 30) -> list[str]:
    """Wall-clock times first, first + step, ..., last (on one day without a DST change)."""
    moment, stop, times = at(DAY, first), at(DAY, last), []
    while moment <= stop:
        times.append(f"{moment:%H:%M}")
        moment += timedelta(minutes=step)
    return times


def weekly(coach, weekday: int, begin: str, end: str, **fields):
    hours = [time(*map(int, value.split(":"))) for value in (begin, end)]
    return make_rule(coach=coach, weekday=weekday, start_time=hours[0], end_time=hours[1], **fields)


def book(coach, start: datetime, *, minutes: int = 60, student=None, accept: bool = False):
    """A session of `minutes` booked through the services at `start` (accepted if asked)."""
    package = make_package(student=student, coach=coach, duration_minutes=minutes)
    session = package.sessions.order_by("number").first()
    services.session_book(session=session, start=start, actor=package.student)
    if accept:
        services.session_accept(session=session, actor=coach)
    session.refresh_from_db()
    return session


# --- DST: a rule stays at its wall-clock hours --------------------------------------------------


@pytest.mark.parametrize(
    ("before", "change", "utc_offsets"),
    [
        # Spring forward (29 March 2026): 09:00 GMT is 09:00 UTC, 09:00 BST is 08:00 UTC.
        (date(2026, 3, 22), date(2026, 3, 29), (0, 1)),
        # Fall back (25 October 2026): 09:00 BST is 08:00 UTC, 09:00 GMT is 09:00 UTC.
        (date(2026, 10, 18), date(2026, 10, 25), (1, 0)),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_a_nine_to_five_rule_stays_nine_to_five_local_on_dst_sundays(before, change, utc_offsets):
    coach = london_coach()
    weekly(coach, SUNDAY, "09:00", "17:00")

    week_before, dst_day = starts_on(before, coach), starts_on(change, coach)

    assert wall(week_before) == wall(dst_day) == grid("09:00", "16:00")
    assert [week_before[0], dst_day[0]] == [
        datetime.combine(day, time(9 - offset), tzinfo=UTC)
        for day, offset in zip((before, change), utc_offsets, strict=True)
    ]
    assert dst_day[-1] + timedelta(hours=1) == at(change, "17:00")


def test_a_whole_day_rule_on_the_spring_forward_sunday_has_23_hours():
    coach = london_coach(start_interval_minutes=60)
    weekly(coach, SUNDAY, "00:00", "00:00")  # 00:00 to midnight

    starts = starts_on(date(2026, 3, 29), coach)

    # 01:00 does not exist that night: the clocks jump from 01:00 GMT to 02:00 BST.
    assert wall(starts) == ["00:00", *(f"{hour:02d}:00" for hour in range(2, 24))]
    assert starts[-1] == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)


def test_a_whole_day_rule_on_the_fall_back_sunday_has_25_hours():
    coach = london_coach(start_interval_minutes=60)
    weekly(coach, SUNDAY, "00:00", "00:00")

    starts = starts_on(date(2026, 10, 25), coach)

    # 01:00 happens twice: once in BST, once in GMT.
    assert wall(starts) == ["00:00", "01:00", *(f"{hour:02d}:00" for hour in range(1, 24))]
    assert (starts[1], starts[2]) == (
        datetime(2026, 10, 25, 0, 0, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
    )


def test_a_rule_ending_at_00_00_runs_until_midnight():
    coach = london_coach()
    weekly(coach, MONDAY, "22:00", "00:00")

    assert wall(starts_on(DAY, coach)) == ["22:00", "22:30", "23:00"]
    assert wall(starts_on(DAY, coach, minutes=120)) == ["22:00"]
    assert starts_on(DAY + timedelta(days=1), coach) == []


# --- buffers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (0, 0, [*grid("08:00", "09:00", 15), *grid("11:00", "12:00", 15)]),
        (30, 0, [*grid("08:00", "08:30", 15), *grid("11:30", "12:00", 15)]),
        (0, 30, [*grid("08:00", "08:30", 15), *grid("11:30", "12:00", 15)]),
        (15, 15, [*grid("08:00", "08:30", 15), *grid("11:30", "12:00", 15)]),
    ],
    ids=["no-buffers", "30-before", "30-after", "15-each-side"],
)
def test_buffers_keep_a_gap_between_adjacent_bookings(before, after, expected):
    coach = london_coach(
        buffer_before_minutes=before, buffer_after_minutes=after, start_interval_minutes=15
    )
    weekly(coach, MONDAY, "08:00", "13:00")
    booked = book(coach, at(DAY, "10:00"))

    # The gap between two sessions is the buffer after the first plus the one before the next;
    # a buffer may reach outside availability (08:00 with 30 minutes before is fine).
    assert wall(starts_on(DAY, coach, student=StudentFactory())) == expected
    assert (booked.slot.reserved_start, booked.slot.reserved_end) == (
        at(DAY, "10:00") - timedelta(minutes=before),
        at(DAY, "11:00") + timedelta(minutes=after),
    )


# --- notice and horizon -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clock_at", "first"),
    [("09:30", "11:30"), ("09:31", "12:00"), ("09:40", "12:00"), ("05:00", "09:00")],
)
def test_minimum_notice_pushes_the_first_start(clock, clock_at, first):
    coach = london_coach(minimum_notice_hours=2)
    weekly(coach, MONDAY, "09:00", "17:00")
    clock.move_to(at(DAY, clock_at))

    assert wall(starts_on(DAY, coach)) == grid(first, "16:00")


def test_the_booking_horizon_ends_the_list_at_now_plus_the_horizon_inclusive(clock):
    coach = london_coach(booking_horizon_days=1)
    for weekday in (MONDAY, TUESDAY, WEDNESDAY):
        weekly(coach, weekday, "09:00", "17:00")
    clock.move_to(at(DAY, "12:00"))

    assert wall(starts_on(DAY, coach)) == grid("12:00", "16:00")
    assert wall(starts_on(DAY + timedelta(days=1), coach)) == grid("09:00", "12:00")
    assert starts_on(DAY + timedelta(days=2), coach) == []


def test_nothing_in_the_past_is_bookable(clock):
    coach = london_coach()
    weekly(coach, MONDAY, "09:00", "17:00")
    clock.move_to(at(DAY, "13:10"))

    assert wall(starts_on(DAY, coach)) == grid("13:30", "16:00")
    assert starts_on(DAY - timedelta(days=7), coach) == []


# --- the start grid -------------------------------------------------------------------------------


def test_the_grid_is_aligned_to_a_one_off_windows_start():
    coach = london_coach()
    availability_window_add(coach=coach, start=at(DAY, "09:15"), end=at(DAY, "11:15"))

    assert wall(starts_on(DAY, coach)) == ["09:15", "09:45", "10:15"]


def test_the_grid_is_aligned_to_a_rules_start_also_after_the_notice(clock):
    coach = london_coach(minimum_notice_hours=2)
    weekly(coach, MONDAY, "09:15", "12:45")
    clock.move_to(at(DAY, "07:20"))  # notice ends at 09:20: the next start on the grid is 09:45

    assert wall(starts_on(DAY, coach)) == ["09:45", "10:15", "10:45", "11:15", "11:45"]


def test_each_window_keeps_its_own_grid_and_a_session_may_span_merged_windows():
    coach = london_coach()
    weekly(coach, MONDAY, "09:00", "12:00")
    availability_window_add(coach=coach, start=at(DAY, "12:00"), end=at(DAY, "13:00"))
    availability_window_add(coach=coach, start=at(DAY, "14:10"), end=at(DAY, "15:40"))

    # 11:30 and 12:00 run from the weekly hours into the one-off window.
    assert wall(starts_on(DAY, coach)) == [*grid("09:00", "12:00"), "14:10", "14:40"]
    assert wall(starts_on(DAY + timedelta(days=7), coach)) == grid("09:00", "11:00")


def test_a_one_off_window_on_a_day_without_rules_is_bookable():
    coach = london_coach()
    weekly(coach, MONDAY, "09:00", "17:00")
    saturday = DAY + timedelta(days=5)
    availability_window_add(coach=coach, start=at(saturday, "10:00"), end=at(saturday, "11:00"))

    assert wall(starts_on(saturday, coach)) == ["10:00"]
    assert wall(starts_on(saturday, coach, minutes=30)) == ["10:00", "10:30"]


def test_valid_from_and_valid_until_bound_a_rule_inclusively():
    coach = london_coach()
    weekly(
        coach,
        MONDAY,
        "09:00",
        "10:00",
        valid_from=date(2026, 3, 9),
        valid_until=date(2026, 3, 16),
    )

    starts = bookable_starts(
        coach=coach,
        duration_minutes=60,
        start=at(date(2026, 3, 2), "00:00"),
        end=at(date(2026, 3, 31), "00:00"),
    )

    assert starts == [at(date(2026, 3, 9), "09:00"), at(date(2026, 3, 16), "09:00")]


# --- what takes time away -------------------------------------------------------------------------


def test_time_off_is_never_bookable():
    coach = london_coach()
    weekly(coach, MONDAY, "09:00", "17:00")
    time_off_add(coach=coach, start=at(DAY, "12:00"), end=at(DAY, "14:00"), reason="Dentist")
    next_week = DAY + timedelta(days=7)
    time_off_add(coach=coach, start=at(next_week, "00:00"), end=at(next_week, "23:59"))

    assert wall(starts_on(DAY, coach)) == [*grid("09:00", "11:00"), *grid("14:00", "16:00")]
    assert starts_on(next_week, coach) == []


def test_busy_times_from_external_calendars_are_not_bookable():
    coach = london_coach()
    weekly(coach, MONDAY, "09:00", "17:00")
    calendar = ExternalCalendarFactory(coach=coach)
    BusyTime.objects.create(
        coach=coach, calendar=calendar, start=at(DAY, "12:00"), end=at(DAY, "13:00")
    )
    BusyTime.objects.create(coach=coach, start=at(DAY, "15:20"), end=at(DAY, "15:25"))

    assert wall(starts_on(DAY, coach)) == [
        *grid("09:00", "11:00"),
        *grid("13:00", "14:00"),
        "15:30",
        "16:00",
    ]


def test_the_coachs_other_reservations_are_not_bookable_and_released_ones_are():
    coach = london_coach()
    weekly(coach, MONDAY, "09:00", "17:00")
    book(coach, at(DAY, "10:00"))  # held: a request
    book(coach, at(DAY, "14:00"), accept=True)  # booked: agreed
    withdrawn = book(coach, at(DAY, "12:00"))
    services.session_withdraw(session=withdrawn, actor=withdrawn.student)

    assert wall(starts_on(DAY, coach, student=StudentFactory())) == [
        "09:00",
        *grid("11:00", "13:00"),
        *grid("15:00", "16:00"),
    ]
    assert TimeSlot.objects.get(start=at(DAY, "12:00")).status == SlotStatus.RELEASED


def test_the_students_reservations_with_another_coach_are_not_bookable_for_that_student():
    coach = london_coach()
    weekly(coach, MONDAY, "09:00", "13:00")
    # The other coach keeps buffers; the student needs only the session's own time free.
    other = london_coach(buffer_before_minutes=30, buffer_after_minutes=30)
    availability_window_add(coach=other, start=at(DAY, "10:00"), end=at(DAY, "11:00"))
    student = StudentFactory()
    book(other, at(DAY, "10:00"), student=student)

    assert wall(starts_on(DAY, coach, student=student)) == ["09:00", *grid("11:00", "12:00")]
    assert wall(starts_on(DAY, coach, student=StudentFactory())) == grid("09:00", "12:00")
    assert wall(starts_on(DAY, coach)) == grid("09:00", "12:00")


def test_a_coach_taking_a_lesson_cannot_be_booked_by_their_own_students_then():
    coach = london_coach()
    weekly(coach, MONDAY, "09:00", "13:00")
    teacher = london_coach()
    availability_window_add(coach=teacher, start=at(DAY, "10:00"), end=at(DAY, "11:00"))
    book(teacher, at(DAY, "10:00"), student=coach)

    assert wall(starts_on(DAY, coach)) == ["09:00", *grid("11:00", "12:00")]


def test_a_student_who_also_coaches_is_not_offered_times_they_teach():
    teacher = london_coach()
    weekly(teacher, MONDAY, "09:00", "13:00")
    coach_student = london_coach()
    availability_window_add(coach=coach_student, start=at(DAY, "11:00"), end=at(DAY, "12:00"))
    book(coach_student, at(DAY, "11:00"))

    assert wall(starts_on(DAY, teacher, student=coach_student)) == [
        *grid("09:00", "10:00"),
        "12:00",
    ]


def test_a_sessions_own_reservation_does_not_count_against_its_reschedule():
    coach = london_coach(buffer_after_minutes=30)
    weekly(coach, MONDAY, "09:00", "13:00")
    session = book(coach, at(DAY, "10:00"), accept=True)

    others = starts_on(DAY, coach, student=StudentFactory())
    own = starts_on(DAY, coach, student=session.student, session=session)
    moves = session_bookable_starts(session=session, start=at(DAY, "00:00"), end=at(DAY, "23:59"))

    assert wall(others) == ["11:30", "12:00"]
    assert wall(own) == grid("09:00", "12:00")
    # The agreed time itself is not a new time.
    assert wall(moves) == ["09:00", "09:30", *grid("10:30", "12:00")]


def test_while_rescheduling_the_agreed_and_the_proposed_times_are_left_out_of_new_times():
    coach = london_coach()
    weekly(coach, MONDAY, "09:00", "13:00")
    session = book(coach, at(DAY, "10:00"), accept=True)
    services.session_propose_reschedule(session=session, start=at(DAY, "11:00"), actor=coach)
    session.refresh_from_db()

    moves = session_bookable_starts(session=session, start=at(DAY, "00:00"), end=at(DAY, "23:59"))

    assert wall(moves) == ["09:00", "09:30", "10:30", "11:30", "12:00"]
    # Both times stay taken for everyone else.
    assert wall(starts_on(DAY, coach, student=StudentFactory())) == ["09:00", "12:00"]


@pytest.mark.parametrize("minutes", [30, 60, 90])
def test_longer_sessions_need_longer_free_runs(minutes):
    coach = london_coach()
    weekly(coach, MONDAY, "09:00", "12:00")
    book(coach, at(DAY, "10:00"), minutes=30)

    expected = {
        30: ["09:00", "09:30", *grid("10:30", "11:30")],
        60: ["09:00", *grid("10:30", "11:00")],
        90: ["10:30"],
    }

    assert (
        wall(starts_on(DAY, coach, minutes=minutes, student=StudentFactory())) == expected[minutes]
    )


def test_one_start_is_bookable_exactly_when_the_days_list_has_it():
    """`reservation_hold` asks about one start; the answer matches the day's list."""
    coach = london_coach(buffer_before_minutes=10, start_interval_minutes=20)
    weekly(coach, MONDAY, "09:10", "12:00")
    availability_window_add(coach=coach, start=at(DAY, "12:00"), end=at(DAY, "13:30"))
    time_off_add(coach=coach, start=at(DAY, "11:00"), end=at(DAY, "11:20"))
    book(coach, at(DAY, "09:30"))
    day = starts_on(DAY, coach)
    every_five_minutes = [at(DAY, "09:00") + timedelta(minutes=5 * n) for n in range(60)]

    one_by_one = [
        moment
        for moment in every_five_minutes
        if bookable_starts(
            coach=coach,
            duration_minutes=60,
            start=moment,
            end=moment + timedelta(microseconds=1),
        )
        == [moment]
    ]

    assert one_by_one == day
    # 09:10 needs its buffer before, which 09:30 holds; 10:50 would run into the time off.
    assert wall(day) == ["11:30", "11:50", "12:00", "12:20"]


# --- a constant number of queries -----------------------------------------------------------------


def _lots_of_data(coach, student):
    """Six weekly windows every day, 200 one-off windows, 100 periods of time off, busy times
    and reservations of the coach and of the student, over the eight weeks asked about."""
    for weekday in range(7):
        for hour in range(0, 24, 4):
            weekly(coach, weekday, f"{hour:02d}:00", f"{hour + 3:02d}:00")
    first = at(DAY, "00:00")
    for n in range(200):
        begin = first + timedelta(hours=7 * n + 3, minutes=30)
        availability_window_add(coach=coach, start=begin, end=begin + timedelta(minutes=30))
    for n in range(100):
        begin = first + timedelta(hours=13 * n + 1)
        time_off_add(coach=coach, start=begin, end=begin + timedelta(minutes=20))
    BusyTime.objects.bulk_create(
        BusyTime(
            coach=coach,
            start=first + timedelta(hours=11 * n + 2),
            end=first + timedelta(hours=11 * n + 2, minutes=30),
        )
        for n in range(100)
    )
    # Raw rows (volume only): every reservation names its session, none overlaps another.
    sessions = list(make_package(coach=coach, session_count=100).sessions.all())
    mine = list(make_package(student=student, session_count=50).sessions.all())
    TimeSlot.objects.bulk_create(
        TimeSlot(
            coach=session.coach,
            student=session.student,
            session=session,
            start=first + timedelta(hours=offset + 9 * n),
            end=first + timedelta(hours=offset + 9 * n, minutes=60),
            reserved_start=first + timedelta(hours=offset + 9 * n),
            reserved_end=first + timedelta(hours=offset + 9 * n, minutes=60),
            status=SlotStatus.BOOKED if n % 2 else SlotStatus.HELD,
        )
        for offset, group in ((0, sessions), (4, mine))
        for n, session in enumerate(group)
    )


@pytest.mark.parametrize(("with_student", "queries"), [(False, 5), (True, 6)])
@pytest.mark.parametrize("data", ["small", "large"])
def test_bookable_starts_query_count_does_not_grow_with_the_data(
    django_assert_num_queries, data, with_student, queries
):
    coach, student = london_coach(), StudentFactory()
    if data == "large":
        _lots_of_data(coach, student)
    else:
        weekly(coach, MONDAY, "09:00", "17:00")
    coach = User.objects.select_related("coach_profile").get(pk=coach.pk)

    with django_assert_num_queries(queries):
        starts = bookable_starts(
            coach=coach,
            duration_minutes=60,
            start=at(DAY, "00:00"),
            end=at(DAY + timedelta(weeks=8), "00:00"),
            student=student if with_student else None,
        )

    assert starts == sorted(set(starts)) != []
    if data == "small":
        assert len(starts) == 8 * 15  # eight Mondays, 09:00 to 16:00
