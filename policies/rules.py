"""What a coach's policy gives back, computed in one place (issue 15).

Pure functions of the policy, the session's start and price, who acts and the clock: no
queries, so the refund drawer, the student's cancel page, the policy preview, the services and
the tests all ask the same function and get the same answer. Notice is real elapsed time
(`start - now` of aware datetimes), so a "24 h" tier means 24 hours also across a change of
clocks. An outcome is recorded on the event it produced (`Outcome.details`), with the rule.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import models

from core.money import format_money
from policies.models import CancellationPolicy, CoachSideRule


class Rule(models.TextChoices):
    STUDENT_FREE = "student_free", "Student canceled with enough notice"
    STUDENT_PARTIAL = "student_partial", "Student canceled late: partial refund"
    STUDENT_LATE = "student_late", "Student canceled too late: session used"
    COACH_CANCEL = "coach_cancel", "Coach canceled"
    COACH_DISCRETION = "coach_discretion", "Coach canceled (no rule binds: not booked ahead)"
    STUDENT_NO_SHOW = "student_no_show", "Student didn't show: session used"
    COACH_NO_SHOW = "coach_no_show", "Coach didn't show"


class Choice(models.TextChoices):
    """What a cancel gives back; the refund drawer's radio buttons."""

    FULL = "full", "Full refund"
    PARTIAL = "partial", "Partial refund"
    CREDIT = "credit", "Give a make-up credit"
    NONE = "none", "Cancel without refund"


# What the coach may choose under each coach-side rule: the rule's promise or more (a make-up
# credit is worth the whole session, like a full refund), never less.
_COACH_SIDE_CHOICES = {
    CoachSideRule.STUDENT_CHOICE: (Choice.CREDIT, Choice.FULL),
    CoachSideRule.FULL_REFUND: (Choice.FULL,),
    CoachSideRule.MAKEUP_CREDIT: (Choice.CREDIT, Choice.FULL),
    CoachSideRule.COACH_DECIDES: (Choice.FULL, Choice.PARTIAL, Choice.CREDIT, Choice.NONE),
}


@dataclass(frozen=True)
class Outcome:
    """What one rule produces for one session at one moment.

    `choices` are what the acting side may pick (for a coach, at least as generous as the
    rule); `default` is the one pre-filled. `refund_cents` is the money the rule returns (the
    most, for a partial refund the amount). `used` says the session counts as used.
    `student_may_swap` marks a make-up credit the student may turn into a full refund (the
    coach-side "student's choice").
    """

    rule: Rule
    summary: str
    choices: tuple[Choice, ...]
    default: Choice | None
    refund_cents: int
    used: bool = False
    notice: timedelta | None = None
    student_may_swap: bool = False

    def allows(self, choice: str, amount_cents: int | None = None) -> bool:
        """Whether `choice` (and a partial `amount_cents`) is within this outcome: one of the
        choices, and in the student's partial tier exactly the tier's amount (a coach who
        decides each time types any amount; the refunds service bounds it)."""
        if choice not in self.choices:
            return False
        if choice == Choice.PARTIAL and self.rule == Rule.STUDENT_PARTIAL:
            return amount_cents == self.refund_cents
        return True

    def details(self) -> dict:
        """The rule and its result, for the event's details (the admin's audit reads them)."""
        facts = {
            "rule": self.rule.value,
            "rule_summary": self.summary,
            "rule_refund_cents": self.refund_cents,
            "rule_used": self.used,
        }
        if self.notice is not None:
            facts["notice_hours"] = round(self.notice.total_seconds() / 3600, 2)
        return facts


def percent_of(cents: int, percent: int) -> int:
    """`percent` % of `cents`, half a cent rounded up (50 % of $55.01 is $27.51)."""
    return (cents * percent + 50) // 100


def _hours(value: int) -> str:
    return f"{value} h"


def student_tiers(policy: CancellationPolicy, currency: str = "USD") -> list[str]:
    """The student's tiers in plain language, most notice first."""
    free, partial = policy.free_notice_hours, policy.partial_notice_hours
    lines = [f"Cancel {_hours(free)} or more before the start: full refund or a make-up credit."]
    if partial < free:
        back = f"{policy.partial_percent} % back" if policy.partial_percent else "nothing back"
        lines.append(f"Cancel {_hours(partial)}–{_hours(free)} before: {back}.")  # noqa: RUF001
    if partial > 0:
        lines.append(f"Later than {_hours(partial)} before: the session is used.")
    return lines


def policy_summary(policy: CancellationPolicy) -> list[str]:
    """Every rule of the policy in plain language, as the coach page and checkout show it."""
    limit = policy.student_reschedule_limit
    if limit == 0:
        reschedule = "Students cannot propose new times; the coach can."
    else:
        times = "once" if limit == 1 else f"up to {limit} times"
        reschedule = f"You can propose a new time {times} per session"
        if policy.reschedule_notice_hours:
            reschedule += f", not within {_hours(policy.reschedule_notice_hours)} of the start"
        reschedule += "."
    return [
        *student_tiers(policy),
        "A session you miss without canceling is used.",
        f"If the coach cancels: {CoachSideRule(policy.coach_cancel_rule).label.lower()}.",
        f"If the coach doesn't show: {CoachSideRule(policy.coach_no_show_rule).label.lower()}.",
        reschedule,
    ]


def _coach_side(rule: Rule, side_rule: str, refundable_cents: int, summary: str) -> Outcome:
    choices = _COACH_SIDE_CHOICES[CoachSideRule(side_rule)]
    return Outcome(
        rule=rule,
        summary=summary,
        choices=choices,
        default=None if side_rule == CoachSideRule.COACH_DECIDES else choices[0],
        refund_cents=refundable_cents,
        student_may_swap=side_rule == CoachSideRule.STUDENT_CHOICE,
    )


def cancellation_outcome(
    *,
    policy: CancellationPolicy,
    by_coach: bool,
    booked_ahead: bool,
    start: datetime | None,
    share_cents: int,
    refundable_cents: int,
    now: datetime,
) -> Outcome:
    """What canceling a session now gives back under `policy`.

    `booked_ahead`: the session holds an agreed time that has not started (CONFIRMED or
    RESCHEDULING before `start`); only then do the notice tiers and the coach-side rule bind.
    Otherwise (a credit not booked yet, a request, a session already held) the coach chooses
    freely and a student cannot cancel. `share_cents` is the session's price, on which the
    partial percentage is taken; `refundable_cents` what is still refundable of it.
    """
    if by_coach:
        if not booked_ahead:
            return Outcome(
                rule=Rule.COACH_DISCRETION,
                summary="Not booked ahead: the coach chooses the refund.",
                choices=(Choice.FULL, Choice.PARTIAL, Choice.CREDIT, Choice.NONE),
                default=None,
                refund_cents=refundable_cents,
            )
        label = CoachSideRule(policy.coach_cancel_rule).label
        return _coach_side(
            Rule.COACH_CANCEL,
            policy.coach_cancel_rule,
            refundable_cents,
            f"The coach cancels: {label.lower()}.",
        )
    # In UTC: aware datetimes sharing a zone subtract as wall-clock times, which across a
    # change of clocks is an hour off the real notice.
    notice = start.astimezone(UTC) - now.astimezone(UTC)
    if notice >= timedelta(hours=policy.free_notice_hours):
        return Outcome(
            rule=Rule.STUDENT_FREE,
            summary=student_tiers(policy)[0],
            choices=(Choice.FULL, Choice.CREDIT),
            default=None,
            refund_cents=refundable_cents,
            notice=notice,
        )
    if notice >= timedelta(hours=policy.partial_notice_hours):
        amount = min(percent_of(share_cents, policy.partial_percent), refundable_cents)
        choice = Choice.PARTIAL if amount > 0 else Choice.NONE
        if amount and amount == refundable_cents:
            choice = Choice.FULL
        return Outcome(
            rule=Rule.STUDENT_PARTIAL,
            summary=student_tiers(policy)[1],
            choices=(choice,),
            default=choice,
            refund_cents=amount,
            used=amount == 0,
            notice=notice,
        )
    return Outcome(
        rule=Rule.STUDENT_LATE,
        summary=student_tiers(policy)[-1],
        choices=(Choice.NONE,),
        default=Choice.NONE,
        refund_cents=0,
        used=True,
        notice=notice,
    )


def no_show_outcome(
    *, policy: CancellationPolicy, coach_missing: bool, refundable_cents: int
) -> Outcome:
    """What a no-show means: the student's uses the session; the coach's follows the
    coach's no-show rule (a make-up credit or a full refund)."""
    if not coach_missing:
        return Outcome(
            rule=Rule.STUDENT_NO_SHOW,
            summary="A session the student misses is used.",
            choices=(Choice.NONE,),
            default=Choice.NONE,
            refund_cents=0,
            used=True,
        )
    label = CoachSideRule(policy.coach_no_show_rule).label
    return _coach_side(
        Rule.COACH_NO_SHOW,
        policy.coach_no_show_rule,
        refundable_cents,
        f"The coach didn't show: {label.lower()}.",
    )


def outcome_sentence(outcome: Outcome, *, name: str, currency: str, you: bool = False) -> str:
    """ "Jamie gets $27.50 back." / "You get a full refund ($55.00) or a make-up credit." """
    who, verb = ("You", "get") if you else (name, "gets")
    money = format_money(outcome.refund_cents, currency)
    choices = set(outcome.choices)
    if outcome.used:
        return f"The session is used: {who.lower() if you else who} {verb} nothing back."
    if choices == {Choice.FULL, Choice.CREDIT}:
        return f"{who} {verb} a full refund ({money}) or a make-up credit."
    if choices == {Choice.FULL}:
        return f"{who} {verb} a full refund ({money})."
    return f"{who} {verb} {money} back."


@dataclass(frozen=True)
class PreviewLine:
    moment: datetime
    outcome: Outcome
    text: str  # "If Jamie cancels on Tuesday at 18:00, Jamie gets $27.50 back."


def policy_preview(
    policy: CancellationPolicy,
    *,
    name: str,
    start: datetime,
    share_cents: int,
    currency: str,
) -> list[PreviewLine]:
    """Example cancellations of a session at `start` (aware, in the coach's zone), one inside
    each tier: the policy form's plain-language preview ("If Jamie cancels on Tuesday at
    18:00, Jamie gets $27.50 back.")."""
    free, partial = policy.free_notice_hours, policy.partial_notice_hours
    before = [timedelta(hours=free + 6)]
    if partial < free:
        before.append(timedelta(hours=(free + partial) / 2))
    if partial > 0:
        before.append(timedelta(hours=partial / 2))
    lines = []
    for lead in before:
        moment = (start.astimezone(UTC) - lead).astimezone(start.tzinfo)
        outcome = cancellation_outcome(
            policy=policy,
            by_coach=False,
            booked_ahead=True,
            start=start,
            share_cents=share_cents,
            refundable_cents=share_cents,
            now=moment,
        )
        sentence = outcome_sentence(outcome, name=name, currency=currency)
        if sentence.startswith("The "):
            sentence = "t" + sentence[1:]
        when = moment.astimezone(start.tzinfo).strftime("%A at %H:%M")
        lines.append(PreviewLine(moment, outcome, f"If {name} cancels on {when}, {sentence}"))
    return lines
