import pytest

from tests.factories import make_session

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "status", ["UNSCHEDULED", "REQUESTED", "CONFIRMED", "RESCHEDULING", "COMPLETED", "CANCELED"]
)
def test_make_session_reaches_status(status):
    assert make_session(status).status == status
