"""Cancellation under the coach's policy through the pages and the services: a student's
cancel at each tier, make-up credits (labelled, booked, never worth more than was paid, also
under concurrent cancels on PostgreSQL), the coach's drawer bound by the coach-side rule, the
policy page, and the reschedule limits."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from policies.models import CancellationPolicy
from policies.services import policy_update
from refunds.models import Refund
from refunds.selectors import refunded_cents_for_payment
from sessions_app import selectors, services
from sessions_app.lifecycle import Status, TransitionNotAllowed
from sessions_app.models import Session, SessionEvent
from tests.conftest import messages_of, race
from tests.factories import CoachFactory, OfferingFactory, make_package
from tests.sessions_app.test_views_helpers import open_at

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)  # a Monday
pytestmark = [pytest.mark.django_db, pytest.mark.time_machine(NOW, tick=False)]


def confirmed(hours_ahead: float, *, coach=None, price_cents=5500, session_count=1):
    """A confirmed session starting `hours_ahead` from now, of a package sold at `price_cents`."""
    coach = coach or CoachFactory(display_name="Alex")
    offering = OfferingFactory(coach=coach, price_cents=price_cents, session_count=session_count)
    package = make_package(offering=offering)
    session = package.sessions.order_by("number").first()
    start = open_at(coach, NOW + timedelta(hours=hours_ahead))
    services.session_book(session=session, start=start, actor=package.student)
    services.session_accept(session=session, actor=coach)
    session.refresh_from_db()
    return session


def cancel_page(client, session) -> str:
    client.force_login(session.student)
    return client.get(reverse("sessions:cancel", args=[session.pk])).content.decode()


def post_cancel(client, session, **data):
    data.setdefault("seen_status", session.status)
    return client.post(reverse("sessions:cancel", args=[session.pk]), data, follow=True)


def cancel_event(session) -> SessionEvent:
    return SessionEvent.objects.get(session=session, action="cancel")


def test_student_cancels_18_hours_before_sees_and_gets_half_back(client):
    session = confirmed(18)

    html = cancel_page(client, session)
    response = post_cancel(client, session, refund="partial")

    assert "If you cancel now</strong>" not in html  # the notice is in the heading
    assert "If you cancel now (18 h before the start):" in html
    assert "You get $27.50 back." in html
    session.refresh_from_db()
    assert session.status == Status.CANCELED
    assert list(Refund.objects.values_list("kind", "amount_cents", "issued_by")) == [
        ("partial", 2750, session.student_id)
    ]
    details = cancel_event(session).details
    assert (details["rule"], details["refund_amount_cents"], details["canceled_by"]) == (
        "student_partial",
        2750,
        "student",
    )
    assert details["notice_hours"] == 18.0 and details["rule_used"] is False
    assert messages_of(response)[-1].endswith("a partial refund of $27.50.")


def test_student_cancels_30_hours_before_takes_a_make_up_credit_and_books_it(client):
    session = confirmed(30)

    html = cancel_page(client, session)
    post_cancel(client, session, refund="credit")

    assert "You get a full refund ($55.00) or a make-up credit." in html
    session.refresh_from_db()
    credit = session.makeup_credit
    assert (session.status, credit.status, credit.price_share_cents) == (
        Status.CANCELED,
        Status.UNSCHEDULED,
        5500,
    )
    assert credit.package_id == session.package_id and credit.number == 2
    assert not credit.makeup_refundable  # the student chose it: no swap back
    assert Refund.objects.count() == 0
    assert cancel_event(session).details["makeup_session_id"] == credit.pk
    # Labelled as a make-up on the student's page, and bookable like any credit.
    my_sessions = client.get(reverse("sessions:my_sessions")).content.decode()
    assert "Make-up credit" in my_sessions
    start = open_at(session.coach, NOW + timedelta(days=3))
    services.session_book(session=credit, start=start, actor=session.student)
    credit.refresh_from_db()
    assert credit.status == Status.REQUESTED


def test_student_cancel_under_12_hours_uses_the_session(client):
    session = confirmed(6)

    html = cancel_page(client, session)
    post_cancel(client, session, refund="none")

    assert "The session is used: you get nothing back." in html
    session.refresh_from_db()
    assert session.status == Status.CANCELED and Refund.objects.count() == 0
    assert cancel_event(session).details["rule"] == "student_late"
    assert cancel_event(session).details["rule_used"] is True


def test_a_student_cannot_take_more_than_the_tier_gives(client):
    session = confirmed(18)

    cancel_page(client, session)
    response = post_cancel(client, session, refund="full")

    assert "That is not what the policy gives now" in response.content.decode()
    session.refresh_from_db()
    assert session.status == Status.CONFIRMED and Refund.objects.count() == 0
    with pytest.raises(Exception, match="policy"):
        services.session_cancel(
            session=session, actor=session.student, refund="partial", amount_cents=5000
        )


def test_a_student_cannot_cancel_a_session_that_started():
    session = confirmed(1)

    with pytest.raises(TransitionNotAllowed), pytest.MonkeyPatch.context():
        import time_machine

        with time_machine.travel(NOW + timedelta(hours=1, minutes=5), tick=False):
            services.session_cancel(session=session, actor=session.student, refund="none")
    session.refresh_from_db()
    assert session.status == Status.CONFIRMED


def test_a_student_cancel_does_not_count_in_the_coachs_cancellation_rate():
    session = confirmed(30)
    other = confirmed(40, coach=session.coach)

    services.session_cancel(session=session, actor=session.student, refund="full")
    services.session_cancel(session=other, actor=other.coach, refund="full")

    rate = selectors.coach_cancellation_rate(coach=session.coach, days=90)
    assert (rate.canceled, rate.booked) == (1, 2)


def test_coach_drawer_refuses_less_than_the_coach_side_rule(client):
    session = confirmed(30)
    client.force_login(session.coach)

    response = post_cancel(client, session, refund="none")

    assert "Your policy promises this" in response.content.decode()
    session.refresh_from_db()
    assert session.status == Status.CONFIRMED


def test_coach_cancel_leaves_the_student_a_credit_they_may_take_as_a_refund(client):
    session = confirmed(30)
    client.force_login(session.coach)
    post_cancel(client, session, refund="credit")
    credit = Session.objects.get(makeup_for=session)
    assert credit.makeup_refundable

    client.force_login(session.student)
    response = client.post(
        reverse("sessions:refund_credit", args=[credit.pk]),
        {"seen_status": "UNSCHEDULED"},
        follow=True,
    )

    credit.refresh_from_db()
    assert credit.status == Status.CANCELED and not credit.makeup_refundable
    assert list(Refund.objects.values_list("session_id", "kind", "amount_cents")) == [
        (credit.pk, "full", 5500)
    ]
    assert "refunded in full" in messages_of(response)[-1]
    with pytest.raises(Exception):  # noqa: B017 - once only, whatever the refusal's type
        services.session_refund_credit(session=credit, actor=session.student)
    assert Refund.objects.count() == 1


def test_policy_page_saves_previews_and_refuses_a_bad_policy(client):
    coach = CoachFactory(display_name="Alex")
    client.force_login(coach)
    url = reverse("policies:edit")
    fields = {
        "free_notice_hours": "24",
        "partial_notice_hours": "12",
        "partial_percent": "50",
        "coach_cancel_rule": "student_choice",
        "coach_no_show_rule": "student_choice",
        "student_reschedule_limit": "2",
        "reschedule_notice_hours": "12",
    }

    preview = client.post(url, {**fields, "partial_percent": "40", "preview": "1"})
    bad = client.post(url, {**fields, "partial_notice_hours": "30"})
    saved = client.post(url, {**fields, "partial_percent": "60"}, follow=True)

    assert "If Jamie cancels on Tuesday at 18:00, Jamie gets $22.00 back." in (
        preview.content.decode()
    )
    assert "can&#x27;t be longer than the full-refund notice" in bad.content.decode()
    assert messages_of(saved) == ["Policy saved: it applies to every cancellation from now on."]
    assert list(CancellationPolicy.objects.values_list("coach", "partial_percent")) == [
        (coach.pk, 60)
    ]


def test_students_reschedule_within_the_policys_limit_and_notice():
    policy_update(
        coach=(coach := CoachFactory()), student_reschedule_limit=1, reschedule_notice_hours=12
    )
    session = confirmed(48, coach=coach)
    near = confirmed(10, coach=coach)

    first = open_at(coach, NOW + timedelta(days=4))
    services.session_propose_reschedule(session=session, start=first, actor=session.student)
    services.session_withdraw_proposal(session=session, actor=session.student)
    with pytest.raises(TransitionNotAllowed, match="allows one new time per session"):
        services.session_propose_reschedule(
            session=session, start=open_at(coach, NOW + timedelta(days=5)), actor=session.student
        )
    with pytest.raises(TransitionNotAllowed, match="within 12 h of the start"):
        services.session_propose_reschedule(
            session=near, start=open_at(coach, NOW + timedelta(days=6)), actor=near.student
        )
    # The coach is not limited: rescheduling is what the app offers instead of canceling.
    services.session_propose_reschedule(
        session=near, start=open_at(coach, NOW + timedelta(days=6)), actor=coach
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_cancels_never_credit_more_than_was_paid():
    coach = CoachFactory()
    offering = OfferingFactory(coach=coach, price_cents=10000, session_count=2)
    package = make_package(offering=offering)
    first, second = package.sessions.order_by("number")
    for hours, session in ((30, first), (40, second)):
        start = open_at(coach, NOW + timedelta(hours=hours))
        services.session_book(session=session, start=start, actor=package.student)
        services.session_accept(session=session, actor=coach)
    targets = [first, first, first, second, second, second]

    results = race(
        len(targets),
        lambda index: services.session_cancel(
            session=targets[index], actor=package.student, refund="credit"
        ),
    )

    assert sum(not isinstance(result, Exception) for result in results) == 2
    credits = list(Session.objects.filter(makeup_for__isnull=False))
    assert sorted(credit.makeup_for_id for credit in credits) == [first.pk, second.pk]
    assert sum(credit.price_share_cents for credit in credits) == 10000
    assert refunded_cents_for_payment(payment=package.payment) == 0
