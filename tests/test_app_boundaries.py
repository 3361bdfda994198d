"""Each app reads another app's models only through that app's selectors and writes them only
through its services (docs: DESIGN.md, "Each app owns its models").

Every module of every app is checked (views, admin, forms, tasks, feeds, management commands),
except migrations, which are frozen history with their own historical models. The one
exemption is `accounts.User`, the project's auth user model: every app looks users up (the
actor of a task, the coaches of a directory), as Django itself does.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ["accounts", "calendars", "catalog", "refunds", "sessions_app"]
SHARED_MODELS = {"User"}  # the AUTH_USER_MODEL


def model_names(app: str) -> set[str]:
    """The classes an app's models module defines (models and their choices)."""
    return {
        node.name
        for node in ast.parse((ROOT / app / "models.py").read_text()).body
        if isinstance(node, ast.ClassDef)
    }


def app_modules(app: str) -> list[Path]:
    return sorted(
        path
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.relative_to(ROOT).parts
    )


def managers_used(path: Path) -> set[str]:
    """The model names whose `.objects` (or `._default_manager`) the module touches, written
    `Model.objects` or `module.Model.objects`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr in ("objects", "_default_manager")):
            continue
        if isinstance(node.value, ast.Name):
            names.add(node.value.id)
        elif isinstance(node.value, ast.Attribute):
            names.add(node.value.attr)
    return names


MODELS = {app: model_names(app) for app in APPS}
MODULES = [(app, path) for app in APPS for path in app_modules(app)]


def test_every_app_module_is_checked():
    checked = {str(path.relative_to(ROOT)) for _, path in MODULES}
    assert {
        "accounts/admin.py",
        "calendars/feeds.py",
        "calendars/management/commands/sync_calendars.py",
        "calendars/services/__init__.py",
        "calendars/services/availability.py",
        "calendars/services/external.py",
        "calendars/services/reservations.py",
        "catalog/services.py",
        "refunds/services.py",
        "sessions_app/selectors.py",
        "sessions_app/notifications.py",
    } <= checked
    assert not any("migrations" in name for name in checked)
    assert {
        "SessionEvent",
        "TimeSlot",
        "AvailabilityRule",
        "BusyTime",
        "Offering",
        "Refund",
        "CoachProfile",
    } <= set().union(*MODELS.values())


@pytest.mark.parametrize(
    ("app", "module"), MODULES, ids=[str(path.relative_to(ROOT)) for _, path in MODULES]
)
def test_module_queries_no_model_of_another_app_directly(app, module):
    foreign = set().union(*(names for other, names in MODELS.items() if other != app))
    assert managers_used(module) & (foreign - SHARED_MODELS) == set()
