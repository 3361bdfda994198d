import pytest
import time_machine
from django.core import mail

from notifications import services as outbox
from sessions_app import services
from tests.factories import CoachFactory, OfferingFactory, StudentFactory
from tests.notifications.helpers import NOW, SITE, START, open_window


@pytest.fixture(autouse=True)
def _site(settings, celery_eager):
    """Send tasks run in-process for these tests; links point at SITE."""
    settings.SITE_URL = SITE


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def people(clock):
    """(coach in Berlin, student in New York, their first unscheduled session, START open)."""
    coach = CoachFactory(timezone="Europe/Berlin", display_name="Carla Coach")
    student = StudentFactory(timezone="America/New_York", display_name="Sam Student")
    offering = OfferingFactory(coach=coach, title="Chess basics", price_cents=30000)
    package = services.package_purchase(student=student, offering=offering)
    # The receipt and the "package sold" notice went out; the tests start after them.
    outbox.deliveries_send_due()
    mail.outbox.clear()
    session = package.sessions.order_by("number").first()
    return coach, student, session, open_window(coach, START)
