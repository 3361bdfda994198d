"""Buying (issue 13, item 4): per-session price and savings, the second-package warning and
its required confirmation, Back then Buy, the cancellation policy, and no internal words."""

import re
from types import SimpleNamespace

import pytest
from django.urls import reverse

from catalog.selectors import bundle_savings, offerings_price_facts, per_session_cents
from refunds.models import Payment
from sessions_app.models import Package
from tests.conftest import messages_of
from tests.factories import CoachFactory, OfferingFactory, StudentFactory, make_package

pytestmark = pytest.mark.django_db

INTERNAL_WORDS = ("gateway", "price share", "price_share", "slot", "token", "UNSCHEDULED")


def buy_url(offering) -> str:
    return reverse("catalog:offering_buy", args=[offering.pk])


def coach_url(coach) -> str:
    return reverse("catalog:coach_detail", args=[coach.pk])


def token_of(client, offering) -> str:
    response = client.get(buy_url(offering))
    assert response.status_code == 200
    return response.context["form"]["token"].value()


def visible_text(html: str) -> str:
    """What a person reads: no tags, scripts, styles or attributes (hidden inputs hold the
    one-time token under its technical name, which nobody reads)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def offer(**fields):
    defaults = {"session_count": 1, "duration_minutes": 60, "price_cents": 3000, "currency": "USD"}
    return SimpleNamespace(**{**defaults, **fields})


# --- the arithmetic -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "count", "each"),
    [(15000, 5, 3000), (10000, 3, 3333), (10001, 2, 5001), (100, 3, 33), (0, 4, 0), (5, 2, 3)],
)
def test_per_session_price_is_whole_cents_rounded_half_up(price, count, each):
    assert per_session_cents(price_cents=price, session_count=count) == each


def test_savings_against_the_single_session_of_the_same_length():
    single = offer(price_cents=3000)
    bundle = offer(session_count=5, price_cents=13000)

    savings = bundle_savings(offering=bundle, single=single)

    assert savings.cents == 2000 and savings.percent == 13  # 20 / 150 = 13.3 %


@pytest.mark.parametrize(
    ("bundle", "single"),
    [
        (offer(session_count=5, price_cents=13000), None),  # no single offering
        (offer(session_count=5, price_cents=15000), offer(price_cents=3000)),  # no saving
        (offer(session_count=5, price_cents=16000), offer(price_cents=3000)),  # dearer
        (offer(session_count=5, price_cents=13000), offer(price_cents=3000, currency="EUR")),
        (offer(price_cents=2000), offer(price_cents=3000)),  # a single is not a bundle
    ],
)
def test_no_savings_without_a_comparable_single_or_a_saving(bundle, single):
    assert bundle_savings(offering=bundle, single=single) is None


def test_savings_percent_rounds_half_up_and_tiny_savings_read_below_one_percent():
    assert (
        bundle_savings(
            offering=offer(session_count=8, price_cents=7000), single=offer(price_cents=1000)
        ).percent
        == 13
    )  # 12.5 % rounds up
    tiny = bundle_savings(
        offering=offer(session_count=10, price_cents=99999), single=offer(price_cents=10000)
    )
    assert tiny.cents == 1 and tiny.percent == 0


def test_price_facts_compare_with_the_cheapest_single_of_the_same_length():
    offerings = [
        offer(price_cents=3500),
        offer(price_cents=3000),
        offer(duration_minutes=30, price_cents=1000),
        offer(session_count=4, price_cents=10000),
        offer(session_count=4, duration_minutes=90, price_cents=10000),
    ]

    offerings_price_facts(offerings)

    assert offerings[3].per_session_cents == 2500
    assert offerings[3].savings.cents == 2000 and offerings[3].savings.percent == 17
    assert offerings[4].savings is None  # no 90-minute single


def test_coach_page_shows_per_session_price_and_savings(student_client):
    coach = CoachFactory()
    OfferingFactory(coach=coach, title="One session", session_count=1, price_cents=3000)
    five = OfferingFactory(coach=coach, title="Five sessions", session_count=5, price_cents=13000)
    OfferingFactory(coach=coach, title="Long ones", session_count=3, duration_minutes=90)

    page = student_client.get(coach_url(coach)).content.decode()
    card = page[page.index(f'id="offering-{five.pk}"') :]
    card = card[: card.index("</li>\n")] if "</li>\n" in card else card

    assert "$130.00" in card and "$26.00 per session" in card
    assert "Save $20.00 (13 %)" in page
    assert page.count("Save ") == 1  # neither the single nor the 90-minute package


def test_buy_page_shows_per_session_price_and_savings(student_client):
    coach = CoachFactory()
    OfferingFactory(coach=coach, session_count=1, price_cents=3000)
    five = OfferingFactory(coach=coach, session_count=5, price_cents=13000)

    page = student_client.get(buy_url(five)).content.decode()

    assert "$26.00 per session" in page and "Save $20.00 (13 %)" in page


# --- a second package -------------------------------------------------------------------------


def test_second_package_with_unused_credits_warns_and_needs_confirmation(client):
    student = StudentFactory()
    coach = CoachFactory(display_name="Alex")
    offering = OfferingFactory(coach=coach, title="Five sessions", session_count=5)
    make_package(student=student, offering=offering)
    client.force_login(student)

    page = client.get(buy_url(offering)).content.decode()
    assert "You still have 5 unused sessions of Five sessions with Alex." in page
    assert "Book them in" in page and "buy another package anyway" in page
    assert "Yes, buy another package" in page

    response = client.post(buy_url(offering), {"token": token_of(client, offering)})

    assert response.status_code == 400
    assert "Tick “Yes, buy another package”" in response.content.decode()
    assert Package.objects.filter(student=student).count() == 1
    assert Payment.objects.filter(package__student=student).count() == 1

    response = client.post(buy_url(offering), {"token": token_of(client, offering), "again": "on"})

    assert response.status_code == 302 and response.url == reverse("sessions:my_sessions")
    assert Package.objects.filter(student=student).count() == 2
    assert Payment.objects.filter(package__student=student).count() == 2


def test_first_package_needs_no_confirmation(student_client):
    offering = OfferingFactory()

    page = student_client.get(buy_url(offering)).content.decode()
    assert "Yes, buy another package" not in page and "unused" not in page

    student_client.post(buy_url(offering), {"token": token_of(student_client, offering)})

    assert Package.objects.count() == 1


def test_all_credits_booked_or_another_offering_needs_no_confirmation(student_client, student):
    coach = CoachFactory()
    mine, other = OfferingFactory(coach=coach), OfferingFactory(coach=coach)
    make_package(student=student, offering=other)

    student_client.post(buy_url(mine), {"token": token_of(student_client, mine)})

    assert Package.objects.filter(student=student, offering=mine).count() == 1


def test_back_then_buy_again_does_not_buy_a_second_package_silently(student_client, student):
    offering = OfferingFactory(title="Five sessions", session_count=5)

    # Buy, then Back: the browser either resends the old page (same token)...
    old = token_of(student_client, offering)
    student_client.post(buy_url(offering), {"token": old})
    resent = student_client.post(buy_url(offering), {"token": old}, follow=True)
    assert "so it was bought only once" in " ".join(messages_of(resent))
    # ... or fetches a fresh page: that one warns and asks first.
    fresh = student_client.post(buy_url(offering), {"token": token_of(student_client, offering)})

    assert fresh.status_code == 400
    assert "You still have 5 unused sessions" in fresh.content.decode()
    assert Package.objects.filter(student=student).count() == 1
    assert Payment.objects.count() == 1


def test_a_package_waiting_for_payment_also_warns(student_client, student, settings):
    from refunds.models import PaymentState

    offering = OfferingFactory(title="Five sessions")
    package = make_package(student=student, offering=offering)
    package.sessions.all().delete()  # as if its payment had not gone through yet
    Payment.objects.filter(package=package).update(state=PaymentState.CREATED)

    page = student_client.get(buy_url(offering)).content.decode()

    assert "still waiting for payment" in page and "Yes, buy another package" in page


# --- the policy and the wording -------------------------------------------------------------


def test_policy_is_on_the_coach_page_and_the_buy_page_with_the_coachs_windows(student_client):
    coach = CoachFactory(display_name="Alex")
    profile = coach.coach_profile
    profile.request_window_hours, profile.reschedule_window_hours = 24, 36
    profile.minimum_notice_hours = 12
    profile.save()
    offering = OfferingFactory(coach=coach)

    for url in (coach_url(coach), buy_url(offering)):
        page = " ".join(visible_text(student_client.get(url).content.decode()).split())
        assert "Cancellation and rescheduling" in page
        assert "Alex has 1 day to accept your request" in page
        assert "the request expires and the session comes back to you" in page
        assert "The other side has 36 hours to answer" in page
        assert "the agreed time stands" in page
        assert "at least 12 hours ahead" in page
        # The coach's cancellation policy, here the defaults, in plain words.
        assert "Canceling (Alex" in page
        assert "Cancel 24 h or more before the start: full refund or a make-up credit." in page
        assert "Cancel 12 h\u201324 h before: 50 % back." in page
        assert "Later than 12 h before: the session is used." in page
        assert "If the coach cancels: full refund or make-up credit, the student" in page
        assert "You can propose a new time up to 2 times per session, not within 12 h" in page
        assert "You can cancel a confirmed session yourself from its page" in page


def test_policy_comes_before_the_buy_button(student_client):
    offering = OfferingFactory()
    page = student_client.get(buy_url(offering)).content.decode()

    assert page.index("Cancellation and rescheduling") < page.index(f'action="{buy_url(offering)}"')


def test_customer_pages_use_no_internal_words(student_client, student):
    coach = CoachFactory()
    offering = OfferingFactory(coach=coach, session_count=5)
    OfferingFactory(coach=coach, session_count=1)
    make_package(student=student, offering=offering)
    make_package(student=student, offering=offering)

    for url in (
        reverse("catalog:coaches"),
        coach_url(coach),
        buy_url(offering),
        reverse("sessions:my_sessions"),
    ):
        text = visible_text(student_client.get(url).content.decode()).lower()
        for word in INTERNAL_WORDS:
            assert word.lower() not in text, (url, word)


def test_long_names_wrap_on_the_coaches_list(student_client):
    coach = CoachFactory(display_name="A" * 120)
    OfferingFactory(coach=coach, title="B" * 120)

    page = student_client.get(reverse("catalog:coaches")).content.decode()

    assert "A" * 120 in page and 'class="coach-list"' in page
    from pathlib import Path

    css = (Path(__file__).resolve().parents[2] / "static/css/catalog.css").read_text()
    assert re.search(r"\.coach-list > li[^{]*\{[^}]*overflow-wrap: anywhere", css, re.S)
