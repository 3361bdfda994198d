"""Payments and processor references in the admin (issue 11, "Admin and audit").

The payment list and page (read-only), the page's amounts "As Stripe reports it" next to
Coachbook's own, refunds with their Stripe refund ids and states, retrying failed refunds (the
action and the button), and the processor references in the CSV export.
"""

import csv
import io

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse

from refunds import services
from refunds.admin import CSV_HEADER
from refunds.gateways import GatewayUnavailable, StripeGateway
from refunds.models import Payment, Refund, RefundState
from sessions_app import services as session_services
from tests.conftest import messages_of
from tests.factories import (
    RefundFactory,
    StaffFactory,
    make_canceled_session,
    make_card_package,
    make_package,
    make_session,
    next_free_start,
)
from tests.refunds.test_admin import REFUND_LIST_QUERIES
from tests.stripe_support import free_port

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("coaches_decide_refunds")]

PAYMENTS = reverse("admin:refunds_payment_changelist")
REFUNDS = reverse("admin:refunds_refund_changelist")
EXPORT = reverse("admin:refunds_refund_export")
EXPIRED = "The card has expired or was canceled."


def payment_page(payment) -> str:
    return reverse("admin:refunds_payment_change", args=[payment.pk])


def refund_page(refund) -> str:
    return reverse("admin:refunds_refund_change", args=[refund.pk])


def retry_url(refund) -> str:
    return reverse("admin:refunds_refund_retry", args=[refund.pk])


def _ids(response) -> list[int]:
    return sorted(row.pk for row in response.context_data["cl"].result_list)


def _csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    header, *rows = list(csv.reader(io.StringIO(body)))
    assert header == CSV_HEADER
    return [dict(zip(header, row, strict=True)) for row in rows]


def _amounts(html: str) -> str:
    """The amounts table of a payment page, whitespace collapsed."""
    start = html.index('<table id="payment-amounts"')
    end = html.index("</table>", start)
    return " ".join(html[start:end].split())


def _confirmed(package):
    """The package's first session, booked and accepted."""
    session = package.sessions.order_by("number").first()
    coach, student = package.coach, package.student
    session_services.session_book(
        session=session, start=next_free_start(coach, package.duration_minutes), actor=student
    )
    session_services.session_accept(session=session, actor=coach)
    return session


def _failed_refund(deferred_gateway, reason: str = EXPIRED, **fields) -> Refund:
    """A refund the (deferred) processor took and then refused with `reason`."""
    session = make_canceled_session(refund="partial", amount_cents=1250, **fields)
    refund = session.refunds.get()
    deferred_gateway.decide(f"deferred-refund-{refund.pk}", RefundState.FAILED, reason)
    services.refund_settle(refund=refund)
    refund.refresh_from_db()
    assert (refund.state, refund.failure_reason) == (RefundState.FAILED, reason)
    return refund


@pytest.fixture
def card_refund(stripe_settings, localstripe, celery_eager, django_capture_on_commit_callbacks):
    """A package of 5 sessions (250.00) paid by card (4242), with a partial refund of 12.50
    that reached Stripe and succeeded there."""
    package = make_card_package(localstripe, session_count=5, price_cents=25000)
    session = _confirmed(package)
    with django_capture_on_commit_callbacks(execute=True):
        session_services.session_cancel(
            session=session, actor=package.coach, refund="partial", amount_cents=1250
        )
    refund = session.refunds.get()
    assert (refund.state, refund.reference[:3]) == (RefundState.DONE, "re_")
    return refund


# --- the payment list ------------------------------------------------------------------------


def test_payment_list_shows_package_people_gateway_reference_state_money_paid_at_attempts(
    admin_client,
):
    package = make_package(price_cents=30000, title="Spring block")
    payment = package.payment

    response = admin_client.get(PAYMENTS)

    html = response.content.decode()
    package_url = reverse("admin:sessions_app_package_change", args=[package.pk])
    assert f'<a href="{package_url}">Package {package.pk}: Spring block</a>' in html
    for text in [
        package.student.email,
        package.coach.email,
        "manual",
        f"manual-payment-{payment.pk}",
        "Paid",
        "$300.00",
        "Reference (PaymentIntent id)",
        "Paid at",
        "Attempts",
    ]:
        assert text in html, text
    assert response.context_data["cl"].result_list[0].paid_at is not None


def test_payment_list_filters_by_state_and_gateway(admin_client, settings):
    manual = make_package().payment
    settings.PAYMENT_GATEWAY = "stripe"  # bought, not paid yet: nothing is asked of Stripe
    awaiting = make_package().payment
    assert (manual.state, awaiting.state, awaiting.gateway) == ("DONE", "CREATED", "stripe")

    assert _ids(admin_client.get(PAYMENTS, {"state__exact": "CREATED"})) == [awaiting.pk]
    assert _ids(admin_client.get(PAYMENTS, {"state__exact": "DONE"})) == [manual.pk]
    assert _ids(admin_client.get(PAYMENTS, {"gateway": "stripe"})) == [awaiting.pk]
    assert _ids(admin_client.get(PAYMENTS, {"gateway": "manual"})) == [manual.pk]
    page = admin_client.get(PAYMENTS).content.decode()
    assert "Awaiting payment" in page
    assert "?gateway=stripe" in page


def test_payment_list_searches_by_paymentintent_id_and_student_email(admin_client):
    first, second = make_package().payment, make_package().payment
    Payment.objects.filter(pk=first.pk).update(reference="pi_3Abc123")

    assert _ids(admin_client.get(PAYMENTS, {"q": "pi_3Abc123"})) == [first.pk]
    assert _ids(admin_client.get(PAYMENTS, {"q": second.package.student.email})) == [second.pk]
    assert _ids(admin_client.get(PAYMENTS, {"q": "pi_nothing"})) == []


def test_payment_pages_are_read_only_for_a_card_payment_too(admin_client, settings):
    settings.PAYMENT_GATEWAY = "stripe"
    payment = make_package(price_cents=9000).payment

    page = admin_client.get(payment_page(payment))
    posted = admin_client.post(payment_page(payment), {"amount_cents": 1, "state": "DONE"})

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert posted.status_code == 403
    payment.refresh_from_db()
    assert (payment.amount_cents, payment.state) == (9000, "CREATED")
    listing = admin_client.get(PAYMENTS)
    assert "delete_selected" not in listing.content.decode()


@pytest.mark.parametrize("count", [3, 40])
def test_payment_list_makes_the_same_queries_whatever_the_number_of_rows(
    admin_client, django_assert_max_num_queries, count
):
    for index in range(count):
        session = make_session("CONFIRMED")
        if index % 2:
            session_services.session_cancel(
                session=session, actor=session.coach, refund="partial", amount_cents=100
            )

    # auth session + user, the count twice (filtered, total), the rows with their refunded
    # amounts, the date hierarchy (two), the currency filter's values; the gateway filter
    # lists the configured gateways without a query
    with django_assert_max_num_queries(8):
        response = admin_client.get(PAYMENTS)

    assert response.status_code == 200
    assert len(response.context_data["cl"].result_list) == count


# --- the payment page: Coachbook's amounts and Stripe's ----------------------------------------


def test_card_payment_page_shows_stripe_amounts_next_to_coachbooks_and_its_refunds(
    admin_client, card_refund, localstripe
):
    payment = card_refund.payment

    html = admin_client.get(payment_page(payment)).content.decode()

    amounts = _amounts(html)
    assert "As Stripe reports it" in amounts
    assert (
        '<th scope="row">Paid</th> <td>$250.00</td> <td>$250.00</td>' in amounts
        and '<th scope="row">Refunded</th> <td>$12.50</td> <td>$12.50</td>' in amounts
        and '<th scope="row">Remaining</th> <td>$237.50</td> <td>$237.50</td>' in amounts
    )
    assert "(differs)" not in html
    assert 'id="processor-note"' not in html
    # Stripe's own view agrees (the charge of the PaymentIntent).
    intent = localstripe.api("GET", f"/v1/payment_intents/{payment.reference}")
    charge = intent["latest_charge"]
    if isinstance(charge, str):  # not expanded
        charge = localstripe.api("GET", f"/v1/charges/{charge}")
    assert (charge["amount"], charge["amount_refunded"]) == (25000, 1250)
    # The payment's refunds, read-only, with their Stripe refund id and state.
    assert payment.reference in html
    assert card_refund.reference in html
    assert "Succeeded" in html


def test_a_refund_pending_in_coachbook_but_not_yet_at_stripe_is_shown_as_a_difference(
    admin_client, stripe_settings, localstripe
):
    package = make_card_package(localstripe, session_count=5, price_cents=25000)
    session = _confirmed(package)
    # The cancel commits, but its settle task has not run: Stripe has not heard of the refund.
    session_services.session_cancel(
        session=session, actor=package.coach, refund="partial", amount_cents=1250
    )

    html = admin_client.get(payment_page(package.payment)).content.decode()

    amounts = _amounts(html)
    assert '<td>$12.50 <span class="quiet">(of which $12.50 pending)</span></td>' in amounts
    assert "<td>$0.00 <strong>(differs)</strong></td>" in amounts
    assert "<td>$250.00 <strong>(differs)</strong></td>" in amounts  # Stripe: nothing refunded
    assert "Coachbook and Stripe differ." in html


def test_card_payment_page_says_stripe_could_not_be_reached_and_still_opens(
    admin_client, stripe_settings, localstripe, card_refund
):
    stripe_settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"

    response = admin_client.get(payment_page(card_refund.payment))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Stripe could not be reached, so its figures are not shown." in html
    amounts = _amounts(html)
    assert '<th scope="row">Paid</th> <td>$250.00</td> <td>-</td>' in amounts
    assert '<th scope="row">Remaining</th> <td>$237.50</td> <td>-</td>' in amounts


def test_an_unreachable_stripe_is_a_note_without_any_server(admin_client, settings):
    """No localstripe needed: a card payment whose PaymentIntent lives at a closed port."""
    settings.PAYMENT_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = "sk_test_nothing_listens"
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"
    payment = make_package(price_cents=9000).payment
    Payment.objects.filter(pk=payment.pk).update(reference="pi_unreachable")

    response = admin_client.get(payment_page(payment))

    assert response.status_code == 200
    assert "Stripe could not be reached" in response.content.decode()


@pytest.mark.parametrize(
    ("failure", "note"),
    [
        (GatewayUnavailable("Stripe answered 503 (read a payment)"), "Stripe could not be reached"),
        (RuntimeError("an SDK surprise"), "Stripe&#x27;s answer could not be read."),
    ],
)
def test_any_trouble_asking_stripe_is_a_note_on_the_page_never_a_500(
    admin_client, settings, monkeypatch, failure, note
):
    settings.PAYMENT_GATEWAY = "stripe"
    payment = make_package().payment

    def fail(self, payment):
        raise failure

    monkeypatch.setattr(StripeGateway, "charge_summary", fail)

    response = admin_client.get(payment_page(payment))

    assert response.status_code == 200
    assert note in response.content.decode()


def test_stripe_refusing_an_unknown_paymentintent_is_a_note(admin_client, stripe_settings):
    payment = make_package().payment
    Payment.objects.filter(pk=payment.pk).update(reference="pi_no_such_intent")

    response = admin_client.get(payment_page(payment))

    assert response.status_code == 200
    assert "Stripe refused to show this payment" in response.content.decode()


def test_unpaid_card_payment_page_says_stripe_has_no_charge_yet(admin_client, settings):
    settings.PAYMENT_GATEWAY = "stripe"
    payment = make_package(price_cents=9000).payment  # no PaymentIntent yet

    html = admin_client.get(payment_page(payment)).content.decode()

    assert "Stripe has no charge for this payment yet: nothing was paid." in html
    assert '<th scope="row">Paid</th> <td>$0.00</td> <td>-</td>' in _amounts(html)


def test_manual_payment_page_shows_coachbooks_amounts_only(admin_client):
    session = make_canceled_session(refund="partial", amount_cents=1250, price_cents=30000)

    html = admin_client.get(payment_page(session.package.payment)).content.decode()

    amounts = _amounts(html)
    assert "reports it" not in amounts
    assert '<th scope="row">Refunded</th> <td>$12.50</td>' in amounts
    assert '<th scope="row">Remaining</th> <td>$287.50</td>' in amounts
    assert "The manual gateway moves no money itself" in html


@pytest.mark.parametrize("refunds", [1, 8])
def test_payment_page_makes_a_fixed_number_of_queries(
    admin_client, django_assert_max_num_queries, refunds
):
    package = make_package(session_count=8, price_cents=80000)
    for session in package.sessions.all()[:refunds]:
        session_services.session_cancel(
            session=session, actor=package.coach, refund="partial", amount_cents=100
        )

    # auth session + user, the payment with its package and people (and refunded total), the
    # pending total, the inline's refunds (with issuer and retry), and the admin's own reads
    with django_assert_max_num_queries(9):
        response = admin_client.get(payment_page(package.payment))

    assert response.status_code == 200
    assert response.content.decode().count("manual-refund-") == refunds


# --- refunds: processor reference, state, failure reason, retry -------------------------------


def test_refund_list_shows_processor_reference_state_label_and_failure_reason(
    admin_client, deferred_gateway
):
    failed = _failed_refund(deferred_gateway)

    html = admin_client.get(REFUNDS).content.decode()

    for text in [f"deferred-refund-{failed.pk}", "Failed", EXPIRED, "Reference (Stripe refund id)"]:
        assert text in html, text


def test_refund_states_read_pending_succeeded_failed():
    assert [label for _, label in RefundState.choices] == ["Pending", "Succeeded", "Failed"]


def test_refund_list_filters_by_state_and_gateway(admin_client, deferred_gateway):
    failed = _failed_refund(deferred_gateway)
    pending = make_canceled_session(refund="full").refunds.get()  # not settled yet

    assert _ids(admin_client.get(REFUNDS, {"state__exact": "FAILED"})) == [failed.pk]
    assert _ids(admin_client.get(REFUNDS, {"state__exact": "CREATED"})) == [pending.pk]
    assert _ids(admin_client.get(REFUNDS, {"gateway": "deferred"})) == sorted(
        [failed.pk, pending.pk]
    )
    assert _ids(admin_client.get(REFUNDS, {"gateway": "manual"})) == []


def test_refund_list_searches_by_stripe_refund_and_paymentintent_id(admin_client, card_refund):
    assert _ids(admin_client.get(REFUNDS, {"q": card_refund.reference})) == [card_refund.pk]
    assert _ids(admin_client.get(REFUNDS, {"q": card_refund.payment.reference})) == [card_refund.pk]


def test_retry_action_retries_failed_refunds_and_reports_the_refused_ones(client, deferred_gateway):
    failed = _failed_refund(deferred_gateway)
    done = make_canceled_session(refund="full").refunds.get()
    services.refund_settle(refund=done)
    done.refresh_from_db()
    assert done.state == RefundState.DONE
    staff = StaffFactory(is_superuser=True)
    client.force_login(staff)

    response = client.post(
        REFUNDS,
        {"action": "retry_failed", "_selected_action": [failed.pk, done.pk]},
        follow=True,
    )

    retry = Refund.objects.get(retry_of=failed)
    assert (retry.state, retry.amount_cents, retry.kind, retry.gateway) == (
        RefundState.CREATED,
        1250,
        "partial",
        "deferred",
    )
    assert (retry.issued_by, retry.session_id, retry.payment_id) == (
        staff,
        failed.session_id,
        failed.payment_id,
    )
    failed.refresh_from_db()
    assert failed.state == RefundState.FAILED  # the audit keeps it as it was
    assert messages_of(response) == [
        f"Retried 1 failed refund as new refunds: refund {failed.pk} as refund {retry.pk}. "
        "They go to the payment processor now.",
        f"Not retried (refund {done.pk}): Only a failed refund can be retried.",
    ]
    entry = LogEntry.objects.get(object_id=str(retry.pk))
    assert (entry.action_flag, entry.user, entry.change_message) == (
        ADDITION,
        staff,
        f"Retry of failed refund {failed.pk}",
    )


def test_retrying_an_already_retried_refund_makes_no_second_retry(admin_client, deferred_gateway):
    failed = _failed_refund(deferred_gateway)
    data = {"action": "retry_failed", "_selected_action": [failed.pk]}
    admin_client.post(REFUNDS, data, follow=True)

    response = admin_client.post(REFUNDS, data, follow=True)

    retry = Refund.objects.get(retry_of=failed)
    assert Refund.objects.count() == 2
    assert messages_of(response) == [
        f"Not retried (refund {failed.pk}): Already retried as refund {retry.pk}."
    ]


def test_retry_refused_by_the_caps_reports_the_services_message(admin_client, deferred_gateway):
    failed = _failed_refund(deferred_gateway)
    # Meanwhile the session's whole share was refunded another way: nothing is left.
    services.refund_issue(
        session=failed.session,
        kind="full",
        issued_by=failed.session.coach,
        idempotency_key="goodwill-instead",
    )

    response = admin_client.post(
        REFUNDS, {"action": "retry_failed", "_selected_action": [failed.pk]}, follow=True
    )

    assert not Refund.objects.filter(retry_of=failed).exists()
    assert messages_of(response) == [
        f"Not retried (refund {failed.pk}): At most $0.00 can be refunded for this session now."
    ]


def test_staff_who_may_only_view_refunds_cannot_retry(client, deferred_gateway):
    failed = _failed_refund(deferred_gateway)
    auditor = StaffFactory()
    auditor.user_permissions.add(Permission.objects.get(codename="view_refund"))
    client.force_login(auditor)

    listing = client.get(REFUNDS)
    page = client.get(refund_page(failed)).content.decode()
    client.post(REFUNDS, {"action": "retry_failed", "_selected_action": [failed.pk]})
    button = client.post(retry_url(failed))

    choices = [name for name, _ in listing.context_data["action_form"].fields["action"].choices]
    assert choices == ["", "export_csv"]
    assert 'id="retry-refund"' not in page
    assert button.status_code == 403
    assert not Refund.objects.filter(retry_of=failed).exists()


def test_staff_with_the_add_refund_permission_may_retry(client, deferred_gateway):
    failed = _failed_refund(deferred_gateway)
    clerk = StaffFactory()
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_refund", "add_refund"])
    )
    client.force_login(clerk)

    client.post(REFUNDS, {"action": "retry_failed", "_selected_action": [failed.pk]})

    assert Refund.objects.get(retry_of=failed).issued_by == clerk


def test_failed_refund_page_offers_the_retry_button_which_makes_the_new_refund(
    admin_client, deferred_gateway
):
    failed = _failed_refund(deferred_gateway)

    page = admin_client.get(refund_page(failed)).content.decode()
    assert f'action="{retry_url(failed)}" id="retry-refund"' in page
    assert f"This refund failed: {EXPIRED} No money moved." in page

    response = admin_client.post(retry_url(failed))

    retry = Refund.objects.get(retry_of=failed)
    assert (response.status_code, response["Location"]) == (302, refund_page(retry))
    assert messages_of(response) == [f"Refund {failed.pk} retried as refund {retry.pk} (Pending)."]
    again = admin_client.get(refund_page(failed)).content.decode()
    assert 'id="retry-refund"' not in again
    assert f"It was retried as refund {retry.pk} (Pending)." in again
    retry_html = admin_client.get(refund_page(retry)).content.decode()
    assert f'<a href="{refund_page(failed)}">Refund {failed.pk}</a>' in retry_html


def test_retry_button_is_post_only_and_absent_on_a_refund_that_did_not_fail(
    admin_client, deferred_gateway
):
    pending = make_canceled_session(refund="full").refunds.get()

    page = admin_client.get(refund_page(pending)).content.decode()
    get = admin_client.get(retry_url(pending))
    post = admin_client.post(retry_url(pending))

    assert 'id="retry-refund"' not in page
    assert get.status_code == 405
    assert (post.status_code, post["Location"]) == (302, refund_page(pending))
    assert messages_of(post) == [
        f"Refund {pending.pk} was not retried: Only a failed refund can be retried."
    ]
    assert admin_client.post(reverse("admin:refunds_refund_retry", args=["abc"])).status_code == 404


def test_refund_and_payment_pages_show_both_ends_of_a_retry(admin_client, deferred_gateway):
    failed = _failed_refund(deferred_gateway)
    retry = services.refund_retry(refund=failed, issued_by=None)

    listing = admin_client.get(REFUNDS).content.decode()
    payment = admin_client.get(payment_page(failed.payment)).content.decode()

    failed_link = f'<a href="{refund_page(failed)}">Refund {failed.pk}</a>'
    retry_link = f'<a href="{refund_page(retry)}">Refund {retry.pk}</a>'
    assert f"retried as {retry_link}" in listing
    assert f"retry of {failed_link}" in listing
    assert f"retried as {retry_link}" in payment  # the inline
    assert EXPIRED in payment


def test_refund_list_with_retries_stays_within_the_query_budget(
    admin_client, django_assert_max_num_queries
):
    sessions = [make_session("CONFIRMED") for _ in range(3)]
    for index in range(60):
        failed = RefundFactory(session=sessions[index % 3], state="FAILED")
        RefundFactory(session=sessions[index % 3], state="CREATED", retry_of=failed)

    with django_assert_max_num_queries(REFUND_LIST_QUERIES):
        response = admin_client.get(REFUNDS)

    assert response.status_code == 200
    assert len(response.context_data["cl"].result_list) == 100


def test_failed_refund_page_makes_a_fixed_number_of_queries(
    admin_client, deferred_gateway, django_assert_max_num_queries
):
    failed = _failed_refund(deferred_gateway)
    services.refund_retry(refund=failed, issued_by=None)

    with django_assert_max_num_queries(9):
        response = admin_client.get(refund_page(failed))

    assert response.status_code == 200


# --- CSV: the processor's references ----------------------------------------------------------


def test_csv_has_the_stripe_refund_id_and_paymentintent_id(admin_client, card_refund):
    (row,) = _csv(admin_client.get(EXPORT))

    assert (row["gateway"], row["state"]) == ("stripe", "DONE")
    assert row["reference"] == card_refund.reference and row["reference"].startswith("re_")
    assert row["payment_reference"] == card_refund.payment.reference
    assert row["payment_reference"].startswith("pi_")
    assert (row["failure_reason"], row["retry_of_id"]) == ("", "")


def test_csv_has_the_failure_reason_and_the_refund_a_retry_replaces(admin_client, deferred_gateway):
    failed = _failed_refund(deferred_gateway)
    retry = services.refund_retry(refund=failed, issued_by=None)

    rows = {int(row["refund_id"]): row for row in _csv(admin_client.get(EXPORT))}

    assert (rows[failed.pk]["state"], rows[failed.pk]["failure_reason"]) == ("FAILED", EXPIRED)
    assert rows[failed.pk]["reference"] == f"deferred-refund-{failed.pk}"
    assert (rows[retry.pk]["retry_of_id"], rows[retry.pk]["state"]) == (str(failed.pk), "CREATED")
    assert rows[retry.pk]["payment_reference"] == f"deferred-payment-{failed.payment_id}"


def test_csv_neutralises_formulas_in_processor_text(admin_client, deferred_gateway):
    failed = _failed_refund(deferred_gateway, reason='=HYPERLINK("http://x")')
    Payment.objects.filter(pk=failed.payment_id).update(reference="+cmd|' /C calc'!A0")

    (row,) = _csv(admin_client.get(EXPORT))

    assert row["failure_reason"] == '\'=HYPERLINK("http://x")'
    assert row["payment_reference"] == "'+cmd|' /C calc'!A0"


def test_csv_header_names_the_processor_columns():
    assert CSV_HEADER[-2:] == ["payment_reference", "retry_of_id"]
    assert {"gateway", "reference", "state", "failure_reason"} <= set(CSV_HEADER)
