"""With the longest names and texts the forms allow, no page is wider than the screen."""

import pytest

from accounts.models import CoachProfile, User
from catalog.models import Offering
from tests.browser.conftest import log_in
from tests.browser.test_accessibility import (
    ANONYMOUS_PATHS,
    DEMO_PASSWORD,
    coach_paths,
    demo,  # noqa: F401  (the seeded demo, as a fixture)
    student_paths,
)

pytestmark = pytest.mark.django_db(transaction=True)

# One word each, so nothing can break at a space.
LONGEST_NAME = "W" * User._meta.get_field("display_name").max_length
LONGEST_HEADLINE = "H" * CoachProfile._meta.get_field("headline").max_length
LONG_BIO = "B" * 4000  # the profile form's limit
LONGEST_TITLE = "T" * Offering._meta.get_field("title").max_length


@pytest.fixture
def longest_texts(demo):  # noqa: F811
    coach, student = demo
    User.objects.filter(pk__in=[coach.pk, student.pk]).update(display_name=LONGEST_NAME)
    CoachProfile.objects.filter(user=coach).update(headline=LONGEST_HEADLINE, bio=LONG_BIO)
    Offering.objects.filter(coach=coach).update(title=LONGEST_TITLE)
    return coach, student


def overflowing_pages(page, paths, width) -> list[tuple[str, int]]:
    found = []
    for path in paths:
        page.goto(path)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        if scroll_width > width:
            found.append((path, scroll_width))
    return found


@pytest.mark.parametrize("width", [1280, 375])
def test_no_page_is_wider_than_the_screen_with_the_longest_names(new_page, longest_texts, width):
    coach, student = longest_texts
    page = new_page(width=width)
    found = overflowing_pages(page, ANONYMOUS_PATHS, width)
    log_in(page, coach, DEMO_PASSWORD)
    found += overflowing_pages(page, coach_paths(page, coach), width)
    page.context.clear_cookies()
    log_in(page, student, DEMO_PASSWORD)
    found += overflowing_pages(page, student_paths(page, coach, student), width)

    assert found == []
