"""What the coach and the student see of a refund (issue 11): its amount and state, Pending,
Succeeded or Failed with the processor's reason, on the session page and the Canceled list."""

import re

import pytest
from django.urls import reverse

from refunds import services as refund_services
from refunds.models import RefundState
from sessions_app import services
from tests.factories import CoachFactory, make_canceled_session, make_package
from tests.sessions_app.test_views_queries import BUDGETS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("coaches_decide_refunds")]

EXPIRED = "The card has expired or was canceled."
FAILED_TEXT = (
    f"Refund failed: {EXPIRED} No money has moved. Our team will retry it."  # no retry yet
)


def text(html: str) -> str:
    """The page's text with tags dropped and whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def detail(client, session, viewer) -> str:
    client.force_login(viewer)
    response = client.get(reverse("sessions:detail", args=[session.pk]))
    assert response.status_code == 200
    return text(response.content.decode())


def canceled_list(client, coach) -> str:
    client.force_login(coach)
    response = client.get(reverse("sessions:canceled"))
    assert response.status_code == 200
    return response.content.decode()


def row(html: str, session) -> str:
    """The text of the Canceled list's row of `session`."""
    match = re.search(rf'<tr id="session-{session.pk}">(.*?)</tr>', html, flags=re.S)
    assert match, f"no row for session {session.pk}"
    return text(match.group(1))


def settle(deferred_gateway, refund, state=RefundState.DONE, reason=""):
    """The processor's outcome for `refund`, applied as its settle task would."""
    deferred_gateway.decide(f"deferred-refund-{refund.pk}", state, reason)
    refund_services.refund_settle(refund=refund)
    refund.refresh_from_db()
    return refund


def canceled_with_refund(coach=None, amount_cents=1250, **fields):
    session = make_canceled_session(
        refund="partial", amount_cents=amount_cents, coach=coach or CoachFactory(), **fields
    )
    return session, session.refunds.get()


# --- the session page --------------------------------------------------------------------------


@pytest.mark.parametrize("viewer", ["coach", "student"])
def test_a_pending_refund_shows_its_amount_and_pending(client, deferred_gateway, viewer):
    session, refund = canceled_with_refund()
    assert refund.state == RefundState.CREATED

    page = detail(client, session, getattr(session, viewer))

    assert "$12.50 … Pending The card processor has not confirmed it yet." in page


@pytest.mark.parametrize("viewer", ["coach", "student"])
def test_a_succeeded_refund_shows_succeeded(client, deferred_gateway, viewer):
    session, refund = canceled_with_refund()
    settle(deferred_gateway, refund)

    page = detail(client, session, getattr(session, viewer))

    assert "$12.50 ✓ Succeeded" in page
    assert "Refund failed" not in page


@pytest.mark.parametrize("viewer", ["coach", "student"])
def test_a_failed_refund_shows_the_processors_reason_and_what_happens_next(
    client, deferred_gateway, viewer
):
    session, refund = canceled_with_refund()
    settle(deferred_gateway, refund, RefundState.FAILED, EXPIRED)

    page = detail(client, session, getattr(session, viewer))

    assert f"$12.50 ✕ Failed {FAILED_TEXT}" in page
    # A failed refund moved no money: nothing counts as refunded.
    assert "Refunded so far Nothing" in page


def test_a_failure_reason_without_a_full_stop_gets_one(client, deferred_gateway):
    session, refund = canceled_with_refund()
    settle(deferred_gateway, refund, RefundState.FAILED, "Card account closed")

    page = detail(client, session, session.coach)

    assert "Refund failed: Card account closed. No money has moved." in page


def test_a_failure_without_a_reason_still_reads_as_a_sentence(client, deferred_gateway):
    session, refund = canceled_with_refund()
    settle(deferred_gateway, refund, RefundState.FAILED, "")

    page = detail(client, session, session.coach)

    assert "Refund failed. No money has moved. Our team will retry it." in page


def test_a_retried_failed_refund_says_so_and_the_retry_shows_its_own_state(
    client, deferred_gateway
):
    session, refund = canceled_with_refund()
    settle(deferred_gateway, refund, RefundState.FAILED, EXPIRED)
    retry = refund_services.refund_retry(refund=refund, issued_by=None)

    page = detail(client, session, session.student)

    assert (
        f"Refund failed: {EXPIRED} No money has moved. Our team retried it as a new refund "
        "(Pending)."
    ) in page
    assert "Our team will retry it" not in page
    assert (
        "Pending The card processor has not confirmed it yet. (a retry of a refund that failed)"
        in page
    )

    settle(deferred_gateway, retry)
    page = detail(client, session, session.student)
    assert "Our team retried it as a new refund (Succeeded)." in page
    assert "Refunded so far $12.50" in page


def test_a_manual_refund_is_shown_succeeded(client):
    session, refund = canceled_with_refund(amount_cents=1999)
    assert (refund.gateway, refund.state) == ("manual", RefundState.DONE)

    page = detail(client, session, session.coach)

    assert "$19.99 ✓ Succeeded" in page


# --- the coach's Canceled list -----------------------------------------------------------------


def test_canceled_list_shows_each_refund_with_its_amount_and_state(client, deferred_gateway):
    coach = CoachFactory()
    pending_session, _ = canceled_with_refund(coach)
    done_session, done = canceled_with_refund(coach, amount_cents=700)
    settle(deferred_gateway, done)
    failed_session, failed = canceled_with_refund(coach, amount_cents=3000)
    settle(deferred_gateway, failed, RefundState.FAILED, EXPIRED)
    none_session = make_canceled_session(refund="none", coach=coach)

    html = canceled_list(client, coach)

    assert "$12.50 … Pending The card processor has not confirmed it yet." in row(
        html, pending_session
    )
    assert "$7.00 ✓ Succeeded" in row(html, done_session)
    assert f"$30.00 ✕ Failed {FAILED_TEXT}" in row(html, failed_session)
    assert "No refund" in row(html, none_session)


def test_canceled_list_shows_a_retry_next_to_the_failed_refund(client, deferred_gateway):
    coach = CoachFactory()
    session, refund = canceled_with_refund(coach)
    settle(deferred_gateway, refund, RefundState.FAILED, EXPIRED)
    refund_services.refund_retry(refund=refund, issued_by=None)

    shown = row(canceled_list(client, coach), session)

    # Newest first: the retry, then the refund that failed.
    assert shown.index("Pending") < shown.index("Refund failed")
    assert "Our team retried it as a new refund (Pending)." in shown
    assert shown.count("$12.50") == 2


# --- query counts stay flat --------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 12])
def test_canceled_list_with_failed_and_retried_refunds_stays_within_its_budget(
    client, deferred_gateway, django_assert_max_num_queries, count
):
    coach = CoachFactory()
    for index in range(count):
        _, refund = canceled_with_refund(coach, amount_cents=100 + index)
        if index % 2:
            settle(deferred_gateway, refund, RefundState.FAILED, EXPIRED)
            refund_services.refund_retry(refund=refund, issued_by=None)
    client.force_login(coach)

    with django_assert_max_num_queries(BUDGETS["canceled"]):
        response = client.get(reverse("sessions:canceled"))

    assert response.status_code == 200
    assert response.content.decode().count("Our team retried it") == count // 2


def test_session_page_with_several_refunds_stays_within_its_budget(
    client, deferred_gateway, django_assert_max_num_queries
):
    package = make_package(session_count=1, price_cents=10000)
    (session,) = package.sessions.all()
    services.session_cancel(
        session=session, actor=package.coach, refund="partial", amount_cents=100
    )
    first = session.refunds.get()
    settle(deferred_gateway, first, RefundState.FAILED, EXPIRED)
    retry = refund_services.refund_retry(refund=first, issued_by=None)
    settle(deferred_gateway, retry, RefundState.FAILED, EXPIRED)
    refund_services.refund_retry(refund=retry, issued_by=None)
    client.force_login(package.coach)

    with django_assert_max_num_queries(BUDGETS["detail"]):
        response = client.get(reverse("sessions:detail", args=[session.pk]))

    page = text(response.content.decode())
    assert page.count("Our team retried it as a new refund") == 2
    assert page.count("Pending The card processor has not confirmed it yet.") == 1
