"""`__in_constants` finds what `__in` finds, with the codes written into the SQL (so SQLite can
match a partial index), and refuses anything that is not a code."""

import pytest

from sessions_app.lifecycle import Status
from sessions_app.models import Session
from tests.factories import make_session

pytestmark = pytest.mark.django_db


def test_it_filters_like_in_with_the_codes_as_literals():
    confirmed = make_session(status="CONFIRMED")
    make_session(status="UNSCHEDULED")
    statuses = (Status.CONFIRMED, Status.RESCHEDULING)

    queryset = Session.objects.filter(status__in_constants=statuses)

    assert list(queryset) == list(Session.objects.filter(status__in=statuses)) == [confirmed]
    sql, params = queryset.query.sql_with_params()
    assert "IN ('CONFIRMED', 'RESCHEDULING')" in sql
    assert "CONFIRMED" not in params


@pytest.mark.parametrize("codes", [["CONFIRMED'); DROP TABLE x; --"], [], ["two words"]])
def test_anything_but_codes_is_refused(codes):
    with pytest.raises(ValueError, match="code constants only"):
        list(Session.objects.filter(status__in_constants=codes))
