from collections import Counter

import pytest
from django.core.management import call_command

from accounts.models import User
from calendars.models import SlotStatus, TimeSlot
from refunds.models import Refund
from sessions_app import services
from sessions_app.lifecycle import Status
from sessions_app.models import Offering, Session, SessionEvent

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_every_status_and_is_idempotent(client):
    call_command("seed_demo")
    counts = (Session.objects.count(), TimeSlot.objects.count(), SessionEvent.objects.count())

    call_command("seed_demo")

    assert (
        Session.objects.count(),
        TimeSlot.objects.count(),
        SessionEvent.objects.count(),
    ) == counts
    statuses = Counter(Session.objects.values_list("status", flat=True))
    assert set(statuses) == set(Status.values)
    coach = User.objects.get(email="coach@example.com")
    assert coach.is_coach
    assert Session.objects.filter(coach=coach, status=Status.REQUESTED).count() >= 1
    assert Session.objects.filter(
        student__email="student@example.com", status=Status.UNSCHEDULED
    ).exists()
    assert list(Refund.objects.values_list("kind", "amount_cents")) == [("partial", 2500)]
    assert TimeSlot.objects.filter(coach=coach, status=SlotStatus.OPEN).count() >= 60
    assert User.objects.get(email="admin@example.com").is_superuser
    for email in ("coach@example.com", "student@example.com", "admin@example.com"):
        assert client.login(email=email, password="coachbook-demo")


def test_seed_demo_creates_its_offerings_through_the_offering_service(monkeypatch):
    made = []
    real = services.offering_create

    def spy(**kwargs):
        offering = real(**kwargs)
        made.append(offering.pk)
        return offering

    monkeypatch.setattr(services, "offering_create", spy)

    call_command("seed_demo")

    assert sorted(made) == sorted(Offering.objects.values_list("pk", flat=True))
    assert len(made) == 2
