"""After-commit hooks: they run once the transaction commits, never after a rollback, and a hook
that fails is logged while the committed change stands."""

import logging

import pytest
from django.db import transaction

from core.transactions import on_commit
from tests.factories import StudentFactory

pytestmark = pytest.mark.django_db


def test_a_hook_runs_after_commit_and_not_before(django_capture_on_commit_callbacks):
    ran = []

    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        on_commit(lambda: ran.append("sent"))
        assert ran == []

    assert (ran, len(callbacks)) == (["sent"], 1)


def test_a_hook_never_runs_after_a_rollback(django_capture_on_commit_callbacks):
    ran = []

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        on_commit(lambda: ran.append("sent"))
        raise RuntimeError("rolled back")

    assert (ran, callbacks) == ([], [])


def test_a_failing_hook_is_logged_and_the_change_stands(django_capture_on_commit_callbacks, caplog):
    def broker_down():
        raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    later = []
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        user = StudentFactory(email="kept@example.com")
        on_commit(broker_down)
        on_commit(lambda: later.append("next hook"))

    user.refresh_from_db()
    assert (user.email, later) == ("kept@example.com", ["next hook"])
    [record] = [r for r in caplog.records if r.name == "core.transactions"]
    assert record.levelno == logging.ERROR
    assert "broker_down" in record.getMessage()
    assert "Connection refused" in record.getMessage()


def test_hooks_are_queued_robust(django_capture_on_commit_callbacks):
    """Even a hook raising something our wrapper did not expect cannot escape: Django's
    `robust=True` is the second net."""
    from django.db import connection

    with django_capture_on_commit_callbacks(), transaction.atomic():
        on_commit(lambda: None)
        assert [robust for _, _, robust in connection.run_on_commit] == [True]
