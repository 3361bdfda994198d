"""Migrations that change stored data: run from the state before them on real rows."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("accounts", "0001_initial")]
AFTER = [("accounts", "0002_coachprofile_window_bounds")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_window_bounds_migration_clamps_stored_windows_before_adding_its_constraints():
    old_apps = _migrate(BEFORE)
    try:
        User = old_apps.get_model("accounts", "User")
        CoachProfile = old_apps.get_model("accounts", "CoachProfile")
        values = {
            "long": (5000, 721, 10_000),
            "in range": (1, 720, 0),
            "default": (48, 48, 12),
        }
        for label, (request, reschedule, notice) in values.items():
            user = User.objects.create(email=f"{label.replace(' ', '-')}@example.com")
            CoachProfile.objects.create(
                user=user,
                request_window_hours=request,
                reschedule_window_hours=reschedule,
                minimum_notice_hours=notice,
            )

        new_apps = _migrate(AFTER)
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    rows = new_apps.get_model("accounts", "CoachProfile").objects.order_by("user__email")
    assert list(
        rows.values_list(
            "user__email",
            "request_window_hours",
            "reschedule_window_hours",
            "minimum_notice_hours",
        )
    ) == [
        ("default@example.com", 48, 48, 12),
        ("in-range@example.com", 1, 720, 0),
        ("long@example.com", 720, 720, 720),
    ]
