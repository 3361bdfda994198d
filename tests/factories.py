"""Factories for every model; tests build their data here, never with hand-written ids."""

from datetime import timedelta

import factory
from allauth.account.models import EmailAddress
from django.utils import timezone

from accounts.models import CoachProfile, User
from calendars.models import AvailabilityWindow
from catalog.models import Offering

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
    # Far enough for every time `next_free_start` hands out.
    booking_horizon_days = 730


class OfferingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Offering

    coach = factory.SubFactory(CoachFactory)
    title = factory.Sequence(lambda n: f"Coaching package {n}")
    session_count = 3
    duration_minutes = 60
    price_cents = 30000
    currency = "USD"


# Each free time handed out lies 12 hours after the previous one (sessions last at most 10
# hours), from three days ahead, wrapping after 350 days: distinct within any test, and always
# inside the calendar feed's year ahead (FEED_HORIZON_DAYS), whatever ran before.
FREE_TIME_SPACING = timedelta(hours=12)
FREE_TIME_WRAP = 700


def _free_time(n: int):
    return (timezone.now() + timedelta(days=3) + (n % FREE_TIME_WRAP) * FREE_TIME_SPACING).replace(
        minute=0, second=0, microsecond=0
    )


class AvailabilityWindowFactory(factory.django.DjangoModelFactory):
    """A one-off window of the coach's availability, an hour long, in the future; pass
    `start` (and `coach`, `end`) to place it."""

    class Meta:
        model = AvailabilityWindow

    coach = factory.SubFactory(CoachFactory)
    start = factory.Sequence(_free_time)
    end = factory.LazyAttribute(lambda o: o.start + timedelta(hours=1))


def next_free_start(coach, minutes: int = 60):
    """Open a one-off window of `minutes` for `coach` at a fresh future time; its start is
    bookable (for a session of that length) by anyone with no other reservation then."""
    window = AvailabilityWindowFactory(coach=coach)
    window.end = window.start + timedelta(minutes=minutes)
    window.save(update_fields=["end"])
    return window.start


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
    minutes = package.duration_minutes
    services.session_book(session=session, start=next_free_start(coach, minutes), actor=student)
    if status == "REQUESTED":
        return _fresh(session)
    services.session_accept(session=session, actor=coach)
    if status == "CONFIRMED":
        return _fresh(session)
    if status == "RESCHEDULING":
        services.session_propose_reschedule(
            session=session, start=next_free_start(coach, minutes), actor=coach
        )
        return _fresh(session)
    if status == "COMPLETED":
        import time_machine

        # Past the session's end (later free times lie further out).
        after = _fresh(session).slot.end + timedelta(hours=1)
        with time_machine.travel(max(timezone.now() + timedelta(days=30), after)):
            services.sessions_complete_past()
        return _fresh(session)
    raise ValueError(status)


def _fresh(session):
    session.refresh_from_db()
    return session


# --- refunds (issue 5) -------------------------------------------------------------------------


def make_canceled_session(refund: str = "none", amount_cents=None, reason: str = "", **fields):
    """A confirmed session the coach canceled through `session_cancel` with `refund`, under a
    saved policy that lets the coach decide each time (any refund is then allowed)."""
    from policies.services import policy_update
    from sessions_app import services

    session = make_session("CONFIRMED", **fields)
    policy_update(coach=session.coach, coach_cancel_rule="coach_decides")
    return services.session_cancel(
        session=session,
        actor=session.coach,
        refund=refund,
        amount_cents=amount_cents,
        reason=reason,
    )


class RefundFactory(factory.django.DjangoModelFactory):
    """A raw refund row for `session` (pass it), bypassing the caps of `refund_issue`.

    Only for volume (admin page budgets); tests of money rules go through the services.
    """

    class Meta:
        model = "refunds.Refund"

    payment = factory.LazyAttribute(lambda o: o.session.package.payment)
    amount_cents = 100
    currency = factory.LazyAttribute(lambda o: o.session.currency)
    kind = "partial"
    state = "DONE"
    gateway = "manual"
    reference = factory.Sequence(lambda n: f"manual-refund-bulk-{n}")
    issued_by = factory.LazyAttribute(lambda o: o.session.coach)
    reason = factory.Sequence(lambda n: f"Goodwill refund number {n}")
    idempotency_key = factory.Sequence(lambda n: f"bulk-refund-{n}")


def make_refund_rows(count: int, sessions) -> list:
    """`count` refund rows spread over `sessions`, with mixed kinds and states, in one insert."""
    from refunds.models import Refund

    kinds, states = ["partial", "full"], ["DONE", "DONE", "CREATED", "FAILED"]
    rows = [
        RefundFactory.build(
            session=sessions[index % len(sessions)],
            amount_cents=100 + index,
            kind=kinds[index % 2],
            state=states[index % 4],
        )
        for index in range(count)
    ]
    return Refund.objects.bulk_create(rows)


# --- calendar sync (issue 6) -------------------------------------------------------------------


class ExternalCalendarFactory(factory.django.DjangoModelFactory):
    """A coach's external busy calendar; pass `url` (a local test server's address)."""

    class Meta:
        model = "calendars.ExternalCalendar"

    coach = factory.SubFactory(CoachFactory)
    name = factory.Sequence(lambda n: f"Work calendar {n}")
    url = factory.Sequence(lambda n: f"https://calendar.example.com/{n}/basic.ics")


# --- admin users -------------------------------------------------------------------------------


class StaffFactory(UserFactory):
    """A staff account (may log in to the admin; sees what its permissions allow)."""

    is_staff = True


class SuperuserFactory(StaffFactory):
    """A staff superuser: sees every admin page."""

    is_superuser = True


def make_rule(*, coach, weekday: int, start_time, end_time, **fields):
    """One weekly availability rule, made through the service."""
    from calendars.services import availability_weekly_add

    return availability_weekly_add(
        coach=coach, weekday=weekday, start_time=start_time, end_time=end_time, **fields
    )


# --- card payments through a Stripe-compatible server (issue 11) ------------------------------


def make_card_package(localstripe, *, card: str | None = None, student=None, **offering_fields):
    """A package bought with the Stripe gateway (settings pointed at `localstripe` by the
    caller) and, unless `card` is "", paid with that test card (4242... by default)."""
    from refunds import services as refund_services
    from tests.stripe_support import CARD_OK

    package = make_package(student=student, **offering_fields)
    if card != "":
        refund_services.payment_pay_with_card(
            payment=package.payment, card_token=localstripe.card_token(card or CARD_OK)
        )
    package.refresh_from_db()
    return package
