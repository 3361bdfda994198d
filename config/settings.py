"""Coachbook settings: one module, configured from the environment (and an optional `.env`).

Every variable has a default that is safe for `make run` (SQLite, console email, embedded
broker); production (`DEBUG=false`) refuses to start with the development secret key, the
`.env.example` placeholder, or any key shorter than 50 characters. `DJANGO_READ_DOT_ENV=0`
makes these settings ignore `.env` (the settings tests use it, so a developer's `.env` cannot
change their outcome).
"""

import ipaddress
from pathlib import Path

import environ
from csp import constants as csp
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"
# Publicly known keys production refuses: the development default and the old placeholder.
KNOWN_SECRET_KEYS = frozenset({DEV_SECRET_KEY, "change-me-to-a-long-random-string"})
MIN_SECRET_KEY_LENGTH = 50

env = environ.Env()
if env.bool("DJANGO_READ_DOT_ENV", default=True):
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
if not DEBUG and (SECRET_KEY in KNOWN_SECRET_KEYS or len(SECRET_KEY) < MIN_SECRET_KEY_LENGTH):
    raise ImproperlyConfigured(
        "Set SECRET_KEY: production (DEBUG=false) refuses the default or placeholder key and any "
        f"key shorter than {MIN_SECRET_KEY_LENGTH} characters. Make one with: python -c "
        '"import secrets; print(secrets.token_urlsafe(50))"'
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "csp",
    "accounts",
    "calendars",
    "catalog",
    "refunds",
    "sessions_app",
    "notifications",
    "policies",
]

MIDDLEWARE = [
    # First: drops X-Forwarded-Proto unless it comes from a trusted proxy (the security section).
    "core.middleware.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.UserTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # A view that finds the database down answers the branded 503 page (core/views.py).
    "core.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "sessions_app.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock when a transaction opens, so the service-level checks
    # (no overlapping slots, one holder per slot) cannot interleave on SQLite.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    # Server-side parameters let psycopg prepare a statement run five times on a connection,
    # so PostgreSQL stops planning the same queries (the navigation's took 0.9 ms to plan and
    # 0.4 ms to run) on every page. Off behind a transaction-pooling PgBouncer.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "server_side_binding", env.bool("DATABASE_SERVER_SIDE_BINDING", default=True)
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Accounts -------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="mandatory")
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
# Sign-up and login normalise the typed address (accounts.models.normalize_email_address).
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm", "login": "accounts.forms.LoginForm"}
# Failed logins (docs/decisions.md, "Login limits"; accounts.adapters.AccountAdapter): 10 a
# minute per client IP; 5 in 5 minutes per account *from one IP* (allauth's "key", which the
# adapter makes account + IP, so someone else's guesses never lock the owner out); 30 an hour
# per account over all IPs, which an IP the account logged in from in the last 30 days passes.
# A successful login takes its own attempt back. The other limits stay at allauth's defaults.
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "login_failed_account": "30/h/key",
}
# The client IP of every per-IP limit: the X-Forwarded-For entry this many proxies from the
# right (0: REMOTE_ADDR; X-Forwarded-For is ignored). Set to the number of proxies you run in
# front of the site (docker compose: 1); more than you run lets a client pick its own IP.
ALLAUTH_TRUSTED_PROXY_COUNT = env.int("ALLAUTH_TRUSTED_PROXY_COUNT", default=0)

# --- Time and language ----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
# config/formats/en/formats.py: one date format in the admin ("2 Dec 2026, 11:00").
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Email ----------------------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Coachbook <no-reply@coachbook.local>")
# A mail server that stops answering gives up well inside a delivery's claim lease.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)

# --- Notifications (the outbox, docs/operations.md) --------------------------------------------
# How long a worker holds a delivery it is sending; one left claimed longer (the worker was
# killed) is sent again by the sweep. Longer than any send (EMAIL_TIMEOUT, the task time limit).
NOTIFICATIONS_CLAIM_LEASE_SECONDS = env.int("NOTIFICATIONS_CLAIM_LEASE_SECONDS", default=600)
# A delivery that keeps failing is given up (FAILED; the admin can send again) when its next
# attempt would fall more than this many hours after it was written (or sent again).
NOTIFICATIONS_GIVE_UP_HOURS = env.int("NOTIFICATIONS_GIVE_UP_HOURS", default=24)
# One outbox sweep run stops after this many seconds or rows; the rest waits for the next run.
NOTIFICATIONS_SWEEP_SECONDS = env.int("NOTIFICATIONS_SWEEP_SECONDS", default=50)
NOTIFICATIONS_SWEEP_MAX_ROWS = env.int("NOTIFICATIONS_SWEEP_MAX_ROWS", default=2000)
NOTIFICATIONS_RETRY_BASE_SECONDS = env.int("NOTIFICATIONS_RETRY_BASE_SECONDS", default=60)
NOTIFICATIONS_RETRY_MAX_SECONDS = env.int("NOTIFICATIONS_RETRY_MAX_SECONDS", default=3600)
# How long before a request's or a proposal's deadline the side that must answer is warned.
NOTIFICATIONS_EXPIRY_WARNING_HOURS = env.int("NOTIFICATIONS_EXPIRY_WARNING_HOURS", default=6)

# --- Cache, Celery --------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    # Fails open: with Redis down, logging in still works (allauth's rate limits are skipped,
    # with a warning in the log) and nothing answers a 500. Without REDIS_URL (`make run`):
    # Django's local-memory cache.
    CACHES = {"default": {"BACKEND": "core.cache.FailOpenRedisCache", "LOCATION": REDIS_URL}}

# Signed-in sessions are read from the cache and written through to the database, so a page
# does not query `django_session` each time; with Redis down (the cache fails open) they come
# from the database as before.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# Celery (config/celery.py reads every CELERY_* setting). Broker: Redis when REDIS_URL is set,
# else kombu's filesystem transport under .celery/ (no server; `make run` uses it). Results
# are never read, so there is no result backend. See docs/operations.md.
CELERY_BROKER_URL = (
    env.str("CELERY_BROKER_URL", default="") or REDIS_URL or "filesystem://localhost/"
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    _celery_dir = Path(env.str("CELERY_FILESYSTEM_DIR", default=str(BASE_DIR / ".celery")))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "processed", "control"):
        (_celery_dir / _folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"  # console email in a worker is not a warning
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = env.str(
    "CELERY_BEAT_SCHEDULE_FILENAME", default=str(BASE_DIR / ".celery" / "celerybeat-schedule")
)
# Each entry expires shortly before its next run, so a backlog never piles up duplicates.
_every = {
    "expire": env.int("JOBS_EXPIRE_EVERY_SECONDS", default=60),
    "reopen": env.int("JOBS_REOPEN_EVERY_SECONDS", default=300),
    "complete": env.int("JOBS_COMPLETE_EVERY_SECONDS", default=300),
    "reminders": env.int("JOBS_REMINDERS_EVERY_SECONDS", default=300),
    "deliveries": env.int("JOBS_DELIVERIES_EVERY_SECONDS", default=60),
    "warnings": env.int("JOBS_WARNINGS_EVERY_SECONDS", default=300),
    "credits": env.int("JOBS_CREDITS_EVERY_SECONDS", default=900),
}
# How often external busy calendars are fetched (also said in the calendar pages' messages).
CALENDAR_SYNC_EVERY_SECONDS = env.int("CALENDAR_SYNC_EVERY_SECONDS", default=15 * 60)
CELERY_BEAT_SCHEDULE = {
    "expire-stale": {
        "task": "sessions.expire_stale",
        "schedule": _every["expire"],
        "options": {"expires": _every["expire"]},
    },
    "reopen-freed-slots": {
        "task": "calendars.reopen_freed_slots",
        "schedule": _every["reopen"],
        "options": {"expires": _every["reopen"]},
    },
    "complete-past": {
        "task": "sessions.complete_past",
        "schedule": _every["complete"],
        "options": {"expires": _every["complete"]},
    },
    "send-reminders": {
        "task": "sessions.send_reminders",
        "schedule": _every["reminders"],
        "options": {"expires": _every["reminders"]},
    },
    # Students hear 14 and 2 days before their unused credits expire.
    "remind-expiring-credits": {
        "task": "sessions.remind_expiring_credits",
        "schedule": _every["credits"],
        "options": {"expires": _every["credits"]},
    },
    "sync-external-calendars": {
        "task": "calendars.sync_external_calendars",
        "schedule": CALENDAR_SYNC_EVERY_SECONDS,
        "options": {"expires": CALENDAR_SYNC_EVERY_SECONDS},
    },
    # The outbox sweep: sends pending deliveries a dead broker or killed worker left behind,
    # and retries failed sends with backoff.
    "send-due-deliveries": {
        "task": "notifications.send_due",
        "schedule": _every["deliveries"],
        "options": {"expires": _every["deliveries"]},
    },
    "warn-expiring": {
        "task": "notifications.warn_expiring",
        "schedule": _every["warnings"],
        "options": {"expires": _every["warnings"]},
    },
    # Re-queues refunds an asynchronous gateway left pending after their own task gave up.
    "settle-pending-refunds": {
        "task": "refunds.settle_pending_refunds",
        "schedule": 10 * 60,
        "options": {"expires": 10 * 60},
    },
    # Asks the processor about payments still awaiting it (a webhook that never came).
    "reconcile-awaiting-payments": {
        "task": "refunds.reconcile_awaiting_payments",
        "schedule": 10 * 60,
        "options": {"expires": 10 * 60},
    },
}

# --- Security (docs/operations.md, "Security") ----------------------------------------------
# Production (DEBUG=false) defaults pass `check --deploy --fail-level WARNING`: HTTPS only
# (redirect and HSTS) and Secure cookies. Each can be turned off for plain-HTTP trials.
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    # Only allows submitting the domain to the browsers' preload list; nothing submits it.
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
# The proxies (IP addresses or networks, comma-separated; `*` for any) whose X-Forwarded-Proto
# is believed: the same FORWARDED_ALLOW_IPS gunicorn reads. Unset, no client can claim https;
# core.middleware.TrustedProxyMiddleware drops the header from every other address.
TRUSTED_PROXIES = [entry for entry in env.list("FORWARDED_ALLOW_IPS", default=[]) if entry]
for _proxy in TRUSTED_PROXIES:
    if _proxy != "*":
        try:
            ipaddress.ip_network(_proxy, strict=False)
        except ValueError as _error:
            raise ImproperlyConfigured(
                f"FORWARDED_ALLOW_IPS: {_proxy!r} is not an IP address or network."
            ) from _error
if TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Content-Security-Policy (django-csp; core.middleware adds the Stripe.js, Stripe frame and
# Stripe API origins from STRIPE_JS_URL and STRIPE_API_BASE). No inline script anywhere; the
# style attributes that place blocks on the week grid (CSS variables) need style-src-attr.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.SELF],
        "script-src": [csp.SELF],
        "style-src": [csp.SELF],
        "style-src-attr": [csp.UNSAFE_INLINE],
        "img-src": [csp.SELF, "data:"],
        "font-src": [csp.SELF],
        "connect-src": [csp.SELF],
        "frame-src": [csp.SELF],
        "object-src": [csp.NONE],
        "base-uri": [csp.SELF],
        "form-action": [csp.SELF],
        "frame-ancestors": [csp.NONE],
    },
}
# Where browsers report what the policy blocked (optional; any collector URL).
# (Not a CSP_* setting: django-csp refuses its pre-4.0 names.)
if _csp_report_uri := env.str("CSP_REPORT_URI", default=""):
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["report-uri"] = [_csp_report_uri]
# Seconds the 503 page (database unreachable) asks clients to wait (Retry-After).
DATABASE_UNAVAILABLE_RETRY_AFTER = env.int("DATABASE_UNAVAILABLE_RETRY_AFTER", default=30)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Coachbook ------------------------------------------------------------------------------
# Payments (docs/payments.md): `manual` records what the coach settles offline (the embedded
# default); `stripe` takes cards through Stripe's API and Stripe.js.
PAYMENT_GATEWAYS = ("manual", "stripe")
PAYMENT_GATEWAY = env.str("PAYMENT_GATEWAY", default="manual")
if PAYMENT_GATEWAY not in PAYMENT_GATEWAYS:
    raise ImproperlyConfigured(
        f"PAYMENT_GATEWAY must be one of {', '.join(PAYMENT_GATEWAYS)}, not {PAYMENT_GATEWAY!r}."
    )
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Stripe's own API unless pointed at a Stripe-compatible server (localstripe in tests and in
# `make run-stripe`); the same for the Stripe.js the payment page loads.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
STRIPE_JS_URL = env.str("STRIPE_JS_URL", default="https://js.stripe.com/v3/")
# Seconds a webhook's signed timestamp may be old before the event is refused as a replay.
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
STRIPE_TIMEOUT_SECONDS = env.int("STRIPE_TIMEOUT_SECONDS", default=20)
if PAYMENT_GATEWAY == "stripe" and not DEBUG:
    _missing = [
        name
        for name in ("STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET")
        if not globals()[name]
    ]
    if _missing:
        raise ImproperlyConfigured(
            f"PAYMENT_GATEWAY=stripe needs {', '.join(_missing)}: production (DEBUG=false) "
            "refuses to start without them."
        )
CANCELLATION_RATE_DAYS = 90
# The policy of a coach who has not saved one: the model's defaults (policies.models), with
# these fields over them, e.g. {"coach_cancel_rule": "coach_decides"}.
CANCELLATION_POLICY_DEFAULTS: dict = {}
# External calendar sync (calendars/sync.py): fetch limits, and whether private, loopback and
# link-local addresses may be fetched (never in production: tests serve feeds from 127.0.0.1).
CALENDAR_SYNC_ALLOW_PRIVATE = env.bool("CALENDAR_SYNC_ALLOW_PRIVATE", default=False)
CALENDAR_SYNC_TIMEOUT = env.int("CALENDAR_SYNC_TIMEOUT", default=10)
CALENDAR_SYNC_MAX_BYTES = env.int("CALENDAR_SYNC_MAX_BYTES", default=2 * 1024 * 1024)
# How many calendars one sync fetches at the same time (threads in the worker).
CALENDAR_SYNC_WORKERS = env.int("CALENDAR_SYNC_WORKERS", default=8)
