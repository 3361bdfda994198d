"""Seed the demo: logins, a coach with weekly hours and offerings of 30, 60 and 90 minutes, and
sessions in every status. Idempotent: a second run changes nothing.

Every domain write (coach profile, weekly hours, offerings, purchases, lifecycle actions,
refunds) goes through the services, as real use would; only the demo logins are made with the
user manager. Every booked or proposed time is one of the coach's bookable starts at the moment
of booking (`calendars.selectors.bookable_starts`), so the seed works at every hour of every day,
weekends and the DST changes included. The completed session and two purchases whose credits
expire soon or have expired are replayed in the past with time-machine (a development
dependency; without it they are skipped).

The seeded history is paid through the manual gateway whatever PAYMENT_GATEWAY says: with
`stripe` (`make run-stripe`) no card was ever charged for it, and new purchases made in the
browser go through the card processor as usual.
"""

from datetime import datetime, time, timedelta

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from accounts.models import User
from accounts.services import coach_profile_create
from calendars import services as calendar_services
from calendars.selectors import bookable_starts, booking_bounds
from catalog import services as catalog_services
from catalog.models import Offering
from catalog.selectors import coach_offerings
from sessions_app import services
from sessions_app.models import Session

PASSWORD = "coachbook-demo"
COACH_EMAIL = "coach@example.com"
STUDENT_EMAIL = "student@example.com"
OTHER_STUDENT_EMAIL = "sam@example.com"
ADMIN_EMAIL = "admin@example.com"
COACH_TZ = "Europe/London"
# Monday to Friday, 09:00-17:00 in the coach's own wall-clock time.
WEEKLY_HOURS = {weekday: [(time(9), time(17))] for weekday in range(5)}
# Booked times are spread out: each search starts a day and two hours after the previous time.
SPREAD = timedelta(days=1, hours=2)
# Searched from a little after the earliest bookable moment, so a clock that ticks while the
# seed runs never makes a chosen start too soon by the time it is booked.
MARGIN = timedelta(minutes=5)
SEARCH = timedelta(weeks=4)
# The completed session is replayed this long ago.
PAST = timedelta(days=14)
# The review's credits expire this many days after purchase.
REVIEW_VALIDITY_DAYS = 60


class Command(BaseCommand):
    help = "Create the demo logins and data (idempotent)."

    def handle(self, *args, **options):
        coach = self._user(COACH_EMAIL, "Alex Morgan", COACH_TZ)
        student = self._user(STUDENT_EMAIL, "Jamie Student", "America/New_York")
        other = self._user(OTHER_STUDENT_EMAIL, "Sam Learner", "Europe/Berlin")
        admin = self._user(ADMIN_EMAIL, "Site admin", "UTC", staff=True)
        if coach_offerings(coach=coach).exists():
            self.stdout.write("Demo data already present; nothing to do.")
            return
        with transaction.atomic(), override_settings(PAYMENT_GATEWAY="manual"):
            _Seed(coach, student, other, self.stdout).run()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready. Log in as {COACH_EMAIL}, {STUDENT_EMAIL}, "
                f"{OTHER_STUDENT_EMAIL} or {admin.email} (admin) with the password {PASSWORD}."
            )
        )

    def _user(self, email, name, tz, staff=False) -> User:
        user = User.objects.filter(email=email).first()
        if user is None:
            create = User.objects.create_superuser if staff else User.objects.create_user
            user = create(email=email, password=PASSWORD, display_name=name, timezone=tz)
            EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        return user


class _Seed:
    """One run of the demo seed; `cursor` is where the search for the next time begins."""

    def __init__(self, coach, student, other, stdout):
        self.coach, self.student, self.other, self.stdout = coach, student, other, stdout
        self.cursor: datetime | None = None

    def run(self) -> None:
        coach, student, other = self.coach, self.student, self.other
        coach_profile_create(
            user=coach,
            headline="Chess coach: openings, endgames and tournament nerves",
            bio="Ten years of coaching club players from 1200 to 2000.",
        )
        calendar_services.availability_week_set(coach=coach, week=WEEKLY_HOURS)
        check_in = catalog_services.offering_create(
            coach=coach,
            title="Half-hour check-in",
            session_count=1,
            duration_minutes=30,
            price_cents=3500,
            currency="USD",
            description="Thirty minutes on one position or one question.",
        )
        bundle = catalog_services.offering_create(
            coach=coach,
            title="Five-lesson bundle",
            session_count=5,
            duration_minutes=60,
            price_cents=27500,
            currency="USD",
            description="Five hours with a plan between lessons.",
        )
        review = catalog_services.offering_create(
            coach=coach,
            title="Tournament game review",
            session_count=2,
            duration_minutes=90,
            price_cents=16000,
            currency="USD",
            description="Ninety minutes going through your tournament games move by move.",
            credit_validity_days=REVIEW_VALIDITY_DAYS,
        )

        self._completed_session(check_in)

        package = services.package_purchase(student=student, offering=bundle)
        s1, s2, s3, s4, _credit = package.sessions.order_by("number")
        self._book(s1)  # a request waiting in the coach's Tasks
        self._book(s2, accept=True)  # Confirmed, in Upcoming
        self._book(s3, accept=True)
        services.session_propose_reschedule(session=s3, start=self._start(s3), actor=coach)
        self._book(s4, accept=True)  # a second confirmed session

        reviews = services.package_purchase(student=student, offering=review)
        first_review, _credit = reviews.sessions.order_by("number")
        self._book(first_review)  # a 90-minute request

        other_package = services.package_purchase(student=other, offering=bundle)
        o1, o2, *_credits = other_package.sessions.order_by("number")
        self._book(o1, accept=True)
        # The coach cancels under the default policy: a make-up credit, which Sam may still
        # take as a full refund instead.
        services.session_cancel(
            session=o1,
            actor=coach,
            refund="credit",
            reason="Coach unavailable; a make-up credit to book another time.",
        )
        self._book(o2)  # a second request

        # Credits that expire: Sam's review credits expire in 10 days (a reminder is due),
        # Jamie's older review package has expired unused.
        self._bought_ago(other, review, timedelta(days=REVIEW_VALIDITY_DAYS - 10))
        self._bought_ago(student, review, timedelta(days=REVIEW_VALIDITY_DAYS + 10))

    def _start(self, session: Session) -> datetime:
        """The first bookable start for `session` (its length, its student) from the cursor,
        which then moves on past it."""
        bounds = booking_bounds(coach=self.coach)
        earliest = bounds.earliest + MARGIN
        low = max(self.cursor or earliest, earliest)
        starts = bookable_starts(
            coach=self.coach,
            duration_minutes=session.package.duration_minutes,
            start=low,
            end=low + SEARCH,
            student=session.student,
            session=session,
        )
        if not starts:
            raise CommandError(
                f"The demo coach has no bookable time in the four weeks from {low:%Y-%m-%d %H:%M}"
                " UTC."
            )
        self.cursor = starts[0] + SPREAD
        return starts[0]

    def _book(self, session: Session, *, accept: bool = False) -> None:
        services.session_book(session=session, start=self._start(session), actor=session.student)
        if accept:
            services.session_accept(session=session, actor=self.coach)

    def _bought_ago(self, student, offering: Offering, ago: timedelta) -> None:
        """A purchase replayed `ago` in the past (its credits' expiry counts from then)."""
        try:
            import time_machine
        except ImportError:
            self.stdout.write("time-machine is not installed: skipping a past purchase.")
            return
        with time_machine.travel(timezone.now() - ago, tick=False):
            services.package_purchase(student=student, offering=offering)

    def _completed_session(self, offering: Offering) -> None:
        try:
            import time_machine
        except ImportError:
            self.stdout.write("time-machine is not installed: skipping the completed session.")
            return
        with time_machine.travel(timezone.now() - PAST, tick=False):
            package = services.package_purchase(student=self.student, offering=offering)
            self._book(package.sessions.get(), accept=True)
        self.cursor = None  # the rest is booked from now on
        services.sessions_complete_past()
