"""Moved to `core.times` (the one datetime format); these names stay importable from here for
code written before the move. Import them from `core.times`."""

from core.times import (  # noqa: F401
    EN_DASH,
    clock_range,
    day_label,
    moment_label,
    range_label,
    slot_label,
)
