"""Why an external calendar could not be fetched or read (shared by calendars.sync and
calendars.ics_import)."""

from core.errors import DomainError


class CalendarFetchError(DomainError):
    """Why an external calendar could not be read, in words a coach can act on."""

    default_message = "The calendar could not be read."


class AddressRefused(CalendarFetchError):
    default_message = (
        "That address points to a private or local network; only public calendar "
        "addresses can be synced."
    )
