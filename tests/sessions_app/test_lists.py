"""The coach's lists: one aligned table with day rows, search and filters that survive paging,
bad filter values explained on the page, deadlines in words, and the Students pages."""

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from sessions_app import selectors, services, views
from sessions_app.lifecycle import Status
from sessions_app.models import Session
from tests.factories import CoachFactory, OfferingFactory, StudentFactory, make_package
from tests.sessions_app.test_views_coach import booked, proposed

NOW = datetime(2030, 1, 10, 12, 0, tzinfo=UTC)
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("coaches_decide_refunds"),
    pytest.mark.time_machine(NOW, tick=False),
]
UPCOMING = reverse("sessions:upcoming")


@pytest.fixture
def coach():
    return CoachFactory(timezone="Europe/Berlin")


@pytest.fixture
def two_students(coach, client):
    ada = StudentFactory(display_name="Ada Lovelace", email="ada@example.com")
    bob = StudentFactory(display_name="Bob Byte", email="bob@example.org")
    first = booked(coach, NOW + timedelta(days=2), status="CONFIRMED", student=ada)
    second = booked(coach, NOW + timedelta(days=3), status="CONFIRMED", student=bob)
    client.force_login(coach)
    return first, second


def listed(response) -> list[int]:
    return [s.pk for s in response.context["page_obj"]]


def test_upcoming_is_one_table_with_a_row_per_day_and_end_times(client, two_students):
    html = client.get(UPCOMING).content.decode()

    assert html.count("<thead>") == 1
    assert html.count('class="day-row"') == 2
    # Under its day row a session shows its start and end, not the day again.
    assert "13:00\u201314:00" in html


@pytest.mark.parametrize("search", ["ada", "LOVELACE", "ada@example", "  ada  "])
def test_search_finds_a_student_by_name_or_email(client, two_students, search):
    ada_session, _ = two_students
    assert listed(client.get(UPCOMING, {"search": search})) == [ada_session.pk]


def test_offering_and_status_filters(client, coach, two_students):
    ada_session, bob_session = two_students
    proposed(bob_session, NOW + timedelta(days=4), actor=coach)

    by_offering = client.get(UPCOMING, {"offering": ada_session.package.offering_id})
    by_status = client.get(UPCOMING, {"status": Status.RESCHEDULING})

    assert listed(by_offering) == [ada_session.pk]
    assert listed(by_status) == [bob_session.pk]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"search": "x" * 101}, "longer than 100 characters"),
        ({"offering": "999999"}, "not one of yours"),
        ({"offering": "abc"}, "not one of yours"),
        ({"status": "CANCELED"}, "Unknown status"),
    ],
)
def test_a_bad_filter_is_explained_and_ignored(client, two_students, params, message):
    response = client.get(UPCOMING, params)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert len(listed(response)) == 2


def test_another_coachs_offering_is_refused(client, two_students):
    theirs = OfferingFactory(coach=CoachFactory())
    response = client.get(UPCOMING, {"offering": theirs.pk})
    assert "not one of yours" in response.content.decode()
    assert len(listed(response)) == 2


def test_no_match_says_so_with_a_clear_link(client, two_students):
    html = client.get(UPCOMING, {"search": "nobody"}).content.decode()
    assert "No sessions match" in html
    assert 'href="?">Clear filters' in html


def test_filters_stay_in_the_pagination_links(client, coach, monkeypatch):
    monkeypatch.setattr(views, "LIST_PAGE_SIZE", 1)
    ada = StudentFactory(display_name="Ada Lovelace")
    first, second = (
        booked(coach, NOW + timedelta(days=days), status="CONFIRMED", student=ada)
        for days in (2, 3)
    )
    booked(coach, NOW + timedelta(days=4), status="CONFIRMED")  # someone else: filtered out
    client.force_login(coach)

    response = client.get(UPCOMING, {"search": "ada"})
    (next_link,) = re.findall(r'<a href="([^"]+)" rel="next">', response.content.decode())
    next_link = unescape(next_link)
    page_two = client.get(UPCOMING + next_link)
    (previous_link,) = re.findall(r'<a href="([^"]+)" rel="prev">', page_two.content.decode())

    assert listed(response) == [first.pk]
    assert next_link.startswith("?search=ada&after=") and next_link.endswith("&page=2")
    assert listed(page_two) == [second.pk]
    assert "Page 2" in page_two.content.decode()
    assert 'rel="next"' not in page_two.content.decode()  # the third is not Ada's
    assert unescape(previous_link) == "?search=ada"


@pytest.mark.parametrize(
    ("name", "key"),
    [("sessions:upcoming", "upcoming"), ("sessions:tasks", "tasks")],
)
def test_details_links_say_which_list_they_came_from(client, coach, name, key):
    booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    booked(coach, NOW + timedelta(days=3))
    client.force_login(coach)
    assert f"?from={key}" in client.get(reverse(name)).content.decode()


def test_tasks_deadline_reads_relative_with_urgency(client, coach):
    booked(coach, NOW + timedelta(hours=3))  # the request expires at its start: in 3 h
    client.force_login(coach)
    html = client.get(reverse("sessions:tasks")).content.decode()
    assert "<strong>Urgent:</strong> in 3 h" in html
    assert "deadline--urgent" in html


@pytest.mark.parametrize("count", [1, 6])
def test_list_query_counts_do_not_grow_with_a_search(
    client, coach, count, django_assert_max_num_queries
):
    for index in range(count):
        booked(coach, NOW + timedelta(days=2, hours=index), status="CONFIRMED")
    client.force_login(coach)
    with django_assert_max_num_queries(8):
        client.get(UPCOMING, {"search": "Student"})


# --- Students ---------------------------------------------------------------------------------


def test_students_lists_each_buyer_once_with_credits_and_next_session(client, coach, two_students):
    ada_session, _ = two_students
    make_package(student=ada_session.student, coach=coach)  # a second package, unbooked
    StudentFactory()  # never bought from this coach

    response = client.get(reverse("sessions:students"))
    rows = {student.display_name: student for student in response.context["page_obj"]}

    assert set(rows) == {"Ada Lovelace", "Bob Byte"}
    ada = rows["Ada Lovelace"]
    assert ada.packages_count == 2
    assert ada.next_start == ada_session.slot.start
    assert (
        ada.credits_left
        == Session.objects.filter(
            student=ada_session.student, coach=coach, status=Status.UNSCHEDULED
        ).count()
    )
    assert ada.credits_left > 0
    assert listed_names(client.get(reverse("sessions:students"), {"search": "bob@"})) == [
        "Bob Byte"
    ]


def listed_names(response) -> list[str]:
    return [student.display_name for student in response.context["page_obj"]]


@pytest.mark.parametrize("count", [1, 8])
def test_students_query_count_is_flat(client, coach, count, django_assert_max_num_queries):
    for _ in range(count):
        make_package(coach=coach)
    client.force_login(coach)
    with django_assert_max_num_queries(7):
        response = client.get(reverse("sessions:students"))
    assert len(response.context["page_obj"].object_list) == count


def test_a_students_page_shows_progress_and_history(client, coach, two_students):
    ada_session, _ = two_students
    response = client.get(reverse("sessions:student_detail", args=[ada_session.student_id]))
    html = response.content.decode()

    assert response.status_code == 200
    assert "Ada Lovelace" in html
    assert "1 of " in html and "used" in html
    assert f"/sessions/{ada_session.pk}/?from=students" in html


def test_a_student_of_another_coach_is_not_found(client, coach):
    stranger = make_package().student
    client.force_login(coach)
    assert client.get(reverse("sessions:student_detail", args=[stranger.pk])).status_code == 404
    assert client.get(reverse("sessions:student_detail", args=[999999])).status_code == 404


def test_students_is_for_coaches(client):
    client.force_login(StudentFactory())
    assert client.get(reverse("sessions:students")).status_code == 302


def test_my_sessions_deadlines_read_relative_and_only_the_students_own_are_urgent(client, coach):
    student = StudentFactory()
    booked(coach, NOW + timedelta(hours=3), student=student)  # the coach answers within 3 h
    moving = booked(coach, NOW + timedelta(hours=20), status="CONFIRMED", student=student)
    proposed(moving, NOW + timedelta(hours=40), actor=coach)  # answer before it starts: soon
    client.force_login(student)

    html = client.get(reverse("sessions:my_sessions")).content.decode()

    assert '<span class="deadline">in 3 h</span>' in html  # the coach's deadline: calm
    assert html.count("<strong>Urgent:</strong>") + html.count("<strong>Soon:</strong>") == 1


# --- bounded lists (issue 14) ------------------------------------------------------------------


def test_tasks_show_the_nearest_deadlines_and_say_more_are_waiting(client, coach, monkeypatch):
    monkeypatch.setattr(selectors, "TASKS_SHOWN", 2)
    requests = [booked(coach, NOW + timedelta(days=days)) for days in (3, 1, 2)]
    client.force_login(coach)

    response = client.get(reverse("sessions:tasks"))

    page = response.content.decode()
    soonest = sorted(requests, key=lambda s: s.request_expires_at)[:2]
    assert [s.pk for s in response.context["tasks"].requests] == [s.pk for s in soonest]
    assert 'Booking requests <span class="muted">(2+)</span>' in page
    assert "More requests are waiting" in page
    assert "More new times are waiting" not in page


def test_the_tasks_badge_stops_counting_past_its_maximum(client, coach, monkeypatch):
    from sessions_app import context_processors

    monkeypatch.setattr(selectors, "TASK_BADGE_MAX", 2)
    monkeypatch.setattr(context_processors, "TASK_BADGE_MAX", 2)
    monkeypatch.setattr(selectors._COACH_NAVIGATION, "_compiled", {})  # compiled with 99
    for days in (1, 2, 3, 4):
        booked(coach, NOW + timedelta(days=days))
    client.force_login(coach)

    page = client.get(reverse("sessions:upcoming")).content.decode()

    assert '<span class="count" aria-label="More than 2 waiting">2+</span>' in page
    assert selectors.coach_navigation(coach=coach).task_count == 3  # read up to one past


def test_my_sessions_lists_a_bounded_number_of_credits_and_says_so(client, monkeypatch):
    monkeypatch.setattr(selectors, "STUDENT_CREDITS_SHOWN", 2)
    package = make_package(offering=OfferingFactory(session_count=3))
    client.force_login(package.student)

    response = client.get(reverse("sessions:my_sessions"))

    first_two = list(package.sessions.order_by("pk").values_list("pk", flat=True)[:2])
    assert [s.pk for s in response.context["credits"]] == first_two
    assert 'Sessions to book <span class="muted">(2+)</span>' in response.content.decode()
    assert "Showing your first 2 sessions to book" in response.content.decode()


@pytest.mark.parametrize("sessions", [2, 6])
def test_a_students_page_pages_the_history_in_flat_queries(
    client, coach, monkeypatch, sessions, django_assert_max_num_queries
):
    monkeypatch.setattr(views, "LIST_PAGE_SIZE", 2)
    ada = StudentFactory(display_name="Ada Lovelace")
    ended = []
    for days in range(sessions):
        session = booked(coach, NOW + timedelta(days=1 + days), status="CONFIRMED", student=ada)
        services.session_cancel(session=session, actor=coach, refund="none")
        ended.append(session.pk)
    client.force_login(coach)
    url = reverse("sessions:student_detail", args=[ada.pk])

    with django_assert_max_num_queries(9):
        response = client.get(url)

    page = response.context["page_obj"]
    assert [s.pk for s in page] == ended[::-1][:2]  # the most recently canceled first
    assert page.has_next == (sessions > 2)
    if page.has_next:
        second = client.get(url + page.next_link).context["page_obj"]
        assert [s.pk for s in second] == ended[::-1][2:4]
    bought = ada.packages.order_by("-purchased_at").first().purchased_at
    shown = bought.astimezone(ZoneInfo("Europe/Berlin")).isoformat()
    assert f'<time datetime="{shown}"' in response.content.decode()


# --- the cached day table (issue 14) ----------------------------------------------------------


def test_upcoming_reuses_its_rendered_table_until_a_row_changes(client, coach, monkeypatch):
    from sessions_app import rows

    built = []
    real = rows.coach_day_rows
    monkeypatch.setattr(rows, "coach_day_rows", lambda *a, **k: built.append(1) or real(*a, **k))
    first = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)

    page_one = client.get(UPCOMING).content.decode()
    page_two = client.get(UPCOMING).content.decode()
    table = re.compile(r'<table class="day-table">.*?</table>', re.S)
    assert len(built) == 1
    assert table.search(page_one).group() == table.search(page_two).group()
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        proposed(first, NOW + timedelta(days=3), coach)  # the row now shows the proposal
        moved = client.get(UPCOMING).content.decode()

    assert len(built) == 2
    assert "Withdraw my proposal" in moved and "Withdraw my proposal" not in page_one
    client.cookies.pop("csrftoken", None)  # another browser: its forms need its own token
    client.get(UPCOMING)
    assert len(built) == 3


def unmasked(response) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


def test_a_cached_upcoming_page_reads_only_its_rows_stamps(
    client, coach, monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(views, "LIST_PAGE_SIZE", 2)
    sessions = [
        booked(coach, NOW + timedelta(days=1 + index), status="CONFIRMED") for index in range(3)
    ]
    proposed(sessions[1], NOW + timedelta(days=6), coach)
    client.force_login(coach)
    cold = client.get(UPCOMING)
    following = client.get(UPCOMING + cold.context["page_obj"].next_link)

    # The session and user, the coach profile, the offerings, the stamps, the navigation.
    with django_assert_num_queries(5):
        warm = client.get(UPCOMING)
    warm_following = client.get(UPCOMING + warm.context["page_obj"].next_link)

    # The same page: the table as rendered before, the same links (each page's CSRF token
    # in the Log out form is masked anew).
    assert unmasked(warm) == unmasked(cold)
    assert unmasked(warm_following) == unmasked(following)
    assert listed(warm) == [sessions[0].pk, sessions[1].pk]
    assert listed(warm_following) == [sessions[2].pk]
    back = client.get(UPCOMING + warm_following.context["page_obj"].previous_link)
    assert unmasked(back) == unmasked(cold)
    groups = [(str(day), [s.pk for s in rows]) for day, rows in warm.context["days"]]
    assert groups == [("2030-01-11", [sessions[0].pk]), ("2030-01-12", [sessions[1].pk])]


def test_a_searched_upcoming_page_is_read_in_full_and_shows_the_same_table(client, two_students):
    ada_session, _ = two_students
    client.get(UPCOMING)
    table = re.compile(r'<table class="day-table">.*?</table>', re.S)

    searched = client.get(UPCOMING, {"search": "ada"})
    again = client.get(UPCOMING, {"search": "ada"})

    assert listed(searched) == listed(again) == [ada_session.pk]
    assert (
        table.search(searched.content.decode()).group()
        == table.search(again.content.decode()).group()
    )
