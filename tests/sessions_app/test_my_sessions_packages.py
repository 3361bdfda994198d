"""My sessions (issue 13, item 4): packages dated, with progress, two packages of one offering
told apart, credits grouped by package, and a flat query count."""

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from sessions_app import selectors
from tests.factories import CoachFactory, OfferingFactory, make_package, make_session

pytestmark = pytest.mark.django_db

MY_SESSIONS = reverse("sessions:my_sessions")


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_packages_show_purchase_date_and_progress(student_client, student):
    offering = OfferingFactory(title="Five sessions", session_count=5)
    with time_machine.travel(datetime(2026, 11, 20, 10, tzinfo=UTC), tick=False):
        package = make_package(student=student, offering=offering)
    sessions = list(package.sessions.order_by("number"))
    from sessions_app import services
    from tests.factories import next_free_start

    for session in sessions[:2]:
        services.session_book(
            session=session, start=next_free_start(offering.coach, 60), actor=student
        )

    html = student_client.get(MY_SESSIONS).content.decode()
    text = text_of(html)

    assert "Your packages" in text
    assert "bought 20 Nov 2026" in text
    assert "2 of 5 used, 3 to book" in text
    assert '<progress max="5" value="2"' in html


def test_two_packages_of_one_offering_are_told_apart(student_client, student):
    offering = OfferingFactory(title="Five sessions", session_count=5)
    with time_machine.travel(datetime(2026, 11, 1, 10, tzinfo=UTC), tick=False):
        first = make_package(student=student, offering=offering)
    with time_machine.travel(datetime(2026, 11, 25, 10, tzinfo=UTC), tick=False):
        second = make_package(student=student, offering=offering)
    other = make_package(student=student, title="Solo", session_count=1)

    html = student_client.get(MY_SESSIONS).content.decode()
    text = text_of(html)

    assert "Five sessions #1 · bought 1 Nov 2026" in text
    assert "Five sessions #2 · bought 25 Nov 2026" in text
    assert "Solo #" not in text  # bought once: no number
    # Credits are grouped by package, each group under its package's name.
    for package in (first, second, other):
        group = html[html.index(f'id="credits-package-{package.pk}"') :]
        group = group[: group.index("</tbody>")]
        assert group.count('id="session-') == package.session_count
    group = html[html.index(f'id="credits-package-{second.pk}"') :]
    assert text_of(group[group.index(">") + 1 :]).startswith("Five sessions #2")


def test_canceled_sessions_are_neither_used_nor_to_book(student):
    offering = OfferingFactory(session_count=3)
    make_session("CANCELED", student=student, offering=offering)

    (package,) = selectors.student_packages(student=student)

    assert (package.used, package.to_book, package.canceled) == (0, 2, 1)


def test_packages_waiting_for_payment_are_not_listed_as_packages(student):
    package = make_package(student=student)
    package.sessions.all().delete()

    assert selectors.student_packages(student=student) == []


def packages_for(student, count):
    coach = CoachFactory()
    offering = OfferingFactory(coach=coach, session_count=2)
    for _ in range(count):
        make_package(student=student, offering=offering)
        make_package(student=student, coach=coach, session_count=1)


@pytest.mark.parametrize("count", [1, 12])
def test_my_sessions_query_count_is_flat(student_client, student, count, django_assert_num_queries):
    packages_for(student, count)
    student_client.get(MY_SESSIONS)  # warm anything cached per process

    with django_assert_num_queries(MY_SESSIONS_QUERIES):
        response = student_client.get(MY_SESSIONS)

    assert len(response.context["packages"]) == 2 * count


# the user (the auth session comes from the cache once read), the coach-profile check, the
# credits, the booked sessions (no proposals to prefetch here), the past page, the packages
# awaiting payment, the proposals badge, the packages with progress (one query for any number
# of packages).
MY_SESSIONS_QUERIES = 8
