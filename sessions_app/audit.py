"""The audit of cancellation and no-show outcomes (issue 15): what each rule produced, in plain
language, and the counts of late cancellations, coach cancellations and no-shows per person.

Everything here reads what the events recorded (`SessionEvent.details`, written with
`policies.rules.Outcome.details`), never the coach's policy of today: a policy changed later
does not rewrite what an earlier cancel produced. The wording functions are pure; the report
is two aggregate queries over `SessionEvent`, narrowed by its `(action, created_at)` index.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, F, Q
from django.utils import timezone

from core.money import format_money
from policies.rules import Rule
from sessions_app.lifecycle import ATTENDANCE_ACTIONS, HOLDING_STATUSES, Action, Attendance
from sessions_app.models import SessionEvent

# The details keys that `Outcome.details` writes; the admin shows them as "Rule applied" and
# "Outcome" instead of listing them one by one.
RULE_KEYS = ("rule", "rule_summary", "rule_refund_cents", "rule_used", "notice_hours")
# Events that may record a rule: a cancel, and the attendance marks (a student no-show).
RULE_ACTIONS = (Action.CANCEL, *ATTENDANCE_ACTIONS)

_SIDE = {"student": "Student", "coach": "Coach"}


def rule_label(value: str | None) -> str:
    """A rule's name for people ("Student canceled late: partial refund"); an unknown value
    (a rule since retired) as it was stored."""
    if not value:
        return ""
    try:
        return Rule(value).label
    except ValueError:
        return value


def rule_text(details: dict | None) -> str:
    """The rule an event applied and what it promised, from the event's details:
    "Student canceled late: partial refund (Cancel 12 h-24 h before: 50 % back.)", or ""."""
    details = details or {}
    rule = details.get("rule")
    if not rule:
        return ""
    summary = details.get("rule_summary") or ""
    return f"{rule_label(rule)} ({summary})" if summary else rule_label(rule)


def _hours(value) -> str:
    return f"{float(value):g} h"


def _promise(summary: str) -> str:
    """The tier's promise, the summary's words after its colon ("50 % back")."""
    return summary.split(": ", 1)[-1].strip().rstrip(".")


def produced_text(details: dict, currency: str) -> str:
    """What the event produced: "$27.50 refunded", "Make-up credit #12 given", "Session used",
    "No refund"; "" when the event moved no money and used nothing."""
    refund = details.get("refund")
    if refund in ("full", "partial") and details.get("refund_amount_cents") is not None:
        return f"{format_money(details['refund_amount_cents'], currency)} refunded"
    if refund == "credit" and details.get("makeup_session_id"):
        return f"Make-up credit #{details['makeup_session_id']} given"
    if details.get("rule_used"):
        return "Session used"
    if refund == "none":
        return "No refund"
    return ""


def outcome_text(action: str, details: dict | None, currency: str) -> str:
    """One event's outcome in plain language, from its details:

    "Student canceled 18 h before: 50 % back → $27.50 refunded",
    "Coach canceled: full refund → $30.00 refunded", "... → Make-up credit #12 given",
    "Student didn't show → Session used", "Make-up credit taken as a refund → $30.00 refunded".
    "" for events that record no outcome (a booking, an acceptance).
    """
    details = details or {}
    produced = produced_text(details, currency)
    if action == Action.CANCEL:
        who = _SIDE.get(details.get("canceled_by"), "")
        head = f"{who} canceled" if who else "Canceled"
        if details.get("notice_hours") is not None:
            head += f" {_hours(details['notice_hours'])} before"
    elif action == Action.REFUND_CREDIT:
        head = "Make-up credit taken as a refund"
    elif action in ATTENDANCE_ACTIONS:
        head = Action(action).label
    elif action == Action.CREATE and details.get("makeup_for"):
        return f"Make-up credit for session #{details['makeup_for']}"
    else:
        return ""
    promise = _promise(details.get("rule_summary") or "")
    if promise and not (produced == "Session used" and "used" in promise):
        head = f"{head}: {promise}"
    return f"{head} → {produced}" if produced else head


# --- the report: late cancellations, coach cancellations and no-shows per person ----------------


@dataclass(frozen=True)
class Category:
    key: str
    label: str
    condition: Q


LATE_RULES = (Rule.STUDENT_PARTIAL, Rule.STUDENT_LATE)

# What the report counts, one column each. A coach cancellation is a cancel by the session's
# coach of a booked session (from Requested, Confirmed or Rescheduling), as the cancellation
# rate counts it (decision 3); a coach no-show is counted when reported and when confirmed.
CATEGORIES = (
    Category(
        "late_cancel",
        "Late cancellations",
        Q(action=Action.CANCEL, details__rule__in=[rule.value for rule in LATE_RULES]),
    ),
    Category(
        "coach_cancel",
        "Coach cancellations",
        Q(
            action=Action.CANCEL,
            from_status__in=HOLDING_STATUSES,
            actor_id=F("session__coach_id"),
        ),
    ),
    Category("student_no_show", "Student no-shows", Q(action=Action.MARK_NO_SHOW)),
    Category(
        "coach_no_show_reported",
        "Coach no-shows reported",
        Q(action=Action.REPORT_COACH_NO_SHOW),
    ),
    Category(
        "coach_no_show",
        "Coach no-shows confirmed",
        Q(action__in=ATTENDANCE_ACTIONS, details__attendance=Attendance.COACH_NO_SHOW),
    ),
)
CATEGORY_KEYS = tuple(category.key for category in CATEGORIES)
REPORT_ACTIONS = (Action.CANCEL, *ATTENDANCE_ACTIONS)
SIDES = ("coach", "student")

DEFAULT_DAYS = 90
MAX_DAYS = 366


class ReportRangeInvalid(ValueError):
    """A date range the report refuses, with a message fit for a person."""


@dataclass(frozen=True)
class ReportRange:
    """Whole days `first`..`last` (inclusive) in the viewer's timezone."""

    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def bounds(self, zone=None) -> tuple[datetime, datetime]:
        """[start of `first`, start of the day after `last`) as aware datetimes."""
        zone = zone or timezone.get_current_timezone()
        start = datetime.combine(self.first, time.min, tzinfo=zone)
        end = datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=zone)
        return start, end


def report_range(*, first: str | None, last: str | None, today: date | None = None) -> ReportRange:
    """The range asked for (ISO dates, either may be blank), defaulting to the last
    DEFAULT_DAYS days up to today; `ReportRangeInvalid` for a date that does not parse, a
    range that ends before it starts or one longer than MAX_DAYS."""
    today = today or timezone.localdate()

    def parse(value: str | None, name: str) -> date | None:
        value = (value or "").strip()
        if not value:
            return None
        try:
            if len(value) > 10:
                raise ValueError
            return date.fromisoformat(value)
        except ValueError:
            raise ReportRangeInvalid(
                f"The {name} date {value[:20]!r} is not a date; use YYYY-MM-DD, e.g. "
                f"{today:%Y-%m-%d}."
            ) from None

    end = parse(last, "last") or today
    start = parse(first, "first") or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise ReportRangeInvalid("The first date is after the last one; swap them.")
    chosen = ReportRange(start, end)
    if chosen.days > MAX_DAYS:
        raise ReportRangeInvalid(
            f"That range is {chosen.days} days; the report covers at most {MAX_DAYS} days."
        )
    return chosen


def report_rows(*, side: str, start: datetime, end: datetime, limit: int | None = None):
    """Per coach (or per student, `side`), the events of each category in [start, end):
    dicts with `person_id`, `email`, `display_name`, one count per CATEGORY_KEYS and `total`,
    most events first. One query, grouped in the database; `limit` bounds the rows."""
    if side not in SIDES:
        raise ValueError(side)
    person = f"session__{side}"
    matches = Q()
    for category in CATEGORIES:
        matches |= category.condition
    rows = (
        SessionEvent.objects.filter(
            matches, action__in=REPORT_ACTIONS, created_at__gte=start, created_at__lt=end
        )
        .values(
            person_id=F(f"{person}_id"),
            email=F(f"{person}__email"),
            display_name=F(f"{person}__display_name"),
        )
        .annotate(
            **{c.key: Count("pk", filter=c.condition) for c in CATEGORIES},
            total=Count("pk"),
        )
        .order_by("-total", "email", "person_id")
    )
    return rows[:limit] if limit is not None else rows.iterator(chunk_size=2000)
