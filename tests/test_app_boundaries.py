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
APPS = ["accounts", "calendars", "catalog", "notifications", "refunds", "sessions_app"]
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
        "notifications/emails.py",
        "notifications/services.py",
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


# --- the shared kernel (`core`: DESIGN.md "Layout", CONVENTIONS.md "One concept, one place") ---

CORE = ROOT / "core"
# Every top-level package of the project (apps, config, scripts, tests...) except core itself.
PROJECT_PACKAGES = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"core"}
# Where helpers lived before they moved to core (those modules are gone); nothing imports them.
MOVED_TO_CORE = {
    "refunds.money": "core.money",
    "refunds.admin_utils": "core.admin",
    "sessions_app.times": "core.times",
}
DOMAIN_ERRORS = {"DomainError", "PermissionDenied"}


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports (absolute imports; `from a import b` gives `a` and `a.b`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def project_modules() -> list[Path]:
    """Every module of the project outside core (apps, config, bench, scripts; not tests or
    migrations)."""
    roots = [ROOT / name for name in PROJECT_PACKAGES - {"tests"}] + [ROOT / "bench"]
    return sorted(
        path
        for folder in roots
        for path in folder.rglob("*.py")
        if "migrations" not in path.relative_to(ROOT).parts
    )


CORE_MODULES = sorted(CORE.rglob("*.py"))


def test_core_is_a_package_with_the_shared_kernel():
    assert {path.name for path in CORE_MODULES} >= {
        "__init__.py",
        "errors.py",
        "money.py",
        "times.py",
        "transactions.py",
        "guards.py",
        "admin.py",
        "cache.py",
    }
    assert set(APPS) <= PROJECT_PACKAGES


@pytest.mark.parametrize("module", CORE_MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_core_imports_no_project_app_and_defines_no_models(module):
    imported = {name.split(".")[0] for name in imported_modules(module)}
    assert imported & PROJECT_PACKAGES == set()
    tree = ast.parse(module.read_text(), filename=str(module))
    bases = {
        ast.unparse(base)
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for base in node.bases
    }
    assert bases & {"Model", "models.Model"} == set()
    assert not (CORE / "models.py").exists()


@pytest.mark.parametrize("module", project_modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_app_takes_its_domain_error_from_core(module):
    """DomainError (and the domain's PermissionDenied) are imported from `core.errors` (or
    Django's own PermissionDenied), never from another app, and no app defines its own."""
    tree = ast.parse(module.read_text(), filename=str(module))
    sources = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and any(alias.name in DOMAIN_ERRORS for alias in node.names)
    }
    assert sources <= {"core.errors", "django.core.exceptions"}
    assert "DomainError" not in {
        node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
    }


def test_every_domain_error_is_cores():
    from calendars.services import SlotUnavailable
    from core.errors import DomainError, PermissionDenied
    from refunds.services import RefundNotAllowed
    from sessions_app import lifecycle

    assert (lifecycle.DomainError, lifecycle.PermissionDenied) == (DomainError, PermissionDenied)
    for error in (SlotUnavailable, RefundNotAllowed, lifecycle.TransitionNotAllowed):
        assert issubclass(error, DomainError)


@pytest.mark.parametrize("module", project_modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_shared_helpers_are_imported_from_core(module):
    """Money, times and admin helpers come from core, not from the app they used to live in."""
    shims = {ROOT / (name.replace(".", "/") + ".py") for name in MOVED_TO_CORE}
    if module in shims:
        return
    assert imported_modules(module) & set(MOVED_TO_CORE) == set()


def _direct_on_commit_calls(path: Path) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "on_commit"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "transaction"
    ]


@pytest.mark.parametrize("module", project_modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_after_commit_hook_goes_through_core(module):
    """`core.transactions.on_commit` (robust, logged) is the only way to queue an after-commit
    hook, so no hook can turn a committed change into an error page."""
    assert _direct_on_commit_calls(module) == []
