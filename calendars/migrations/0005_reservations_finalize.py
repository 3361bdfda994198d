"""Availability without pre-cut slots (part 3 of 3): drop the pre-cut slots' pattern and
block fields and the weekly patterns (now weekly rules), require the reservation fields, and on
PostgreSQL add the exclusion constraints: a coach's active reservations (buffers included) and a
student's never overlap, except two of the same session (a proposal beside its agreed time)."""

import datetime

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

COACH_EXCLUSION = "timeslot_coach_no_overlap"
STUDENT_EXCLUSION = "timeslot_student_no_overlap"


def add_exclusions(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    schema_editor.execute(
        f"ALTER TABLE calendars_timeslot ADD CONSTRAINT {COACH_EXCLUSION} EXCLUDE USING gist ("
        "coach_id WITH =, tstzrange(reserved_start, reserved_end, '[)') WITH &&, "
        "session_id WITH <>) WHERE (status IN ('HELD', 'BOOKED'))"
    )
    schema_editor.execute(
        f"ALTER TABLE calendars_timeslot ADD CONSTRAINT {STUDENT_EXCLUSION} EXCLUDE USING gist ("
        "student_id WITH =, tstzrange(start, \"end\", '[)') WITH &&, "
        "session_id WITH <>) WHERE (status IN ('HELD', 'BOOKED'))"
    )


def drop_exclusions(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in (COACH_EXCLUSION, STUDENT_EXCLUSION):
        schema_editor.execute(f"ALTER TABLE calendars_timeslot DROP CONSTRAINT IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("calendars", "0004_reservations_data")]

    operations = [
        migrations.RemoveField(
            model_name='availabilitypattern',
            name='coach',
        ),
        migrations.RemoveField(
            model_name='timeslot',
            name='pattern',
        ),
        migrations.RemoveIndex(
            model_name='timeslot',
            name='calendars_t_coach_i_d8ac92_idx',
        ),
        migrations.RemoveIndex(
            model_name='timeslot',
            name='calendars_t_status_e9c3b9_idx',
        ),
        migrations.RemoveField(
            model_name='timeslot',
            name='block_source',
        ),
        migrations.AddIndex(
            model_name='timeslot',
            index=models.Index(fields=['coach', 'status', 'reserved_end'], name='timeslot_coach_active_end'),
        ),
        migrations.AddIndex(
            model_name='timeslot',
            index=models.Index(fields=['student', 'status', 'end'], name='timeslot_student_active_end'),
        ),
        migrations.AddConstraint(
            model_name='timeslot',
            constraint=models.CheckConstraint(condition=models.Q(('reserved_end__gte', models.F('end')), ('reserved_start__lte', models.F('start'))), name='timeslot_reserved_covers_time'),
        ),
        migrations.AddConstraint(
            model_name='timeslot',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['HELD', 'BOOKED', 'RELEASED'])), name='timeslot_status_valid'),
        ),
        migrations.AddConstraint(
            model_name='timeslot',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status__in', ('HELD', 'BOOKED')), _negated=True), ('session__isnull', False), _connector='OR'), name='timeslot_active_has_session'),
        ),
        migrations.DeleteModel(
            name='AvailabilityPattern',
        ),
        migrations.AlterField(
            model_name="timeslot",
            name="reserved_start",
            field=models.DateTimeField(),
        ),
        migrations.AlterField(
            model_name="timeslot",
            name="reserved_end",
            field=models.DateTimeField(),
        ),
        migrations.RunPython(add_exclusions, drop_exclusions),
    ]
