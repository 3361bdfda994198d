"""The refund audit in the Django admin: read-only, staff only, filters, totals and CSV."""

import csv
import io

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from core.money import format_money
from refunds.admin import CSV_HEADER, CoachWithRefundsFilter
from refunds.models import Refund
from sessions_app.templatetags.money import money
from tests.factories import (
    StaffFactory,
    StudentFactory,
    SuperuserFactory,
    UserFactory,
    make_canceled_session,
    make_refund_rows,
    make_session,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("coaches_decide_refunds")]

CHANGELIST = reverse("admin:refunds_refund_changelist")
EXPORT = reverse("admin:refunds_refund_export")


@pytest.fixture
def audit():
    """A partial refund (USD), a full refund (EUR, another coach) and a cancel without refund."""
    partial = make_canceled_session(
        refund="partial", amount_cents=1250, reason="Coach ill", price_cents=30000
    )
    full = make_canceled_session(refund="full", price_cents=9000, currency="EUR")
    none = make_canceled_session(refund="none", reason="Student no-show")
    return {
        "partial": partial.refunds.get(),
        "full": full.refunds.get(),
        "none_session": none,
    }


def _ids(response):
    return sorted(refund.pk for refund in response.context_data["cl"].result_list)


def _csv(response):
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


# --- money ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "currency", "shown"),
    [
        (1250, "USD", "$12.50"),
        (1250, "EUR", "€12.50"),
        (99, "GBP", "£0.99"),
        (5, "USD", "$0.05"),
        (123450, "USD", "$1,234.50"),
        (123456789, "USD", "$1,234,567.89"),
        (0, "GBP", "£0.00"),
        (-1250, "USD", "-$12.50"),
        (-500, "USD", "-$5.00"),
        (123450, "CHF", "1,234.50 CHF"),
        (-500, "CHF", "-5.00 CHF"),
        (None, "USD", "-"),
    ],
)
def test_format_money_shows_minor_units_as_money(cents, currency, shown):
    assert format_money(cents, currency) == shown


@pytest.mark.parametrize(
    ("cents", "currency", "shown"),
    [
        (1250, "EUR", "€12.50"),
        ("3334", "USD", "$33.34"),
        (1250, "", "12.50"),
        (None, "USD", ""),
        ("", "USD", ""),
        ("abc", "USD", ""),
    ],
)
def test_money_template_filter_formats_like_format_money_and_blanks_missing_amounts(
    cents, currency, shown
):
    assert money(cents, currency) == shown


# --- who may see it ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", [CHANGELIST, EXPORT])
def test_non_staff_user_is_redirected_to_the_admin_login(client, url):
    client.force_login(StudentFactory())

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={url}"


def test_anonymous_visitor_is_redirected_to_the_admin_login(client):
    response = client.get(CHANGELIST)
    assert (response.status_code, response["Location"]) == (
        302,
        f"{reverse('admin:login')}?next={CHANGELIST}",
    )


def test_staff_without_the_view_permission_is_refused(client, audit):
    client.force_login(StaffFactory())

    assert client.get(CHANGELIST).status_code == 403
    assert client.get(EXPORT).status_code == 403


def test_staff_with_the_view_permission_sees_refunds_read_only(client, audit):
    auditor = StaffFactory()
    auditor.user_permissions.add(Permission.objects.get(codename="view_refund"))
    client.force_login(auditor)

    listing = client.get(CHANGELIST)
    detail = client.get(reverse("admin:refunds_refund_change", args=[audit["partial"].pk]))

    assert listing.status_code == detail.status_code == 200
    assert _ids(listing) == sorted([audit["partial"].pk, audit["full"].pk])
    assert 'name="_save"' not in detail.content.decode()


# --- read-only for everyone, superusers included ----------------------------------------------


def test_add_is_refused(admin_client, audit):
    add = reverse("admin:refunds_refund_add")
    assert admin_client.get(add).status_code == 403
    assert admin_client.post(add, {"amount_cents": 5}).status_code == 403
    assert Refund.objects.count() == 2


def test_change_view_opens_read_only_and_a_post_is_refused(admin_client, audit):
    refund = audit["partial"]
    url = reverse("admin:refunds_refund_change", args=[refund.pk])

    page = admin_client.get(url)
    posted = admin_client.post(url, {"amount_cents": 1, "reason": "edited", "state": "FAILED"})

    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="_save"' not in html
    assert "$12.50" in html
    assert "Coach ill" in html
    assert posted.status_code == 403
    refund.refresh_from_db()
    assert (refund.amount_cents, refund.reason, refund.state) == (1250, "Coach ill", "DONE")


def test_delete_is_refused_and_the_delete_action_is_not_offered(admin_client, audit):
    refund = audit["partial"]
    delete = reverse("admin:refunds_refund_delete", args=[refund.pk])

    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    listing = admin_client.get(CHANGELIST)
    admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [refund.pk], "post": "yes"}
    )

    assert "delete_selected" not in listing.content.decode()
    assert [
        choice for choice, _ in listing.context_data["action_form"].fields["action"].choices
    ] == [
        "",
        "export_csv",
        "retry_failed",  # a new refund for a failed one; the failed one stays (test_admin_payments)
    ]
    assert Refund.objects.filter(pk=refund.pk).exists()


def test_payment_admin_is_read_only_too(admin_client, audit):
    payment = audit["partial"].payment
    change = reverse("admin:refunds_payment_change", args=[payment.pk])

    page = admin_client.get(change)

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert "$300.00" in page.content.decode()
    assert admin_client.post(change, {"amount_cents": 1}).status_code == 403
    assert admin_client.get(reverse("admin:refunds_payment_add")).status_code == 403
    assert (
        admin_client.get(reverse("admin:refunds_payment_delete", args=[payment.pk])).status_code
        == 403
    )


# --- the list: columns, filters, search, totals -----------------------------------------------


def test_list_shows_session_coach_student_money_kind_state_issuer_and_reason(admin_client, audit):
    refund = audit["partial"]
    session = refund.session

    html = admin_client.get(CHANGELIST).content.decode()

    session_url = reverse("admin:sessions_app_session_change", args=[session.pk])
    assert f'<a href="{session_url}">Session {session.pk}</a>' in html
    for text in [
        session.coach.email,
        session.student.email,
        "$12.50",
        "€30.00",
        "Partial refund",
        "Full refund",
        "Done",
        "Coach ill",
    ]:
        assert text in html


def test_filter_by_coach_lists_only_coaches_with_refunds_and_selects_theirs(admin_client, audit):
    partial_coach = audit["partial"].session.coach
    response = admin_client.get(CHANGELIST, {"coach": partial_coach.pk})

    coach_filter = next(
        spec
        for spec in response.context_data["cl"].filter_specs
        if isinstance(spec, CoachWithRefundsFilter)
    )
    assert [email for _, email in coach_filter.lookup_choices] == sorted(
        [partial_coach.email, audit["full"].session.coach.email]
    )
    assert audit["none_session"].coach.email not in dict(coach_filter.lookup_choices).values()
    assert _ids(response) == [audit["partial"].pk]


def test_filter_by_kind_and_state(admin_client, audit):
    assert _ids(admin_client.get(CHANGELIST, {"kind__exact": "full"})) == [audit["full"].pk]
    assert _ids(admin_client.get(CHANGELIST, {"kind__exact": "partial"})) == [audit["partial"].pk]
    assert _ids(admin_client.get(CHANGELIST, {"state__exact": "FAILED"})) == []


def test_bad_filter_value_shows_the_error_page_not_a_500(admin_client, audit):
    response = admin_client.get(CHANGELIST, {"coach": "abc"})
    assert (response.status_code, response["Location"]) == (302, f"{CHANGELIST}?e=1")


@pytest.mark.parametrize("field", ["student", "coach"])
def test_search_by_email_finds_that_persons_refunds(admin_client, audit, field):
    email = getattr(audit["full"].session, field).email
    assert _ids(admin_client.get(CHANGELIST, {"q": email})) == [audit["full"].pk]


def test_search_by_session_id_finds_its_refund(admin_client, audit):
    session_id = audit["partial"].session_id
    assert _ids(admin_client.get(CHANGELIST, {"q": str(session_id)})) == [audit["partial"].pk]
    assert _ids(admin_client.get(CHANGELIST, {"q": "no-such-thing"})) == []


@pytest.mark.parametrize("term", ["²", "#³", "\u0663", "9" * 30])
def test_search_for_a_non_ascii_or_oversize_number_searches_text_not_a_500(
    admin_client, audit, term
):
    response = admin_client.get(CHANGELIST, {"q": term})
    assert (response.status_code, _ids(response)) == (200, [])


@pytest.mark.parametrize("value", ["²", "9" * 30])
def test_coach_filter_with_a_non_ascii_or_oversize_number_shows_the_error_page(
    admin_client, audit, value
):
    response = admin_client.get(CHANGELIST, {"coach": value})
    assert (response.status_code, response["Location"]) == (302, f"{CHANGELIST}?e=1")


def test_totals_of_the_filtered_rows_per_currency(admin_client, audit):
    second = make_canceled_session(refund="partial", amount_cents=750, price_cents=30000)

    everything = admin_client.get(CHANGELIST)
    only_partial = admin_client.get(CHANGELIST, {"kind__exact": "partial"})

    assert everything.context_data["refund_totals"] == [
        {
            "currency": "EUR",
            "count": 1,
            "total": "€30.00",
            "done": "€30.00",
            "pending": "€0.00",
            "failed": "€0.00",
        },
        {
            "currency": "USD",
            "count": 2,
            "total": "$20.00",
            "done": "$20.00",
            "pending": "$0.00",
            "failed": "$0.00",
        },
    ]
    assert [row["currency"] for row in only_partial.context_data["refund_totals"]] == ["USD"]
    assert "Totals of the 3 refunds these filters select" in everything.content.decode()
    assert second.refunds.get().amount_cents == 750


def test_date_hierarchy_narrows_to_a_day(client, audit, time_machine):
    time_machine.move_to("2031-03-04 12:00Z")
    later = make_canceled_session(refund="full")
    client.force_login(SuperuserFactory())

    response = client.get(
        CHANGELIST, {"created_at__year": 2031, "created_at__month": 3, "created_at__day": 4}
    )
    assert _ids(response) == [later.refunds.get().pk]


# --- CSV --------------------------------------------------------------------------------------


def test_csv_action_exports_the_selected_refunds_with_fixed_columns(admin_client, audit):
    refund = audit["partial"]
    session = refund.session

    response = admin_client.post(
        CHANGELIST, {"action": "export_csv", "_selected_action": [refund.pk]}
    )

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="refunds-')
    header, *rows = _csv(response)
    assert header == CSV_HEADER
    assert len(rows) == 1
    row = dict(zip(header, rows[0], strict=True))
    assert row == {
        "refund_id": str(refund.pk),
        "created_at_utc": refund.created_at.isoformat(),
        "session_id": str(session.pk),
        "package_id": str(session.package_id),
        "coach_email": session.coach.email,
        "student_email": session.student.email,
        "amount": "12.50",
        "amount_cents": "1250",
        "currency": "USD",
        "kind": "partial",
        "state": "DONE",
        "gateway": "manual",
        "reference": f"manual-refund-{refund.pk}",
        "issued_by_email": session.coach.email,
        "reason": "Coach ill",
        "settled_at_utc": refund.settled_at.isoformat(),
        "failure_reason": "",
        "payment_reference": f"manual-payment-{refund.payment_id}",
        "retry_of_id": "",
    }


def test_csv_link_exports_every_row_the_filters_select(admin_client, audit):
    make_refund_rows(150, [audit["partial"].session])  # more than one admin page

    response = admin_client.get(EXPORT, {"kind__exact": "partial"})

    header, *rows = _csv(response)
    assert header == CSV_HEADER
    assert len(rows) == 76  # the partial refund and 75 of the 150 rows (every other is partial)
    assert {row[CSV_HEADER.index("kind")] for row in rows} == {"partial"}
    assert str(audit["full"].pk) not in {row[0] for row in rows}


def test_csv_link_is_on_the_list_with_the_current_filters(admin_client, audit):
    html = admin_client.get(CHANGELIST, {"kind__exact": "full"}).content.decode()
    assert f'href="{EXPORT}?kind__exact=full"' in html


def test_csv_neutralises_formulas_in_free_text(admin_client):
    session = make_canceled_session(
        refund="partial", amount_cents=100, reason='=HYPERLINK("http://x")'
    )

    _, row = _csv(admin_client.get(EXPORT))

    assert row[CSV_HEADER.index("reason")] == '\'=HYPERLINK("http://x")'
    assert session.refunds.get().reason == '=HYPERLINK("http://x")'


def test_csv_link_with_a_bad_filter_goes_back_to_the_list(admin_client, audit):
    response = admin_client.get(EXPORT, {"coach": "abc"})
    assert (response.status_code, response["Location"]) == (302, f"{CHANGELIST}?e=1")


# --- query budget -----------------------------------------------------------------------------

REFUND_LIST_QUERIES = 9


@pytest.mark.parametrize(
    "params",
    [{}, {"kind__exact": "partial", "state__exact": "DONE"}, {"q": "example.com"}],
    ids=["plain", "filtered", "searched"],
)
def test_list_of_1000_refunds_renders_within_a_fixed_query_budget(
    admin_client, django_assert_max_num_queries, params
):
    sessions = [make_session("CONFIRMED") for _ in range(4)]
    sessions.append(make_session("CONFIRMED", currency="EUR"))
    make_refund_rows(1000, sessions)

    with django_assert_max_num_queries(REFUND_LIST_QUERIES):
        response = admin_client.get(CHANGELIST, params)

    assert response.status_code == 200
    assert len(response.context_data["cl"].result_list) == 100
    assert [row["currency"] for row in response.context_data["refund_totals"]] == ["EUR", "USD"]


def test_change_view_of_a_refund_makes_a_fixed_number_of_queries(
    admin_client, audit, django_assert_max_num_queries
):
    with django_assert_max_num_queries(9):
        response = admin_client.get(
            reverse("admin:refunds_refund_change", args=[audit["partial"].pk])
        )
    assert response.status_code == 200


def test_view_permission_without_staff_status_does_not_open_refunds(rf, audit):
    from django.contrib import admin

    user = UserFactory(is_staff=False)
    user.user_permissions.add(Permission.objects.get(codename="view_refund"))
    request = rf.get(CHANGELIST)
    request.user = user

    assert admin.site._registry[Refund].has_view_permission(request) is False
