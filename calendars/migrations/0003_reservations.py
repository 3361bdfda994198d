"""Availability without pre-cut slots (part 1 of 3): the new tables, and the reservation fields
added as nullable so the data migration (0004) can fill them."""

import datetime

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

OLD_EXCLUSION = "timeslot_coach_no_overlap"


def drop_old_exclusion(apps, schema_editor):
    # The pre-cut slots' constraint compared whole slots; reservations get their own (0005).
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"ALTER TABLE calendars_timeslot DROP CONSTRAINT IF EXISTS {OLD_EXCLUSION}"
        )


def restore_old_exclusion(apps, schema_editor):
    # Going back: the pre-cut slots' constraint of 0002 (refused if slots overlap).
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"ALTER TABLE calendars_timeslot ADD CONSTRAINT {OLD_EXCLUSION} "
            "EXCLUDE USING gist (coach_id WITH =, tstzrange(start, \"end\", '[)') WITH &&)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("calendars", "0002_timeslot_no_overlap_postgres"),
        ("sessions_app", "0002_package_purchase_token"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(drop_old_exclusion, restore_old_exclusion),
        migrations.CreateModel(
            name='AvailabilityRule',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('weekday', models.PositiveSmallIntegerField(help_text='0 = Monday … 6 = Sunday')),
                ('start_time', models.TimeField()),
                ('end_time', models.TimeField(help_text='00:00 means midnight at the end of the day.')),
                ('valid_from', models.DateField(blank=True, null=True)),
                ('valid_until', models.DateField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['coach_id', 'weekday', 'start_time', 'id'],
            },
        ),
        migrations.CreateModel(
            name='AvailabilityWindow',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('start', models.DateTimeField()),
                ('end', models.DateTimeField()),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['coach_id', 'start', 'id'],
            },
        ),
        migrations.CreateModel(
            name='BusyTime',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('start', models.DateTimeField()),
                ('end', models.DateTimeField()),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['coach_id', 'start', 'id'],
            },
        ),
        migrations.CreateModel(
            name='TimeOff',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('start', models.DateTimeField()),
                ('end', models.DateTimeField()),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('reason', models.CharField(blank=True, max_length=200)),
            ],
            options={
                'ordering': ['coach_id', 'start', 'id'],
            },
        ),
        migrations.RemoveConstraint(
            model_name='timeslot',
            name='timeslot_status_valid',
        ),
        migrations.AddField(
            model_name='timeslot',
            name='conflict_kept_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='timeslot',
            name='released_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='timeslot',
            name='reserved_end',
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name='timeslot',
            name='reserved_start',
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name='timeslot',
            name='session',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='reservations', to='sessions_app.session'),
        ),
        migrations.AddField(
            model_name='timeslot',
            name='student',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='reserved_slots', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='timeslot',
            name='status',
            field=models.CharField(choices=[('HELD', 'Held'), ('BOOKED', 'Booked'), ('RELEASED', 'Released')], default='HELD', max_length=8),
        ),
        migrations.AddField(
            model_name='availabilityrule',
            name='coach',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='availability_rules', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='availabilitywindow',
            name='coach',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='availability_windows', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='busytime',
            name='calendar',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='busy_times', to='calendars.externalcalendar'),
        ),
        migrations.AddField(
            model_name='busytime',
            name='coach',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='busy_times', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='timeoff',
            name='coach',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='time_off', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name='availabilityrule',
            index=models.Index(fields=['coach', 'weekday'], name='calendars_a_coach_i_31b75a_idx'),
        ),
        migrations.AddConstraint(
            model_name='availabilityrule',
            constraint=models.CheckConstraint(condition=models.Q(('weekday__gte', 0), ('weekday__lte', 6)), name='rule_weekday_range'),
        ),
        migrations.AddConstraint(
            model_name='availabilityrule',
            constraint=models.CheckConstraint(condition=models.Q(('end_time__gt', models.F('start_time')), ('end_time', datetime.time(0, 0)), _connector='OR'), name='rule_end_after_start'),
        ),
        migrations.AddIndex(
            model_name='availabilitywindow',
            index=models.Index(fields=['coach', 'end'], name='calendars_a_coach_i_d90645_idx'),
        ),
        migrations.AddConstraint(
            model_name='availabilitywindow',
            constraint=models.CheckConstraint(condition=models.Q(('end__gt', models.F('start'))), name='window_end_after_start'),
        ),
        migrations.AddIndex(
            model_name='busytime',
            index=models.Index(fields=['coach', 'end'], name='calendars_b_coach_i_c1f069_idx'),
        ),
        migrations.AddConstraint(
            model_name='busytime',
            constraint=models.CheckConstraint(condition=models.Q(('end__gt', models.F('start'))), name='busytime_end_after_start'),
        ),
        migrations.AddIndex(
            model_name='timeoff',
            index=models.Index(fields=['coach', 'end'], name='calendars_t_coach_i_2215d9_idx'),
        ),
        migrations.AddConstraint(
            model_name='timeoff',
            constraint=models.CheckConstraint(condition=models.Q(('end__gt', models.F('start'))), name='timeoff_end_after_start'),
        ),
    ]
