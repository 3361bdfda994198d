"""core.bulk: set-based inserts and updates from plain values, on SQLite and PostgreSQL, past
SQLite's parameter limit and from a worker thread's formatting."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session as StoredSession
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from core.bulk import draw_ids, insert_prepared, insert_rows, prepare_insert, update_rows

pytestmark = pytest.mark.django_db

# More rows than one SQLite statement may carry parameters for (999 as Django counts).
MANY = 1500
LATER, SOONER = datetime(2030, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC)


def _prepared(moment):
    """A datetime as the backend takes it (the caller prepares values for `core.bulk`)."""
    return StoredSession._meta.get_field("expire_date").get_db_prep_save(moment, connection)


def test_insert_rows_writes_every_row_and_returns_their_ids_in_order():
    ids = insert_rows(model=Group, columns=("name",), rows=[(f"g{i}",) for i in range(MANY)])

    assert dict(Group.objects.values_list("pk", "name")) == {
        pk: f"g{i}" for i, pk in enumerate(ids)
    }


def test_ids_drawn_twice_never_repeat_and_follow_existing_rows():
    existing = Group.objects.create(name="existing")

    first = draw_ids(model=Group, count=3)
    insert_prepared(
        prepare_insert(model=Group, columns=("id", "name"), rows=[(pk, str(pk)) for pk in first])
    )
    second = draw_ids(model=Group, count=3)

    assert min(first) > existing.pk
    assert min(second) > max(first)
    assert len(set(first) | set(second)) == 6


def test_rows_formatted_on_a_worker_thread_insert_on_the_callers_connection():
    ids = draw_ids(model=Group, count=2)
    with ThreadPoolExecutor(max_workers=1) as worker:
        prepared = worker.submit(
            prepare_insert,
            model=Group,
            columns=("id", "name"),
            rows=[(pk, f"from a thread {pk}") for pk in ids],
            # This thread's connection itself (the `connection` proxy would resolve to the
            # worker thread's own).
            connection=connections["default"],
        ).result()

    assert insert_prepared(prepared) == 2
    assert sorted(Group.objects.values_list("pk", flat=True)) == sorted(ids)


def test_update_rows_changes_only_the_rows_matching_and_says_which():
    keys = [f"key{i}" for i in range(5)]
    _sessions(keys[:3], LATER)
    _sessions(keys[3:], SOONER)

    with CaptureQueriesContext(connection) as queries:
        changed = update_rows(
            model=StoredSession,
            pks=keys[1:],
            values={"session_data": "renamed"},
            where={"expire_date": LATER, "session_data": ("", "other")},
            returning=("session_key",),
        )
    counted = update_rows(
        model=StoredSession, pks=keys, values={"session_data": "x"}, where={"expire_date": SOONER}
    )

    assert sorted(changed) == [("key1",), ("key2",)]
    assert len(queries) == 1
    assert counted == 2
    assert StoredSession.objects.filter(session_data="renamed").count() == 2


def _sessions(keys, expire_date):
    insert_prepared(
        prepare_insert(
            model=StoredSession,
            columns=("session_key", "session_data", "expire_date"),
            rows=[(key, "", _prepared(expire_date)) for key in keys],
        )
    )


def test_update_rows_with_more_ids_than_one_statement_may_carry_updates_them_all():
    keys = [f"key{i:05}" for i in range(MANY)]
    _sessions(keys, LATER)

    changed = update_rows(model=StoredSession, pks=keys, values={"expire_date": SOONER})

    assert changed == MANY == StoredSession.objects.filter(expire_date=SOONER).count()


def test_nothing_to_write_runs_no_statement():
    with CaptureQueriesContext(connection) as queries:
        assert insert_rows(model=Group, columns=("name",), rows=[]) == []
        assert update_rows(model=Group, pks=[], values={"name": "x"}) == 0
        assert update_rows(model=Group, pks=[], values={"name": "x"}, returning=("id",)) == []

    assert len(queries) == 0
