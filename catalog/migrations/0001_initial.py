"""Offerings move to the catalog app without moving a row.

The table stays `sessions_app_offering` (Offering.Meta.db_table), so this migration creates the
model in the migration state only; sessions_app 0004 then removes it from sessions_app's state
and repoints Package.offering here. No data is copied, no table or constraint is touched: ids,
the id sequence (PostgreSQL identity / SQLite AUTOINCREMENT, both keyed by the unchanged table)
and every package's foreign key stay as they were. The content type follows the model, keeping
its id, so its permissions and admin history stay attached.
"""

import django.db.models.deletion
from django.conf import settings
from django.core.management.color import no_style
from django.db import migrations, models

OLD_LABEL, NEW_LABEL = "sessions_app", "catalog"


def _move_content_type(apps, schema_editor, source: str, target: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    manager = ContentType.objects.db_manager(schema_editor.connection.alias)
    if manager.filter(app_label=target, model="offering").exists():
        return  # already there (a re-run): nothing to move
    manager.filter(app_label=source, model="offering").update(app_label=target)


def content_type_to_catalog(apps, schema_editor):
    _move_content_type(apps, schema_editor, OLD_LABEL, NEW_LABEL)


def content_type_to_sessions_app(apps, schema_editor):
    _move_content_type(apps, schema_editor, NEW_LABEL, OLD_LABEL)


def sequence_past_every_id(apps, schema_editor):
    """Set the id sequence past the highest stored id (a no-op on a sane database; nothing to
    do on SQLite, whose AUTOINCREMENT counter is the table's own)."""
    connection = schema_editor.connection
    statements = connection.ops.sequence_reset_sql(
        no_style(), [apps.get_model(NEW_LABEL, "Offering")]
    )
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("sessions_app", "0003_agreed_time_kept_while_rescheduling"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="Offering",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("title", models.CharField(max_length=120)),
                        ("description", models.TextField(blank=True)),
                        ("session_count", models.PositiveSmallIntegerField()),
                        ("duration_minutes", models.PositiveSmallIntegerField()),
                        ("price_cents", models.PositiveIntegerField()),
                        ("currency", models.CharField(default="USD", max_length=3)),
                        ("is_active", models.BooleanField(default=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "coach",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="offerings",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "sessions_app_offering",
                        "ordering": ["coach_id", "price_cents", "id"],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("session_count__gte", 1), ("session_count__lte", 100)
                                ),
                                name="offering_session_count_range",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("duration_minutes__gte", 5), ("duration_minutes__lte", 600)
                                ),
                                name="offering_duration_range",
                            ),
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(content_type_to_catalog, content_type_to_sessions_app),
        migrations.RunPython(sequence_past_every_id, migrations.RunPython.noop),
    ]
