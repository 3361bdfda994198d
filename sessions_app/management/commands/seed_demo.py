"""Seed the demo: logins, a coach with offerings and two weeks of open slots, and sessions in
every status. Idempotent: a second run changes nothing.

Every domain write (coach profile, offerings, slots, purchases, lifecycle actions, refunds) goes
through the services, as real use would; only the demo logins are made with the user manager.
The completed session is replayed in the past with time-machine (a development dependency;
without it that one session is skipped).
"""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import coach_profile_create
from calendars.models import TimeSlot
from calendars.services import slot_create
from sessions_app import services
from sessions_app.models import Offering

PASSWORD = "coachbook-demo"
COACH_EMAIL = "coach@example.com"
STUDENT_EMAIL = "student@example.com"
OTHER_STUDENT_EMAIL = "sam@example.com"
ADMIN_EMAIL = "admin@example.com"
COACH_TZ = "Europe/London"


class Command(BaseCommand):
    help = "Create the demo logins and data (idempotent)."

    def handle(self, *args, **options):
        coach = self._user(COACH_EMAIL, "Alex Morgan", COACH_TZ)
        student = self._user(STUDENT_EMAIL, "Jamie Student", "America/New_York")
        other = self._user(OTHER_STUDENT_EMAIL, "Sam Learner", "Europe/Berlin")
        admin = self._user(ADMIN_EMAIL, "Site admin", "UTC", staff=True)
        if Offering.objects.filter(coach=coach).exists():
            self.stdout.write("Demo data already present; nothing to do.")
            return
        with transaction.atomic():
            self._seed(coach, student, other)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready. Log in as {COACH_EMAIL}, {STUDENT_EMAIL} or {admin.email} "
                f"(admin) with the password {PASSWORD}."
            )
        )

    def _user(self, email, name, tz, staff=False) -> User:
        user = User.objects.filter(email=email).first()
        if user is None:
            create = User.objects.create_superuser if staff else User.objects.create_user
            user = create(email=email, password=PASSWORD, display_name=name, timezone=tz)
            EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        return user

    def _seed(self, coach, student, other):
        coach_profile_create(
            user=coach,
            headline="Chess coach: openings, endgames and tournament nerves",
            bio="Ten years of coaching club players from 1200 to 2000.",
        )
        single = services.offering_create(
            coach=coach,
            title="Single lesson",
            session_count=1,
            duration_minutes=60,
            price_cents=6000,
            currency="USD",
            description="One hour on whatever you need most.",
        )
        bundle = services.offering_create(
            coach=coach,
            title="Five-lesson bundle",
            session_count=5,
            duration_minutes=60,
            price_cents=27500,
            currency="USD",
            description="Five hours with a plan between lessons.",
        )
        slots = self._open_slots(coach)

        self._completed_session(coach, student, single)

        package = services.package_purchase(student=student, offering=bundle)
        s1, s2, s3, s4, _credit = package.sessions.order_by("number")
        services.session_book(session=s1, slot=slots[2], actor=student)  # waits in Tasks
        services.session_book(session=s2, slot=slots[5], actor=student)
        services.session_accept(session=s2, actor=coach)  # Confirmed, in Upcoming
        services.session_book(session=s3, slot=slots[9], actor=student)
        services.session_accept(session=s3, actor=coach)
        services.session_propose_reschedule(session=s3, slot=slots[12], actor=coach)
        services.session_book(session=s4, slot=slots[16], actor=student)
        services.session_accept(session=s4, actor=coach)  # a second confirmed session

        other_package = services.package_purchase(student=other, offering=bundle)
        o1, o2, *_ = other_package.sessions.order_by("number")
        services.session_book(session=o1, slot=slots[20], actor=other)
        services.session_accept(session=o1, actor=coach)
        services.session_cancel(
            session=o1,
            actor=coach,
            refund="partial",
            amount_cents=2500,
            reason="Coach unavailable; half refunded, rest kept for preparation.",
        )
        services.session_book(session=o2, slot=slots[24], actor=other)  # a second request

    def _open_slots(self, coach) -> list[TimeSlot]:
        """Weekdays 09:00-17:00 in the coach's timezone for the next two weeks, hourly."""
        zone = ZoneInfo(COACH_TZ)
        today = timezone.localdate(timezone=zone)
        created = []
        for offset in range(1, 15):
            day = today + timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            for hour in range(9, 17):
                start = datetime.combine(day, time(hour), tzinfo=zone)
                created.append(
                    slot_create(coach=coach, start=start, end=start + timedelta(hours=1))
                )
        return created

    def _completed_session(self, coach, student, offering):
        try:
            import time_machine
        except ImportError:
            self.stdout.write("time-machine is not installed: skipping the completed session.")
            return
        past = timezone.now() - timedelta(days=10)
        with time_machine.travel(past, tick=False):
            package = services.package_purchase(student=student, offering=offering)
            session = package.sessions.get()
            start = (past + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
            slot = slot_create(coach=coach, start=start, end=start + timedelta(hours=1))
            services.session_book(session=session, slot=slot, actor=student)
            services.session_accept(session=session, actor=coach)
        services.sessions_complete_past()
