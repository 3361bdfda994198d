"""The refusals of the calendars services, each with a message fit to show a person."""

from core.errors import DomainError, PermissionDenied


class SlotUnavailable(DomainError):
    default_message = "That time was just taken. Pick another."


class SlotInvalid(DomainError):
    default_message = "That is not a valid time."


class AvailabilityInvalid(DomainError):
    default_message = "That availability is not valid."


def require_coach(user) -> None:
    if not user.is_coach:
        raise PermissionDenied("Only coaches have availability.")
