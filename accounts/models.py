import secrets
import unicodedata
import zoneinfo

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


def new_calendar_token() -> str:
    return secrets.token_urlsafe(32)


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"“{value}” is not a known time zone.")


# Cc: control characters (newline, tab, NUL, DEL, NEL); Zl/Zp: line and paragraph separators.
_BREAKING_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def one_line(text: str) -> str:
    """`text` with control characters and line or paragraph separators turned into spaces and
    runs of whitespace collapsed: safe in an email subject or any other one-line place."""
    cleaned = "".join(
        " " if unicodedata.category(char) in _BREAKING_CATEGORIES else char for char in text
    )
    return " ".join(cleaned.split())


# Invisible in a name: format characters (zero-width space and joiners, U+FEFF, soft hyphen),
# spaces of every width, controls, and the blank "letters" (Hangul fillers, braille blank).
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Zs", "Zl", "Zp", "Mn", "Me", "Cn", "Co"})
_BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Bidirectional controls reorder the text around them ("evil\u202egnp.exe" reads "exe.png").
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def is_invisible(char: str) -> bool:
    return char in _BLANK_CHARACTERS or unicodedata.category(char) in _INVISIBLE_CATEGORIES


def validate_display_name(value: str) -> None:
    """A display name is one line of visible text: no newlines, tabs or other control codes, no
    bidirectional controls, and at least one visible character (not only zero-width ones)."""
    if any(unicodedata.category(char) in _BREAKING_CATEGORIES for char in value):
        raise ValidationError(
            "Use one line without tabs or other control characters.", code="control_characters"
        )
    if any(char in BIDI_CONTROLS for char in value):
        raise ValidationError(
            "Remove the text-direction control characters (such as U+202E): they make a name "
            "read differently from what it is.",
            code="bidi_controls",
        )
    if value and all(is_invisible(char) for char in value):
        raise ValidationError(
            "Use at least one visible letter or digit; this name shows as blank.",
            code="invisible",
        )


# Removed from an email address wherever it is typed: format characters (zero-width space,
# joiners, U+FEFF, soft hyphen, bidi controls) and whitespace of any kind (after NFKC, which
# turns full-width letters and U+FF20 into plain ones). A mail server ignores none of these, so an
# address that differs only by them is a look-alike of the plain one.
_EMAIL_STRIPPED_CATEGORIES = frozenset({"Cf", "Cc", "Zs", "Zl", "Zp"})


def normalize_email_address(value: str) -> str:
    """The one stored form of an email address: Unicode NFKC, without format or whitespace
    characters, lower-cased, and its domain IDNA-encoded (punycode, ``xn--``).

    Every place an address is set or looked up goes through this, so ``sam@example.com`` with
    a zero-width space, or in full-width letters, is the same address as the plain one. An
    address whose domain cannot be encoded is returned without the encoding; the email
    validator then refuses it.
    """
    value = unicodedata.normalize("NFKC", value or "")
    value = "".join(
        char for char in value if unicodedata.category(char) not in _EMAIL_STRIPPED_CATEGORIES
    )
    value = value.lower()
    local, at, domain = value.rpartition("@")
    if not at:
        return value
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return value
    return f"{local}@{domain.lower()}"


class UserManager(BaseUserManager):
    use_in_migrations = True

    @classmethod
    def normalize_email(cls, email):
        """See `normalize_email_address`: NFKC, no invisible characters, IDNA domain, lower."""
        return normalize_email_address(email or "")

    def get_by_natural_key(self, username):
        return self.get(**{self.model.USERNAME_FIELD: normalize_email_address(username or "")})

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra_fields)


class User(AbstractUser):
    """A person: logs in with their email; every time they see is shown in `timezone`."""

    username = None
    first_name = None
    last_name = None
    email = models.EmailField("email address", unique=True)
    display_name = models.CharField(max_length=120, blank=True, validators=[validate_display_name])
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    # The secret in the user's calendar feed URL; regenerating it kills the old URL.
    calendar_token = models.CharField(max_length=64, unique=True, default=new_calendar_token)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = []

    objects = UserManager()

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return self.display_name or self.email.split("@")[0]

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        try:
            return zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return zoneinfo.ZoneInfo("UTC")

    @property
    def is_coach(self) -> bool:
        return hasattr(self, "coach_profile")


MAX_WINDOW_HOURS = 720  # 30 days: the longest request window, reschedule window or notice
MAX_BUFFER_MINUTES = 240
MIN_START_INTERVAL_MINUTES, MAX_START_INTERVAL_MINUTES = 5, 240
MAX_BOOKING_HORIZON_DAYS = 730


class CoachProfile(models.Model):
    """What makes a user a coach, and the windows that govern their sessions.

    The windows are bounded here and in the database (1..720 hours, notice 0..720), so no stored
    value can overflow a `timedelta` or push an expiry decades away.
    """

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="coach_profile")
    headline = models.CharField(max_length=160, blank=True)
    bio = models.TextField(blank=True)
    request_window_hours = models.PositiveIntegerField(
        default=48,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_WINDOW_HOURS)],
        help_text="How long a booking request waits for the coach before it expires.",
    )
    reschedule_window_hours = models.PositiveIntegerField(
        default=48,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_WINDOW_HOURS)],
        help_text="How long a proposed new time waits for an answer.",
    )
    minimum_notice_hours = models.PositiveIntegerField(
        default=12,
        validators=[MaxValueValidator(MAX_WINDOW_HOURS)],
        help_text="Students cannot book a time that starts sooner than this.",
    )
    buffer_before_minutes = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_BUFFER_MINUTES)],
        help_text="Free time kept before each session.",
    )
    buffer_after_minutes = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_BUFFER_MINUTES)],
        help_text="Free time kept after each session.",
    )
    start_interval_minutes = models.PositiveSmallIntegerField(
        default=30,
        validators=[
            MinValueValidator(MIN_START_INTERVAL_MINUTES),
            MaxValueValidator(MAX_START_INTERVAL_MINUTES),
        ],
        help_text="Sessions start on this grid, counted from the start of each window.",
    )
    booking_horizon_days = models.PositiveSmallIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_BOOKING_HORIZON_DAYS)],
        help_text="Students can book at most this many days ahead.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    request_window_hours__gte=1, request_window_hours__lte=MAX_WINDOW_HOURS
                ),
                name="coachprofile_request_window_range",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    reschedule_window_hours__gte=1, reschedule_window_hours__lte=MAX_WINDOW_HOURS
                ),
                name="coachprofile_reschedule_window_range",
            ),
            models.CheckConstraint(
                condition=models.Q(minimum_notice_hours__lte=MAX_WINDOW_HOURS),
                name="coachprofile_minimum_notice_range",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    buffer_before_minutes__lte=MAX_BUFFER_MINUTES,
                    buffer_after_minutes__lte=MAX_BUFFER_MINUTES,
                ),
                name="coachprofile_buffers_range",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    start_interval_minutes__gte=MIN_START_INTERVAL_MINUTES,
                    start_interval_minutes__lte=MAX_START_INTERVAL_MINUTES,
                ),
                name="coachprofile_start_interval_range",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    booking_horizon_days__gte=1, booking_horizon_days__lte=MAX_BOOKING_HORIZON_DAYS
                ),
                name="coachprofile_booking_horizon_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Coach {self.user}"
