"""Every string cell of a CSV export is neutralised against formula (CSV) injection."""

import csv
import io

import pytest
from django.urls import reverse

from accounts.models import User
from core.csv import safe_cell, safe_row, safe_writer
from refunds.admin import CSV_HEADER, refund_csv_row
from tests.factories import make_canceled_session

EXPLOIT_EMAIL = "=cmd|'/Ccalc'!A0@example.com"


@pytest.mark.parametrize(
    "text",
    [
        "=1+1",
        "+1+1",
        "-1+1",
        "@SUM(A1)",
        "\t=1+1",
        "\r=1+1",
        "\n=1+1",
        "  =1+1",
        "\u00a0=1+1",
        "\uff1d1+1",  # full-width equals sign
        EXPLOIT_EMAIL,
        '=HYPERLINK("http://x")',
    ],
)
def test_a_cell_a_spreadsheet_would_run_gets_a_quote_in_front(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize(
    "value",
    ["sam@example.com", "Coach ill", "", "12.50", "-12.50", "+3", "a=b", 42, -5, None, 1.5],
)
def test_plain_text_numbers_and_non_text_are_unchanged(value):
    assert safe_cell(value) == value


def test_the_writer_neutralises_every_cell_of_every_row():
    out = io.StringIO()
    writer = safe_writer(out)
    writer.writerow(["id", "=A1", 3])
    writer.writerows([["@x", "ok"], ["-2", "-x"]])

    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["id", "'=A1", "3"],
        ["'@x", "ok"],
        ["-2", "'-x"],
    ]
    assert safe_row(["+x", 1]) == ["'+x", 1]


def _export(admin_client) -> list[dict]:
    response = admin_client.get(reverse("admin:refunds_refund_export"))
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.mark.django_db
def test_refund_export_neutralises_emails_names_and_references(admin_client):
    session = make_canceled_session(refund="partial", amount_cents=100, reason="-2+3")
    User.objects.filter(pk=session.coach_id).update(email=EXPLOIT_EMAIL)
    User.objects.filter(pk=session.student_id).update(email="+student@example.com")
    refund = session.refunds.get()
    type(refund).objects.filter(pk=refund.pk).update(reference="@ref-1")

    (row,) = _export(admin_client)

    assert row["coach_email"] == "'" + EXPLOIT_EMAIL
    assert row["student_email"] == "'+student@example.com"
    assert row["issued_by_email"] == "'" + EXPLOIT_EMAIL  # the coach issued it
    assert row["reference"] == "'@ref-1"
    assert row["reason"] == "'-2+3"
    assert row["amount_cents"] == "100"


@pytest.mark.django_db
def test_no_text_cell_of_a_refund_row_starts_a_formula():
    session = make_canceled_session(refund="partial", amount_cents=100, reason="=x")
    User.objects.filter(pk=session.coach_id).update(email="=coach@example.com")
    refund = session.refunds.select_related("session__coach", "payment").get()

    row = refund_csv_row(refund)

    assert len(row) == len(CSV_HEADER)
    assert row[CSV_HEADER.index("coach_email")] == "'=coach@example.com"
    assert row[CSV_HEADER.index("reason")] == "'=x"
    assert all(safe_cell(cell) == cell for cell in row), row  # nothing left to neutralise
