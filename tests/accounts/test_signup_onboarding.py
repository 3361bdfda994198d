"""Sign-up asks for a name, a role and a timezone; new coaches get a Get started checklist
(issue 13), and the navigation shows Get started, Students, Admin and the student's badge."""

from datetime import time

import pytest
from django.urls import reverse

from accounts.models import User
from accounts.selectors import coach_get_started
from sessions_app.context_processors import _nav_items
from tests.factories import (
    CoachFactory,
    CoachProfileFactory,
    ExternalCalendarFactory,
    OfferingFactory,
    StaffFactory,
    StudentFactory,
    make_package,
    make_rule,
    make_session,
)

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-pass-42"


def signup(client, **fields):
    data = {
        "email": "new@example.com",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "display_name": "Ana Pérez",
        "role": "coach",
        "timezone": "Europe/Berlin",
        **fields,
    }
    return client.post(reverse("account_signup"), data)


# --- sign-up -----------------------------------------------------------------------------------


def test_signup_page_asks_name_role_and_a_detected_timezone(client):
    html = client.get(reverse("account_signup")).content.decode()

    assert 'name="display_name"' in html and 'maxlength="120"' in html
    assert "I coach" in html and "I&#x27;m a student" in html
    assert 'name="role"' in html and "checked" not in html  # no role preselected
    assert '<select name="timezone"' in html and "data-detect-timezone" in html
    assert '<option value="UTC" selected>' in html  # without JavaScript
    assert "js/timezone.js" in html


def test_signup_as_coach_saves_name_timezone_and_makes_a_coach(client):
    response = signup(client)

    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert (user.display_name, user.timezone, user.is_coach) == ("Ana Pérez", "Europe/Berlin", True)


def test_signup_as_student_makes_no_coach_profile(client):
    assert signup(client, role="student", timezone="America/New_York").status_code == 302

    user = User.objects.get(email="new@example.com")
    assert (user.display_name, user.timezone, user.is_coach) == (
        "Ana Pérez",
        "America/New_York",
        False,
    )


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone", "Choose your timezone from the list."),
        ({"timezone": ""}, "timezone", "Choose your timezone from the list."),
        ({"display_name": ""}, "display_name", "Enter your name."),
        ({"display_name": "   "}, "display_name", "Enter your name."),
        ({"display_name": "\u200b\u200b"}, "display_name", "this name shows as blank"),
        ({"display_name": "Ana\nPérez"}, "display_name", "Use one line"),
        ({"display_name": "x" * 121}, "display_name", "at most 120 characters"),
        ({"role": ""}, "role", "Choose “I coach” or “I&#x27;m a student”."),
        ({"role": "admin"}, "role", "Choose “I coach” or “I&#x27;m a student”."),
    ],
)
def test_bad_signup_input_is_an_error_and_makes_no_user(client, fields, field, message):
    response = signup(client, **fields)

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert message in response.content.decode()
    assert not User.objects.filter(email="new@example.com").exists()


def test_a_form_sent_back_keeps_the_chosen_timezone_over_the_browsers(client):
    html = signup(client, display_name="").content.decode()

    assert '<option value="Europe/Berlin" selected>' in html
    assert "data-chosen" in html


def test_a_new_coach_lands_on_get_started_and_a_student_on_my_sessions(client):
    signup(client)
    user = User.objects.get(email="new@example.com")
    client.force_login(user)
    assert client.get(reverse("home")).url == reverse("accounts:get_started")

    client.force_login(StudentFactory())
    assert client.get(reverse("home")).url == reverse("sessions:my_sessions")


# --- Get started -------------------------------------------------------------------------------


def new_coach():
    return CoachFactory(profile__headline="", profile__bio="")


def done_keys(coach):
    return [step.key for step in coach_get_started(coach=coach).steps if step.done]


def test_checklist_steps_follow_the_coachs_data_in_one_query(django_assert_num_queries):
    coach = new_coach()
    with django_assert_num_queries(1):
        checklist = coach_get_started(coach=coach)
    assert (checklist.done_count, checklist.total, checklist.complete) == (0, 5, False)

    profile = coach.coach_profile
    profile.headline = "Chess coach"
    profile.save()
    assert done_keys(coach) == []  # a headline without a bio is not a profile yet
    profile.bio = "Twenty years of tournament play."
    profile.save()
    assert done_keys(coach) == ["gs_profile"]

    make_rule(coach=coach, weekday=0, start_time=time(9), end_time=time(12))
    assert done_keys(coach) == ["gs_profile", "gs_hours"]

    offering = OfferingFactory(coach=coach, is_active=False)
    assert done_keys(coach) == ["gs_profile", "gs_hours"]  # not on sale
    offering.is_active = True
    offering.save()
    assert done_keys(coach) == ["gs_profile", "gs_hours", "gs_offering"]

    ExternalCalendarFactory(coach=coach)
    assert done_keys(coach) == ["gs_profile", "gs_hours", "gs_offering", "gs_calendar"]

    make_package(offering=offering)
    with django_assert_num_queries(1):
        checklist = coach_get_started(coach=coach)
    assert (checklist.done_count, checklist.complete) == (5, True)


def test_another_coachs_data_does_not_count():
    coach, other = new_coach(), CoachFactory(profile__bio="Bio")
    make_rule(coach=other, weekday=1, start_time=time(9), end_time=time(10))
    ExternalCalendarFactory(coach=other)
    make_package(offering=OfferingFactory(coach=other))

    assert done_keys(coach) == []
    assert done_keys(other) == [
        "gs_profile",
        "gs_hours",
        "gs_offering",
        "gs_calendar",
        "gs_share",
    ]


def test_get_started_page_shows_progress_links_and_the_booking_link(client, settings):
    settings.SITE_URL = "https://coachbook.example"
    coach = new_coach()
    make_rule(coach=coach, weekday=0, start_time=time(9), end_time=time(12))
    client.force_login(coach)

    html = client.get(reverse("accounts:get_started")).content.decode()

    assert "1 of 5 done" in html
    assert '<progress id="get-started-progress" max="5" value="1">' in html
    public = reverse("catalog:coach_detail", args=[coach.pk])
    assert f'value="https://coachbook.example{public}" readonly' in html
    assert "Copy link" in html and "js/copy_link.js" in html
    for url in [
        reverse("accounts:profile") + "#coach",
        reverse("calendars:availability"),
        reverse("catalog:offering_create"),
        reverse("calendars:availability") + "#external-calendars",
        public,
    ]:
        assert f'href="{url}"' in html
    assert html.count(">Done</span>") == 1
    assert html.count(">Not done yet</span>") == 4


def test_get_started_is_for_coaches(client):
    client.force_login(StudentFactory())
    response = client.get(reverse("accounts:get_started"))
    assert response.url == reverse("accounts:profile")


def finish_get_started(coach):
    profile = coach.coach_profile
    profile.bio = "Bio"
    profile.save()
    make_rule(coach=coach, weekday=0, start_time=time(9), end_time=time(12))
    ExternalCalendarFactory(coach=coach)
    make_package(offering=OfferingFactory(coach=coach))


def test_a_coach_who_finished_get_started_lands_on_tasks_and_loses_the_nav_item(client):
    coach = CoachFactory()
    client.force_login(coach)
    assert ">Get started</a>" in client.get(reverse("sessions:tasks")).content.decode()

    finish_get_started(coach)
    assert client.get(reverse("home")).url == reverse("sessions:tasks")
    assert ">Get started</a>" not in client.get(reverse("sessions:tasks")).content.decode()
    # The page itself stays reachable and says so.
    assert "All done" in client.get(reverse("accounts:get_started")).content.decode()


# --- navigation --------------------------------------------------------------------------------


class FakeRequest:
    def __init__(self, user):
        self.user = user
        self.resolver_match = None


def labels(user):
    return [item["label"] for item in _nav_items(FakeRequest(user))]


def test_coach_navigation_is_one_query_with_get_started(django_assert_num_queries):
    coach = CoachFactory()
    coach = User.objects.select_related("coach_profile").get(pk=coach.pk)
    with django_assert_num_queries(1):
        names = labels(coach)
    assert names[:2] == ["Get started", "Tasks"]
    try:
        reverse("sessions:students")
    except Exception:  # the Students page is not in this build yet: no dead link
        assert "Students" not in names
    else:
        assert "Students" in names
    assert "Admin" not in names


def test_staff_see_admin():
    assert labels(StaffFactory())[-1] == "Admin"
    staff_coach = CoachFactory(is_staff=True)
    assert labels(staff_coach)[-1] == "Admin"
    assert "Admin" not in labels(StudentFactory())


def test_student_badge_counts_proposals_waiting_on_the_student(django_assert_num_queries):
    session = make_session("RESCHEDULING")  # the coach proposed: the student must answer
    student = session.student
    make_session("CONFIRMED", student=student)
    student = User.objects.select_related("coach_profile").get(pk=student.pk)  # is_coach known
    with django_assert_num_queries(1):
        items = _nav_items(FakeRequest(student))
    mine = next(item for item in items if item["label"] == "My sessions")
    assert mine["badge"] == 1
    assert mine["aria_label"] == "1 new time waiting for your answer"
    # The coach's own proposal does not count for the coach as a student.
    assert all(item["badge"] == 0 for item in items if item["label"] != "My sessions")


def test_a_proposal_the_student_made_is_not_waiting_on_them():
    from sessions_app import services
    from tests.factories import next_free_start

    session = make_session("CONFIRMED")
    services.session_propose_reschedule(
        session=session, start=next_free_start(session.coach, 60), actor=session.student
    )
    items = _nav_items(FakeRequest(session.student))
    assert next(item for item in items if item["label"] == "My sessions")["badge"] == 0


def test_student_badge_renders_in_the_navigation(client):
    session = make_session("RESCHEDULING")
    client.force_login(session.student)
    html = client.get(reverse("sessions:my_sessions")).content.decode()
    assert '<span class="count"' in html


def test_coach_profile_factory_is_complete_profile():
    # The default coach of the factories has a headline; with a bio the profile step is done.
    coach = CoachProfileFactory(bio="Bio").user
    assert done_keys(coach) == ["gs_profile"]


def test_get_started_pending_is_in_every_template_context(client):
    coach = CoachFactory()
    client.force_login(coach)
    assert client.get(reverse("sessions:tasks")).context["get_started_pending"]

    finish_get_started(coach)
    assert not client.get(reverse("sessions:tasks")).context["get_started_pending"]
    client.force_login(StudentFactory())
    assert not client.get(reverse("sessions:my_sessions")).context["get_started_pending"]


def test_a_coach_who_learns_gets_the_badge_in_the_same_one_query(django_assert_num_queries):
    learner = CoachFactory()
    session = make_session("RESCHEDULING", student=learner)  # their coach proposed a new time
    learner = User.objects.select_related("coach_profile").get(pk=session.student_id)
    with django_assert_num_queries(1):
        items = _nav_items(FakeRequest(learner))
    mine = next(item for item in items if item["label"] == "My sessions")
    assert (mine["badge"], mine["aria_label"]) == (1, "1 new time waiting for your answer")


def test_a_bookable_coach_lands_on_tasks_while_get_started_stays_in_the_navigation(client):
    # Profile, weekly hours and an offering on sale make the coach bookable; a calendar and a
    # first sale are still to do, so Get started stays offered but no longer stands in the way.
    coach = CoachFactory()
    profile = coach.coach_profile
    profile.bio = "Bio"
    profile.save()
    make_rule(coach=coach, weekday=0, start_time=time(9), end_time=time(12))
    client.force_login(coach)
    assert client.get(reverse("home")).url == reverse("accounts:get_started")

    OfferingFactory(coach=coach)
    assert client.get(reverse("home")).url == reverse("sessions:tasks")
    assert ">Get started</a>" in client.get(reverse("sessions:tasks")).content.decode()
