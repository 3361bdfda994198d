"""The outbox in the admin: read-only lists with filters and search, a delivery's facts and
email, and "Send again" for failed deliveries only, by those allowed to."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.core import mail
from django.urls import reverse

from notifications import services as outbox
from notifications.models import Delivery, DeliveryKind, DeliveryStatus
from sessions_app import services
from sessions_app.lifecycle import Action
from tests.factories import StaffFactory, SuperuserFactory
from tests.notifications.helpers import fresh

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:notifications_delivery_changelist")


@pytest.fixture
def deliveries(people):
    """The booking's email to the coach (FAILED) and the acceptance's to the student (SENT);
    the purchase's receipt and "sold" notice went before."""
    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=fresh(session), actor=coach)
    failed = Delivery.objects.get(event__action=Action.BOOK)
    Delivery.objects.filter(pk=failed.pk).update(
        status=DeliveryStatus.FAILED, attempts=8, last_error="SMTPServerDisconnected: gone"
    )
    sent = Delivery.objects.get(event__action=Action.ACCEPT, recipient=student)
    assert outbox.delivery_send(delivery_id=sent.pk) == "sent"
    mail.outbox.clear()
    return fresh(failed), fresh(sent)


def _listed(response) -> list[int]:
    return sorted(delivery.pk for delivery in response.context_data["cl"].result_list)


def test_the_list_filters_by_status_kind_and_date_and_searches_by_recipient(
    admin_client, deliveries, people
):
    failed, _sent = deliveries
    coach, student = people[0], people[1]

    everything = admin_client.get(CHANGELIST)
    by_status = admin_client.get(CHANGELIST, {"status__exact": "FAILED"})
    by_kind = admin_client.get(CHANGELIST, {"kind__exact": DeliveryKind.PURCHASE_RECEIPT})
    today = admin_client.get(  # the date filter's "Today"
        CHANGELIST,
        {
            "created_at__gte": "2025-01-06 00:00:00+00:00",
            "created_at__lt": "2025-01-07 00:00:00+00:00",
        },
    )
    by_email = admin_client.get(CHANGELIST, {"q": student.email})
    by_number = admin_client.get(CHANGELIST, {"q": f"#{failed.pk}"})

    assert everything.status_code == 200
    assert len(everything.context_data["cl"].result_list) == 5  # acceptance: both sides
    assert _listed(by_status) == [failed.pk]
    assert [d.recipient for d in by_kind.context_data["cl"].result_list] == [student]
    assert len(today.context_data["cl"].result_list) == 5
    assert _listed(by_email) == sorted(
        Delivery.objects.filter(recipient=student).values_list("pk", flat=True)
    )
    assert _listed(by_number) == [failed.pk]
    assert coach.email in everything.content.decode()


def test_a_deliverys_page_shows_its_facts_and_email_and_cannot_be_changed(admin_client, deliveries):
    failed, _ = deliveries
    url = reverse("admin:notifications_delivery_change", args=[failed.pk])

    page = admin_client.get(url)
    posted = admin_client.post(url, {"status": "SENT"})

    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="_save"' not in html
    assert "SMTPServerDisconnected: gone" in html
    assert "New request from Sam Student, Wed 8 Jan, 14:00 CET" in html  # the email preview
    assert "&quot;action&quot;: &quot;book&quot;" in html  # the facts
    assert posted.status_code == 403
    assert fresh(failed).status == DeliveryStatus.FAILED


def test_send_again_sends_a_failed_delivery_once_and_leaves_the_others(
    admin_client, deliveries, django_capture_on_commit_callbacks, people
):
    failed, sent = deliveries

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGELIST,
            {"action": "send_again", "_selected_action": [failed.pk, sent.pk]},
            follow=True,
        )

    messages = [str(message) for message in response.context["messages"]]
    assert messages == [
        "1 email(s) queued to be sent again.",
        "1 left as they are: only a failed email can be sent again (status \u201cFailed\u201d).",
    ]
    assert [message.to for message in mail.outbox] == [[people[0].email]]
    assert (fresh(failed).status, fresh(sent).status) == (DeliveryStatus.SENT, DeliveryStatus.SENT)
    assert LogEntry.objects.get(object_id=str(failed.pk)).change_message == (
        "Sent again (was failed after 8 attempt(s): SMTPServerDisconnected: gone)"
    )


def test_send_again_needs_the_permission(client, deliveries):
    failed, _ = deliveries
    viewer = StaffFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_delivery"))
    client.force_login(viewer)

    listing = client.get(CHANGELIST)
    client.post(CHANGELIST, {"action": "send_again", "_selected_action": [failed.pk]})

    assert listing.context_data["action_form"] is None  # no action offered
    assert fresh(failed).status == DeliveryStatus.FAILED

    viewer.user_permissions.add(Permission.objects.get(codename="resend_delivery"))
    allowed = client.get(CHANGELIST)
    assert "send_again" in allowed.content.decode()


def test_only_staff_see_the_outbox(client, deliveries, people):
    client.force_login(people[0])

    assert client.get(CHANGELIST).status_code == 302  # to the admin's login


def test_a_superuser_sees_send_again(client, deliveries):
    client.force_login(SuperuserFactory())

    assert "Send again (failed ones)" in client.get(CHANGELIST).content.decode()


def test_send_again_is_logged_in_its_own_transaction_or_not_at_all(
    admin_client, deliveries, monkeypatch
):
    from notifications.admin import DeliveryAdmin

    failed, _sent = deliveries

    def history_down(self, request, obj, message):
        raise RuntimeError("the admin's history could not be written")

    monkeypatch.setattr(DeliveryAdmin, "log_change", history_down)

    with pytest.raises(RuntimeError):
        admin_client.post(CHANGELIST, {"action": "send_again", "_selected_action": [failed.pk]})

    # No history entry, so no resend either: the two commit or roll back together.
    assert (fresh(failed).status, failed.attempts) == (DeliveryStatus.FAILED, 8)
    assert (LogEntry.objects.filter(object_id=str(failed.pk)).count(), mail.outbox) == (0, [])
