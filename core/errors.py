"""The refusals every app raises: each carries a message fit to show a person.

Views turn a `DomainError` into a form error or a flash message, never a 500. Every app's own
errors (`TransitionNotAllowed`, `SlotUnavailable`, `RefundNotAllowed`, ...) subclass it.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied


class DomainError(Exception):
    """A refusal whose message is fit to show a person."""

    default_message = "That is not possible."

    def __init__(self, message: str | None = None):
        self.message = message or self.default_message
        super().__init__(self.message)


class PermissionDenied(DomainError, DjangoPermissionDenied):
    """The person may not do this; also Django's PermissionDenied, so an unhandled one is a 403."""

    default_message = "You are not allowed to do that with this session."
