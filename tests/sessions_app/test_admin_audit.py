"""The admin's audit of policy outcomes (issue 15): the rule each session's events applied and
what it produced, the filter by rule, make-up credits linked both ways, the cancellation
policies, and the report of late cancellations and no-shows per coach and per student."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from policies.services import policy_update
from sessions_app import services
from sessions_app.lifecycle import Action, Attendance
from sessions_app.models import CoachDailyTally, Session, SessionEvent
from sessions_app.selectors import coach_cancellation_rate
from tests.factories import (
    AvailabilityWindowFactory,
    CoachFactory,
    StaffFactory,
    StudentFactory,
    SuperuserFactory,
    make_package,
    next_free_start,
)

pytestmark = pytest.mark.django_db

SESSIONS = reverse("admin:sessions_app_session_changelist")
EVENTS = reverse("admin:sessions_app_sessionevent_changelist")
REPORT = reverse("admin:sessions_app_session_audit")
REPORT_CSV = reverse("admin:sessions_app_session_audit_csv")
START = "2030-05-06 09:00Z"


@pytest.fixture
def frozen(time_machine):
    """The clock stopped at START, and free times handed out from START + 3 days in 12-hour
    steps (the sequence restarted, so a test's sessions never wrap a year apart)."""
    time_machine.move_to(START, tick=False)
    AvailabilityWindowFactory.reset_sequence()
    return time_machine


@pytest.fixture
def admin(frozen, client, settings):
    """A superuser's client, logged in at the frozen time; its login outlasts the clock's
    moves to each session's start (the factories' free times lie up to a year ahead)."""
    settings.SESSION_COOKIE_AGE = 5 * 365 * 24 * 3600
    client.force_login(SuperuserFactory())
    return client


def _booked(*, coach=None, student=None, price_cents=16500, session_count=3) -> Session:
    """A confirmed session (price share $55.00 by default), booked and accepted through the
    services, under the coach's policy (the defaults unless saved)."""
    fields = {"coach": coach} if coach else {}
    package = make_package(
        student=student, price_cents=price_cents, session_count=session_count, **fields
    )
    session = package.sessions.order_by("number").first()
    coach = package.offering.coach
    services.session_book(session=session, start=next_free_start(coach), actor=package.student)
    services.session_accept(session=session, actor=coach)
    session.refresh_from_db()
    return session


def _student_cancels(frozen, session, *, hours_before: float, refund: str) -> Session:
    frozen.move_to(session.starts_at - timedelta(hours=hours_before), tick=False)
    return services.session_cancel(session=session, actor=session.student, refund=refund)


def _page(client, session) -> str:
    response = client.get(reverse("admin:sessions_app_session_change", args=[session.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _field(html: str, name: str) -> str:
    """The text of one read-only field of a change page."""
    start = html.index('<div class="readonly">', html.index(f"field-{name}"))
    return html[start + len('<div class="readonly">') : html.index("</div>", start)]


def _pks(response) -> list[int]:
    return sorted(obj.pk for obj in response.context_data["cl"].result_list)


# --- the rule applied and what it produced, on the session's page -----------------------------


def test_student_partial_cancel_shows_its_rule_and_outcome(admin, frozen):
    session = _student_cancels(frozen, _booked(), hours_before=18, refund="partial")

    html = _page(admin, session)

    assert _field(html, "rule_applied") == (
        "Student canceled late: partial refund (Cancel 12 h–24 h before: 50 % back.)"  # noqa: RUF001
    )
    cancel = session.events.get(action=Action.CANCEL)
    assert _field(html, "outcome") == (
        f"{cancel.created_at:%Y-%m-%d %H:%M:%S} UTC: "
        "Student canceled 18 h before: 50 % back → $27.50 refunded"
    )
    assert session.refunds.get().amount_cents == 2750
    # The timeline says it too, in its own columns, not as raw keys.
    assert html.count("Student canceled 18 h before: 50 % back → $27.50 refunded") == 2
    assert "rule summary" not in html
    assert "notice hours" not in html


def test_credit_shows_its_rule_outcome_and_links_both_ways(admin, frozen):
    session = _student_cancels(frozen, _booked(), hours_before=30, refund="credit")
    credit = Session.objects.get(makeup_for=session)

    html = _page(admin, session)
    credit_html = _page(admin, credit)

    assert _field(html, "rule_applied") == (
        "Student canceled with enough notice (Cancel 24 h or more before the start: full "
        "refund or a make-up credit.)"
    )
    assert _field(html, "outcome").endswith(
        f"Student canceled 30 h before: full refund or a make-up credit → "
        f"Make-up credit #{credit.pk} given"
    )
    credit_url = reverse("admin:sessions_app_session_change", args=[credit.pk])
    session_url = reverse("admin:sessions_app_session_change", args=[session.pk])
    assert _field(html, "makeup_links") == (
        f'Replaced by make-up credit <a href="{credit_url}">Session {credit.pk}</a>'
    )
    assert _field(credit_html, "makeup_links") == (
        f'Make-up credit for <a href="{session_url}">Session {session.pk}</a>'
    )
    assert f"Make-up credit for session #{session.pk}" in _field(credit_html, "outcome")
    assert _field(credit_html, "rule_applied") == "None recorded"


def test_late_cancel_shows_the_session_used(admin, frozen):
    session = _student_cancels(frozen, _booked(), hours_before=6, refund="none")

    html = _page(admin, session)

    assert _field(html, "rule_applied") == (
        "Student canceled too late: session used (Later than 12 h before: the session is used.)"
    )
    assert _field(html, "outcome").endswith("Student canceled 6 h before → Session used")
    assert not session.refunds.exists()


def test_coach_cancel_under_a_saved_policy_shows_the_coach_side_rule(admin, frozen):
    session = _booked()
    policy_update(coach=session.coach, coach_cancel_rule="full_refund")
    services.session_cancel(session=session, actor=session.coach, refund="full")

    html = _page(admin, session)

    assert _field(html, "rule_applied") == "Coach canceled (The coach cancels: full refund.)"
    assert _field(html, "outcome").endswith("Coach canceled: full refund → $55.00 refunded")


def test_a_session_without_an_outcome_says_none_recorded(admin, frozen):
    html = _page(admin, _booked())

    assert _field(html, "rule_applied") == "None recorded"
    assert _field(html, "outcome") == "-"
    assert _field(html, "makeup_links") == "-"


def test_session_page_query_count_does_not_grow_with_the_outcomes(admin, frozen):
    plain = _booked()
    canceled = _student_cancels(frozen, _booked(), hours_before=30, refund="credit")
    url = reverse("admin:sessions_app_session_change", args=[canceled.pk])

    with CaptureQueriesContext(connection) as few:
        _page(admin, plain)
    with CaptureQueriesContext(connection) as more:
        admin.get(url)

    assert len(more) <= len(few) + 2  # the refund and the credit, not one per event


# --- filtering by rule -------------------------------------------------------------------------


def test_sessions_and_events_filter_by_rule(admin, frozen):
    partial = _student_cancels(frozen, _booked(), hours_before=18, refund="partial")
    late = _student_cancels(frozen, _booked(), hours_before=2, refund="none")
    _booked()

    by_partial = admin.get(SESSIONS, {"rule": "student_partial"})
    by_late = admin.get(SESSIONS, {"rule": "student_late"})
    by_free = admin.get(SESSIONS, {"rule": "student_free"})
    events = admin.get(EVENTS, {"rule": "student_partial"})

    assert _pks(by_partial) == [partial.pk]
    assert _pks(by_late) == [late.pk]
    assert _pks(by_free) == []
    assert [event.session_id for event in events.context_data["cl"].result_list] == [partial.pk]
    assert "Student canceled late: partial refund" in by_partial.content.decode()  # the choice


def test_an_unknown_rule_shows_the_admins_error_not_a_500(admin):
    response = admin.get(SESSIONS, {"rule": "nonsense"})
    assert (response.status_code, response["Location"]) == (302, f"{SESSIONS}?e=1")


# --- the cancellation policies -----------------------------------------------------------------


def test_policy_admin_shows_the_coach_and_the_rules_in_plain_language_read_only(admin):
    coach = CoachFactory()
    policy = policy_update(coach=coach, partial_percent=40)
    change = reverse("admin:policies_cancellationpolicy_change", args=[policy.pk])

    listing = admin.get(reverse("admin:policies_cancellationpolicy_changelist"))
    page = admin.get(change)
    posted = admin.post(change, {"partial_percent": 100})

    assert coach.email in listing.content.decode()
    html = page.content.decode()
    assert reverse("admin:accounts_user_change", args=[coach.pk]) in html
    assert "Cancel 12 h–24 h before: 40 % back." in html  # noqa: RUF001
    assert 'name="_save"' not in html
    assert posted.status_code == 403
    policy.refresh_from_db()
    assert policy.partial_percent == 40


# --- the cancellation rate counts only the coach's cancels -------------------------------------


def test_a_students_cancel_does_not_count_in_the_coachs_cancellation_rate(frozen):
    coach = CoachFactory()
    own = _booked(coach=coach)
    theirs = _booked(coach=coach)
    services.session_cancel(session=theirs, actor=theirs.student, refund="full")

    assert coach_cancellation_rate(coach=coach).canceled == 0
    assert list(CoachDailyTally.objects.values_list("coach_canceled", flat=True)) == [0]

    services.session_cancel(session=own, actor=coach, refund="credit")

    rate = coach_cancellation_rate(coach=coach)
    assert (rate.canceled, rate.booked) == (1, 2)


# --- the report of late cancellations and no-shows ---------------------------------------------


def _attendance_event(session, action: str, attendance: str, actor, when, **details) -> None:
    """An attendance mark as its service records it (the attendance services are written
    separately; their events carry `attendance` and, for a student no-show, the rule)."""
    SessionEvent.objects.create(
        session=session,
        actor=actor,
        action=action,
        from_status=session.status,
        to_status=session.status,
        details={"attendance": attendance, **details},
        created_at=when,
    )


@pytest.fixture
def scene(frozen):
    """Coach Ann: Sam cancels late twice (partial, too late) and once in time; Ann cancels
    one of Kim's; Kim misses one; Sam reports Ann missing one. Coach Bo: Kim cancels late."""
    ann = CoachFactory(email="ann@example.com", display_name="Ann")
    bo = CoachFactory(email="bo@example.com", display_name="Bo")
    sam = StudentFactory(email="sam@example.com", display_name="Sam")
    kim = StudentFactory(email="kim@example.com", display_name="Kim")
    sessions = {
        "partial": _booked(coach=ann, student=sam),
        "late": _booked(coach=ann, student=sam),
        "free": _booked(coach=ann, student=sam),
        "coach": _booked(coach=ann, student=kim),
        "no_show": _booked(coach=ann, student=kim),
        "coach_no_show": _booked(coach=ann, student=sam),
        "bo_late": _booked(coach=bo, student=kim),
    }
    _student_cancels(frozen, sessions["partial"], hours_before=18, refund="partial")
    _student_cancels(frozen, sessions["late"], hours_before=3, refund="none")
    _student_cancels(frozen, sessions["free"], hours_before=40, refund="full")
    _student_cancels(frozen, sessions["bo_late"], hours_before=1, refund="none")
    services.session_cancel(session=sessions["coach"], actor=ann, refund="credit")
    no_show, missed = sessions["no_show"], sessions["coach_no_show"]
    _attendance_event(
        no_show,
        Action.MARK_NO_SHOW,
        Attendance.STUDENT_NO_SHOW,
        ann,
        no_show.ends_at + timedelta(hours=1),
        rule="student_no_show",
        rule_used=True,
    )
    _attendance_event(
        missed,
        Action.REPORT_COACH_NO_SHOW,
        Attendance.COACH_NO_SHOW_REPORTED,
        sam,
        missed.ends_at + timedelta(hours=1),
    )
    _attendance_event(
        missed,
        Action.DISPUTE_COACH_NO_SHOW,
        Attendance.COACH_NO_SHOW,
        ann,
        missed.ends_at + timedelta(hours=2),
    )
    latest = max(SessionEvent.objects.values_list("created_at", flat=True))
    frozen.move_to(latest + timedelta(hours=1), tick=False)
    return {"ann": ann, "bo": bo, "sam": sam, "kim": kim, "sessions": sessions}


def _table(response, side: str) -> dict:
    """{email: (late, coach cancels, student no-shows, coach reported, coach confirmed, total)}."""
    table = next(t for t in response.context["tables"] if t["side"] == side)
    return {
        row["email"]: (*(count for count, _ in row["cells"]), row["total"]) for row in table["rows"]
    }


def test_report_counts_per_coach_and_per_student_over_the_last_90_days(admin, scene):
    response = admin.get(REPORT)

    assert response.status_code == 200
    assert _table(response, "coach") == {
        "ann@example.com": (2, 1, 1, 1, 1, 6),
        "bo@example.com": (1, 0, 0, 0, 0, 1),
    }
    assert _table(response, "student") == {
        "sam@example.com": (2, 0, 0, 1, 1, 4),
        "kim@example.com": (1, 1, 1, 0, 0, 3),
    }
    html = response.content.decode()
    assert "Late cancellations" in html
    assert response.context["range"].days == 90


def test_report_rows_link_to_the_sessions_they_count(admin, scene):
    response = admin.get(REPORT)
    table = next(t for t in response.context["tables"] if t["side"] == "student")
    sam = next(row for row in table["rows"] if row["email"] == "sam@example.com")
    late_url = sam["cells"][0][1]

    person = admin.get(sam["url"])
    late = admin.get(late_url)

    sessions = scene["sessions"]
    assert sorted(s.pk for s in person.context_data["cl"].result_list) == sorted(
        Session.objects.filter(student=scene["sam"]).values_list("pk", flat=True)
    )
    assert _pks(late) == sorted([sessions["partial"].pk, sessions["late"].pk])
    assert sam["cells"][1] == (0, "")  # nothing to link


def test_report_range_leaves_out_events_outside_it(admin, scene):
    bo_late = scene["sessions"]["bo_late"].events.get(action=Action.CANCEL).created_at
    day = bo_late.date()

    only_that_day = admin.get(REPORT, {"first": day, "last": day})
    before = admin.get(REPORT, {"first": day - timedelta(days=30), "last": day})
    long_after = admin.get(
        REPORT, {"first": day + timedelta(days=200), "last": day + timedelta(days=300)}
    )

    that_day = SessionEvent.objects.filter(created_at__date=day, action=Action.CANCEL).count()
    assert that_day >= 1
    assert _table(only_that_day, "coach")["bo@example.com"] == (1, 0, 0, 0, 0, 1)
    assert "bo@example.com" in _table(before, "coach")
    assert _table(long_after, "coach") == {}
    assert "None in these days." in long_after.content.decode()


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        ("2030-06-10", "2030-06-01", "The first date is after the last one"),
        ("2029-01-01", "2030-06-01", "at most 366 days"),
        ("2030-13-01", "", "is not a date; use YYYY-MM-DD"),
        ("yesterday", "2030-06-01", "is not a date"),
        ("2030-06-01" * 50, "", "is not a date"),
    ],
)
def test_report_refuses_a_bad_range_with_a_message(admin, frozen, first, last, message):
    response = admin.get(REPORT, {"first": first, "last": last})

    assert response.status_code == 200
    assert message in response.context["error"]
    assert 'id="audit-error"' in response.content.decode()
    assert "tables" not in response.context
    csv_response = admin.get(REPORT_CSV, {"first": first, "last": last})
    assert csv_response.status_code == 302
    assert csv_response["Location"].startswith(REPORT)


def test_a_full_year_of_366_days_is_accepted(admin, frozen):
    response = admin.get(REPORT, {"first": "2028-01-01", "last": "2028-12-31"})
    assert (response.status_code, response.context["range"].days) == (200, 366)


def test_report_is_refused_to_non_staff_and_to_staff_without_permission(client, frozen):
    client.force_login(StudentFactory())
    outsider = client.get(REPORT)
    outsider_csv = client.get(REPORT_CSV)
    staff = StaffFactory()
    client.force_login(staff)
    no_permission = client.get(REPORT)
    no_permission_csv = client.get(REPORT_CSV)
    staff.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="sessions_app", codename__in=["view_session"]
        )
    )
    only_sessions = client.get(REPORT)
    staff.user_permissions.add(Permission.objects.get(codename="view_sessionevent"))
    allowed = client.get(REPORT)

    assert outsider.status_code == 302
    assert outsider["Location"].startswith(reverse("admin:login"))
    assert outsider_csv.status_code == 302
    assert (no_permission.status_code, no_permission_csv.status_code) == (403, 403)
    assert only_sessions.status_code == 403
    assert allowed.status_code == 200


def test_report_csv_has_fixed_columns_every_row_and_no_formulas(admin, scene):
    scene["sam"].display_name = "=HYPERLINK(1)"
    scene["sam"].save(update_fields=["display_name"])

    response = admin.get(REPORT_CSV)

    report = admin.get(REPORT).context["range"]
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        "attachment; filename="
        f'"late-cancellations-no-shows-{report.first:%Y%m%d}-{report.last:%Y%m%d}.csv"'
    )
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "side",
        "user_id",
        "email",
        "display_name",
        "late_cancel",
        "coach_cancel",
        "student_no_show",
        "coach_no_show_reported",
        "coach_no_show",
        "total",
        "first_day",
        "last_day",
    ]
    days = [report.first.isoformat(), report.last.isoformat()]
    ann, bo, sam, kim = (scene[name] for name in ("ann", "bo", "sam", "kim"))
    assert rows[1:] == [
        ["coach", str(ann.pk), "ann@example.com", "Ann", "2", "1", "1", "1", "1", "6", *days],
        ["coach", str(bo.pk), "bo@example.com", "Bo", "1", "0", "0", "0", "0", "1", *days],
        ["student", str(sam.pk), "sam@example.com", "'=HYPERLINK(1)", *"200114", *days],
        ["student", str(kim.pk), "kim@example.com", "Kim", "1", "1", "1", "0", "0", "3", *days],
    ]


def _coaches_who_cancel(count: int) -> None:
    """`count` coaches, each canceling one booked session (a make-up credit, as the default
    coach-side rule allows), at the frozen time."""
    for _ in range(count):
        session = _booked()
        services.session_cancel(session=session, actor=session.coach, refund="credit")


def test_report_query_count_is_the_same_for_few_and_many_people(admin, frozen):
    _coaches_who_cancel(2)
    with CaptureQueriesContext(connection) as few:
        small = admin.get(REPORT)
    _coaches_who_cancel(6)
    with CaptureQueriesContext(connection) as many:
        large = admin.get(REPORT)

    assert (len(_table(small, "coach")), len(_table(large, "coach"))) == (2, 8)
    assert len(many) == len(few)
    aggregates = [q["sql"] for q in many if "sessions_app_sessionevent" in q["sql"]]
    assert len(aggregates) == 2  # one grouped query per table
    assert all("GROUP BY" in sql for sql in aggregates)
