"""calendars 0006 (last attempt and reader's notes) run on real rows made with the historical
models of 0005: each calendar's last attempt is its latest success or error."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from tests.migration_support import latest_migrations, migrate_to

BEFORE = ("calendars", "0005_reservations_finalize")
AFTER = ("calendars", "0006_external_calendar_attempts")
SYNCED = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)


def _with_calendars_at(node):
    """Every other app at its latest migration, calendars at `node`."""
    return [leaf for leaf in latest_migrations() if leaf[0] != "calendars"] + [node]


def _arrange(apps) -> dict:
    User = apps.get_model("accounts", "User")
    ExternalCalendar = apps.get_model("calendars", "ExternalCalendar")
    coach = User.objects.create(email="coach@example.com", display_name="Coach")
    rows = {
        "synced": {"last_synced_at": SYNCED},
        "failing": {
            "last_synced_at": SYNCED,
            "last_error": "Gone.",
            "last_error_at": SYNCED + timedelta(hours=1),
        },
        "recovered": {"last_synced_at": SYNCED, "last_error_at": SYNCED - timedelta(days=1)},
        "never": {},
    }
    return {
        name: ExternalCalendar.objects.create(
            coach=coach, url=f"https://example.com/{name}.ics", name=name, **fields
        ).pk
        for name, fields in rows.items()
    }


@pytest.fixture(scope="module")
def migrated(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        try:
            try:
                ids = _arrange(migrate_to(_with_calendars_at(BEFORE)))
                migrate_to(_with_calendars_at(AFTER))
            finally:
                migrate_to(latest_migrations())
            yield ids
        finally:
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def rows(migrated, db):
    return migrated


def test_each_calendars_last_attempt_is_its_latest_success_or_error(rows):
    from calendars.models import ExternalCalendar

    attempts = dict(
        ExternalCalendar.objects.filter(pk__in=rows.values()).values_list("name", "last_attempt_at")
    )

    assert attempts == {
        "synced": SYNCED,
        "failing": SYNCED + timedelta(hours=1),
        "recovered": SYNCED,
        "never": None,
    }


def test_calendars_keep_what_they_had_and_have_no_notes_yet(rows):
    from calendars.models import ExternalCalendar

    failing = ExternalCalendar.objects.get(pk=rows["failing"])

    assert (failing.last_error, failing.last_synced_at, failing.is_active) == (
        "Gone.",
        SYNCED,
        True,
    )
    assert [c.last_sync_notes for c in ExternalCalendar.objects.filter(pk__in=rows.values())] == [
        []
    ] * 4
