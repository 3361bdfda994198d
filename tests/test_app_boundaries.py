"""Each app reads another app's models only through that app's selectors (docs: DESIGN.md)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CALENDAR_MODELS = {"TimeSlot", "AvailabilityPattern", "ExternalCalendar"}
SESSION_MODELS = {"Session", "RescheduleProposal", "SessionEvent", "Package", "Offering"}


def managers_used(path: Path) -> set[str]:
    """The model names whose `.objects` (or `._default_manager`) the module touches."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        node.value.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ("objects", "_default_manager")
        and isinstance(node.value, ast.Name)
    }


@pytest.mark.parametrize(
    ("module", "foreign"),
    [
        ("calendars/feeds.py", SESSION_MODELS),
        ("sessions_app/selectors.py", CALENDAR_MODELS),
        ("sessions_app/notifications.py", CALENDAR_MODELS),
    ],
)
def test_module_queries_no_model_of_another_app_directly(module, foreign):
    assert managers_used(ROOT / module) & foreign == set()
