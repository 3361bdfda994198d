"""After-commit hooks that never turn a committed change into an error.

`on_commit(func)` runs `func` once the current transaction commits (at once outside one), like
`transaction.on_commit(func, robust=True)`: nothing runs if it rolls back. If `func` raises
(a broker that is down, a mail server that refuses), the failure is logged with what failed
and the committed change stands: the periodic sweeps (expiry, delivery retries, calendar sync,
refund settlement) catch up. Every after-commit hook in the project goes through here.
"""

import functools
import logging
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)


def _name(func: Callable) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def on_commit(func: Callable[[], object], *, using: str | None = None) -> None:
    """Run `func` after the current transaction commits; a failure is logged, never raised."""

    @functools.wraps(func)
    def hook() -> None:
        try:
            func()
        except Exception as exc:
            logger.exception(
                "After-commit step %s failed (%s); the committed change stands and the "
                "periodic jobs catch up.",
                _name(func),
                exc,
            )

    transaction.on_commit(hook, using=using, robust=True)
