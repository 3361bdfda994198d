"""Request-level safety nets: the proxy header, the Content-Security-Policy, database outages.

- `TrustedProxyMiddleware` (first in MIDDLEWARE) drops `X-Forwarded-Proto` and
  `X-Forwarded-For` from any client that is not one of the proxies in `FORWARDED_ALLOW_IPS`, so
  nobody else can claim https or choose the IP its login limits count against.
- `ContentSecurityPolicyMiddleware` is django-csp's, with the Stripe.js and Stripe API origins
  added from the settings of the moment (they are configurable, and tests point them at
  localstripe).
- `DatabaseUnavailableMiddleware` answers a view that hit a dead database with the branded 503
  page and a `Retry-After`, rendered without touching the database (`core.views`).
"""

import ipaddress
from urllib.parse import urlsplit

from csp.middleware import CSPMiddleware
from django.conf import settings
from django.db import InterfaceError, OperationalError

from core.views import database_unavailable

# The errors that mean "the database cannot be reached", not "this query is wrong".
DATABASE_DOWN_ERRORS = (OperationalError, InterfaceError)

STRIPE_JS_ORIGIN = "https://js.stripe.com"


def is_database_down(exc: BaseException | None) -> bool:
    return isinstance(exc, DATABASE_DOWN_ERRORS)


def _parse_networks(entries) -> tuple | None:
    """The networks of `FORWARDED_ALLOW_IPS`; None means every address (`*`)."""
    if "*" in entries:
        return None
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _is_trusted(address: str, networks) -> bool:
    if networks is None:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


class TrustedProxyMiddleware:
    """Keep `X-Forwarded-Proto` only when the connection comes from a configured proxy.

    Django reads SECURE_PROXY_SSL_HEADER from any client; this removes the header first unless
    REMOTE_ADDR is in `settings.TRUSTED_PROXIES` (the `FORWARDED_ALLOW_IPS` list gunicorn
    trusts too). Without trusted proxies the settings leave SECURE_PROXY_SSL_HEADER unset and
    this does nothing.
    """

    HEADER = "HTTP_X_FORWARDED_PROTO"
    # X-Forwarded-For too: allauth takes the client IP for its login limits from it
    # (ALLAUTH_TRUSTED_PROXY_COUNT), so a client reaching the app directly must not choose it.
    HEADERS = (HEADER, "HTTP_X_FORWARDED_FOR")

    def __init__(self, get_response):
        self.get_response = get_response
        self._entries = None
        self._networks = None

    def _trusted_networks(self):
        entries = tuple(getattr(settings, "TRUSTED_PROXIES", ()))
        if entries != self._entries:
            self._entries, self._networks = entries, _parse_networks(entries)
        return self._networks

    def __call__(self, request):
        if any(header in request.META for header in self.HEADERS):
            entries = getattr(settings, "TRUSTED_PROXIES", ())
            if not entries or not _is_trusted(
                request.META.get("REMOTE_ADDR", ""), self._trusted_networks()
            ):
                for header in self.HEADERS:
                    request.META.pop(header, None)
        return self.get_response(request)


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def stripe_sources() -> dict[str, list[str]]:
    """The CSP sources card payments need: Stripe.js, its frames, Stripe's API."""
    js = _origin(settings.STRIPE_JS_URL)
    api = _origin(settings.STRIPE_API_BASE)
    scripts = [js] if js else []
    frames = [js] if js else []
    if js == STRIPE_JS_ORIGIN:
        # Stripe's own documented sources (Elements frames, 3-D Secure on hooks.stripe.com).
        scripts.append("https://*.js.stripe.com")
        frames += ["https://*.js.stripe.com", "https://hooks.stripe.com"]
    return {
        "script-src": scripts,
        "frame-src": frames,
        "connect-src": [api] if api else [],
    }


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp with the Stripe origins of the current settings added to the policy."""

    def get_policy_parts(self, request, response, report_only=False):
        parts = super().get_policy_parts(request, response, report_only)
        update = dict(parts.update or {})
        for directive, sources in stripe_sources().items():
            if sources:
                existing = update.get(directive) or []
                if isinstance(existing, str):
                    existing = [existing]
                update[directive] = [*existing, *sources]
        parts.update = update
        return parts


class DatabaseUnavailableMiddleware:
    """A view that finds the database down answers 503 with a retry hint, not a bare 500.

    Errors outside views (a session saved in a response) reach `core.views.server_error`,
    the 500 handler, which answers the same 503.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if is_database_down(exception):
            return database_unavailable(request, exception)
        return None
