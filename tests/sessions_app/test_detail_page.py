"""The session page (issue 13): the other side's name and the time lead, the status shows once,
the primary action per status, the back link per ?from=, messages that name the new status and
where the session lives, and the refund drawer's choices."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from policies.services import policy_update
from refunds.models import Refund
from sessions_app import selectors
from sessions_app.forms import AMOUNT_NEEDS_PARTIAL
from sessions_app.models import Session
from tests.conftest import messages_of
from tests.factories import CoachFactory
from tests.sessions_app.test_views_coach import booked, post, proposed

NOW = datetime(2030, 1, 10, 12, 0, tzinfo=UTC)
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("coaches_decide_refunds"),
    pytest.mark.time_machine(NOW, tick=False),
]
WHEN = "Sat 12 Jan, 13:00\u201314:00 CET"


@pytest.fixture
def coach():
    return CoachFactory(timezone="Europe/Berlin")


def page(client, session, query=""):
    return client.get(reverse("sessions:detail", args=[session.pk]) + query).content.decode()


def h1(html):
    return re.search(r"<h1>(.*?)</h1>", html, re.S).group(1)


def test_title_leads_with_the_students_name_and_the_time_for_the_coach(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(coach)
    html = page(client, session)
    title = re.sub(r"<[^>]+>", "", h1(html))
    assert title == f"{session.student.name} · {WHEN}"
    assert f"Session {session.number} of {session.package.session_count}" in html


def test_title_leads_with_the_coachs_name_for_the_student(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(session.student)
    title = re.sub(r"<[^>]+>", "", h1(page(client, session)))
    assert title.startswith(f"{coach.name} · ")


def test_status_shows_once_and_no_internal_words(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)
    html = page(client, session)
    assert html.count('class="badge badge--confirmed') == 1
    assert "<dt>Status</dt>" not in html
    assert "Price share" not in html
    assert "<dt>Session value</dt>" in html


def test_request_accept_is_primary_decline_next_to_it_cancel_set_apart(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(coach)
    html = page(client, session)
    accept = html.index('<button type="submit">Accept</button>')
    decline = html.index('<button type="submit" class="secondary" form="decline-form">Decline')
    other = html.index("Other options")
    cancel = html.index("button--danger-quiet")
    assert accept < decline < other < cancel
    assert 'button--danger"' not in html  # no red filled button beside Accept


def test_confirmed_reschedule_primary_cancel_set_apart(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)
    html = page(client, session)
    assert re.search(r'<a class="button" href="[^"]*/reschedule/[^"]*">Reschedule</a>', html)
    assert html.index(">Reschedule</a>") < html.index("Other options")


def test_rescheduling_confirm_is_primary_others_secondary(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    proposed(session, NOW + timedelta(days=3), session.student)
    client.force_login(coach)
    html = page(client, session)
    assert '<button type="submit">Confirm the new time</button>' in html
    assert 'class="button button--secondary"' in html  # Propose another time
    assert '<button type="submit" class="secondary">Keep the current time</button>' in html


@pytest.mark.parametrize(
    ("query", "label", "url_name"),
    [
        ("?from=tasks", "Tasks", "sessions:tasks"),
        ("?from=upcoming", "Upcoming", "sessions:upcoming"),
        ("?from=completed", "Completed", "sessions:completed"),
        ("?from=canceled", "Canceled", "sessions:canceled"),
        ("?from=calendar", "Calendar", "feeds:week"),
        ("?from=evil", "Upcoming", "sessions:upcoming"),
        ("", "Upcoming", "sessions:upcoming"),
    ],
)
def test_back_link_per_from_key(client, coach, query, label, url_name):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)
    assert f'<a href="{reverse(url_name)}">← {label}</a>' in page(client, session, query)


def test_back_link_for_a_request_without_from_is_tasks(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(coach)
    assert f'<a href="{reverse("sessions:tasks")}">← Tasks</a>' in page(client, session)


def test_back_link_for_a_student_is_my_sessions_even_with_a_coach_key(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(session.student)
    html = page(client, session, "?from=tasks")
    assert f'<a href="{reverse("sessions:my_sessions")}">← My sessions</a>' in html


def test_accept_returns_to_the_detail_with_the_same_from_and_names_confirmed(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(coach)
    detail = reverse("sessions:detail", args=[session.pk]) + "?from=tasks"
    assert f'name="next" value="{detail}"' in page(client, session, "?from=tasks")
    response = post(client, "sessions:accept", session, next=detail)
    assert response.url == detail
    assert messages_of(response) == [
        f"Confirmed: {session.student.name}'s session on {WHEN} is in Upcoming and on your "
        "calendar."
    ]


def test_decline_message_names_unscheduled(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(coach)
    response = post(client, "sessions:decline", session)
    assert messages_of(response)[0].startswith("Declined: the session is back to Unscheduled;")


def test_withdraw_message_names_unscheduled_and_my_sessions(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(session.student)
    response = post(client, "sessions:withdraw", session)
    assert messages_of(response)[0].startswith("Withdrawn: the session is back to Unscheduled in")


def test_cancel_message_names_canceled_and_the_refund(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)
    response = post(client, "sessions:cancel", session, refund="full")
    (message,) = messages_of(response)
    assert message.startswith("Canceled: ") and "is under Canceled; a full refund of" in message


def test_cancel_keeps_from_through_next(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)
    detail = reverse("sessions:detail", args=[session.pk]) + "?from=upcoming"
    response = post(client, "sessions:cancel", session, refund="none", next=detail)
    assert response.url == detail


@pytest.mark.parametrize("refund", ["full", "none"])
def test_an_amount_without_partial_refund_is_refused_and_changes_nothing(client, coach, refund):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)
    response = post(client, "sessions:cancel", session, refund=refund, amount="12.50")
    assert response.status_code == 200
    assert AMOUNT_NEEDS_PARTIAL in response.content.decode()
    assert Session.objects.get(pk=session.pk).status == "CONFIRMED"
    assert Refund.objects.count() == 0


def test_drawer_preselects_nothing_and_prompts(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)
    html = page(client, session)
    assert " checked" not in html.split('id="refund-drawer"')[1]
    assert f"<legend>Choose what {session.student.name} gets back</legend>" in html
    assert 'style="' not in html.split('id="refund-drawer"')[1]


@pytest.mark.parametrize(
    ("rule", "checked", "disabled"),
    [
        ("full_refund", "full", {"partial", "credit", "none"}),
        ("makeup_credit", "credit", {"partial", "none"}),
        ("student_choice", "credit", {"partial", "none"}),
        ("coach_decides", None, set()),
    ],
)
def test_drawer_preselects_the_coach_side_rule_and_offers_nothing_less(
    client, coach, rule, checked, disabled
):
    policy_update(coach=coach, coach_cancel_rule=rule)
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)
    html = client.get(reverse("sessions:cancel", args=[session.pk])).content.decode()
    radios = {
        re.search(r'value="(\w+)"', tag).group(1): tag
        for tag in re.findall(r'<input type="radio" name="refund"[^>]*>', html)
    }
    assert [value for value, tag in radios.items() if " checked" in tag] == (
        [checked] if checked else []
    )
    assert {value for value, tag in radios.items() if " disabled" in tag} == disabled


def test_cancellation_rate_threshold(client, coach):
    assert not selectors.CancellationRate(canceled=0, booked=0, days=90).is_high
    assert not selectors.CancellationRate(canceled=0, booked=5, days=90).is_high
    assert selectors.CancellationRate(canceled=1, booked=10, days=90).is_high
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)
    html = page(client, session)
    assert "Canceling too often hurts students" not in html
    assert "refund-rate--ok" in html and "0% · OK" in html
