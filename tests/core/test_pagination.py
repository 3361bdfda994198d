"""Keyset pagination: every row once across pages in both directions, ties on the first key
broken by the last, descending keys, bad cursors read as the first page, one query a page."""

import pytest
from django.test import RequestFactory

from accounts.models import User
from core.pagination import Key, keyset_page
from tests.factories import StudentFactory

pytestmark = pytest.mark.django_db
KEYS = [Key("display_name"), Key("pk")]
DESCENDING = [Key("display_name", descending=True), Key("pk", descending=True)]


@pytest.fixture
def people():
    # Three share a name: only the pk tells them apart.
    names = ["Ada", "Bea", "Bea", "Bea", "Cy", "Dot", "Eve"]
    return [StudentFactory(display_name=name) for name in names]


def _walk(people, keys, direction="next"):
    """Every page from the first by the `next` links, then back by the `previous` ones."""
    queryset = User.objects.filter(pk__in=[p.pk for p in people])
    factory = RequestFactory()
    pages = [keyset_page(queryset, factory.get("/"), keys=keys, size=2)]
    while pages[-1].has_next:
        pages.append(keyset_page(queryset, factory.get(pages[-1].next_link), keys=keys, size=2))
    back = [pages[-1]]
    while back[-1].has_previous:
        back.append(keyset_page(queryset, factory.get(back[-1].previous_link), keys=keys, size=2))
    return pages, back


def _order(people, keys):
    reverse = keys[0].descending
    return [p.pk for p in sorted(people, key=lambda p: (p.display_name, p.pk), reverse=reverse)]


@pytest.mark.parametrize("keys", [KEYS, DESCENDING], ids=["ascending", "descending"])
def test_next_links_visit_every_row_once_in_order_and_previous_links_come_back(people, keys):
    pages, back = _walk(people, keys)

    assert [p.pk for page in pages for p in page] == _order(people, keys)
    assert [page.number for page in pages] == [1, 2, 3, 4]
    assert [[p.pk for p in page] for page in back] == [
        [p.pk for p in page] for page in reversed(pages)
    ]
    assert back[-1].number == 1 and not back[-1].has_previous


def test_a_page_is_one_query_and_never_counts(people, django_assert_num_queries):
    queryset = User.objects.filter(pk__in=[p.pk for p in people])
    first = keyset_page(queryset, RequestFactory().get("/"), keys=KEYS, size=2)
    with django_assert_num_queries(1) as captured:
        keyset_page(queryset, RequestFactory().get(first.next_link), keys=KEYS, size=2)
    assert "COUNT(" not in captured.captured_queries[0]["sql"].upper()
    assert "LIMIT 3" in captured.captured_queries[0]["sql"]


@pytest.mark.parametrize(
    "query",
    ["after=Bea", "after=Bea~notanumber", "before=~", "after=" + "x" * 300, "page=999999999"],
)
def test_a_cursor_that_does_not_parse_is_the_first_page(people, query):
    queryset = User.objects.filter(pk__in=[p.pk for p in people])
    page = keyset_page(queryset, RequestFactory().get(f"/?{query}"), keys=KEYS, size=2)
    assert [p.pk for p in page] == _order(people, KEYS)[:2]
    assert page.number == 1 and not page.has_previous


def test_links_keep_the_list_filters(people):
    queryset = User.objects.filter(pk__in=[p.pk for p in people])
    page = keyset_page(
        queryset, RequestFactory().get("/"), keys=KEYS, size=2, base_query={"search": "b e"}
    )
    assert page.next_link.startswith("?search=b+e&after=Bea~")
    assert page.next_link.endswith("&page=2")
