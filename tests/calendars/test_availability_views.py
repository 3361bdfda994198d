"""The coach's Availability page: the weekly-hours grid (preview, copy, save), one-off windows,
time off and dated weekly windows; who may use it; bounds, DST and refusals that write nothing."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from calendars.models import AvailabilityRule, AvailabilityWindow, SlotStatus, TimeOff, TimeSlot
from calendars.services import (
    MAX_UPCOMING_TIME_OFF,
    MAX_UPCOMING_WINDOWS,
    MAX_WINDOWS_PER_DAY,
    availability_window_add,
    availability_window_remove,
    time_off_add,
)
from sessions_app.services import session_accept, session_book
from tests.conftest import messages_of
from tests.factories import (
    AvailabilityWindowFactory,
    CoachFactory,
    ExternalCalendarFactory,
    StudentFactory,
    make_package,
    make_rule,
)

# Monday 12 October 2026, 08:00 in Berlin (summer time, UTC+2). Berlin and London leave summer
# time on Sunday 25 October 2026 and start it again on Sunday 28 March 2027.
NOW = datetime(2026, 10, 12, 6, 0, tzinfo=UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.time_machine(NOW, tick=False)]

PAGE = reverse("calendars:availability")
WEEK = reverse("calendars:week_update")
WINDOW_ADD = reverse("calendars:window_add")
TIME_OFF_ADD = reverse("calendars:time_off_add")


@pytest.fixture
def coach():
    return CoachFactory(timezone="Europe/Berlin")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def rules_of(coach) -> list[tuple]:
    return list(
        AvailabilityRule.objects.filter(coach=coach)
        .order_by("weekday", "start_time")
        .values_list("weekday", "start_time", "end_time", "valid_from")
    )


def grid(action: str = "save", **days) -> dict:
    """POST data for the weekly grid: grid(d0=[("09:00", "17:00")], ...)."""
    data = {"action": action}
    for key, windows in days.items():
        weekday = int(key[1:])
        for index, (begin, finish) in enumerate(windows):
            data[f"week-d{weekday}_{index}_start"] = begin
            data[f"week-d{weekday}_{index}_end"] = finish
    return data


WORKWEEK = {f"d{weekday}": [("09:00", "17:00")] for weekday in range(5)}


def book(coach, start: datetime, *, accept: bool = True):
    """A session of 60 minutes booked (and accepted) at `start` through the services."""
    package = make_package(coach=coach, duration_minutes=60)
    session = package.sessions.order_by("number").first()
    session_book(session=session, start=start, actor=package.student)
    if accept:
        session_accept(session=session, actor=coach)
    session.refresh_from_db()
    return session


# --- who may use it --------------------------------------------------------------------------


def test_anonymous_visitor_is_sent_to_log_in(client):
    response = client.get(PAGE)

    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_student_is_sent_to_the_profile_page_with_a_message(client):
    client.force_login(StudentFactory())

    response = client.get(PAGE, follow=True)

    assert response.redirect_chain == [(reverse("accounts:profile"), 302)]
    assert messages_of(response) == [
        "Availability is for coaches. Become a coach on your profile page first."
    ]


@pytest.mark.parametrize(
    ("url", "data"),
    [
        (WEEK, grid(d0=[("09:00", "10:00")])),
        (WINDOW_ADD, {"window-date": "2026-10-20", "window-start_time": "09:00"}),
        (TIME_OFF_ADD, {"off-first_day": "2026-10-20"}),
    ],
)
def test_student_cannot_change_availability(client, url, data):
    student = StudentFactory()
    client.force_login(student)

    response = client.post(url, data)

    assert response.status_code == 302
    assert response.url == reverse("accounts:profile")
    assert AvailabilityRule.objects.count() == 0
    assert AvailabilityWindow.objects.count() == 0
    assert TimeOff.objects.count() == 0


def test_post_without_csrf_token_is_refused(coach):
    client = Client(enforce_csrf_checks=True)
    client.force_login(coach)

    response = client.post(WEEK, grid(**WORKWEEK))

    assert response.status_code == 403
    assert rules_of(coach) == []


@pytest.mark.parametrize(
    "url",
    [
        WEEK,
        WINDOW_ADD,
        TIME_OFF_ADD,
        reverse("calendars:window_remove", args=[1]),
        reverse("calendars:time_off_remove", args=[1]),
        reverse("calendars:rule_remove", args=[1]),
    ],
)
def test_get_on_an_action_url_is_not_allowed(coach_client, url):
    assert coach_client.get(url).status_code == 405


# --- the page --------------------------------------------------------------------------------


def test_page_shows_the_weekly_grid_filled_from_the_coachs_hours(coach_client, coach):
    make_rule(coach=coach, weekday=0, start_time=time(9), end_time=time(12))
    make_rule(coach=coach, weekday=0, start_time=time(13), end_time=time(17))
    make_rule(coach=coach, weekday=2, start_time=time(10), end_time=time(0))
    make_rule(coach=CoachFactory(), weekday=1, start_time=time(8), end_time=time(9))

    response = coach_client.get(PAGE)

    page = response.content.decode()
    assert response.status_code == 200
    assert 'name="week-d0_0_start" value="09:00"' in page
    assert 'name="week-d0_1_end" value="17:00"' in page
    assert 'name="week-d2_0_end" value="00:00"' in page
    # One blank pair to add a window on each day, no more.
    assert 'name="week-d0_2_start" id=' in page
    assert "week-d0_3_start" not in page
    assert 'name="week-d1_0_start" id=' in page
    assert "week-d1_1_start" not in page
    assert "21 h a week" in page  # 3 + 4 on Monday, 14 on Wednesday
    assert "Europe/Berlin" in page and "CEST now" in page
    assert reverse("accounts:profile") in page


def test_page_shows_the_booking_rules_with_a_link_to_change_them(coach_client, coach):
    profile = coach.coach_profile
    profile.buffer_before_minutes, profile.start_interval_minutes = 15, 45
    profile.save(update_fields=["buffer_before_minutes", "start_interval_minutes"])

    page = coach_client.get(PAGE).content.decode()

    assert "Sessions start every <strong>45 min</strong>" in page
    assert "<strong>15 min</strong> before" in page
    assert reverse("accounts:profile") + "#coach" in page


def test_page_lists_upcoming_windows_and_time_off_in_the_coachs_timezone(coach_client, coach):
    AvailabilityWindowFactory(coach=coach, start=utc(2026, 10, 17, 8), end=utc(2026, 10, 17, 12))
    AvailabilityWindowFactory(coach=coach, start=utc(2026, 10, 11, 8), end=utc(2026, 10, 11, 9))
    AvailabilityWindowFactory(start=utc(2026, 10, 18, 8))  # another coach's
    time_off_add(
        coach=coach, start=utc(2026, 12, 20, 23), end=utc(2027, 1, 3, 23), reason="Holidays"
    )

    response = coach_client.get(PAGE)

    page = response.content.decode()
    assert [row["label"] for row in response.context["windows"]] == [
        "Sat 17 Oct 2026, 10:00\u201314:00 CEST"
    ]
    assert [row.label for row in response.context["time_off"]] == [
        "Mon 21 Dec 2026 \u2013 Sun 3 Jan 2027 (14 days)"
    ]
    assert "Holidays" in page


def test_time_off_in_the_list_says_how_many_sessions_are_booked_in_it(coach_client, coach):
    availability_window_add(coach=coach, start=utc(2026, 10, 20, 7), end=utc(2026, 10, 20, 9))
    book(coach, utc(2026, 10, 20, 7))
    book(coach, utc(2026, 10, 20, 8), accept=False)
    time_off_add(coach=coach, start=utc(2026, 10, 19, 22), end=utc(2026, 10, 20, 22))
    time_off_add(coach=coach, start=utc(2026, 10, 22, 22), end=utc(2026, 10, 23, 22))

    response = coach_client.get(PAGE)

    assert [row.booked for row in response.context["time_off"]] == [2, 0]
    assert "2 booked or requested sessions in this time" in response.content.decode()


def _fill(coach, rows: int) -> None:
    for weekday in range(7):
        for index in range(min(rows, MAX_WINDOWS_PER_DAY - 1)):  # room for the dated one
            make_rule(
                coach=coach,
                weekday=weekday,
                start_time=time(index * 2),
                end_time=time(index * 2, 30),
            )
    for index in range(rows):
        start = utc(2026, 11, 2) + timedelta(days=index)
        availability_window_add(coach=coach, start=start, end=start + timedelta(hours=2))
        time_off_add(
            coach=coach,
            start=utc(2027, 1, 1) + timedelta(days=2 * index),
            end=utc(2027, 1, 2) + timedelta(days=2 * index),
        )
        ExternalCalendarFactory(coach=coach)
    for index in range(min(rows, 4)):
        # Booked in a one-off window that is then removed: outside every hour the coach has.
        start = utc(2026, 11, 21, 12) + timedelta(weeks=index)  # Saturdays
        window = availability_window_add(coach=coach, start=start, end=start + timedelta(hours=1))
        book(coach, start)
        availability_window_remove(window=window, coach=coach)
    make_rule(
        coach=coach, weekday=3, start_time=time(20), end_time=time(21), valid_from=date(2026, 1, 1)
    )


@pytest.mark.parametrize("rows", [1, 25])
def test_page_query_count_stays_flat_as_the_data_grows(
    coach_client, coach, rows, django_assert_max_num_queries
):
    _fill(coach, rows)

    # session, user, coach profile, navigation, rules, windows, time off, the sessions in
    # the time off, external calendars
    with django_assert_max_num_queries(9):
        response = coach_client.get(PAGE)

    assert response.status_code == 200
    assert len(response.context["windows"]) == rows


@pytest.mark.parametrize("rows", [1, 25])
def test_preview_query_count_stays_flat_as_the_data_grows(
    coach_client, coach, rows, django_assert_max_num_queries
):
    _fill(coach, rows)

    # the page's nine, the current rules again, and the sessions, rules and windows of the check
    with django_assert_max_num_queries(13):
        response = coach_client.post(WEEK, grid("preview", **WORKWEEK))

    assert response.status_code == 200
    assert response.context["week_preview"].outside_count == min(rows, 4)


def test_page_queries_are_the_same_with_little_and_much_data(client, coach):
    much = CoachFactory(timezone="Europe/Berlin")
    _fill(coach, 1)
    _fill(much, 20)
    client.force_login(coach)
    with CaptureQueriesContext(connection) as little_queries:
        client.get(PAGE)
    client.force_login(much)
    with CaptureQueriesContext(connection) as much_queries:
        response = client.get(PAGE)

    assert len(response.context["windows"]) == 20
    assert len(much_queries.captured_queries) == len(little_queries.captured_queries)


def test_page_includes_the_external_calendars_section(coach_client, coach):
    first = ExternalCalendarFactory(coach=coach, name="Work")
    ExternalCalendarFactory(name="Someone else's")

    response = coach_client.get(PAGE)

    assert "calendars/_external_calendars.html" in [t.name for t in response.templates]
    assert response.context["external_calendars"] == [first]


# --- weekly hours: save ------------------------------------------------------------------------


def test_saving_the_grid_replaces_the_weekly_hours_and_says_how_many_a_week(coach_client, coach):
    make_rule(coach=coach, weekday=6, start_time=time(10), end_time=time(12))

    response = coach_client.post(WEEK, grid(**WORKWEEK), follow=True)

    assert rules_of(coach) == [(day, time(9), time(17), None) for day in range(5)]
    assert messages_of(response) == ["Weekly hours saved: 40 h a week."]
    assert response.redirect_chain == [(PAGE + "#weekly-hours", 302)]


def test_several_windows_a_day_and_an_end_of_midnight(coach_client, coach):
    response = coach_client.post(
        WEEK,
        grid(d5=[("18:00", "00:00"), ("08:30", "12:00")], d6=[("20:00", "24:00")]),
        follow=True,
    )

    assert rules_of(coach) == [
        (5, time(8, 30), time(12), None),
        (5, time(18), time(0), None),
        (6, time(20), time(0), None),
    ]
    assert messages_of(response) == ["Weekly hours saved: 13 h 30 min a week."]


def test_clearing_a_pair_removes_that_window_and_keeps_the_others(coach_client, coach):
    morning = make_rule(coach=coach, weekday=0, start_time=time(9), end_time=time(12))
    make_rule(coach=coach, weekday=0, start_time=time(13), end_time=time(17))

    coach_client.post(WEEK, grid(d0=[("09:00", "12:00"), ("", "")]))

    assert list(AvailabilityRule.objects.filter(coach=coach).values_list("pk", flat=True)) == [
        morning.pk
    ]


def test_saving_an_unchanged_grid_writes_nothing_and_says_so(coach_client, coach):
    rule = make_rule(coach=coach, weekday=1, start_time=time(9), end_time=time(17))

    response = coach_client.post(WEEK, grid(d1=[("09:00", "17:00")]), follow=True)

    assert list(AvailabilityRule.objects.filter(coach=coach)) == [rule]
    assert messages_of(response) == ["Nothing to save: your weekly hours stay 8 h a week."]


def test_saving_the_grid_keeps_dated_weekly_windows(coach_client, coach):
    make_rule(
        coach=coach, weekday=2, start_time=time(9), end_time=time(10), valid_from=date(2026, 1, 5)
    )

    coach_client.post(WEEK, grid(d0=[("09:00", "10:00")]))

    assert rules_of(coach) == [
        (0, time(9), time(10), None),
        (2, time(9), time(10), date(2026, 1, 5)),
    ]


@pytest.mark.parametrize(
    ("days", "error"),
    [
        ({"d0": [("09:00", "")]}, "Monday, window 1: enter both a start and an end"),
        ({"d1": [("", "17:00")]}, "Tuesday, window 1: enter both a start and an end"),
        (
            {"d0": [("09:00", "12:00"), ("11:00", "13:00")]},
            "Monday: two windows overlap; join them or move one.",
        ),
        (
            {"d2": [("17:00", "09:00")]},
            "Wednesday 17:00\u201309:00: a window must end at least 5 minutes after it starts",
        ),
        ({"d3": [("10:00", "10:04")]}, "a window must end at least 5 minutes after it starts"),
        ({"d4": [("9 o'clock", "17:00")]}, "Friday, first window, from: Enter a time like 09:00."),
        ({"d5": [("09:00", "25:00")]}, "Saturday, first window, until: Enter a time like 09:00."),
        ({"d6": [("09:00:30", "17:00")]}, "Sunday: use whole minutes."),
    ],
)
def test_bad_weekly_hours_are_refused_with_a_message_and_write_nothing(
    coach_client, coach, days, error
):
    make_rule(coach=coach, weekday=0, start_time=time(8), end_time=time(9))
    before = rules_of(coach)

    response = coach_client.post(WEEK, grid(**WORKWEEK | days))

    page = response.content.decode()
    assert response.status_code == 400
    assert error in page
    assert "nothing was saved" in page
    assert 'aria-invalid="true"' in page
    assert rules_of(coach) == before


def test_saving_warns_about_booked_sessions_outside_the_new_hours_and_keeps_them(
    coach_client, coach
):
    make_rule(coach=coach, weekday=1, start_time=time(9), end_time=time(17))
    session = book(coach, utc(2026, 10, 13, 8))  # Tuesday 10:00 Berlin

    response = coach_client.post(WEEK, grid(d0=[("09:00", "17:00")]), follow=True)

    assert messages_of(response) == [
        "Weekly hours saved: 8 h a week.",
        "1 booked or requested session lies outside your new weekly hours. It stays as agreed; "
        "reschedule from the session\u2019s page if needed.",
    ]
    assert TimeSlot.objects.get(pk=session.slot_id).status == SlotStatus.BOOKED


# --- weekly hours: preview --------------------------------------------------------------------


def test_preview_shows_each_day_before_and_after_and_writes_nothing(coach_client, coach):
    make_rule(coach=coach, weekday=0, start_time=time(9), end_time=time(17))

    response = coach_client.post(
        WEEK, grid("preview", d0=[("09:00", "12:00")], d4=[("14:00", "00:00")])
    )

    preview = response.context["week_preview"]
    page = response.content.decode()
    assert response.status_code == 200
    assert (preview.hours_before, preview.hours_after) == ("8 h", "13 h")
    assert [(d.name, d.before, d.after) for d in preview.days if d.changed] == [
        ("Monday", ["09:00\u201317:00"], ["09:00\u201312:00"]),
        ("Friday", [], ["14:00\u201324:00"]),
    ]
    assert "Preview: not saved yet" in page
    # The grid shows the previewed hours, ready to save.
    assert 'name="week-d4_0_end" value="00:00"' in page
    assert rules_of(coach) == [(0, time(9), time(17), None)]


def test_preview_lists_the_sessions_the_new_hours_leave_out(coach_client, coach):
    make_rule(coach=coach, weekday=1, start_time=time(9), end_time=time(17))
    outside = book(coach, utc(2026, 10, 13, 14))  # Tuesday 16:00 Berlin
    requested = book(coach, utc(2026, 10, 20, 14), accept=False)
    book(coach, utc(2026, 10, 13, 7))  # Tuesday 09:00: still inside

    response = coach_client.post(WEEK, grid("preview", d1=[("09:00", "12:00")]))

    preview = response.context["week_preview"]
    page = response.content.decode()
    assert preview.outside_count == 2
    assert [(row.label, row.state, row.session_id) for row in preview.outside] == [
        ("Tue 13 Oct 2026, 16:00\u201317:00 CEST", "booked", outside.pk),
        ("Tue 20 Oct 2026, 16:00\u201317:00 CEST", "awaiting an answer", requested.pk),
    ]
    assert "2 booked or requested sessions" in page
    assert reverse("sessions:detail", args=[outside.pk]) in page
    assert TimeSlot.objects.filter(status__in=["HELD", "BOOKED"]).count() == 3
    assert rules_of(coach) == [(1, time(9), time(17), None)]


def test_sessions_in_one_off_windows_are_not_outside_the_new_hours(coach_client, coach):
    availability_window_add(coach=coach, start=utc(2026, 10, 14, 8), end=utc(2026, 10, 14, 10))
    book(coach, utc(2026, 10, 14, 8))

    response = coach_client.post(WEEK, grid("preview"))

    assert response.context["week_preview"].outside_count == 0


def test_pressing_enter_in_the_grid_previews_without_saving(coach_client, coach):
    data = grid(**WORKWEEK)
    del data["action"]  # implicit submission sends no button (or the first one: Preview)

    response = coach_client.post(WEEK, data)

    assert response.status_code == 200
    assert response.context["week_preview"].hours_after == "40 h"
    assert rules_of(coach) == []


def test_preview_says_when_nothing_changes(coach_client, coach):
    make_rule(coach=coach, weekday=0, start_time=time(9), end_time=time(17))

    response = coach_client.post(WEEK, grid("preview", d0=[("09:00", "17:00")]))

    assert response.context["week_preview"].changed is False
    assert "No changes: your weekly hours stay <strong>8 h</strong> a week." in (
        response.content.decode()
    )


@pytest.mark.parametrize(
    ("window", "note"),
    [
        (
            ("01:30", "03:00"),
            "Sunday 28 March 2027, the clocks go forward: 01:30 does not exist that day, so your "
            "01:30\u201303:00 window runs 02:30\u201303:00 (30 min).",
        ),
        (
            ("00:00", "04:00"),
            "Sunday 25 October 2026, the clocks go back: your 00:00\u201304:00 window lasts 5 h "
            "that day.",
        ),
    ],
)
def test_preview_explains_what_the_next_clock_changes_do_to_a_window(client, window, note):
    london = CoachFactory(timezone="Europe/London")
    client.force_login(london)

    response = client.post(WEEK, grid("preview", d6=[window]))

    assert note in response.context["week_preview"].clock_notes
    assert note in response.content.decode()


# --- weekly hours: copy a day ------------------------------------------------------------------


def test_copying_a_day_fills_the_chosen_days_in_the_grid_without_saving(coach_client, coach):
    data = grid("copy", d0=[("09:00", "12:00"), ("13:00", "17:00")], d2=[("10:00", "11:00")])
    data.update({"week-copy_from": "0", "week-copy_to": ["2", "3", "0"]})

    response = coach_client.post(WEEK, data)

    page = response.content.decode()
    preview = response.context["week_preview"]
    assert response.status_code == 200
    assert preview.notice == "Monday\u2019s hours copied to Wednesday and Thursday."
    assert [(d.name, d.after) for d in preview.days if d.after] == [
        ("Monday", ["09:00\u201312:00", "13:00\u201317:00"]),
        ("Wednesday", ["09:00\u201312:00", "13:00\u201317:00"]),
        ("Thursday", ["09:00\u201312:00", "13:00\u201317:00"]),
    ]
    assert 'name="week-d3_1_start" value="13:00"' in page
    assert 'name="week-d2_0_start" value="09:00"' in page
    assert rules_of(coach) == []


@pytest.mark.parametrize(
    ("copy", "field", "error"),
    [
        ({"week-copy_to": ["1"]}, "copy_from", "Choose the day to copy."),
        ({"week-copy_from": "0"}, "copy_to", "Choose the days to copy Monday\u2019s hours to."),
        (
            {"week-copy_from": "0", "week-copy_to": ["0"]},
            "copy_to",
            "Choose the days to copy Monday\u2019s hours to.",
        ),
        ({"week-copy_from": "9", "week-copy_to": ["1"]}, "copy_from", "Select a valid choice."),
        ({"week-copy_from": "0", "week-copy_to": ["x"]}, "copy_to", "Choose days from the list."),
    ],
)
def test_a_copy_without_a_day_or_targets_is_refused(coach_client, coach, copy, field, error):
    data = grid("copy", d0=[("09:00", "12:00")]) | copy

    response = coach_client.post(WEEK, data)

    assert response.status_code == 400
    assert error in response.context["week_form"].errors[field][0]
    assert rules_of(coach) == []


# --- one-off windows ---------------------------------------------------------------------------


def window_data(day: str, start: str, end: str) -> dict:
    return {"window-date": day, "window-start_time": start, "window-end_time": end}


def windows_of(coach) -> list[tuple]:
    return list(
        AvailabilityWindow.objects.filter(coach=coach).order_by("start").values_list("start", "end")
    )


def test_adding_a_one_off_window_stores_the_coachs_local_time_in_utc(coach_client, coach):
    response = coach_client.post(
        WINDOW_ADD, window_data("2026-10-27", "09:00", "10:30"), follow=True
    )

    # 27 October is after Berlin's change to winter time (UTC+1).
    assert windows_of(coach) == [(utc(2026, 10, 27, 8), utc(2026, 10, 27, 9, 30))]
    assert messages_of(response) == ["One-off window added: Tue 27 Oct 2026, 09:00\u201310:30 CET."]
    assert response.redirect_chain == [(PAGE + "#one-off", 302)]


@pytest.mark.parametrize("end", ["00:00", "24:00"])
def test_a_one_off_window_ending_at_midnight_ends_at_the_end_of_that_day(coach_client, coach, end):
    response = coach_client.post(WINDOW_ADD, window_data("2026-10-20", "22:00", end), follow=True)

    assert windows_of(coach) == [(utc(2026, 10, 20, 20), utc(2026, 10, 20, 22))]
    assert messages_of(response) == [
        "One-off window added: Tue 20 Oct 2026, 22:00\u201324:00 CEST."
    ]


def test_a_whole_day_window_across_the_autumn_change_lasts_25_hours(coach_client, coach):
    coach_client.post(WINDOW_ADD, window_data("2026-10-24", "23:00", "00:00"))
    response = coach_client.post(WINDOW_ADD, window_data("2026-10-25", "00:00", "00:00"))

    assert response.status_code == 400
    assert "A one-off window can last at most 24 hours." in response.content.decode()
    assert windows_of(coach) == [(utc(2026, 10, 24, 21), utc(2026, 10, 24, 22))]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (window_data("2026-10-20", "10:00", "09:00"), "The end must be after the start"),
        (window_data("2026-10-20", "10:00", "10:00"), "The end must be after the start"),
        (window_data("2026-13-45", "09:00", "10:00"), "Enter a valid date."),
        (window_data("2026-10-20", "9 o'clock", "10:00"), "Enter a time like 09:00."),
        (window_data("", "", ""), "Choose a date."),
        (window_data("2026-10-20", "", "10:00"), "Enter a start time."),
        (window_data("2026-10-12", "06:00", "07:30"), "A one-off window must end in the future."),
        (
            # Berlin's clocks jump from 02:00 to 03:00 on 28 March 2027.
            window_data("2027-03-28", "02:30", "04:00"),
            "02:30 does not exist on 28 March 2027 in your timezone (Europe/Berlin): the clocks "
            "go forward that night. Pick another time.",
        ),
        (
            window_data("2027-03-28", "01:00", "02:15"),
            "02:15 does not exist on 28 March 2027",
        ),
    ],
)
def test_bad_one_off_window_is_refused_with_a_message_and_writes_nothing(
    coach_client, coach, data, error
):
    AvailabilityWindowFactory(coach=coach, start=utc(2026, 10, 30, 9))
    before = windows_of(coach)

    response = coach_client.post(WINDOW_ADD, data)

    assert response.status_code == 400
    assert error in response.content.decode()
    assert windows_of(coach) == before


def test_a_one_off_window_at_a_time_london_skips_says_so(client):
    london = CoachFactory(timezone="Europe/London")
    client.force_login(london)

    response = client.post(WINDOW_ADD, window_data("2027-03-28", "01:30", "03:00"))

    assert response.status_code == 400
    assert response.context["window_form"].non_field_errors() == [
        "01:30 does not exist on 28 March 2027 in your timezone (Europe/London): the clocks go "
        "forward that night. Pick another time."
    ]
    assert AvailabilityWindow.objects.count() == 0


@pytest.mark.parametrize(
    "day",
    [
        "9999-12-31",  # the end would be 10000-01-01
        "0001-01-01",  # before 0001-01-01 in UTC (Berlin is ahead)
        "2028-10-11",  # past the last date within two years
        "2026-10-11",  # yesterday
    ],
)
def test_one_off_window_date_outside_today_to_two_years_is_refused_on_the_field(
    coach_client, coach, day
):
    response = coach_client.post(WINDOW_ADD, window_data(day, "00:30", "00:00"))

    assert response.status_code == 400
    assert response.context["window_form"].errors == {
        "date": ["Pick a date between 12 October 2026 and 10 October 2028."]
    }
    assert AvailabilityWindow.objects.count() == 0


def test_a_one_off_window_late_on_the_last_allowed_date_is_added(coach_client, coach):
    response = coach_client.post(WINDOW_ADD, window_data("2028-10-10", "23:00", "00:00"))

    assert response.status_code == 302
    assert windows_of(coach) == [(utc(2028, 10, 10, 21), utc(2028, 10, 10, 22))]


def test_date_fields_carry_the_allowed_range(coach_client):
    page = coach_client.get(PAGE).content.decode()

    assert 'name="window-date" min="2026-10-12" max="2028-10-10"' in page
    assert 'name="off-first_day" min="2026-10-12" max="2028-10-10"' in page
    assert 'name="off-last_day" min="2026-10-12" max="2029-10-10"' in page


def test_the_number_of_upcoming_one_off_windows_is_limited(coach_client, coach):
    AvailabilityWindow.objects.bulk_create(
        AvailabilityWindow(
            coach=coach,
            start=utc(2026, 11, 1) + timedelta(days=n),
            end=utc(2026, 11, 1, 1) + timedelta(days=n),
        )
        for n in range(MAX_UPCOMING_WINDOWS)
    )

    response = coach_client.post(WINDOW_ADD, window_data("2026-10-20", "09:00", "10:00"))

    assert response.status_code == 400
    assert (
        f"You have {MAX_UPCOMING_WINDOWS} upcoming one-off windows; remove some first."
        in response.content.decode()
    )
    assert AvailabilityWindow.objects.filter(coach=coach).count() == MAX_UPCOMING_WINDOWS


def test_removing_a_one_off_window_deletes_it(coach_client, coach):
    window = AvailabilityWindowFactory(
        coach=coach, start=utc(2026, 10, 20, 7), end=utc(2026, 10, 20, 9)
    )

    response = coach_client.post(reverse("calendars:window_remove", args=[window.pk]), follow=True)

    assert windows_of(coach) == []
    assert messages_of(response) == [
        "One-off window removed: Tue 20 Oct 2026, 09:00\u201311:00 CEST. Sessions already booked "
        "stay booked."
    ]


@pytest.mark.parametrize("whose", ["another coach's", "unknown"])
def test_removing_a_window_that_is_not_yours_is_a_404(coach_client, whose):
    window = AvailabilityWindowFactory()
    pk = window.pk if whose == "another coach's" else window.pk + 1000

    response = coach_client.post(reverse("calendars:window_remove", args=[pk]))

    assert response.status_code == 404
    assert AvailabilityWindow.objects.filter(pk=window.pk).exists()


# --- time off ----------------------------------------------------------------------------------


def off_data(first: str, last: str = "", reason: str = "", action: str = "add") -> dict:
    return {"off-first_day": first, "off-last_day": last, "off-reason": reason, "action": action}


def time_off_of(coach) -> list[tuple]:
    return list(
        TimeOff.objects.filter(coach=coach).order_by("start").values_list("start", "end", "reason")
    )


def test_time_off_covers_whole_local_days_across_a_clock_change(coach_client, coach):
    response = coach_client.post(
        TIME_OFF_ADD, off_data("2026-10-24", "2026-10-26", "  Family   visit "), follow=True
    )

    # From midnight CEST (UTC+2) to the midnight after the last day, CET (UTC+1).
    assert time_off_of(coach) == [(utc(2026, 10, 23, 22), utc(2026, 10, 26, 23), "Family visit")]
    assert messages_of(response) == [
        "Time off added: Sat 24 Oct 2026 \u2013 Mon 26 Oct 2026 (3 days)."
    ]
    assert response.redirect_chain == [(PAGE + "#time-off", 302)]


def test_time_off_without_a_last_day_is_one_day(coach_client, coach):
    response = coach_client.post(TIME_OFF_ADD, off_data("2026-10-12"), follow=True)

    assert time_off_of(coach) == [(utc(2026, 10, 11, 22), utc(2026, 10, 12, 22), "")]
    assert messages_of(response) == ["Time off added: Mon 12 Oct 2026 (1 day)."]


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        (
            off_data("2026-10-20", "2026-10-19"),
            "last_day",
            "The last day must not be before the first day.",
        ),
        (
            off_data("2026-10-20", "2027-10-21"),
            "last_day",
            "Time off can last at most 366 days; split it up.",
        ),
        (off_data("2026-10-20", reason="x" * 201), "reason", "at most 200 characters"),
        (off_data("20/10/2026"), "first_day", "Enter a valid date."),
        (off_data(""), "first_day", "Choose a date."),
        (
            off_data("2026-10-11"),
            "first_day",
            "Pick a date between 12 October 2026 and 10 October 2028.",
        ),
        (
            off_data("9999-12-31"),
            "first_day",
            "Pick a date between 12 October 2026 and 10 October 2028.",
        ),
        (
            off_data("2026-10-20", "9999-12-31"),
            "last_day",
            "Pick a date between 12 October 2026 and 10 October 2029.",
        ),
    ],
)
def test_bad_time_off_is_refused_on_the_field_and_writes_nothing(
    coach_client, coach, data, field, error
):
    response = coach_client.post(TIME_OFF_ADD, data)

    assert response.status_code == 400
    assert error in response.context["time_off_form"].errors[field][0]
    assert TimeOff.objects.count() == 0


def test_the_number_of_upcoming_time_off_periods_is_limited(coach_client, coach):
    TimeOff.objects.bulk_create(
        TimeOff(
            coach=coach,
            start=utc(2027, 1, 1) + timedelta(days=2 * n),
            end=utc(2027, 1, 2) + timedelta(days=2 * n),
        )
        for n in range(MAX_UPCOMING_TIME_OFF)
    )

    response = coach_client.post(TIME_OFF_ADD, off_data("2026-10-20"))

    assert response.status_code == 400
    assert (
        f"You have {MAX_UPCOMING_TIME_OFF} upcoming periods of time off; remove some first."
        in response.content.decode()
    )


def test_time_off_preview_lists_the_sessions_inside_and_writes_nothing(coach_client, coach):
    availability_window_add(coach=coach, start=utc(2026, 10, 20, 7), end=utc(2026, 10, 20, 9))
    session = book(coach, utc(2026, 10, 20, 7))

    response = coach_client.post(
        TIME_OFF_ADD, off_data("2026-10-19", "2026-10-21", action="preview")
    )

    preview = response.context["time_off_preview"]
    page = response.content.decode()
    assert response.status_code == 200
    assert preview.label == "Mon 19 Oct 2026 \u2013 Wed 21 Oct 2026 (3 days)"
    assert [(row.label, row.session_id) for row in preview.reservations] == [
        ("Tue 20 Oct 2026, 09:00\u201310:00 CEST", session.pk)
    ]
    assert "1 booked or requested session falls in this time off." in " ".join(page.split())
    assert 'name="off-first_day" value="2026-10-19"' in page
    assert TimeOff.objects.count() == 0


def test_time_off_preview_without_sessions_says_so(coach_client):
    response = coach_client.post(TIME_OFF_ADD, off_data("2026-10-19", action="preview"))

    assert response.context["time_off_preview"].count == 0
    assert "No booked or requested session falls in it." in response.content.decode()


def test_adding_time_off_over_a_booked_session_warns_and_keeps_the_session(coach_client, coach):
    availability_window_add(coach=coach, start=utc(2026, 10, 20, 7), end=utc(2026, 10, 20, 9))
    session = book(coach, utc(2026, 10, 20, 7))

    response = coach_client.post(TIME_OFF_ADD, off_data("2026-10-20"), follow=True)

    assert messages_of(response) == [
        "Time off added: Tue 20 Oct 2026 (1 day).",
        "1 booked or requested session falls in this time off. It stays as agreed; reschedule "
        "or cancel from the session\u2019s page if needed.",
    ]
    assert TimeSlot.objects.get(pk=session.slot_id).status == SlotStatus.BOOKED


def test_removing_time_off_deletes_it(coach_client, coach):
    off = time_off_add(coach=coach, start=utc(2026, 10, 19, 22), end=utc(2026, 10, 20, 22))

    response = coach_client.post(reverse("calendars:time_off_remove", args=[off.pk]), follow=True)

    assert time_off_of(coach) == []
    assert messages_of(response) == [
        "Time off removed: Tue 20 Oct 2026 (1 day). Those days can be booked again where your "
        "hours allow."
    ]


@pytest.mark.parametrize("whose", ["another coach's", "unknown"])
def test_removing_time_off_that_is_not_yours_is_a_404(coach_client, whose):
    other = CoachFactory()
    off = time_off_add(coach=other, start=utc(2026, 10, 19, 22), end=utc(2026, 10, 20, 22))
    pk = off.pk if whose == "another coach's" else off.pk + 1000

    response = coach_client.post(reverse("calendars:time_off_remove", args=[pk]))

    assert response.status_code == 404
    assert TimeOff.objects.filter(pk=off.pk).exists()


# --- dated weekly windows ----------------------------------------------------------------------


def test_dated_weekly_windows_are_listed_and_can_be_removed(coach_client, coach):
    rule = make_rule(
        coach=coach,
        weekday=3,
        start_time=time(18),
        end_time=time(20),
        valid_from=date(2026, 9, 1),
        valid_until=date(2026, 12, 31),
    )

    page = coach_client.get(PAGE).content.decode()
    response = coach_client.post(reverse("calendars:rule_remove", args=[rule.pk]), follow=True)

    assert "Thursdays 18:00\u201320:00" in page and "1 Sep 2026 to 31 Dec 2026" in page
    assert rules_of(coach) == []
    assert messages_of(response) == [
        "Weekly window removed: Thursdays 18:00\u201320:00. Sessions already booked stay booked."
    ]


def test_removing_another_coachs_weekly_window_is_a_404(coach_client):
    rule = make_rule(coach=CoachFactory(), weekday=3, start_time=time(18), end_time=time(20))

    response = coach_client.post(reverse("calendars:rule_remove", args=[rule.pk]))

    assert response.status_code == 404
    assert AvailabilityRule.objects.filter(pk=rule.pk).exists()
