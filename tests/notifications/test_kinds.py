"""The kinds beyond status changes: the purchase receipt and "package sold", the warnings before
a request or a proposal expires, and the calendar conflict; each sent once."""

from datetime import datetime, timedelta

import pytest
from django.core import mail

from calendars import services as calendar_services
from calendars import sync as calendar_sync
from notifications import services as outbox
from notifications import tasks
from notifications.models import Delivery, DeliveryKind, DeliveryStatus
from sessions_app import services
from tests.factories import (
    CoachFactory,
    ExternalCalendarFactory,
    OfferingFactory,
    StudentFactory,
)
from tests.notifications.helpers import NOW, SITE, START, fresh, html_of, open_window, run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("coaches_decide_refunds")]


# --- purchase --------------------------------------------------------------------------------


def test_a_card_purchase_sends_its_receipt_only_once_paid_with_the_payment_reference(
    stripe_settings, localstripe, django_capture_on_commit_callbacks
):
    from refunds import services as refund_services
    from tests.factories import make_card_package

    with django_capture_on_commit_callbacks(execute=True):
        package = make_card_package(localstripe, card="", session_count=2, price_cents=9000)
    assert (mail.outbox, Delivery.objects.count()) == ([], 0)

    with django_capture_on_commit_callbacks(execute=True):
        refund_services.payment_pay_with_card(
            payment=package.payment, card_token=localstripe.card_token()
        )

    package.payment.refresh_from_db()
    receipt = next(email for email in mail.outbox if email.to == [package.student.email])
    assert f"Paid by card (payment reference {package.payment.reference})." in receipt.body
    assert "settle the payment" not in receipt.body
    assert Delivery.objects.filter(kind=DeliveryKind.PURCHASE_RECEIPT).count() == 1


def test_a_purchase_sends_the_student_a_receipt_and_tells_the_coach(
    clock, django_capture_on_commit_callbacks
):
    coach = CoachFactory(timezone="Europe/Berlin", display_name="Carla Coach")
    student = StudentFactory(timezone="America/New_York", display_name="Sam Student")
    offering = OfferingFactory(
        coach=coach, title="Chess basics", session_count=3, price_cents=30000, currency="EUR"
    )

    package, _ = run(
        django_capture_on_commit_callbacks,
        services.package_purchase,
        student=student,
        offering=offering,
    )

    receipt, sold = mail.outbox
    first = package.sessions.get(number=1)
    assert (receipt.to, sold.to) == ([student.email], [coach.email])
    assert receipt.subject == "Receipt: Chess basics from Carla Coach"
    assert "You paid €300.00 for 3 sessions of 60 minutes." in receipt.body
    assert "You settle the payment with Carla Coach directly." in receipt.body
    assert "Bought:       Mon 6 Jan 2025, 04:00 EST" in receipt.body
    assert f"Order:        #{package.pk}" in receipt.body
    assert f"Book your first session: {SITE}/sessions/{first.pk}/" in receipt.body
    assert f'href="{SITE}/sessions/{first.pk}/"' in html_of(receipt)
    assert sold.subject == "Sam Student bought \u201cChess basics\u201d"
    assert "Sam Student bought \u201cChess basics\u201d (3 sessions) for €300.00." in sold.body
    assert "Bought:       Mon 6 Jan 2025, 10:00 CET" in sold.body
    kinds = sorted(Delivery.objects.values_list("kind", "key"))
    assert kinds == [
        (DeliveryKind.PACKAGE_SOLD, f"package_sold:package:{package.pk}"),
        (DeliveryKind.PURCHASE_RECEIPT, f"purchase_receipt:package:{package.pk}"),
    ]


def test_a_purchase_bought_twice_with_one_token_is_told_once(
    clock, django_capture_on_commit_callbacks
):
    student, offering = StudentFactory(), OfferingFactory()

    for _ in range(2):
        run(
            django_capture_on_commit_callbacks,
            services.package_purchase,
            student=student,
            offering=offering,
            purchase_token="one-page",
        )

    assert len(mail.outbox) == 2  # one receipt, one "sold"
    assert Delivery.objects.count() == 2


# --- a request about to expire ------------------------------------------------------------------


def _requested(people):
    _coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    outbox.deliveries_send_due()  # the request's own email
    mail.outbox.clear()
    return fresh(session)


def test_the_coach_is_warned_once_six_hours_before_a_request_expires(people, clock):
    coach = people[0]
    session = _requested(people)
    deadline = session.request_expires_at  # NOW + the coach's 48 h window
    clock.move_to(deadline - timedelta(hours=6, seconds=1))
    too_early = tasks.warn_expiring.delay().get()

    clock.move_to(deadline - timedelta(hours=5, minutes=50))
    warned = tasks.warn_expiring.delay().get()
    again = tasks.warn_expiring.delay().get()

    assert (too_early, warned, again) == (0, 1, 0)
    [message] = mail.outbox
    assert message.to == [coach.email]
    assert message.subject == "Answer soon: Sam Student's request expires in about 6 hours"
    assert "Accept or decline it before Wed 8 Jan 2025, 10:00 CET" in message.body
    assert "Answer by:    Wed 8 Jan 2025, 10:00 CET" in message.body
    assert "When:         Wed 8 Jan 2025, 14:00\u201315:00 CET (Europe/Berlin)" in message.body
    assert f"{SITE}/sessions/{session.pk}/" in message.body
    delivery = Delivery.objects.get(kind=DeliveryKind.REQUEST_EXPIRING)
    assert delivery.key == f"request_expiring:slot:{session.slot_id}"


def test_a_request_made_inside_the_warning_time_is_not_warned(people, clock, settings):
    settings.NOTIFICATIONS_EXPIRY_WARNING_HOURS = 50  # longer than the 48 h window
    session = _requested(people)
    clock.move_to(session.request_expires_at - timedelta(hours=1))

    assert tasks.warn_expiring.delay().get() == 0
    assert mail.outbox == []


def test_a_warning_whose_request_was_answered_before_it_went_is_skipped(people, clock):
    coach = people[0]
    session = _requested(people)
    clock.move_to(session.request_expires_at - timedelta(hours=5))
    [warning] = outbox.deliveries_warn_expiring()
    services.session_accept(session=session, actor=coach)  # before the warning went

    assert outbox.delivery_send(delivery_id=warning) == "skipped"
    assert fresh(Delivery.objects.get(pk=warning)).last_error == (
        "Not sent: the request was answered or withdrawn."
    )


# --- a proposal about to expire -----------------------------------------------------------------


def test_the_side_that_must_answer_a_proposal_is_warned_once_before_it_expires(
    people, clock, django_capture_on_commit_callbacks
):
    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=fresh(session), actor=coach)
    proposed = open_window(coach, START + timedelta(days=1))
    proposal = services.session_propose_reschedule(
        session=fresh(session), start=proposed, actor=coach
    )
    outbox.deliveries_send_due()
    mail.outbox.clear()
    clock.move_to(proposal.expires_at - timedelta(hours=3))

    warned = tasks.warn_expiring.delay().get()
    again = tasks.warn_expiring.delay().get()

    assert (warned, again) == (1, 0)
    [message] = mail.outbox
    assert message.to == [student.email]
    assert message.subject == "Answer soon: the time Carla Coach proposed expires in about 3 hours"
    assert (
        "Carla Coach proposed to move session 1 of \u201cChess basics\u201d to "
        "Thu 9 Jan 2025, 08:00\u201309:00 EST (America/New_York)."
    ) in message.body
    assert (
        "If nobody answers, the session stays at "
        "Wed 8 Jan 2025, 08:00\u201309:00 EST (America/New_York)."
    ) in message.body
    assert "Answer by:    Wed 8 Jan 2025, 04:00 EST" in message.body
    assert Delivery.objects.get(kind=DeliveryKind.PROPOSAL_EXPIRING).key == (
        f"proposal_expiring:{proposal.pk}:to:{student.pk}"
    )


# --- a busy time on an agreed session -----------------------------------------------------------


def _agreed(people):
    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)
    services.session_accept(session=fresh(session), actor=coach)
    outbox.deliveries_send_due()
    mail.outbox.clear()
    return fresh(session)


@pytest.fixture
def busy_calendar(monkeypatch):
    """The coach's external calendar says what `busy.times` holds (no network)."""

    class Busy:
        times: list[tuple[datetime, datetime]] = []

    def fetch_as_completed(jobs, **kwargs):
        for job in jobs:
            yield calendar_sync.FetchOutcome(calendar_id=job["calendar_id"], busy=list(Busy.times))

    monkeypatch.setattr(calendar_sync, "fetch_as_completed", fetch_as_completed)
    return Busy


def _sync(capture):
    run(capture, calendar_services.external_calendars_sync)


def test_a_busy_time_on_an_agreed_session_tells_the_coach_once(
    people, busy_calendar, django_capture_on_commit_callbacks
):
    coach = people[0]
    session = _agreed(people)
    ExternalCalendarFactory(coach=coach)
    busy_calendar.times = [(START + timedelta(minutes=30), START + timedelta(minutes=90))]

    _sync(django_capture_on_commit_callbacks)
    _sync(django_capture_on_commit_callbacks)

    [message] = mail.outbox
    assert message.to == [coach.email]
    assert (
        message.subject == "Calendar conflict: Chess basics with Sam Student, Wed 8 Jan, 14:00 CET"
    )
    assert (
        "Your calendar now shows you busy Wed 8 Jan 2025, 14:30\u201315:30 CET (Europe/Berlin), "
        "which overlaps your session with Sam Student at "
        "Wed 8 Jan 2025, 14:00\u201315:00 CET (Europe/Berlin)."
    ) in message.body
    assert "The session has not moved." in message.body
    assert f"{SITE}/sessions/{session.pk}/" in message.body
    assert fresh(session).slot_id == session.slot_id


def test_a_new_busy_time_is_a_new_conflict_and_a_kept_time_hears_only_of_later_ones(
    people, busy_calendar, django_capture_on_commit_callbacks, clock
):
    coach = people[0]
    session = _agreed(people)
    ExternalCalendarFactory(coach=coach)
    first = (START, START + timedelta(minutes=30))
    busy_calendar.times = [first]
    _sync(django_capture_on_commit_callbacks)
    calendar_services.reservation_keep_despite_busy(slot=session.slot, coach=coach)
    clock.move_to(NOW + timedelta(minutes=15))

    _sync(django_capture_on_commit_callbacks)  # the kept busy time: nothing new
    kept = len(mail.outbox)
    busy_calendar.times = [first, (START + timedelta(minutes=40), START + timedelta(minutes=50))]
    _sync(django_capture_on_commit_callbacks)

    assert (kept, len(mail.outbox)) == (1, 2)
    assert "14:40\u201314:50 CET" in mail.outbox[1].body
    assert Delivery.objects.filter(kind=DeliveryKind.CALENDAR_CONFLICT).count() == 2


def test_a_busy_time_next_to_a_session_or_on_a_request_tells_nobody(
    people, busy_calendar, django_capture_on_commit_callbacks
):
    coach, student, session, start = people
    services.session_book(session=session, start=start, actor=student)  # a request only
    ExternalCalendarFactory(coach=coach)
    busy_calendar.times = [(START, START + timedelta(hours=1))]

    _sync(django_capture_on_commit_callbacks)

    assert not Delivery.objects.filter(kind=DeliveryKind.CALENDAR_CONFLICT).exists()


def test_a_conflict_whose_session_was_canceled_before_it_went_is_skipped(people, busy_calendar):
    coach = people[0]
    session = _agreed(people)
    ExternalCalendarFactory(coach=coach)
    busy_calendar.times = [(START, START + timedelta(hours=1))]
    calendar_services.external_calendars_sync()  # the send task never runs
    services.session_cancel(session=session, actor=coach, refund="none")

    outbox.deliveries_send_due()

    conflict = Delivery.objects.get(kind=DeliveryKind.CALENDAR_CONFLICT)
    assert conflict.status == DeliveryStatus.SKIPPED
    assert [m.subject for m in mail.outbox if m.subject.startswith("Calendar")] == []


# --- language and layout -------------------------------------------------------------------------


def test_emails_are_in_the_sites_language(people, settings, django_capture_on_commit_callbacks):
    settings.LANGUAGE_CODE = "en-gb"
    _coach, student, session, start = people

    run(
        django_capture_on_commit_callbacks,
        services.session_book,
        session=session,
        start=start,
        actor=student,
    )

    assert '<html lang="en-gb">' in html_of(mail.outbox[0])
