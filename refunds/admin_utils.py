"""Moved to `core.admin` (the admin helpers every app shares); these names stay importable from
here for code written before the move. Import them from `core.admin`."""

from core.admin import (  # noqa: F401
    MAX_ID,
    CoachListFilter,
    NumberOrTextSearchMixin,
    ReadOnlyAdminMixin,
    admin_link,
    as_id,
    email_column,
    money_column,
    user_label,
)
