"""The policy computation as a table: (who, notice, rule) -> outcome, at the tier boundaries and
across a change of clocks (policies.rules is pure: no database)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from policies.models import CancellationPolicy, CoachSideRule
from policies.rules import (
    Choice,
    Rule,
    cancellation_outcome,
    no_show_outcome,
    percent_of,
    policy_preview,
)

START = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
SHARE = 5500
H = timedelta(hours=1)
S = timedelta(seconds=1)


def policy(**fields) -> CancellationPolicy:
    return CancellationPolicy(**fields)  # "24 h free, 12-24 h half, later used" by default


def student_cancels(notice: timedelta, refundable: int = SHARE, **fields):
    return cancellation_outcome(
        policy=policy(**fields),
        by_coach=False,
        booked_ahead=True,
        start=START,
        share_cents=SHARE,
        refundable_cents=refundable,
        now=START - notice,
    )


@pytest.mark.parametrize(
    ("notice", "rule", "choices", "refund", "used"),
    [
        (30 * H, Rule.STUDENT_FREE, (Choice.FULL, Choice.CREDIT), SHARE, False),
        (24 * H, Rule.STUDENT_FREE, (Choice.FULL, Choice.CREDIT), SHARE, False),
        (24 * H - S, Rule.STUDENT_PARTIAL, (Choice.PARTIAL,), 2750, False),
        (18 * H, Rule.STUDENT_PARTIAL, (Choice.PARTIAL,), 2750, False),
        (12 * H, Rule.STUDENT_PARTIAL, (Choice.PARTIAL,), 2750, False),
        (12 * H - S, Rule.STUDENT_LATE, (Choice.NONE,), 0, True),
        (S, Rule.STUDENT_LATE, (Choice.NONE,), 0, True),
    ],
)
def test_student_tiers_at_their_boundaries(notice, rule, choices, refund, used):
    outcome = student_cancels(notice)

    assert (outcome.rule, outcome.choices, outcome.refund_cents, outcome.used) == (
        rule,
        choices,
        refund,
        used,
    )
    assert outcome.details()["notice_hours"] == round(notice.total_seconds() / 3600, 2)


@pytest.mark.parametrize(
    ("fields", "notice", "choices", "refund", "used"),
    [
        ({"partial_percent": 100}, 18 * H, (Choice.FULL,), SHARE, False),
        ({"partial_percent": 0}, 18 * H, (Choice.NONE,), 0, True),
        ({"partial_percent": 33}, 18 * H, (Choice.PARTIAL,), 1815, False),
        # No partial tier: from free straight to used.
        ({"partial_notice_hours": 24}, 23 * H, (Choice.NONE,), 0, True),
        # Every cancel free: no notice asked.
        (
            {"free_notice_hours": 0, "partial_notice_hours": 0},
            S,
            (Choice.FULL, Choice.CREDIT),
            SHARE,
            False,
        ),
    ],
)
def test_other_policies(fields, notice, choices, refund, used):
    outcome = student_cancels(notice, **fields)

    assert (outcome.choices, outcome.refund_cents, outcome.used) == (choices, refund, used)


def test_partial_refund_never_exceeds_what_is_left_to_refund():
    assert student_cancels(18 * H, refundable=1000).refund_cents == 1000


def test_half_a_cent_rounds_up():
    assert (percent_of(5501, 50), percent_of(5500, 50), percent_of(1, 50)) == (2751, 2750, 1)


@pytest.mark.parametrize(
    ("rule", "choices", "default", "swap"),
    [
        (CoachSideRule.STUDENT_CHOICE, (Choice.CREDIT, Choice.FULL), Choice.CREDIT, True),
        (CoachSideRule.FULL_REFUND, (Choice.FULL,), Choice.FULL, False),
        (CoachSideRule.MAKEUP_CREDIT, (Choice.CREDIT, Choice.FULL), Choice.CREDIT, False),
        (
            CoachSideRule.COACH_DECIDES,
            (Choice.FULL, Choice.PARTIAL, Choice.CREDIT, Choice.NONE),
            None,
            False,
        ),
    ],
)
def test_coach_side_rule_whatever_the_notice(rule, choices, default, swap):
    for notice in (48 * H, 18 * H, H):
        outcome = cancellation_outcome(
            policy=policy(coach_cancel_rule=rule),
            by_coach=True,
            booked_ahead=True,
            start=START,
            share_cents=SHARE,
            refundable_cents=SHARE,
            now=START - notice,
        )
        assert (outcome.rule, outcome.choices, outcome.default) == (
            Rule.COACH_CANCEL,
            choices,
            default,
        )
        assert outcome.student_may_swap is swap
        assert not outcome.allows("none") or rule == CoachSideRule.COACH_DECIDES


def test_a_coach_cancel_of_a_session_not_booked_ahead_is_the_coachs_choice():
    outcome = cancellation_outcome(
        policy=policy(coach_cancel_rule=CoachSideRule.FULL_REFUND),
        by_coach=True,
        booked_ahead=False,
        start=None,
        share_cents=SHARE,
        refundable_cents=SHARE,
        now=START,
    )

    assert outcome.rule == Rule.COACH_DISCRETION and outcome.default is None
    assert all(outcome.allows(choice, 1) for choice in ("full", "partial", "credit", "none"))


def test_a_student_takes_exactly_the_partial_tiers_amount():
    outcome = student_cancels(18 * H)

    assert outcome.allows("partial", 2750)
    assert not outcome.allows("partial", 2749) and not outcome.allows("partial", 2751)
    assert not outcome.allows("full") and not outcome.allows("credit")


def test_no_shows():
    student = no_show_outcome(policy=policy(), coach_missing=False, refundable_cents=SHARE)
    coach = no_show_outcome(
        policy=policy(coach_no_show_rule=CoachSideRule.FULL_REFUND),
        coach_missing=True,
        refundable_cents=SHARE,
    )

    assert (student.rule, student.used, student.choices) == (
        Rule.STUDENT_NO_SHOW,
        True,
        (Choice.NONE,),
    )
    assert (coach.rule, coach.choices, coach.refund_cents) == (
        Rule.COACH_NO_SHOW,
        (Choice.FULL,),
        SHARE,
    )


LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("start", "cancel_at", "rule"),
    [
        # Clocks go forward on Sunday 28 March 2027: Saturday 10:00 GMT -> Sunday 10:00 BST is
        # only 23 real hours, so "the same time the day before" is inside the 24 h tier.
        (
            datetime(2027, 3, 28, 10, 0, tzinfo=LONDON),
            datetime(2027, 3, 27, 10, 0, tzinfo=LONDON),
            Rule.STUDENT_PARTIAL,
        ),
        (
            datetime(2027, 3, 28, 10, 0, tzinfo=LONDON),
            datetime(2027, 3, 27, 9, 0, tzinfo=LONDON),
            Rule.STUDENT_FREE,
        ),
        # Clocks go back on Sunday 31 October 2027: the calendar day has 25 hours.
        (
            datetime(2027, 10, 31, 10, 0, tzinfo=LONDON),
            datetime(2027, 10, 30, 10, 0, tzinfo=LONDON),
            Rule.STUDENT_FREE,
        ),
        (
            datetime(2027, 10, 31, 10, 0, tzinfo=LONDON),
            datetime(2027, 10, 30, 11, 0, tzinfo=LONDON),
            Rule.STUDENT_FREE,
        ),
        (
            datetime(2027, 10, 31, 10, 0, tzinfo=LONDON),
            datetime(2027, 10, 30, 11, 0, 1, tzinfo=LONDON),
            Rule.STUDENT_PARTIAL,
        ),
    ],
)
def test_notice_is_real_hours_across_a_change_of_clocks(start, cancel_at, rule):
    outcome = cancellation_outcome(
        policy=policy(),
        by_coach=False,
        booked_ahead=True,
        start=start,
        share_cents=SHARE,
        refundable_cents=SHARE,
        now=cancel_at,
    )

    assert outcome.rule == rule


def test_preview_says_what_each_tier_gives_in_the_coachs_words():
    start = datetime(2027, 3, 10, 12, 0, tzinfo=ZoneInfo("America/New_York"))  # a Wednesday

    lines = policy_preview(policy(), name="Jamie", start=start, share_cents=5500, currency="USD")

    assert [line.text for line in lines] == [
        "If Jamie cancels on Tuesday at 06:00, Jamie gets a full refund ($55.00) or a make-up "
        "credit.",
        "If Jamie cancels on Tuesday at 18:00, Jamie gets $27.50 back.",
        "If Jamie cancels on Wednesday at 06:00, the session is used: Jamie gets nothing back.",
    ]
