"""An offering's optional credit validity (issue 15): "Credits expire N days after purchase", set
on the offering form, checked by the services, shown to buyers."""

import pytest
from django.urls import reverse

from catalog import services
from catalog.models import Offering
from catalog.services import OfferingInvalid
from tests.catalog.test_views import CREATE, buy_url, offering_data
from tests.factories import CoachFactory, OfferingFactory

pytestmark = pytest.mark.django_db


def test_the_coach_sets_how_long_credits_last_on_the_offering_form(coach_client):
    assert (
        "Credits expire this many days after purchase" in coach_client.get(CREATE).content.decode()
    )

    coach_client.post(CREATE, offering_data(credit_validity_days="90"))

    assert Offering.objects.get().credit_validity_days == 90


def test_an_offering_without_validity_has_credits_that_never_expire(coach_client):
    coach_client.post(CREATE, offering_data(credit_validity_days=""))

    assert Offering.objects.get().credit_validity_days is None


@pytest.mark.parametrize(
    ("days", "error"),
    [
        ("0", "Enter at least 1 day, or leave it empty for no expiry."),
        ("1096", "Enter at most 1095 days (three years)."),
        ("ninety", "Enter a whole number of days, like 90, or leave it empty."),
    ],
)
def test_a_bad_validity_is_refused_and_creates_nothing(coach_client, days, error):
    response = coach_client.post(CREATE, offering_data(credit_validity_days=days))

    assert response.status_code == 400
    assert error in response.content.decode()
    assert Offering.objects.count() == 0


def test_editing_an_offering_changes_or_clears_its_validity(coach_client, coach):
    offering = OfferingFactory(coach=coach, credit_validity_days=30)
    edit = reverse("catalog:offering_edit", args=[offering.pk])
    assert 'value="30"' in coach_client.get(edit).content.decode()

    coach_client.post(edit, offering_data(credit_validity_days="60"))
    offering.refresh_from_db()
    assert offering.credit_validity_days == 60

    coach_client.post(edit, offering_data(credit_validity_days=""))
    offering.refresh_from_db()
    assert offering.credit_validity_days is None


def test_offering_update_without_a_validity_keeps_it(coach):
    offering = OfferingFactory(coach=coach, credit_validity_days=45)

    services.offering_update(
        offering=offering,
        coach=coach,
        title="Renamed",
        session_count=3,
        duration_minutes=60,
        price_cents=30000,
        currency="USD",
    )

    offering.refresh_from_db()
    assert (offering.title, offering.credit_validity_days) == ("Renamed", 45)


@pytest.mark.parametrize("days", [0, 1096, True, "90"])
def test_offering_create_refuses_a_validity_out_of_bounds(days):
    with pytest.raises(OfferingInvalid) as refused:
        services.offering_create(
            coach=CoachFactory(),
            title="Chess",
            session_count=3,
            duration_minutes=60,
            price_cents=1000,
            credit_validity_days=days,
        )

    assert refused.value.message == (
        "Credits expire 1 to 1095 days after purchase, or never (leave it empty)."
    )
    assert Offering.objects.count() == 0


def test_the_coach_page_and_the_checkout_say_when_credits_expire(student_client):
    expiring = OfferingFactory(title="Chess basics", credit_validity_days=90)
    lasting = OfferingFactory(coach=expiring.coach, title="Endgames")

    coach_page = student_client.get(
        reverse("catalog:coach_detail", args=[expiring.coach_id])
    ).content.decode()
    checkout = student_client.get(buy_url(expiring)).content.decode()

    assert coach_page.count("Credits expire 90 days after purchase") == 1
    assert (
        "Credits expire 90 days after purchase: sessions not booked by then can no longer be "
        "booked (your coach can extend them)." in checkout
    )
    assert "Credits expire" not in student_client.get(buy_url(lasting)).content.decode()


def test_the_offerings_list_shows_the_validity(coach_client, coach):
    OfferingFactory(coach=coach, credit_validity_days=1)

    page = coach_client.get(reverse("catalog:offerings")).content.decode()

    assert "Credits expire 1 day after purchase" in page


def test_expired_credits_do_not_count_as_sessions_still_to_use_at_checkout(client):
    from datetime import UTC, datetime, timedelta

    import time_machine

    from sessions_app.selectors import student_unused_credits
    from tests.factories import StudentFactory, make_package

    bought = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    student = StudentFactory()
    offering = OfferingFactory(credit_validity_days=10)
    with time_machine.travel(bought, tick=False):
        make_package(student=student, offering=offering)
        assert student_unused_credits(student=student, offering=offering).sessions == 3
    with time_machine.travel(bought + timedelta(days=10), tick=False):
        client.force_login(student)
        page = client.get(buy_url(offering)).content.decode()
        assert student_unused_credits(student=student, offering=offering).sessions == 0
    assert "unused session" not in page
