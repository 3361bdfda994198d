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


def rows_across_migration(app: str, before, after, arrange):
    """For a module-scoped fixture: with `app` at `before` (every other app at its latest),
    `arrange(apps)` writes rows with the historical models; then `app` migrates to `after`,
    and back to the latest. Yields what `arrange` returned; flushes the database afterwards,
    since the rows were written outside any test's transaction."""
    from django.core.management import call_command

    def targets(node):
        return [leaf for leaf in latest_migrations() if leaf[0] != app] + [node]

    try:
        try:
            arranged = arrange(migrate_to(targets(before)))
            migrate_to(targets(after))
        finally:
            migrate_to(latest_migrations())
        yield arranged
    finally:
        call_command("flush", interactive=False, verbosity=0)


def historical_package(apps, *, title: str, session_count: int, minutes: int = 60):
    """A coach, a student and a package of one of the coach's offerings, made with the
    historical models of `apps`: (coach, student, package)."""
    User = apps.get_model("accounts", "User")
    Offering = apps.get_model("catalog", "Offering")
    Package = apps.get_model("sessions_app", "Package")
    coach = User.objects.create(email="coach@example.com", display_name="Coach")
    student = User.objects.create(email="student@example.com", display_name="Student")
    fields = {"title": title, "session_count": session_count, "duration_minutes": minutes}
    offering = Offering.objects.create(coach=coach, price_cents=9000, **fields)
    package = Package.objects.create(
        offering=offering,
        coach=coach,
        student=student,
        price_cents=9000,
        currency="USD",
        **fields,
    )
    return coach, student, package
