"""A prepared query answers exactly what its queryset would, for each new set of values, and
refuses a builder that changes a value on its way to the SQL."""

from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import User
from core.prepared import PreparedQuery
from tests.factories import StudentFactory

pytestmark = pytest.mark.django_db
JOINED = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the night the clocks change in Europe


def _joined_since(*, user_id, since):
    return User.objects.filter(pk=user_id, date_joined__gte=since).values_list("pk", "email")


def test_rows_match_the_queryset_for_each_new_value():
    early = StudentFactory(date_joined=JOINED)
    late = StudentFactory(date_joined=JOINED + timedelta(hours=2))
    prepared = PreparedQuery(_joined_since, user_id="int", since="datetime")

    for user in (early, late):
        for since in (JOINED - timedelta(seconds=1), JOINED + timedelta(hours=1)):
            expected = list(_joined_since(user_id=user.pk, since=since))
            assert prepared.rows(user_id=user.pk, since=since) == expected
    assert prepared.rows(user_id=late.pk, since=JOINED + timedelta(hours=1)) == [
        (late.pk, late.email)
    ]


def test_a_value_changed_inside_the_builder_is_refused():
    def changed(*, user_id, since):
        return User.objects.filter(pk=user_id, date_joined__gte=since - timedelta(days=1))

    with pytest.raises(ValueError, match="'since' does not reach the SQL unchanged"):
        PreparedQuery(changed, user_id="int", since="datetime").rows(user_id=1, since=JOINED)


def _named_since(*, user_id, since, name):
    """Optional conditions: each left out for None."""
    users = User.objects.all()
    if user_id is not None:
        users = users.filter(pk=user_id)
    if since is not None:
        users = users.filter(date_joined__gte=since)
    if name is not None:
        users = users.filter(display_name=name)
    return users.order_by("pk").values_list("pk", "date_joined", "is_staff")


def test_absent_values_and_strings_answer_like_the_queryset_with_its_conversions():
    ada = StudentFactory(display_name="Ada", date_joined=JOINED)
    bob = StudentFactory(display_name="Bob", date_joined=JOINED + timedelta(hours=2))
    prepared = PreparedQuery(_named_since, user_id="int", since="datetime", name="str")

    for user_id in (None, ada.pk, bob.pk):
        for since in (None, JOINED + timedelta(hours=1)):
            for name in (None, "Ada", "Bob"):
                values = {"user_id": user_id, "since": since, "name": name}
                assert prepared.rows(**values) == list(_named_since(**values))
    # Times come back aware and booleans as booleans, as the queryset gives them.
    assert prepared.rows(user_id=ada.pk, since=None, name=None) == [(ada.pk, JOINED, False)]
