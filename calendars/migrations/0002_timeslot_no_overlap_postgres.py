"""A coach's slots never overlap: an exclusion constraint on PostgreSQL (btree_gist).

SQLite has no exclusion constraints; there `calendars.services.slot_create` checks overlaps
inside an IMMEDIATE transaction. The constraint is therefore added by raw SQL that runs only on
PostgreSQL rather than in `Meta.constraints`, which would break `migrate` on SQLite.
"""

from django.db import migrations

CONSTRAINT = "timeslot_coach_no_overlap"


def add_exclusion(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    schema_editor.execute(
        f"ALTER TABLE calendars_timeslot ADD CONSTRAINT {CONSTRAINT} "
        "EXCLUDE USING gist (coach_id WITH =, tstzrange(start, \"end\", '[)') WITH &&)"
    )


def drop_exclusion(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"ALTER TABLE calendars_timeslot DROP CONSTRAINT IF EXISTS {CONSTRAINT}")


class Migration(migrations.Migration):
    dependencies = [("calendars", "0001_initial")]

    operations = [migrations.RunPython(add_exclusion, drop_exclusion)]
