"""Error pages that work when nothing else does.

`server_error` (handler500) and `database_unavailable` render their templates without a
request context (no user, no context processors, no database query); a database outage
(OperationalError or InterfaceError) answers the branded 503 page with `Retry-After`.
"""

import logging
import sys

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseServerError
from django.template import TemplateDoesNotExist, loader
from django.templatetags.static import static
from django.views.decorators.csrf import requires_csrf_token

logger = logging.getLogger("coachbook.errors")

DEFAULT_RETRY_AFTER_SECONDS = 30
_FALLBACK_503 = (
    "<!doctype html><title>Coachbook is briefly unavailable</title>"
    "<h1>Coachbook is briefly unavailable</h1><p>Please try again in a minute.</p>"
)


def _context(**extra) -> dict:
    """The error pages' context: the stylesheet's URL, even without a static manifest."""
    try:
        stylesheet = static("css/app.css")
    except ValueError:  # the manifest is missing or stale: the unhashed copy is served too
        stylesheet = f"{settings.STATIC_URL}css/app.css"
    return {"stylesheet": stylesheet, **extra}


def retry_after_seconds() -> int:
    return int(getattr(settings, "DATABASE_UNAVAILABLE_RETRY_AFTER", DEFAULT_RETRY_AFTER_SECONDS))


def database_unavailable(request=None, exception=None) -> HttpResponse:
    """The 503 page for a database outage, with `Retry-After` (no database, no context)."""
    logger.error("Database unavailable, answering 503: %s", exception, exc_info=exception)
    seconds = retry_after_seconds()
    try:
        body = loader.render_to_string("503.html", _context(retry_after=seconds))
    except TemplateDoesNotExist:
        body = _FALLBACK_503
    response = HttpResponse(body, status=503)
    response["Retry-After"] = str(seconds)
    response["Cache-Control"] = "no-store"
    return response


@requires_csrf_token
def server_error(request, template_name="500.html"):
    """handler500: the branded 500 page, or the 503 page when the database is the cause."""
    exception = sys.exc_info()[1]
    if isinstance(exception, OperationalError | InterfaceError):
        return database_unavailable(request, exception)
    try:
        body = loader.render_to_string(template_name, _context())
    except TemplateDoesNotExist:
        return HttpResponseServerError("<h1>Server Error (500)</h1>")
    return HttpResponseServerError(body)
