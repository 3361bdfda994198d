"""The catalog: coaches directory, coach page, buying once, and a coach's offerings."""

import re
from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.db import OperationalError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calendars.selectors import bookable_starts
from catalog import services
from catalog.models import Offering
from catalog.selectors import FREE_TIMES_WEEKS
from catalog.services import OfferingInvalid
from refunds.models import Payment
from sessions_app import services as sessions_services
from sessions_app.lifecycle import PermissionDenied
from sessions_app.models import Package, Session
from tests.conftest import messages_of
from tests.factories import (
    AvailabilityWindowFactory,
    CoachFactory,
    OfferingFactory,
    StudentFactory,
    make_package,
    make_rule,
)

pytestmark = pytest.mark.django_db

COACHES = reverse("catalog:coaches")
OFFERINGS = reverse("catalog:offerings")
CREATE = reverse("catalog:offering_create")


def buy_url(offering) -> str:
    return reverse("catalog:offering_buy", args=[offering.pk])


def offering_data(**overrides) -> dict:
    data = {
        "title": "Five strong sessions",
        "description": "Weekly work on your goals.",
        "session_count": "5",
        "duration_minutes": "45",
        "price": "150.00",
        "currency": "EUR",
    }
    data.update(overrides)
    return data


# --- the directory -------------------------------------------------------------------------------


def test_anonymous_visitor_is_sent_to_log_in(client):
    response = client.get(COACHES)

    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_directory_lists_only_coaches_with_an_offering_on_sale(student_client):
    selling = OfferingFactory(title="Starter", coach=CoachFactory(display_name="Ada")).coach
    OfferingFactory(coach=CoachFactory(display_name="Off sale"), is_active=False)
    CoachFactory(display_name="Nothing yet")

    response = student_client.get(COACHES)

    assert response.status_code == 200
    assert list(response.context["coaches"]) == [selling]
    page = response.content.decode()
    assert "Ada" in page and "Starter: $300.00" in page
    assert "Off sale" not in page and "Nothing yet" not in page


@pytest.mark.parametrize("rows", [5, 200])
def test_directory_query_count_stays_flat(student_client, rows, django_assert_max_num_queries):
    for _ in range(rows):
        coach = CoachFactory()
        OfferingFactory(coach=coach)
        OfferingFactory(coach=coach, price_cents=9900)

    # session, user, coach profile (navigation), count, coaches page, their offerings
    # + 1: the navigation's count of new times waiting on the student.
    with django_assert_max_num_queries(7):
        response = student_client.get(COACHES)

    assert len(response.context["coaches"].object_list) == min(rows, 20)


# --- a coach's page ---------------------------------------------------------------------------


def test_coach_page_shows_profile_and_active_offerings_with_buy(student_client, coach):
    coach.coach_profile.headline = "Runs with you"
    coach.coach_profile.bio = "Ten years of marathon coaching."
    coach.coach_profile.save()
    on_sale = OfferingFactory(coach=coach, title="Marathon block")
    OfferingFactory(coach=coach, title="Retired package", is_active=False)

    response = student_client.get(reverse("catalog:coach_detail", args=[coach.pk]))

    page = response.content.decode()
    assert "Runs with you" in page and "Ten years of marathon coaching." in page
    assert "Marathon block" in page and "Retired package" not in page
    assert buy_url(on_sale) in page


def test_coach_sees_their_own_page_without_buy(coach_client, coach):
    offering = OfferingFactory(coach=coach)

    response = coach_client.get(reverse("catalog:coach_detail", args=[coach.pk]))

    assert buy_url(offering) not in response.content.decode()


@pytest.mark.parametrize("who", ["student", "unknown"])
def test_page_of_someone_who_is_not_a_coach_is_a_404(student_client, who):
    pk = StudentFactory().pk if who == "student" else 999_999

    assert student_client.get(reverse("catalog:coach_detail", args=[pk])).status_code == 404


# --- a coach's next free times, before buying ---------------------------------------------------

# Tuesday 1 December 2026, 08:00 UTC; the coach is free on Thursdays 11:00-14:00 London time
# (GMT in December), on a 30-minute grid.
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
THURSDAY = 3
THIRD = datetime(2026, 12, 3, tzinfo=UTC)  # Thursday 3 December, midnight UTC = GMT


def at(day: datetime, hour: int, minute: int = 0) -> datetime:
    return day.replace(hour=hour, minute=minute)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def thursday_coach(frozen):
    coach = CoachFactory(display_name="Ada", timezone="Europe/London")
    make_rule(coach=coach, weekday=THURSDAY, start_time=time(11), end_time=time(14))
    return coach


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def viewer(tz: str = "Europe/London"):
    return StudentFactory(timezone=tz)


def shown_times(page: str, offering) -> list[str]:
    """The free times the page lists in `offering`'s card, as a person reads them."""
    card = page.split(f'id="offering-{offering.pk}"', 1)[1].split('id="offering-', 1)[0]
    return re.findall(r"<time datetime=\"[^\"]+\">([^<]+)</time>", card)


def coach_page(client, coach):
    response = client.get(reverse("catalog:coach_detail", args=[coach.pk]))
    assert response.status_code == 200
    return response.content.decode()


def book(coach, offering, start, student=None):
    """A student buys `offering` and asks for `start` (a HELD reservation of its length)."""
    package = make_package(offering=offering, student=student)
    session = package.sessions.order_by("number").first()
    return sessions_services.session_book(session=session, start=start, actor=package.student)


def test_coach_page_shows_each_offerings_next_free_times_in_the_viewers_timezone(thursday_coach):
    short = OfferingFactory(coach=thursday_coach, title="Quick look", duration_minutes=30)
    long = OfferingFactory(coach=thursday_coach, title="Deep dive", duration_minutes=90)
    client = logged_in(viewer())

    page = coach_page(client, thursday_coach)

    assert shown_times(page, short) == [
        "Thu 3 Dec, 11:00\u201311:30 GMT",
        "Thu 3 Dec, 11:30\u201312:00 GMT",
        "Thu 3 Dec, 12:00\u201312:30 GMT",
        "Thu 3 Dec, 12:30\u201313:00 GMT",
        "Thu 3 Dec, 13:00\u201313:30 GMT",
        "Thu 3 Dec, 13:30\u201314:00 GMT",
    ]
    assert shown_times(page, long) == [
        "Thu 3 Dec, 11:00\u201312:30 GMT",
        "Thu 3 Dec, 11:30\u201313:00 GMT",
        "Thu 3 Dec, 12:00\u201313:30 GMT",
        "Thu 3 Dec, 12:30\u201314:00 GMT",
        "Thu 10 Dec, 11:00\u201312:30 GMT",
        "Thu 10 Dec, 11:30\u201313:00 GMT",
    ]
    assert "Free times are in your timezone (Europe/London)" in page


def next_starts(coach, minutes: int, *, limit: int, student=None):
    """The first `limit` of the coach's bookable starts over the weeks the coach page looks
    at, straight from `bookable_starts` (the page walks one shared schedule instead)."""
    return bookable_starts(
        coach=coach,
        duration_minutes=minutes,
        start=NOW,
        end=NOW + timedelta(weeks=FREE_TIMES_WEEKS),
        student=student,
        now=NOW,
    )[:limit]


@pytest.mark.parametrize("minutes", [30, 90])
def test_free_times_are_the_next_bookable_starts_of_the_offerings_length(thursday_coach, minutes):
    offering = OfferingFactory(coach=thursday_coach, duration_minutes=minutes)
    OfferingFactory(coach=thursday_coach, duration_minutes=120 - minutes)
    student = viewer()

    response = logged_in(student).get(reverse("catalog:coach_detail", args=[thursday_coach.pk]))

    (shown,) = [o for o in response.context["coach"].active_offerings if o.pk == offering.pk]
    assert [(time.start, time.end - time.start) for time in shown.free_times] == [
        (start, timedelta(minutes=minutes))
        for start in next_starts(thursday_coach, minutes, limit=6, student=student)
    ]


def test_a_time_someone_else_asked_for_is_not_shown(thursday_coach):
    short = OfferingFactory(coach=thursday_coach, duration_minutes=30)
    long = OfferingFactory(coach=thursday_coach, duration_minutes=90)
    book(thursday_coach, short, at(THIRD, 11))
    client = logged_in(viewer())

    page = coach_page(client, thursday_coach)

    assert shown_times(page, short) == [
        "Thu 3 Dec, 11:30\u201312:00 GMT",
        "Thu 3 Dec, 12:00\u201312:30 GMT",
        "Thu 3 Dec, 12:30\u201313:00 GMT",
        "Thu 3 Dec, 13:00\u201313:30 GMT",
        "Thu 3 Dec, 13:30\u201314:00 GMT",
        "Thu 10 Dec, 11:00\u201311:30 GMT",
    ]
    assert shown_times(page, long) == [
        "Thu 3 Dec, 11:30\u201313:00 GMT",
        "Thu 3 Dec, 12:00\u201313:30 GMT",
        "Thu 3 Dec, 12:30\u201314:00 GMT",
        "Thu 10 Dec, 11:00\u201312:30 GMT",
        "Thu 10 Dec, 11:30\u201313:00 GMT",
        "Thu 10 Dec, 12:00\u201313:30 GMT",
    ]


def test_the_viewers_own_session_with_another_coach_hides_the_times_it_overlaps(thursday_coach):
    short = OfferingFactory(coach=thursday_coach, duration_minutes=30)
    student = viewer()
    client = logged_in(student)
    elsewhere = CoachFactory()
    AvailabilityWindowFactory(coach=elsewhere, start=at(THIRD, 12), end=at(THIRD, 13))
    book(elsewhere, OfferingFactory(coach=elsewhere, duration_minutes=60), at(THIRD, 12), student)

    page = coach_page(client, thursday_coach)

    assert shown_times(page, short) == [
        "Thu 3 Dec, 11:00\u201311:30 GMT",
        "Thu 3 Dec, 11:30\u201312:00 GMT",
        "Thu 3 Dec, 13:00\u201313:30 GMT",
        "Thu 3 Dec, 13:30\u201314:00 GMT",
        "Thu 10 Dec, 11:00\u201311:30 GMT",
        "Thu 10 Dec, 11:30\u201312:00 GMT",
    ]


def test_a_viewer_in_new_york_sees_the_times_in_new_york_time(thursday_coach):
    long = OfferingFactory(coach=thursday_coach, duration_minutes=90)
    client = logged_in(viewer("America/New_York"))

    page = coach_page(client, thursday_coach)

    assert shown_times(page, long)[0] == "Thu 3 Dec, 06:00\u201307:30 EST"


def test_a_coach_with_no_free_time_says_so(frozen):
    coach = CoachFactory(timezone="Europe/London")
    offering = OfferingFactory(coach=coach)
    client = logged_in(viewer())

    page = coach_page(client, coach)

    assert "No free times in the next 12 weeks." in page
    assert shown_times(page, offering) == []


def test_a_coach_sees_the_free_times_on_their_own_page(thursday_coach):
    offering = OfferingFactory(coach=thursday_coach, duration_minutes=90)
    page = coach_page(logged_in(thursday_coach), thursday_coach)

    assert shown_times(page, offering)[0] == "Thu 3 Dec, 11:00\u201312:30 GMT"
    assert buy_url(offering) not in page


# the user (its auth session comes from the cache), the coach with their profile, their
# offerings; the coach's schedule read once for every length (weekly rules, one-off windows,
# time off, reservations, busy times, the viewer's own reservations); the viewer's coach
# profile and the count of new times waiting on the student (navigation).
COACH_PAGE_QUERIES = 11


@pytest.mark.parametrize(("lengths", "reservations"), [((30,), 1), ((30, 60, 90, 90, 45), 8)])
def test_coach_page_query_count_grows_with_neither_offerings_nor_reservations(
    thursday_coach, lengths, reservations, django_assert_num_queries
):
    offerings = [OfferingFactory(coach=thursday_coach, duration_minutes=m) for m in lengths]
    taken = next_starts(thursday_coach, 30, limit=reservations)
    for start in taken:
        book(thursday_coach, offerings[0], start)
    client = logged_in(viewer())
    url = reverse("catalog:coach_detail", args=[thursday_coach.pk])

    with django_assert_num_queries(COACH_PAGE_QUERIES):
        response = client.get(url)

    shown = response.context["coach"].active_offerings
    assert [offering.pk for offering in shown] == [offering.pk for offering in offerings]
    assert [len(offering.free_times) for offering in shown] == [6] * len(lengths)
    assert not {time.start for offering in shown for time in offering.free_times} & set(taken)


# --- buying ------------------------------------------------------------------------------------


def confirm(client, offering) -> str:
    """Open the confirmation page and return its one-time token."""
    response = client.get(buy_url(offering))
    assert response.status_code == 200
    return response.context["form"]["token"].value()


def test_confirmation_page_says_what_is_bought_and_how_it_is_paid(student_client):
    offering = OfferingFactory(title="Three talks", session_count=3, duration_minutes=50)

    page = student_client.get(buy_url(offering)).content.decode()

    assert "Three talks" in page
    assert "3 sessions of 50 minutes" in page
    assert "$300.00" in page
    assert f"You'll settle the payment with {offering.coach.name} directly." in page
    assert "gateway" not in page
    assert Package.objects.count() == 0


def test_buying_creates_the_package_and_its_credits_and_goes_to_my_sessions(client):
    student = StudentFactory()
    client.force_login(student)
    offering = OfferingFactory(
        session_count=3, price_cents=30001, coach=CoachFactory(display_name="Ada")
    )

    response = client.post(buy_url(offering), {"token": confirm(client, offering)}, follow=True)

    package = Package.objects.get()
    assert (package.student, package.offering, package.price_cents) == (student, offering, 30001)
    assert list(package.sessions.values_list("status", "price_share_cents")) == [
        ("UNSCHEDULED", 10001),
        ("UNSCHEDULED", 10000),
        ("UNSCHEDULED", 10000),
    ]
    assert Payment.objects.get().amount_cents == 30001
    assert response.redirect_chain == [(reverse("sessions:my_sessions"), 302)]
    assert messages_of(response) == [
        f"You bought “{offering.title}”: 3 sessions ready to book. "
        "You'll settle the payment with Ada directly."
    ]


def test_double_submission_buys_once(student_client):
    offering = OfferingFactory(title="Intro")
    token = confirm(student_client, offering)

    student_client.post(buy_url(offering), {"token": token})
    again = student_client.post(buy_url(offering), {"token": token}, follow=True)

    assert Package.objects.count() == 1
    assert Session.objects.count() == 3
    assert again.redirect_chain == [(reverse("sessions:my_sessions"), 302)]
    assert messages_of(again)[-1] == (
        "You already bought “Intro” from this page, so it was bought only once. "
        "Its sessions are below."
    )


def test_double_submission_buys_once_even_when_the_cache_is_not_shared(student_client):
    """Another web process (or a restarted one) has its own, empty local-memory cache."""
    offering = OfferingFactory()
    token = confirm(student_client, offering)

    student_client.post(buy_url(offering), {"token": token})
    cache.clear()
    student_client.post(buy_url(offering), {"token": token})

    assert Package.objects.count() == 1
    assert Package.objects.get().purchase_token is not None


def test_a_purchase_that_failed_does_not_spend_its_confirmation(student_client, monkeypatch):
    from refunds import services as refund_services

    offering = OfferingFactory()
    token = confirm(student_client, offering)
    real_payment_record = refund_services.payment_record

    def database_hiccup(**kwargs):
        # Mid-purchase: the package is already written.
        assert Package.objects.filter(purchase_token__isnull=False).count() == 1
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(refund_services, "payment_record", database_hiccup)
    failed = student_client.post(buy_url(offering), {"token": token})
    # The branded "try again" page of a database outage (core.middleware).
    assert (failed.status_code, failed["Retry-After"]) == (503, "30")
    assert (Package.objects.count(), Session.objects.count(), Payment.objects.count()) == (0, 0, 0)
    monkeypatch.setattr(refund_services, "payment_record", real_payment_record)

    retried = student_client.post(buy_url(offering), {"token": token}, follow=True)

    assert (Package.objects.count(), Session.objects.count(), Payment.objects.count()) == (1, 3, 1)
    assert messages_of(retried)[-1].startswith(f"You bought “{offering.title}”")


def test_purchase_service_with_the_same_token_returns_the_same_package():
    offering, student = OfferingFactory(), StudentFactory()

    first = sessions_services.package_purchase(
        student=student, offering=offering, purchase_token="n-1"
    )
    second = sessions_services.package_purchase(
        student=student, offering=offering, purchase_token="n-1"
    )
    other = sessions_services.package_purchase(
        student=student, offering=offering, purchase_token="n-2"
    )

    assert (first.already_purchased, second.already_purchased, other.already_purchased) == (
        False,
        True,
        False,
    )
    assert second.pk == first.pk != other.pk
    assert Package.objects.count() == 2
    assert Payment.objects.count() == 2
    with pytest.raises(PermissionDenied, match="another purchase"):
        sessions_services.package_purchase(
            student=StudentFactory(), offering=offering, purchase_token="n-1"
        )


def test_two_confirmation_pages_buy_two_packages(student_client):
    offering = OfferingFactory()

    # The second package needs "Yes, buy another package" (credits of the first are unused).
    for _ in range(2):
        student_client.post(
            buy_url(offering), {"token": confirm(student_client, offering), "again": "on"}
        )

    assert Package.objects.count() == 2


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "This field is required."),
        ("forged", "This confirmation could not be checked."),
        ("other-offering", "This confirmation is for another purchase."),
        ("other-student", "This confirmation is for another purchase."),
    ],
)
def test_bad_token_buys_nothing(client, token, message):
    student = StudentFactory()
    offering = OfferingFactory()
    client.force_login(student)
    if token in ("other-offering", "other-student"):
        other_client = Client()
        other_client.force_login(StudentFactory() if token == "other-student" else student)
        token = confirm(other_client, OfferingFactory() if token == "other-offering" else offering)

    response = client.post(buy_url(offering), {"token": token}, follow=True)

    assert Package.objects.count() == 0
    assert response.redirect_chain == [(buy_url(offering), 302)]
    assert message in messages_of(response)[0]


def test_token_older_than_an_hour_buys_nothing(student_client):
    offering = OfferingFactory()
    token = confirm(student_client, offering)

    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        response = student_client.post(buy_url(offering), {"token": token}, follow=True)

    assert Package.objects.count() == 0
    assert messages_of(response)[0].startswith("This confirmation page has expired.")


def test_offering_off_sale_cannot_be_bought(student_client):
    offering = OfferingFactory()
    token = confirm(student_client, offering)
    Offering.objects.filter(pk=offering.pk).update(is_active=False)

    assert student_client.get(buy_url(offering)).status_code == 404
    assert student_client.post(buy_url(offering), {"token": token}).status_code == 404
    assert Package.objects.count() == 0


def test_coach_cannot_buy_their_own_offering(coach_client, coach):
    offering = OfferingFactory(coach=coach)

    page = coach_client.get(buy_url(offering))
    coach_client.post(buy_url(offering), {"token": page.context["form"]["token"].value()})

    assert page.status_code == 403
    assert "This is your own offering; you cannot buy it." in page.content.decode()
    assert Package.objects.count() == 0


def test_buying_without_csrf_token_is_refused():
    client = Client(enforce_csrf_checks=True)
    client.force_login(StudentFactory())
    offering = OfferingFactory()

    response = client.post(buy_url(offering), {"token": confirm(client, offering)})

    assert response.status_code == 403
    assert Package.objects.count() == 0


# --- a coach's offerings -------------------------------------------------------------------------


def test_student_is_sent_to_the_profile_to_become_a_coach(student_client):
    response = student_client.get(OFFERINGS, follow=True)

    assert response.redirect_chain == [(reverse("accounts:profile"), 302)]
    assert messages_of(response) == [
        "Offerings are for coaches. Become a coach on your profile page first."
    ]


def test_student_cannot_create_an_offering(student_client):
    student_client.post(CREATE, offering_data())

    assert Offering.objects.count() == 0


@pytest.mark.parametrize("rows", [5, 200])
def test_offerings_query_count_stays_flat(coach_client, coach, rows, django_assert_max_num_queries):
    OfferingFactory.create_batch(rows, coach=coach)
    make_package(offering=Offering.objects.filter(coach=coach).first())

    # session, user, coach profile, Tasks badge, count, offerings with packages sold
    with django_assert_max_num_queries(6):
        response = coach_client.get(OFFERINGS)

    assert len(response.context["offerings"].object_list) == min(rows, 50)


def test_offerings_page_lists_own_offerings_only(coach_client, coach):
    mine = OfferingFactory(coach=coach, title="Mine")
    OfferingFactory(title="Someone else's")

    response = coach_client.get(OFFERINGS)

    assert list(response.context["offerings"]) == [mine]
    assert "Someone else" not in response.content.decode()


@pytest.mark.parametrize(
    ("price", "cents"),
    [("150.00", 15000), ("150", 15000), ("99.5", 9950), ("0", 0), ("12,50", 1250)],
)
def test_creating_an_offering_stores_the_price_in_cents(coach_client, coach, price, cents):
    response = coach_client.post(CREATE, offering_data(price=price), follow=True)

    offering = Offering.objects.get()
    assert (offering.coach, offering.title, offering.session_count) == (
        coach,
        "Five strong sessions",
        5,
    )
    assert (offering.duration_minutes, offering.price_cents, offering.currency) == (
        45,
        cents,
        "EUR",
    )
    assert offering.is_active is True
    assert messages_of(response) == ["“Five strong sessions” is on sale."]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"title": "   "}, "This field is required."),
        ({"price": "abc"}, "Enter the price as a number, like 150.00."),
        ({"price": "1e5"}, "Enter the price as a number, like 150.00."),
        ({"price": "-1"}, "The price cannot be negative."),
        ({"price": "1.234"}, "Use at most two decimal places"),
        ({"price": "100000.01"}, "The price can be at most 100,000.00."),
        ({"session_count": "0"}, "greater than or equal to 1"),
        ({"session_count": "101"}, "less than or equal to 100"),
        ({"duration_minutes": "601"}, "less than or equal to 600"),
        ({"duration_minutes": "ten"}, "Enter a whole number."),
        ({"currency": "XYZ"}, "Select a valid choice."),
    ],
)
def test_bad_offering_is_refused_and_creates_nothing(coach_client, overrides, error):
    response = coach_client.post(CREATE, offering_data(**overrides))

    assert response.status_code == 400
    assert error in response.content.decode()
    assert Offering.objects.count() == 0


def test_editing_an_offering_never_changes_packages_already_bought(coach_client, coach):
    offering = OfferingFactory(coach=coach, title="Old", session_count=3, price_cents=30000)
    package = make_package(offering=offering)

    response = coach_client.post(
        reverse("catalog:offering_edit", args=[offering.pk]),
        offering_data(title="New", session_count="4", price="400.00", currency="USD"),
        follow=True,
    )

    offering.refresh_from_db()
    package.refresh_from_db()
    assert (offering.title, offering.session_count, offering.price_cents) == ("New", 4, 40000)
    assert (package.title, package.session_count, package.price_cents) == ("Old", 3, 30000)
    assert package.sessions.count() == 3
    assert messages_of(response) == ["“New” was updated."]


def test_edit_form_shows_the_price_as_money(coach_client, coach):
    offering = OfferingFactory(coach=coach, price_cents=12345)

    response = coach_client.get(reverse("catalog:offering_edit", args=[offering.pk]))

    assert 'value="123.45"' in response.content.decode()


def test_bad_edit_changes_nothing(coach_client, coach):
    offering = OfferingFactory(coach=coach, title="Keep", price_cents=30000)

    response = coach_client.post(
        reverse("catalog:offering_edit", args=[offering.pk]), offering_data(price="-5")
    )

    offering.refresh_from_db()
    assert response.status_code == 400
    assert (offering.title, offering.price_cents) == ("Keep", 30000)


def test_editing_another_coachs_offering_is_a_404(coach_client):
    theirs = OfferingFactory(title="Theirs")

    get = coach_client.get(reverse("catalog:offering_edit", args=[theirs.pk]))
    post = coach_client.post(
        reverse("catalog:offering_edit", args=[theirs.pk]), offering_data(title="Mine now")
    )

    theirs.refresh_from_db()
    assert (get.status_code, post.status_code) == (404, 404)
    assert theirs.title == "Theirs"


def test_deactivating_takes_an_offering_off_sale_and_reactivating_puts_it_back(coach_client, coach):
    offering = OfferingFactory(coach=coach, title="Intro")
    url = reverse("catalog:offering_set_active", args=[offering.pk])

    off = coach_client.post(url, {"active": "0"}, follow=True)
    offering.refresh_from_db()
    assert offering.is_active is False
    assert messages_of(off) == ["“Intro” is off sale. Packages already bought are not affected."]
    student = Client()
    student.force_login(StudentFactory())
    assert student.get(buy_url(offering)).status_code == 404
    assert list(student.get(COACHES).context["coaches"]) == []

    on = coach_client.post(url, {"active": "1"}, follow=True)
    offering.refresh_from_db()
    assert offering.is_active is True
    assert messages_of(on) == ["“Intro” is on sale again."]


def test_set_active_with_a_bad_value_changes_nothing(coach_client, coach):
    offering = OfferingFactory(coach=coach)

    response = coach_client.post(
        reverse("catalog:offering_set_active", args=[offering.pk]), {"active": "maybe"}, follow=True
    )

    offering.refresh_from_db()
    assert offering.is_active is True
    assert messages_of(response) == ["Choose whether the offering is on sale."]


def test_deactivating_another_coachs_offering_is_a_404(coach_client):
    theirs = OfferingFactory()

    response = coach_client.post(
        reverse("catalog:offering_set_active", args=[theirs.pk]), {"active": "0"}
    )

    theirs.refresh_from_db()
    assert response.status_code == 404
    assert theirs.is_active is True


# --- the offering services ------------------------------------------------------------------------


def terms(**overrides) -> dict:
    fields = {"title": "Pack", "session_count": 2, "duration_minutes": 30, "price_cents": 5000}
    fields.update(overrides)
    return fields


def test_offering_create_by_a_non_coach_is_refused():
    with pytest.raises(PermissionDenied):
        services.offering_create(coach=StudentFactory(), **terms())

    assert Offering.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"title": " "}, "Give the offering a title."),
        ({"session_count": 0}, "A package has 1 to 100 sessions."),
        ({"session_count": True}, "A package has 1 to 100 sessions."),
        ({"duration_minutes": 4}, "A session lasts 5 to 600 minutes."),
        ({"price_cents": -1}, "The price must be between 0.00 and 100,000.00."),
        ({"price_cents": 1.5}, "The price must be between 0.00 and 100,000.00."),
        ({"currency": "JPY"}, "Choose one of these currencies"),
    ],
)
def test_offering_services_refuse_bad_terms(overrides, message):
    coach = CoachFactory()
    offering = OfferingFactory(coach=coach, title="Same")

    with pytest.raises(OfferingInvalid, match=message):
        services.offering_create(coach=coach, **terms(**overrides))
    with pytest.raises(OfferingInvalid, match=message):
        services.offering_update(
            offering=offering, coach=coach, **{"currency": "USD", **terms(**overrides)}
        )

    offering.refresh_from_db()
    assert Offering.objects.count() == 1
    assert offering.title == "Same"


def test_offering_update_and_set_active_refuse_another_coach():
    offering = OfferingFactory()
    other = CoachFactory()

    with pytest.raises(PermissionDenied):
        services.offering_update(offering=offering, coach=other, currency="USD", **terms())
    with pytest.raises(PermissionDenied):
        services.offering_set_active(offering=offering, coach=other, is_active=False)

    offering.refresh_from_db()
    assert offering.is_active is True
