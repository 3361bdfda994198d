"""Factories for every model; tests build their data here, never with hand-written ids."""

from datetime import timedelta

import factory
from allauth.account.models import EmailAddress
from django.utils import timezone

from accounts.models import CoachProfile, User
from calendars.models import TimeSlot
from sessions_app.models import Offering

PASSWORD = "a-long-test-password-1"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    display_name = factory.Sequence(lambda n: f"User {n}")
    timezone = "UTC"
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified_email(self, create, extracted, **kwargs):
        if create:
            self.save()
            EmailAddress.objects.create(user=self, email=self.email, verified=True, primary=True)


class StudentFactory(UserFactory):
    email = factory.Sequence(lambda n: f"student{n}@example.com")
    display_name = factory.Sequence(lambda n: f"Student {n}")


class CoachFactory(UserFactory):
    email = factory.Sequence(lambda n: f"coach{n}@example.com")
    display_name = factory.Sequence(lambda n: f"Coach {n}")
    profile = factory.RelatedFactory("tests.factories.CoachProfileFactory", "user")


class CoachProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CoachProfile

    user = factory.SubFactory(UserFactory)
    headline = "Helps you get better"
    request_window_hours = 48
    reschedule_window_hours = 48
    minimum_notice_hours = 0


class OfferingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Offering

    coach = factory.SubFactory(CoachFactory)
    title = factory.Sequence(lambda n: f"Coaching package {n}")
    session_count = 3
    duration_minutes = 60
    price_cents = 30000
    currency = "USD"


class TimeSlotFactory(factory.django.DjangoModelFactory):
    """An OPEN slot in the future; pass `start` (and `coach`) to place it."""

    class Meta:
        model = TimeSlot

    coach = factory.SubFactory(CoachFactory)
    start = factory.Sequence(
        lambda n: (timezone.now() + timedelta(days=3, hours=n)).replace(
            minute=0, second=0, microsecond=0
        )
    )
    end = factory.LazyAttribute(lambda o: o.start + timedelta(hours=1))
    status = "OPEN"


def make_package(*, student=None, offering=None, **offering_fields):
    """Buy a package through the service, as a student would."""
    from sessions_app.services import package_purchase

    offering = offering or OfferingFactory(**offering_fields)
    student = student or StudentFactory()
    return package_purchase(student=student, offering=offering)


def make_session(status: str = "UNSCHEDULED", **package_fields):
    """A session driven through the real services into `status`; returns the fresh row."""
    from sessions_app import services

    package = make_package(**package_fields)
    session = package.sessions.order_by("number").first()
    coach, student = package.offering.coach, package.student
    if status == "UNSCHEDULED":
        return session
    if status == "CANCELED":
        return services.session_cancel(session=session, actor=coach, refund="none")
    services.session_book(session=session, slot=TimeSlotFactory(coach=coach), actor=student)
    if status == "REQUESTED":
        return _fresh(session)
    services.session_accept(session=session, actor=coach)
    if status == "CONFIRMED":
        return _fresh(session)
    if status == "RESCHEDULING":
        services.session_propose_reschedule(
            session=session, slot=TimeSlotFactory(coach=coach), actor=coach
        )
        return _fresh(session)
    if status == "COMPLETED":
        import time_machine

        with time_machine.travel(timezone.now() + timedelta(days=30)):
            services.sessions_complete_past()
        return _fresh(session)
    raise ValueError(status)


def _fresh(session):
    session.refresh_from_db()
    return session
