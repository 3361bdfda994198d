"""Offerings move from sessions_app to catalog without moving a row: the migrations run from the
state before the move on real rows, and every offering, package and link is still there after."""

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from catalog.models import Offering

BEFORE = [("sessions_app", "0003_agreed_time_kept_while_rescheduling"), ("catalog", None)]
AFTER = [("sessions_app", "0004_offering_moves_to_catalog")]
TABLES = ("sessions_app_offering", "sessions_app_package")
OFFERING_FIELDS = (
    "pk",
    "coach__email",
    "title",
    "session_count",
    "duration_minutes",
    "price_cents",
    "currency",
    "is_active",
    "created_at",
)


def _migrate(targets, state=None):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(state or targets).apps


def _leaf():
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def _schema() -> dict:
    """Each table's columns and constraints, as the database describes them."""
    with connection.cursor() as cursor:
        return {
            table: (
                [
                    (column.name, column.null_ok)
                    for column in connection.introspection.get_table_description(cursor, table)
                ],
                connection.introspection.get_constraints(cursor, table),
            )
            for table in TABLES
        }


def _arrange(old_apps) -> dict:
    """Two coaches' offerings (one off sale) and the packages students bought of them."""
    User = old_apps.get_model("accounts", "User")
    Offering = old_apps.get_model("sessions_app", "Offering")
    Package = old_apps.get_model("sessions_app", "Package")
    ada, bo, sam = (
        User.objects.create(email=f"{name}@example.com") for name in ("ada", "bo", "sam")
    )
    offerings = [
        Offering.objects.create(
            coach=coach,
            title=title,
            session_count=count,
            duration_minutes=minutes,
            price_cents=cents,
            currency=currency,
            is_active=active,
        )
        for coach, title, count, minutes, cents, currency, active in [
            (ada, "Check-in", 1, 30, 3500, "USD", True),
            (ada, "Five lessons", 5, 60, 30000, "EUR", False),
            (bo, "Deep dive", 3, 90, 45000, "GBP", True),
        ]
    ]
    packages = [
        Package.objects.create(
            offering=offering,
            coach=offering.coach,
            student=sam,
            title=offering.title,
            session_count=offering.session_count,
            duration_minutes=offering.duration_minutes,
            price_cents=offering.price_cents,
            currency=offering.currency,
        )
        for offering in (offerings[0], offerings[0], offerings[1], offerings[2])
    ]
    return {
        "offerings": sorted(Offering.objects.values_list(*OFFERING_FIELDS)),
        "packages": sorted(Package.objects.values_list("pk", "offering_id", "offering__title")),
        "links": {
            offering.pk: [package.pk for package in packages if package.offering_id == offering.pk]
            for offering in offerings
        },
        "ids": [offering.pk for offering in offerings] + [package.pk for package in packages],
    }


@pytest.mark.django_db(transaction=True)
def test_offerings_move_to_catalog_with_every_row_id_and_package_link():
    try:
        old_apps = _migrate(BEFORE, state=BEFORE[:1])
        before = _arrange(old_apps)
        schema = _schema()

        new_apps = _migrate(AFTER)
        after_schema = _schema()
    finally:
        _leaf()

    Offering = new_apps.get_model("catalog", "Offering")
    Package = new_apps.get_model("sessions_app", "Package")
    assert sorted(Offering.objects.values_list(*OFFERING_FIELDS)) == before["offerings"]
    assert (
        sorted(Package.objects.values_list("pk", "offering_id", "offering__title"))
        == before["packages"]
    )
    assert {
        offering.pk: list(offering.packages.order_by("pk").values_list("pk", flat=True))
        for offering in Offering.objects.all()
    } == before["links"]
    # Not a table, column or constraint was touched: the move is the migration state's only.
    assert after_schema == schema


@pytest.mark.django_db(transaction=True)
def test_a_new_offering_after_the_move_gets_an_id_past_every_old_one():
    try:
        old_apps = _migrate(BEFORE, state=BEFORE[:1])
        old_ids = _arrange(old_apps)["ids"][:3]
    finally:
        _leaf()

    coach = Offering.objects.get(pk=old_ids[0]).coach
    new = Offering.objects.create(
        coach=coach, title="New", session_count=1, duration_minutes=45, price_cents=100
    )

    assert new.pk > max(old_ids)


@pytest.mark.django_db(transaction=True)
def test_the_offering_content_type_moves_with_its_permissions_and_admin_history():
    try:
        old_apps = _migrate(BEFORE, state=BEFORE[:1])
        offering_pk = _arrange(old_apps)["ids"][0]
        OldContentType = old_apps.get_model("contenttypes", "ContentType")
        content_type = OldContentType.objects.get(app_label="sessions_app", model="offering")
        permissions = set(
            Permission.objects.filter(content_type_id=content_type.pk).values_list("pk", "codename")
        )
        admin = old_apps.get_model("accounts", "User").objects.create(email="admin@example.com")
        entry = LogEntry.objects.create(
            user_id=admin.pk,
            content_type_id=content_type.pk,
            object_id=str(offering_pk),
            object_repr="Check-in",
            action_flag=ADDITION,
        )

        _migrate(AFTER)
    finally:
        _leaf()
    ContentType.objects.clear_cache()

    moved = ContentType.objects.get_for_model(Offering)
    assert (moved.pk, moved.app_label, moved.model) == (content_type.pk, "catalog", "offering")
    assert not ContentType.objects.filter(app_label="sessions_app", model="offering").exists()
    assert {codename for _, codename in permissions} == {
        "add_offering",
        "change_offering",
        "delete_offering",
        "view_offering",
    }
    assert set(Permission.objects.filter(content_type=moved).values_list("pk", "codename")) == (
        permissions
    )
    assert LogEntry.objects.get(pk=entry.pk).get_edited_object() == Offering.objects.get(
        pk=offering_pk
    )
