"""The admin reads one way: one app called Accounts, one date format, money columns first."""

import re
from datetime import UTC, datetime

import pytest
import time_machine

from tests.factories import SuperuserFactory, make_canceled_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(SuperuserFactory())
    return client


def test_the_admin_index_names_each_app_once(admin_client):
    html = admin_client.get("/admin/").content.decode()
    captions = re.findall(r'<caption>\s*<a[^>]*class="section"[^>]*>([^<]+)</a>', html)

    assert "Users and coaches" in captions
    assert len(captions) == len(set(captions))


def test_admin_lists_show_dates_in_one_format(admin_client):
    with time_machine.travel(datetime(2026, 12, 2, 11, 5, tzinfo=UTC), tick=False):
        make_canceled_session(refund="full")

    for path in ["/admin/refunds/refund/", "/admin/refunds/payment/"]:
        html = admin_client.get(path).content.decode()
        cells = re.findall(r'<td class="field-created_at[^"]*">([^<]+)</td>', html)
        assert cells, path
        assert all(re.fullmatch(r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2}", c) for c in cells)


def test_the_refund_list_puts_money_first(admin_client):
    make_canceled_session(refund="partial", amount_cents=500)
    html = admin_client.get("/admin/refunds/refund/").content.decode()
    columns = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', html)
    assert columns[:4] == ["amount_display", "kind", "state_display", "reason_short"]
