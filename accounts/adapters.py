import hashlib
from urllib.parse import urlsplit, urlunsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.internal import ratelimit
from django.conf import settings
from django.contrib.sites.shortcuts import get_current_site
from django.core.cache import cache

from accounts.models import normalize_email_address

# How long, and for how many addresses, a successful login makes its IP address "known" for that
# account: a known address passes the account-wide limit on failed logins (see `pre_authenticate`).
KNOWN_IP_DAYS = 30
KNOWN_IPS_PER_ACCOUNT = 20
ACCOUNT_WIDE_ACTION = "login_failed_account"
SITE_NAME = "Coachbook"  # what account emails greet and sign off as (never the request's host)


def on_site_url(url: str) -> str:
    """`url` (absolute or a path) on SITE_URL: email links follow the configured address, so
    set SITE_URL to the address people open (README, "Run")."""
    parts = urlsplit(url)
    if not parts.path.startswith("/"):
        return url
    return settings.SITE_URL + urlunsplit(("", "", parts.path, parts.query, parts.fragment))


class AccountAdapter(DefaultAccountAdapter):
    """Allauth hooks: links in account emails point at the configured site; email addresses are
    normalised (`normalize_email_address`); failed logins are limited per account *and* IP.

    Failed logins (docs/decisions.md, "Login limits"), each limit in ACCOUNT_RATE_LIMITS:

    - ``login_failed``: allauth's per-IP limit, and its per-key limit whose key is here the
      account *together with the client IP*, so wrong guesses from one address never lock the
      owner out on another;
    - ``login_failed_account``: a looser limit per account over all addresses (against guesses
      spread over many addresses), which an IP address the account has logged in from in the
      last KNOWN_IP_DAYS passes.

    A successful login takes back its own attempt from every limit (allauth's rollback), so the
    owner logging in never counts against themselves. The client IP is allauth's: REMOTE_ADDR,
    or the X-Forwarded-For entry ALLAUTH_TRUSTED_PROXY_COUNT proxies from the right.
    """

    def get_email_confirmation_url(self, request, emailconfirmation):
        return on_site_url(super().get_email_confirmation_url(request, emailconfirmation))

    def get_reset_password_from_key_url(self, key: str) -> str:
        return on_site_url(super().get_reset_password_from_key_url(key))

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """Every account email is from Coachbook (templates/account/email/) and its links
        start with SITE_URL, not with whatever host the request came in on."""
        context = {
            **context,
            **{
                key: on_site_url(value)
                for key, value in context.items()
                if key.endswith("_url") and isinstance(value, str)
            },
            "site_name": SITE_NAME,
            "site_url": settings.SITE_URL,
        }
        super().send_mail(template_prefix, email, context)

    def format_email_subject(self, subject: str) -> str:
        return f"[{SITE_NAME}] {subject.strip()}"

    def clean_email(self, email: str) -> str:
        return super().clean_email(normalize_email_address(email))

    # --- Failed-login limits ---------------------------------------------------------------

    def _account_login(self, request, credentials) -> str:
        site = get_current_site(request)
        login = credentials.get("email", credentials.get("username", ""))
        return f"{site.domain}:{normalize_email_address(login)}"

    def _get_login_attempts_cache_key(self, request, **credentials) -> str:
        # allauth's "key" rate: the account and the client IP (IPv6 truncated like the IP rate).
        return f"{self._account_login(request, credentials)}:{ratelimit.get_ip(request)}"

    def _known_ips_cache_key(self, account_login: str) -> str:
        digest = hashlib.sha256(account_login.encode()).hexdigest()
        return f"coachbook:login-known-ips:{digest}"

    def _is_known_ip(self, request, account_login: str) -> bool:
        return ratelimit.get_ip(request) in cache.get(self._known_ips_cache_key(account_login), [])

    def remember_login_ip(self, request, user) -> None:
        account_login = self._account_login(request, {"email": user.email})
        key = self._known_ips_cache_key(account_login)
        ip = ratelimit.get_ip(request)
        known = [ip, *(known_ip for known_ip in cache.get(key, []) if known_ip != ip)]
        cache.set(key, known[:KNOWN_IPS_PER_ACCOUNT], KNOWN_IP_DAYS * 86400)

    def pre_authenticate(self, request, **credentials) -> None:
        self._account_rl_usage = None
        super().pre_authenticate(request, **credentials)  # per IP, per account and IP
        account_login = self._account_login(request, credentials)
        if self._is_known_ip(request, account_login):
            return
        self._account_rl_usage = ratelimit.consume(
            request, app="allauth.account", action=ACCOUNT_WIDE_ACTION, key=account_login
        )
        if not self._account_rl_usage:
            super()._rollback_login_failed_rl_usage()
            raise self.validation_error("too_many_login_attempts")

    def _delete_login_attempts_cached_email(self, request, **credentials) -> None:
        # After a password reset (which proved the mailbox): the owner starts afresh, on this
        # address and account-wide.
        super()._delete_login_attempts_cached_email(request, **credentials)
        ratelimit.clear(
            request,
            app="allauth.account",
            action=ACCOUNT_WIDE_ACTION,
            key=self._account_login(request, credentials),
        )

    def _rollback_login_failed_rl_usage(self) -> None:
        super()._rollback_login_failed_rl_usage()
        usage = getattr(self, "_account_rl_usage", None)
        if usage:
            usage.rollback()

    def login(self, request, user) -> None:
        super().login(request, user)
        if request is not None and user.email:
            self.remember_login_ip(request, user)
