"""Credit expiry (issue 15): the expiry set when credits come into being, expired credits refused
for booking, the coach's extension (bounded, audited), the 14-day and 2-day reminders, and the
pages that show it all.

The clock is frozen at NOW; an offering whose credits last 90 days expires at EXPIRES.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.admin.models import LogEntry
from django.core import mail
from django.urls import reverse

from core.errors import PermissionDenied
from notifications.models import Delivery, DeliveryKind, DeliveryStatus
from sessions_app import services
from sessions_app.expiry import ExpiryNotExtendable
from sessions_app.lifecycle import Status, TransitionNotAllowed
from sessions_app.models import Package, Session
from tests.conftest import messages_of
from tests.factories import CoachFactory, OfferingFactory, StudentFactory, make_package
from tests.sessions_app.test_views_helpers import db_state, iso, open_at

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
EXPIRES = NOW + timedelta(days=90)  # Sun 31 May 2026, 09:00 UTC
SITE = "https://coachbook.example"


@pytest.fixture(autouse=True)
def clock(settings):
    settings.SITE_URL = SITE
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def coach():
    return CoachFactory(display_name="Carla Coach")


@pytest.fixture
def student():
    return StudentFactory(display_name="Sam Student")


def expiring(coach, student, days: int = 90, **fields) -> Package:
    offering = OfferingFactory(
        coach=coach, title="Chess basics", credit_validity_days=days, **fields
    )
    return make_package(student=student, offering=offering)


def first_credit(package):
    return package.sessions.order_by("number").first()


def reminders() -> list[tuple[str, str]]:
    return sorted(
        Delivery.objects.filter(kind=DeliveryKind.CREDITS_EXPIRING).values_list(
            "facts__reminder", "status"
        )
    )


# --- the expiry is set when the credits come into being -------------------------------------------


def test_a_purchase_sets_the_expiry_the_offerings_days_after_it(coach, student):
    package = expiring(coach, student, days=90)

    assert Package.objects.get(pk=package.pk).expires_at == EXPIRES
    assert package.sessions.filter(status=Status.UNSCHEDULED).count() == 3


def test_credits_of_an_offering_without_validity_never_expire(coach, student):
    package = make_package(student=student, offering=OfferingFactory(coach=coach))

    assert Package.objects.get(pk=package.pk).expires_at is None


def test_a_card_purchase_counts_the_validity_from_the_payment_not_the_checkout(
    stripe_settings, localstripe, clock, coach, student
):
    from refunds import services as refund_services
    from tests.factories import make_card_package

    package = make_card_package(
        localstripe, card="", student=student, coach=coach, credit_validity_days=30
    )
    # The offering changes while the payment waits: the package keeps what was bought.
    package.offering.credit_validity_days = 7
    package.offering.save(update_fields=["credit_validity_days"])
    clock.move_to(NOW + timedelta(hours=5))

    refund_services.payment_pay_with_card(
        payment=package.payment, card_token=localstripe.card_token()
    )

    package.refresh_from_db()
    assert package.sessions.count() == 3
    assert package.expires_at == NOW + timedelta(hours=5) + timedelta(days=30)


def test_the_receipt_names_the_expiry(
    coach, student, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        expiring(coach, student, days=90)

    receipt = next(message for message in mail.outbox if message.to == [student.email])
    assert (
        "Book them by Sun 31 May 2026, 09:00 UTC: sessions not booked by then expire. "
        "You'll get a reminder 14 and 2 days before." in receipt.body
    )


# --- booking --------------------------------------------------------------------------------------


def test_booking_an_expired_credit_is_refused_and_changes_nothing(clock, coach, student):
    package = expiring(coach, student)
    session = first_credit(package)
    start = open_at(coach, EXPIRES + timedelta(days=2))
    clock.move_to(EXPIRES)
    before = db_state()

    with pytest.raises(TransitionNotAllowed) as refused:
        services.session_book(session=session, start=start, actor=student)

    assert refused.value.message == (
        "This session credit expired on 31 May 2026, so it can't be booked. "
        "Ask Carla Coach to extend it."
    )
    assert db_state() == before


def test_a_credit_can_be_booked_until_its_expiry(clock, coach, student):
    package = expiring(coach, student)
    session = first_credit(package)
    start = open_at(coach, EXPIRES + timedelta(days=2))
    clock.move_to(EXPIRES - timedelta(seconds=1))

    services.session_book(session=session, start=start, actor=student)

    session.refresh_from_db()
    assert session.status == Status.REQUESTED


def test_sessions_booked_before_the_expiry_are_not_affected(clock, coach, student):
    package = expiring(coach, student)
    session = first_credit(package)
    start = open_at(coach, EXPIRES + timedelta(days=1))
    clock.move_to(EXPIRES - timedelta(hours=1))
    services.session_book(session=session, start=start, actor=student)
    clock.move_to(EXPIRES + timedelta(minutes=1))  # the request is still open past the expiry

    services.session_accept(session=session, actor=coach)

    session.refresh_from_db()
    assert session.status == Status.CONFIRMED


# --- the coach extends ----------------------------------------------------------------------------


def test_the_coach_extends_the_credits_and_the_history_says_who_and_when(clock, coach, student):
    package = expiring(coach, student)
    clock.move_to(EXPIRES + timedelta(days=3))  # expired three days ago
    until = EXPIRES + timedelta(days=33)

    services.package_extend_expiry(package=package, actor=coach, until=until)

    assert Package.objects.get(pk=package.pk).expires_at == until
    [entry] = LogEntry.objects.filter(object_id=str(package.pk))
    assert (entry.user, entry.action_time, entry.get_edited_object()) == (
        coach,
        EXPIRES + timedelta(days=3),
        package,
    )
    assert entry.change_message == (
        f"Credits expiry extended by the coach ({coach.email}) from 2026-05-31 09:00 UTC "
        "to 2026-07-03 09:00 UTC."
    )
    # The expired credit can be booked again.
    session = first_credit(package)
    services.session_book(
        session=session, start=open_at(coach, until - timedelta(days=5)), actor=student
    )
    assert session.__class__.objects.get(pk=session.pk).status == Status.REQUESTED


@pytest.mark.parametrize("who", ["student", "other coach"])
def test_only_the_packages_coach_may_extend(coach, student, who):
    package = expiring(coach, student)
    actor = student if who == "student" else CoachFactory()

    with pytest.raises(PermissionDenied) as refused:
        services.package_extend_expiry(
            package=package, actor=actor, until=EXPIRES + timedelta(days=10)
        )

    assert refused.value.message == "Only the coach of this package can extend its credits."
    assert (Package.objects.get(pk=package.pk).expires_at, LogEntry.objects.count()) == (
        EXPIRES,
        0,
    )


@pytest.mark.parametrize(
    ("until", "message"),
    [
        (NOW - timedelta(minutes=1), "Choose a new expiry in the future."),
        (
            EXPIRES - timedelta(days=1),
            "The credits already run until 31 May 2026, 09:00 UTC; choose a later date to "
            "extend them.",
        ),
        (
            NOW + timedelta(days=1095, seconds=1),
            "Credits can be extended at most 1095 days ahead, until 1 Mar 2029.",
        ),
    ],
    ids=["in the past", "earlier than now", "too far ahead"],
)
def test_an_extension_is_bounded(coach, student, until, message):
    package = expiring(coach, student)

    with pytest.raises(ExpiryNotExtendable) as refused:
        services.package_extend_expiry(package=package, actor=coach, until=until)

    assert refused.value.message == message
    assert Package.objects.get(pk=package.pk).expires_at == EXPIRES


def test_the_farthest_extension_is_allowed(coach, student):
    package = expiring(coach, student)

    services.package_extend_expiry(package=package, actor=coach, until=NOW + timedelta(days=1095))

    assert Package.objects.get(pk=package.pk).expires_at == NOW + timedelta(days=1095)


def test_credits_that_never_expire_cannot_be_extended(coach, student):
    package = make_package(student=student, offering=OfferingFactory(coach=coach))

    with pytest.raises(ExpiryNotExtendable, match="never expire"):
        services.package_extend_expiry(package=package, actor=coach, until=EXPIRES)


# --- the reminders --------------------------------------------------------------------------------


def test_reminders_go_14_days_and_2_days_before_each_exactly_once(clock, coach, student):
    expiring(coach, student)
    mail.outbox.clear()

    clock.move_to(EXPIRES - timedelta(days=14, seconds=1))
    assert services.packages_remind_expiring() == 0  # not yet
    clock.move_to(EXPIRES - timedelta(days=14))
    assert services.packages_remind_expiring() == 1
    assert services.packages_remind_expiring() == 0  # a second run writes nothing
    clock.move_to(EXPIRES - timedelta(days=3))
    assert services.packages_remind_expiring() == 0
    clock.move_to(EXPIRES - timedelta(days=2))
    assert services.packages_remind_expiring() == 1
    assert services.packages_remind_expiring() == 0
    clock.move_to(EXPIRES + timedelta(days=1))
    assert services.packages_remind_expiring() == 0  # expired: nothing more

    assert reminders() == [("14d", DeliveryStatus.SENT), ("2d", DeliveryStatus.SENT)]
    assert [message.to for message in mail.outbox] == [[student.email], [student.email]]
    first, last = mail.outbox
    assert first.subject == "Your 3 sessions of “Chess basics” expire in 14 days"
    assert last.subject == "Your 3 sessions of “Chess basics” expire in 2 days"


def test_the_reminder_says_how_many_credits_when_they_expire_and_links_to_book(
    clock, coach, student
):
    package = expiring(coach, student)
    first, second, _third = package.sessions.order_by("number")
    services.session_book(
        session=first, start=open_at(coach, NOW + timedelta(days=3)), actor=student
    )
    mail.outbox.clear()
    clock.move_to(EXPIRES - timedelta(days=14))

    services.packages_remind_expiring()

    [email] = mail.outbox
    assert email.subject == "Your 2 sessions of “Chess basics” expire in 14 days"
    assert (
        "You still have 2 sessions of “Chess basics” with Carla Coach to book. They expire "
        "on Sun 31 May 2026, 09:00 UTC; after that they can no longer be booked." in email.body
    )
    assert "To book:      2 sessions" in email.body
    assert f"Book a session: {SITE}/sessions/{second.pk}/book/" in email.body
    html = next(body for body, kind in email.alternatives if kind == "text/html")
    assert f'href="{SITE}/sessions/{second.pk}/book/"' in html


def test_no_reminder_for_a_fully_booked_or_a_never_expiring_package(clock, coach, student):
    booked = expiring(coach, student)
    for number, session in enumerate(booked.sessions.order_by("number"), start=1):
        start = open_at(coach, NOW + timedelta(days=number))
        services.session_book(session=session, start=start, actor=student)
    make_package(student=student, offering=OfferingFactory(coach=coach))
    clock.move_to(EXPIRES - timedelta(days=14))

    assert services.packages_remind_expiring() == 0
    clock.move_to(EXPIRES - timedelta(days=2))
    assert services.packages_remind_expiring() == 0
    assert reminders() == []


def test_a_package_bought_within_a_reminders_lead_skips_that_reminder(clock, coach, student):
    expiring(coach, student, days=10)  # bought 10 days before its expiry: no 14-day reminder

    assert services.packages_remind_expiring() == 0
    clock.move_to(NOW + timedelta(days=8))
    assert services.packages_remind_expiring() == 1

    assert reminders() == [("2d", DeliveryStatus.SENT)]


def test_an_extension_that_moves_the_date_brings_new_reminders(clock, coach, student):
    package = expiring(coach, student)
    clock.move_to(EXPIRES - timedelta(days=2))
    assert services.packages_remind_expiring() == 1  # the 2-day one (the 14-day one was missed)
    new_expiry = EXPIRES + timedelta(days=10)
    services.package_extend_expiry(package=package, actor=coach, until=new_expiry)

    assert services.packages_remind_expiring() == 1  # 12 days left: the 14-day one, again
    clock.move_to(new_expiry - timedelta(days=2))
    assert services.packages_remind_expiring() == 1

    assert reminders() == [
        ("14d", DeliveryStatus.SENT),
        ("2d", DeliveryStatus.SENT),
        ("2d", DeliveryStatus.SENT),
    ]
    keys = Delivery.objects.filter(kind=DeliveryKind.CREDITS_EXPIRING).values_list("key", flat=True)
    assert len(set(keys)) == 3


def test_a_reminder_written_before_the_credits_were_booked_is_not_sent(
    clock, coach, student, monkeypatch
):
    from notifications import services as outbox

    package = expiring(coach, student, session_count=1)
    clock.move_to(EXPIRES - timedelta(days=2))
    monkeypatch.setattr(outbox, "deliveries_send_new", lambda **kwargs: 0)  # not sent yet
    services.packages_remind_expiring()
    services.session_book(
        session=first_credit(package),
        start=open_at(coach, NOW + timedelta(days=89)),
        actor=student,
    )

    outbox.deliveries_send_due()

    delivery = Delivery.objects.get(kind=DeliveryKind.CREDITS_EXPIRING)
    assert (delivery.status, delivery.last_error) == (
        DeliveryStatus.SKIPPED,
        "Not sent: every credit of the package has been booked since.",
    )
    assert [message for message in mail.outbox if "expire" in message.subject] == []


def test_the_reminder_task_runs_the_sweep(clock, coach, student, celery_eager):
    from sessions_app import tasks

    expiring(coach, student)
    clock.move_to(EXPIRES - timedelta(days=14))

    assert tasks.remind_expiring_credits.delay().get() == 1
    assert tasks.remind_expiring_credits.delay().get() == 0


def test_the_reminder_sweep_is_on_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["remind-expiring-credits"]
    assert (entry["task"], entry["schedule"]) == ("sessions.remind_expiring_credits", 900)


# --- the pages ------------------------------------------------------------------------------------


def test_my_sessions_shows_expired_credits_without_book_and_the_soon_expiring(
    client, clock, coach, student
):
    expired = expiring(coach, student, days=10)
    soon = expiring(coach, student, days=15)
    clock.move_to(NOW + timedelta(days=11))
    client.force_login(student)

    page = client.get(reverse("sessions:my_sessions")).content.decode()

    assert "Expired on 12 Mar 2026" in page
    assert "Expires in 4 days, on 17 Mar 2026" in page
    for session in expired.sessions.all():
        assert reverse("sessions:book", args=[session.pk]) not in page
    for session in soon.sessions.all():
        assert reverse("sessions:book", args=[session.pk]) in page
    assert "0 to book, 3 expired" in page
    assert "Expired: ask Carla Coach to extend it" in page


def test_the_book_page_of_an_expired_credit_says_why_and_books_nothing(
    client, clock, coach, student
):
    package = expiring(coach, student)
    session = first_credit(package)
    start = open_at(coach, EXPIRES + timedelta(days=2))
    clock.move_to(EXPIRES + timedelta(hours=1))
    client.force_login(student)
    before = db_state()
    book = reverse("sessions:book", args=[session.pk])

    shown = client.get(book)
    posted = client.post(book, {"start": iso(start), "seen_status": "UNSCHEDULED"})

    refusal = (
        "This session credit expired on 31 May 2026, so it can't be booked. "
        "Ask Carla Coach to extend it."
    )
    detail = reverse("sessions:detail", args=[session.pk])
    assert (shown.status_code, shown.url, messages_of(shown)) == (302, detail, [refusal])
    # The GET's message is still queued (its redirect was not followed).
    assert (posted.status_code, messages_of(posted)) == (302, [refusal, refusal])
    assert db_state() == before
    page = client.get(detail).content.decode()
    assert "This credit expired on 31 May 2026, so it can't be booked." in page
    assert f'href="{book}' not in page


def test_the_coachs_student_page_shows_the_expiry_and_extends_it(client, clock, coach, student):
    package = expiring(coach, student)
    clock.move_to(EXPIRES + timedelta(days=3))
    client.force_login(coach)
    page_url = reverse("sessions:student_detail", args=[student.pk])

    page = client.get(page_url).content.decode()
    assert "Expired on 31 May 2026" in page
    assert "0 to book, 3 expired" in page
    assert reverse("sessions:package_extend", args=[package.pk]) in page

    response = client.post(reverse("sessions:package_extend", args=[package.pk]), {"days": "30"})

    # Expired three days ago: 30 days from now.
    assert Package.objects.get(pk=package.pk).expires_at == EXPIRES + timedelta(days=33)
    assert (response.status_code, response.url) == (302, page_url)
    assert messages_of(response) == [
        "The credits of “Chess basics” for Sam Student now expire on 3 Jul 2026, 09:00 UTC. "
        "Sessions not booked yet can be booked until then."
    ]
    assert "Expires on 3 Jul 2026" in client.get(page_url).content.decode()


def test_a_coach_extending_before_the_expiry_adds_to_it(client, coach, student):
    package = expiring(coach, student)
    client.force_login(coach)

    client.post(reverse("sessions:package_extend", args=[package.pk]), {"days": "7"})

    assert Package.objects.get(pk=package.pk).expires_at == EXPIRES + timedelta(days=7)


@pytest.mark.parametrize(
    ("days", "message"),
    [("0", "Extend by at least 1 day."), ("x", "Enter a whole number of days, like 30.")],
)
def test_a_bad_extension_form_changes_nothing(client, coach, student, days, message):
    package = expiring(coach, student)
    client.force_login(coach)

    response = client.post(reverse("sessions:package_extend", args=[package.pk]), {"days": days})

    assert messages_of(response) == [message]
    assert Package.objects.get(pk=package.pk).expires_at == EXPIRES


def test_another_coach_cannot_extend_and_a_student_is_sent_away(client, coach, student):
    package = expiring(coach, student)
    url = reverse("sessions:package_extend", args=[package.pk])

    client.force_login(CoachFactory())
    assert client.post(url, {"days": "30"}).status_code == 404
    client.force_login(student)
    assert client.post(url, {"days": "30"}).status_code == 302

    assert Package.objects.get(pk=package.pk).expires_at == EXPIRES


def test_the_admin_lists_and_filters_packages_by_expiry_and_shows_extensions(
    client, clock, coach, student
):
    from tests.factories import SuperuserFactory

    expired = expiring(coach, student, days=10)
    later = expiring(coach, student, days=90)
    never = make_package(student=student, offering=OfferingFactory(coach=coach))
    clock.move_to(NOW + timedelta(days=11))
    services.package_extend_expiry(package=later, actor=coach, until=NOW + timedelta(days=100))
    client.force_login(SuperuserFactory())
    changelist = reverse("admin:sessions_app_package_changelist")

    def listed(choice: str) -> set[int]:
        response = client.get(changelist, {"expiry": choice})
        return {
            pk
            for pk in (expired.pk, later.pk, never.pk)
            if f"package/{pk}/change/" in response.content.decode()
        }

    assert listed("expired") == {expired.pk}
    assert listed("later") == {later.pk}
    assert listed("never") == {never.pk}
    change = client.get(reverse("admin:sessions_app_package_change", args=[later.pk]))
    assert (
        f"Credits expiry extended by the coach ({coach.email}) from 2026-05-31 09:00 UTC to "
        "2026-06-10 09:00 UTC." in change.content.decode()
    )


@pytest.mark.postgres
def test_the_reminder_sweep_reads_a_range_of_the_partial_index(coach, student):
    from django.db import connection

    from sessions_app.expiry import REMINDER_CHUNK, packages_due_for_reminder

    model = expiring(coach, student)
    fields = {
        field.attname: getattr(model, field.attname)
        for field in Package._meta.concrete_fields
        if field.attname not in ("id", "purchase_token", "expires_at")
    }
    # Three years of packages, one expiring every 30 minutes, and as many that never expire,
    # each with a credit to book.
    packages = Package.objects.bulk_create(
        [Package(**fields, expires_at=NOW + timedelta(minutes=30 * n)) for n in range(52_000)]
        + [Package(**fields) for _ in range(20_000)]
    )
    credit = first_credit(model)
    Session.objects.bulk_create(
        Session(
            package=package,
            coach_id=credit.coach_id,
            student_id=credit.student_id,
            number=1,
            price_share_cents=credit.price_share_cents,
            currency=credit.currency,
        )
        for package in packages
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sessions_app_package")
        cursor.execute("ANALYZE sessions_app_session")

    due = packages_due_for_reminder(
        after=NOW + timedelta(days=2), until=NOW + timedelta(days=14), lead=timedelta(days=14)
    )
    plan = due[:REMINDER_CHUNK].explain()

    assert "Index Scan using package_expiring on sessions_app_package" in plan, plan
    assert "Seq Scan on sessions_app_package" not in plan, plan
    assert "Sort Key: sessions_app_package.expires_at" not in plan, plan  # the index's order
