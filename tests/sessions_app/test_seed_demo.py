"""The demo seed: every status, only times the coach's weekly hours allow, at any hour of any
day (late evenings, weekends, both DST Sundays), and idempotent; always on a fixed clock."""

import sys
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command

from accounts.models import User
from calendars import services as calendar_services
from calendars.models import AvailabilityRule, SlotStatus, TimeSlot
from catalog import services as catalog_services
from catalog.models import Offering
from refunds.models import Payment, Refund
from sessions_app.lifecycle import Status
from sessions_app.models import RescheduleProposal, Session, SessionEvent

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
DEMO_LOGINS = ("coach@example.com", "student@example.com", "sam@example.com", "admin@example.com")
EXPECTED_STATUSES = {
    Status.UNSCHEDULED: 10,  # credits still to book (2 of them expired, 1 a make-up)
    Status.REQUESTED: 3,
    Status.CONFIRMED: 2,
    Status.RESCHEDULING: 1,
    Status.COMPLETED: 1,
    Status.CANCELED: 1,
}

MOMENTS = {
    "Tuesday 23:30 GMT": datetime(2026, 12, 1, 23, 30, tzinfo=LONDON),
    "Sunday 23:30 BST": datetime(2026, 7, 5, 23, 30, tzinfo=LONDON),
    "spring-forward Sunday 00:30 GMT": datetime(2026, 3, 29, 0, 30, tzinfo=LONDON),
    "spring-forward Sunday 23:30 BST": datetime(2026, 3, 29, 23, 30, tzinfo=LONDON),
    "fall-back Sunday 00:30 BST": datetime(2026, 10, 25, 0, 30, tzinfo=LONDON),
    "fall-back Sunday first 01:30 BST": datetime(2026, 10, 25, 1, 30, tzinfo=LONDON),
    "fall-back Sunday second 01:30 GMT": datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=LONDON),
    "fall-back Sunday 23:30 GMT": datetime(2026, 10, 25, 23, 30, tzinfo=LONDON),
}


def _seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def _demo_coach() -> User:
    return User.objects.get(email="coach@example.com")


def _assert_within_weekly_hours(slot: TimeSlot) -> None:
    start, end = slot.start.astimezone(LONDON), slot.end.astimezone(LONDON)
    assert (start.date(), start.weekday() < 5) == (end.date(), True), slot
    assert time(9) <= start.time() and end.time() <= time(17), slot


@pytest.mark.parametrize("moment", MOMENTS.values(), ids=MOMENTS.keys())
def test_seed_books_only_times_the_coachs_weekly_hours_allow_at_any_moment(moment):
    with time_machine.travel(moment, tick=False):
        _seed()
        now = datetime.now(UTC)

    assert Counter(Session.objects.values_list("status", flat=True)) == EXPECTED_STATUSES
    coach = _demo_coach()
    notice = timedelta(hours=coach.coach_profile.minimum_notice_hours)
    slots = list(TimeSlot.objects.select_related("session__package").order_by("start"))
    assert {slot.coach_id for slot in slots} == {coach.pk}
    for slot in slots:
        _assert_within_weekly_hours(slot)
        assert slot.end - slot.start == timedelta(minutes=slot.session.package.duration_minutes)
    # The completed lesson lies in the past; every other time was bookable when it was booked.
    completed = Session.objects.get(status=Status.COMPLETED)
    assert completed.slot.end < now
    upcoming = [slot for slot in slots if slot.pk != completed.slot_id]
    assert all(slot.start >= now + notice for slot in upcoming)
    assert sorted(slot.session.package.duration_minutes for slot in upcoming) == [
        60,
        60,
        60,
        60,
        60,
        60,
        60,
        90,
    ]


@pytest.fixture
def clock():
    with time_machine.travel(MOMENTS["Tuesday 23:30 GMT"], tick=False) as traveller:
        yield traveller


def test_seed_gives_the_coach_weekday_hours_and_offerings_of_30_60_and_90_minutes(clock):
    _seed()

    coach = _demo_coach()
    assert coach.is_coach
    assert list(
        AvailabilityRule.objects.filter(coach=coach)
        .order_by("weekday")
        .values_list("weekday", "start_time", "end_time", "valid_from", "valid_until")
    ) == [(weekday, time(9), time(17), None, None) for weekday in range(5)]
    assert sorted(
        Offering.objects.filter(coach=coach).values_list("duration_minutes", flat=True)
    ) == [
        30,
        60,
        90,
    ]


def test_seed_covers_a_pending_proposal_a_make_up_credit_and_credits_to_book(clock):
    _seed()

    rescheduling = Session.objects.get(status=Status.RESCHEDULING)
    proposal = RescheduleProposal.objects.get(status="PENDING")
    assert proposal.session == rescheduling
    assert (rescheduling.slot.status, proposal.slot.status) == (SlotStatus.BOOKED, SlotStatus.HELD)
    assert proposal.slot.start > rescheduling.slot.start
    assert Refund.objects.count() == 0
    canceled = Session.objects.get(status=Status.CANCELED)
    assert canceled.student.email == "sam@example.com"
    assert canceled.slot.status == SlotStatus.RELEASED
    # The coach's cancel under the default policy: a make-up credit worth the session's share,
    # which Sam may still exchange for a full refund.
    makeup = canceled.makeup_credit
    assert (makeup.status, makeup.price_share_cents, makeup.makeup_refundable) == (
        Status.UNSCHEDULED,
        canceled.price_share_cents,
        True,
    )
    credits = Counter(
        Session.objects.filter(status=Status.UNSCHEDULED).values_list("student__email", flat=True)
    )
    assert credits == {"student@example.com": 4, "sam@example.com": 6}
    requested = Session.objects.filter(status=Status.REQUESTED).select_related("slot")
    assert {session.slot.status for session in requested} == {SlotStatus.HELD}


@pytest.mark.parametrize("moment", MOMENTS.values(), ids=MOMENTS.keys())
def test_seed_shows_credits_that_expire_soon_and_credits_that_expired(moment):
    from sessions_app.models import Package

    with time_machine.travel(moment, tick=False):
        _seed()
        now = datetime.now(UTC)

    expiring = {
        (package.student.email, package.expires_at - now)
        for package in Package.objects.filter(expires_at__isnull=False).select_related("student")
    }
    assert expiring == {
        ("student@example.com", timedelta(days=60)),  # bought now, one credit booked
        ("sam@example.com", timedelta(days=10)),
        ("student@example.com", timedelta(days=-10)),
    }
    assert Offering.objects.get(title="Tournament game review").credit_validity_days == 60


def test_every_status_change_of_the_seed_wrote_its_event(clock):
    _seed()

    for session in Session.objects.all():
        last = session.events.order_by("created_at", "pk").last()
        assert last.to_status == session.status, session


def test_seed_is_idempotent_and_the_demo_logins_work(clock, client):
    first = _seed()
    counts = [
        model.objects.count()
        for model in (User, Session, TimeSlot, SessionEvent, AvailabilityRule, Offering, Refund)
    ]

    second = _seed()

    assert counts == [
        model.objects.count()
        for model in (User, Session, TimeSlot, SessionEvent, AvailabilityRule, Offering, Refund)
    ]
    assert "Demo data ready." in first
    assert second == "Demo data already present; nothing to do.\n"
    assert User.objects.get(email="admin@example.com").is_superuser
    for email in DEMO_LOGINS:
        assert client.login(email=email, password="coachbook-demo"), email


def test_seed_works_while_the_clock_ticks():
    """As the repository's before-stop hook runs it: 23:30 UTC, the clock moving."""
    with time_machine.travel(datetime(2026, 12, 1, 23, 30, tzinfo=UTC), tick=True):
        _seed()

    assert Counter(Session.objects.values_list("status", flat=True)) == EXPECTED_STATUSES


def test_seed_makes_its_availability_and_offerings_through_the_services(clock, monkeypatch):
    offerings, weeks = [], []
    real_offering_create = catalog_services.offering_create
    real_week_set = calendar_services.availability_week_set

    def offering_spy(**kwargs):
        offering = real_offering_create(**kwargs)
        offerings.append(offering.pk)
        return offering

    def week_spy(**kwargs):
        weeks.append(kwargs["week"])
        return real_week_set(**kwargs)

    monkeypatch.setattr(catalog_services, "offering_create", offering_spy)
    monkeypatch.setattr(calendar_services, "availability_week_set", week_spy)

    _seed()

    assert sorted(offerings) == sorted(Offering.objects.values_list("pk", flat=True))
    assert len(offerings) == 3
    assert weeks == [{weekday: [(time(9), time(17))] for weekday in range(5)}]


def test_without_time_machine_the_seed_skips_only_what_it_replays_in_the_past(clock, monkeypatch):
    monkeypatch.setitem(sys.modules, "time_machine", None)  # `import time_machine` fails

    out = _seed()

    assert "time-machine is not installed: skipping the completed session." in out
    assert out.count("time-machine is not installed: skipping a past purchase.") == 2
    expected = Counter(EXPECTED_STATUSES)
    del expected[Status.COMPLETED]
    expected[Status.UNSCHEDULED] -= 4  # the two past review packages
    assert Counter(Session.objects.values_list("status", flat=True)) == expected


def test_seed_with_stripe_configured_records_its_history_as_manual_payments(clock, settings):
    """No card was charged for the demo's history: it is paid through the manual gateway even
    under `make run-stripe`, and no processor is asked."""
    settings.PAYMENT_GATEWAY = "stripe"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: a call would fail

    _seed()

    assert set(Payment.objects.values_list("gateway", "state")) == {("manual", "DONE")}
    assert Session.objects.filter(status=Status.UNSCHEDULED).count() == 10
