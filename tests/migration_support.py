"""Running migrations to a chosen state in a test, with the historical models of that state."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate_to(targets):
    """Migrate to `targets` ((app, migration) pairs); returns the apps of that state."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest_migrations():
    """Every app's last migration."""
    return MigrationExecutor(connection).loader.graph.leaf_nodes()
