"""Offering now belongs to the catalog app (catalog 0001, same table): drop it from this app's
migration state and point Package.offering at catalog.Offering. State only: the table, its rows
and the packages' foreign key constraint are untouched."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sessions_app", "0003_agreed_time_kept_while_rescheduling"),
        ("catalog", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name="package",
                    name="offering",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="packages",
                        to="catalog.offering",
                    ),
                ),
                migrations.DeleteModel(name="Offering"),
            ],
        ),
    ]
