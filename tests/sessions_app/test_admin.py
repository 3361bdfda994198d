"""The sessions admin: read-only lifecycle, the timeline, refund choices, package money, and
the coaches' cancellation rate."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.admin import CoachProfileAdmin
from accounts.models import CoachProfile
from catalog.models import Offering
from refunds.models import Refund, RefundState
from sessions_app import services
from sessions_app.admin import cancellation_text
from sessions_app.models import Package, Session, SessionEvent
from sessions_app.selectors import coach_cancellation_rate
from tests.factories import (
    CoachFactory,
    OfferingFactory,
    StudentFactory,
    SuperuserFactory,
    make_canceled_session,
    make_package,
    make_session,
    next_free_start,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("coaches_decide_refunds")]

SESSIONS = reverse("admin:sessions_app_session_changelist")
PACKAGES = reverse("admin:sessions_app_package_changelist")


def _pks(response):
    return sorted(obj.pk for obj in response.context_data["cl"].result_list)


def _session_page(client, session):
    response = client.get(reverse("admin:sessions_app_session_change", args=[session.pk]))
    assert response.status_code == 200
    return response.content.decode()


# --- the refund choice of every cancellation ---------------------------------------------------


@pytest.mark.parametrize(
    ("details", "currency", "text"),
    [
        ({"refund": "full", "refund_amount_cents": 3000}, "USD", "Full refund $30.00"),
        ({"refund": "partial", "refund_amount_cents": 1250}, "EUR", "Partial refund €12.50"),
        ({"refund": "none", "reason": ""}, "USD", "Cancel without refund"),
        (None, "USD", ""),
    ],
)
def test_cancellation_text_says_the_refund_choice(details, currency, text):
    assert cancellation_text(details, currency) == text


def test_session_list_shows_each_cancellations_refund_choice(admin_client):
    full = make_canceled_session(refund="full", price_cents=9000)
    partial = make_canceled_session(refund="partial", amount_cents=1250)
    none = make_canceled_session(refund="none")
    live = make_session("CONFIRMED")

    response = admin_client.get(SESSIONS)

    shown = {
        session.pk: response.context_data["cl"].model_admin.cancellation(session)
        for session in response.context_data["cl"].result_list
    }
    assert {pk: shown[pk] for pk in (full.pk, partial.pk, none.pk, live.pk)} == {
        full.pk: "Full refund $30.00",
        partial.pk: "Partial refund $12.50",
        none.pk: "Cancel without refund",
        live.pk: "-",
    }
    html = response.content.decode()
    assert "Cancel without refund" in html
    assert "$30.00" in html  # the price share, as money


def test_session_page_shows_the_timeline_and_cancel_without_refund(admin_client):
    session = make_canceled_session(refund="none", reason="Student asked to stop")
    coach, student = session.coach, session.student

    html = _session_page(admin_client, session)

    assert "Timeline" in html
    for text in [
        "Purchased",
        "Booked",
        "Accepted",
        "Canceled",
        f"{student.name} &lt;{student.email}&gt;",
        f"{coach.name} &lt;{coach.email}&gt;",
        "Cancel without refund",
        "Student asked to stop",
    ]:
        assert text in html
    # The timeline is in time order: bought, booked, accepted, canceled.
    timeline = html[html.index('id="events-heading"') :]
    positions = [
        timeline.index(f"<p>{label}</p>")
        for label in ("Purchased", "Booked", "Accepted", "Canceled")
    ]
    assert positions == sorted(positions)


def test_session_page_says_who_canceled_when_and_what_was_refunded(admin_client, time_machine):
    time_machine.move_to("2030-05-06 14:30Z", tick=False)
    session = make_canceled_session(refund="partial", amount_cents=1250, reason="Coach ill")
    admin_client.force_login(SuperuserFactory())
    refund = session.refunds.get()

    html = _session_page(admin_client, session)

    coach = session.coach
    assert (
        f"Partial refund $12.50 · by {coach.name} &lt;{coach.email}&gt;"
        " · on 2030-05-06 14:30:00 UTC · reason: Coach ill"
    ) in html
    refund_url = reverse("admin:refunds_refund_change", args=[refund.pk])
    assert refund_url in html  # the refund inline links to the refund
    assert f"manual-refund-{refund.pk}" in html  # the gateway reference: the money moved


def test_system_events_show_system_as_the_actor(admin_client):
    session = make_session("REQUESTED")
    services.sessions_expire_stale(now=timezone.now() + timedelta(days=30))

    html = _session_page(admin_client, session)

    assert "Request expired" in html
    assert ">system<" in html


# --- read-only lifecycle -----------------------------------------------------------------------


def test_session_cannot_be_added_changed_or_deleted_in_the_admin(admin_client):
    session = make_session("CONFIRMED")
    change = reverse("admin:sessions_app_session_change", args=[session.pk])

    html = _session_page(admin_client, session)
    posted = admin_client.post(change, {"status": "CANCELED"})

    assert 'name="status"' not in html
    assert 'name="_save"' not in html
    assert posted.status_code == 403
    assert admin_client.get(reverse("admin:sessions_app_session_add")).status_code == 403
    assert (
        admin_client.get(
            reverse("admin:sessions_app_session_delete", args=[session.pk])
        ).status_code
        == 403
    )
    session.refresh_from_db()
    assert session.status == "CONFIRMED"
    assert session.events.count() == 3


@pytest.mark.parametrize("model", ["sessionevent", "package", "rescheduleproposal"])
def test_lifecycle_records_are_read_only(admin_client, model):
    session = make_session("RESCHEDULING")
    obj = {
        "sessionevent": session.events.first(),
        "package": session.package,
        "rescheduleproposal": session.proposals.first(),
    }[model]
    change = reverse(f"admin:sessions_app_{model}_change", args=[obj.pk])

    assert admin_client.get(change).status_code == 200
    assert admin_client.post(change, {}).status_code == 403
    assert admin_client.get(reverse(f"admin:sessions_app_{model}_add")).status_code == 403
    assert (
        admin_client.get(reverse(f"admin:sessions_app_{model}_delete", args=[obj.pk])).status_code
        == 403
    )
    assert admin_client.get(reverse(f"admin:sessions_app_{model}_changelist")).status_code == 200


def test_non_staff_are_redirected_from_the_sessions_admin(client):
    client.force_login(StudentFactory())
    response = client.get(SESSIONS)
    assert (response.status_code, response["Location"]) == (
        302,
        f"{reverse('admin:login')}?next={SESSIONS}",
    )


# --- filters and search --------------------------------------------------------------------------


def test_sessions_filter_by_status_and_coach(admin_client):
    canceled = make_canceled_session(refund="none")
    confirmed = make_session("CONFIRMED")
    other_of_that_coach = confirmed.package.sessions.exclude(pk=confirmed.pk)

    by_status = admin_client.get(SESSIONS, {"status__exact": "CANCELED"})
    by_coach = admin_client.get(SESSIONS, {"coach": confirmed.coach_id})
    both = admin_client.get(SESSIONS, {"coach": confirmed.coach_id, "status__exact": "CONFIRMED"})

    assert _pks(by_status) == [canceled.pk]
    assert _pks(by_coach) == sorted(
        [confirmed.pk, *other_of_that_coach.values_list("pk", flat=True)]
    )
    assert _pks(both) == [confirmed.pk]


@pytest.mark.parametrize("field", ["student", "coach"])
def test_sessions_search_by_email(admin_client, field):
    session = make_session("CONFIRMED", session_count=1)
    make_session("CONFIRMED", session_count=1)

    response = admin_client.get(SESSIONS, {"q": getattr(session, field).email})

    assert _pks(response) == [session.pk]


def test_sessions_search_by_id(admin_client):
    session = make_session("CONFIRMED", session_count=1)
    make_session("CONFIRMED", session_count=1)
    assert _pks(admin_client.get(SESSIONS, {"q": str(session.pk)})) == [session.pk]
    assert _pks(admin_client.get(SESSIONS, {"q": f"#{session.pk}"})) == [session.pk]


# --- packages: paid, refunded, remaining -------------------------------------------------------


def test_package_shows_paid_refunded_and_remaining(admin_client):
    package = make_package(price_cents=30000, session_count=3)
    first, second, third = package.sessions.order_by("number")
    services.session_cancel(session=first, actor=package.coach, refund="full")
    services.session_cancel(
        session=second, actor=package.coach, refund="partial", amount_cents=2500
    )
    services.session_cancel(session=third, actor=package.coach, refund="none")
    untouched = make_package(price_cents=12000, session_count=2, currency="EUR")

    response = admin_client.get(PACKAGES)

    rows = {
        row.pk: (row.paid_cents, row.refunded_cents, row.remaining_cents)
        for row in response.context_data["cl"].result_list
    }
    assert rows == {package.pk: (30000, 12500, 17500), untouched.pk: (12000, 0, 12000)}
    html = response.content.decode()
    for text in ["$300.00", "$125.00", "$175.00", "€120.00", "€0.00"]:
        assert text in html


def test_failed_refund_does_not_count_as_refunded(admin_client):
    session = make_canceled_session(refund="full", price_cents=30000, session_count=3)
    Refund.objects.filter(session=session).update(state=RefundState.FAILED)

    response = admin_client.get(PACKAGES)

    (row,) = response.context_data["cl"].result_list
    assert (row.paid_cents, row.refunded_cents, row.remaining_cents) == (30000, 0, 30000)


def test_package_page_lists_its_sessions_with_their_cancellations(admin_client):
    package = make_package(price_cents=30000, session_count=3)
    first = package.sessions.get(number=1)
    services.session_cancel(session=first, actor=package.coach, refund="partial", amount_cents=1250)

    response = admin_client.get(reverse("admin:sessions_app_package_change", args=[package.pk]))

    html = response.content.decode()
    assert "Partial refund $12.50" in html
    assert "$287.50" in html  # remaining


# --- query budgets -------------------------------------------------------------------------------


def _many_sessions(packages=5, per_package=20):
    for _ in range(packages):
        package = make_package(session_count=per_package, price_cents=100 * per_package)
        for session in package.sessions.order_by("number")[: per_package // 2]:
            services.session_cancel(
                session=session, actor=package.coach, refund="partial", amount_cents=50
            )


def test_session_list_renders_within_a_fixed_query_budget(
    admin_client, django_assert_max_num_queries
):
    _many_sessions()
    assert Session.objects.count() == 100

    with django_assert_max_num_queries(7):
        response = admin_client.get(SESSIONS)

    assert len(response.context_data["cl"].result_list) == 100


def test_package_list_renders_within_a_fixed_query_budget(
    admin_client, django_assert_max_num_queries
):
    _many_sessions(packages=40, per_package=2)
    assert Package.objects.count() == 40

    with django_assert_max_num_queries(9):
        response = admin_client.get(PACKAGES)

    assert len(response.context_data["cl"].result_list) == 40


def test_session_page_makes_a_fixed_number_of_queries(admin_client, django_assert_max_num_queries):
    session = make_canceled_session(refund="partial", amount_cents=100)

    with django_assert_max_num_queries(13):
        _session_page(admin_client, session)


def test_event_list_renders_within_a_fixed_query_budget(
    admin_client, django_assert_max_num_queries
):
    _many_sessions(packages=2, per_package=20)
    assert SessionEvent.objects.count() >= 60

    with django_assert_max_num_queries(7):
        response = admin_client.get(reverse("admin:sessions_app_sessionevent_changelist"))

    assert response.status_code == 200


def test_lists_with_agreed_and_proposed_times_stay_within_their_budgets(
    admin_client, django_assert_max_num_queries
):
    # Each time names itself in its coach's timezone: the coach must not cost a query per row.
    for status in ("REQUESTED", "CONFIRMED", "RESCHEDULING") * 4:
        make_session(status)

    with django_assert_max_num_queries(7):
        sessions = admin_client.get(SESSIONS)
    with django_assert_max_num_queries(5):
        proposals = admin_client.get(reverse("admin:sessions_app_rescheduleproposal_changelist"))

    assert len(sessions.context_data["cl"].result_list) == 36
    assert len(proposals.context_data["cl"].result_list) == 4
    assert "(Booked)" in sessions.content.decode()
    assert "(Held)" in proposals.content.decode()


# --- offerings ---------------------------------------------------------------------------------


def test_offering_admin_is_read_only_so_the_offering_services_checks_cannot_be_skipped(
    admin_client,
):
    offering = OfferingFactory(price_cents=45000)
    title = offering.title
    change = reverse("admin:catalog_offering_change", args=[offering.pk])
    add = reverse("admin:catalog_offering_add")
    delete = reverse("admin:catalog_offering_delete", args=[offering.pk])
    forged = {
        "title": "Edited",
        "session_count": 3,
        "duration_minutes": 60,
        "price_cents": 10**9,
        "currency": "XXX",
        "is_active": "on",
    }

    listing = admin_client.get(reverse("admin:catalog_offering_changelist"))
    page = admin_client.get(change)

    assert "$450.00" in listing.content.decode()
    assert (page.status_code, 'name="_save"' in page.content.decode()) == (200, False)
    assert "$450.00" in page.content.decode()
    assert admin_client.post(change, forged).status_code == 403
    assert admin_client.post(add, {**forged, "coach": offering.coach_id}).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    offering.refresh_from_db()
    assert (offering.title, offering.price_cents, offering.currency) == (title, 45000, "USD")
    assert list(Offering.objects.values_list("pk", flat=True)) == [offering.pk]


def test_coach_profile_admin_is_read_only_and_cannot_delete_a_profile(admin_client):
    profile = CoachFactory().coach_profile
    change = reverse("admin:accounts_coachprofile_change", args=[profile.pk])
    delete = reverse("admin:accounts_coachprofile_delete", args=[profile.pk])

    page = admin_client.get(change)
    listing = admin_client.get(reverse("admin:accounts_coachprofile_changelist"))

    assert (page.status_code, 'name="_save"' in page.content.decode()) == (200, False)
    assert "delete_selected" not in listing.content.decode()
    assert admin_client.post(change, {"request_window_hours": 10**9}).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse("admin:accounts_coachprofile_add")).status_code == 403
    profile.refresh_from_db()
    assert profile.request_window_hours == 48


# --- the coaches' cancellation rate ------------------------------------------------------------


def _book_and_accept(session, *, accept=True):
    start = next_free_start(session.coach, session.package.duration_minutes)
    services.session_book(session=session, start=start, actor=session.student)
    if accept:
        services.session_accept(session=session, actor=session.coach)


def _coach_with(offering_sessions=4):
    coach = CoachFactory()
    package = make_package(offering=OfferingFactory(coach=coach, session_count=offering_sessions))
    return coach, list(package.sessions.order_by("number"))


def test_coach_list_cancellation_rate_agrees_with_the_selector(admin_client):
    # A: four booked, one confirmed session canceled by the coach -> 1 of 4.
    coach_a, sessions = _coach_with(4)
    for session in sessions:
        _book_and_accept(session)
    services.session_cancel(session=sessions[0], actor=coach_a, refund="full")
    # B: two booked (one withdrawn and booked again: still one session), one canceled while
    # requested; an unused credit canceled does not count -> 1 of 2.
    coach_b, sessions = _coach_with(3)
    _book_and_accept(sessions[0], accept=False)
    services.session_withdraw(session=sessions[0], actor=sessions[0].student)
    _book_and_accept(sessions[0], accept=False)
    _book_and_accept(sessions[1])
    services.session_cancel(session=sessions[0], actor=coach_b, refund="none")
    services.session_cancel(session=sessions[2], actor=coach_b, refund="none")
    # C: a booking and a cancel 100 days ago are outside the window; one booking now -> 0 of 1.
    coach_c, sessions = _coach_with(2)
    with time_machine.travel(timezone.now() - timedelta(days=100)):
        _book_and_accept(sessions[0])
        services.session_cancel(session=sessions[0], actor=coach_c, refund="none")
    _book_and_accept(sessions[1])
    # D: no bookings at all.
    coach_d = CoachFactory()

    response = admin_client.get(reverse("admin:accounts_coachprofile_changelist"))

    model_admin = response.context_data["cl"].model_admin
    shown = {
        profile.user_id: (
            profile.canceled_recent,
            profile.booked_recent,
            model_admin.cancellation_rate(profile),
        )
        for profile in response.context_data["cl"].result_list
    }
    expected = {}
    for coach in (coach_a, coach_b, coach_c, coach_d):
        rate = coach_cancellation_rate(coach=coach, days=90)
        expected[coach.pk] = (rate.canceled, rate.booked)
    assert {pk: value[:2] for pk, value in shown.items() if pk in expected} == expected
    assert expected == {
        coach_a.pk: (1, 4),
        coach_b.pk: (1, 2),
        coach_c.pk: (0, 1),
        coach_d.pk: (0, 0),
    }
    assert shown[coach_a.pk][2] == "25% (1 of 4)"
    assert shown[coach_b.pk][2] == "50% (1 of 2)"
    assert shown[coach_c.pk][2] == "0% (0 of 1)"
    assert shown[coach_d.pk][2] == "no bookings"
    assert "25% (1 of 4)" in response.content.decode()


def test_coach_list_sorts_by_cancellation_rate_within_a_fixed_query_budget(
    admin_client, django_assert_max_num_queries
):
    for cancels in range(3):
        coach, sessions = _coach_with(3)
        for session in sessions:
            _book_and_accept(session)
        for session in sessions[:cancels]:
            services.session_cancel(session=session, actor=coach, refund="none")
    ordering = list(CoachProfileAdmin.list_display).index("cancellation_rate") + 1

    with django_assert_max_num_queries(5):
        response = admin_client.get(
            reverse("admin:accounts_coachprofile_changelist"), {"o": f"-{ordering}"}
        )

    rates = [p.canceled_recent for p in response.context_data["cl"].result_list]
    assert rates == [2, 1, 0]
    assert CoachProfile.objects.count() == 3


def test_timeline_details_show_money_local_times_and_the_reason_last(client):
    session = make_session("CONFIRMED")
    refund = services.session_cancel(
        session=session, actor=session.coach, refund="partial", amount_cents=1250, reason="Ill"
    ).refunds.get()
    client.force_login(SuperuserFactory(timezone="America/New_York"))

    html = _session_page(client, session)

    start = session.slot.start.astimezone(ZoneInfo("America/New_York"))
    assert f"start: {start:%Y-%m-%d %H:%M:%S %Z}" in html
    assert re.search(rf"Partial refund \$12\.50 · [^<]*refund id: {refund.pk} · reason: Ill<", html)


# --- the agreed time stands while a new one is being agreed ------------------------------------


@pytest.mark.parametrize(
    ("answer", "label"),
    [("decline", "Current time kept"), ("withdraw", "Proposal withdrawn")],
)
def test_timeline_shows_a_kept_time_with_the_proposed_start_in_local_time(client, answer, label):
    session = make_session("RESCHEDULING")
    proposal = session.proposals.get()
    if answer == "decline":
        services.session_decline_reschedule(session=session, actor=session.student)
    else:
        services.session_withdraw_proposal(session=session, actor=session.coach)
    client.force_login(SuperuserFactory(timezone="America/New_York"))

    html = _session_page(client, session)

    zone = ZoneInfo("America/New_York")
    assert label in html
    assert f"proposed start: {proposal.slot.start.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}" in html
    assert f"start: {session.slot.start.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}" in html


# --- large lists (issue 14) --------------------------------------------------------------------


def test_session_list_counts_only_up_to_its_bound_newest_first(admin_client, monkeypatch):
    from core import admin as core_admin

    monkeypatch.setattr(core_admin, "ADMIN_COUNT_MAX", 2)
    package = make_package(offering=OfferingFactory(session_count=4))
    url = reverse("admin:sessions_app_session_changelist")

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url)

    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert len(counts) == 1 and "LIMIT 3" in counts[0]  # one bounded count, no full count
    assert "More than 2 sessions" in response.content.decode()
    shown = [s.pk for s in response.context_data["cl"].result_list]
    assert shown == sorted(package.sessions.values_list("pk", flat=True), reverse=True)
