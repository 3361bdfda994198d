"""External calendars record when a sync last attempted them (the sync's order of work) and
what the last read skipped or repaired. Existing calendars get, as their last attempt, their
latest success or error (none if never synced), so the order of work carries on as it was."""

from django.db import migrations, models


def attempts_from_history(apps, schema_editor):
    ExternalCalendar = apps.get_model("calendars", "ExternalCalendar")
    for calendar in ExternalCalendar.objects.filter(
        models.Q(last_synced_at__isnull=False) | models.Q(last_error_at__isnull=False)
    ).only("pk", "last_synced_at", "last_error_at"):
        moments = [m for m in (calendar.last_synced_at, calendar.last_error_at) if m is not None]
        ExternalCalendar.objects.filter(pk=calendar.pk).update(last_attempt_at=max(moments))


class Migration(migrations.Migration):
    dependencies = [
        ("calendars", "0005_reservations_finalize"),
    ]

    operations = [
        migrations.AddField(
            model_name="externalcalendar",
            name="last_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="externalcalendar",
            name="last_sync_notes",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.RunPython(attempts_from_history, migrations.RunPython.noop, elidable=True),
    ]
