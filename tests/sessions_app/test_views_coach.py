"""The coach's pages: Tasks (with busy-calendar conflicts), Upcoming, Completed, Canceled,
session details, the pickers from the coach's side, the refund drawer."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from calendars.models import BusyTime, SlotStatus, TimeSlot
from refunds.models import Refund, RefundState
from sessions_app import services, views
from sessions_app.models import ProposalStatus, Session, SessionEvent
from tests.conftest import messages_of
from tests.factories import CoachFactory, StudentFactory, make_package, make_session
from tests.sessions_app.test_views_helpers import db_state, iso, open_at, unknown_session_pk

NOW = datetime(2030, 1, 10, 12, 0, tzinfo=UTC)
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("coaches_decide_refunds"),
    pytest.mark.time_machine(NOW, tick=False),
]


@pytest.fixture
def coach():
    return CoachFactory(timezone="Europe/Berlin")


def booked(coach, start, status="REQUESTED", student=None):
    """A session of `coach` requested (or confirmed) for the hour from `start`."""
    package = make_package(student=student, coach=coach)
    session = package.sessions.order_by("number").first()
    services.session_book(session=session, start=open_at(coach, start), actor=package.student)
    if status == "CONFIRMED":
        services.session_accept(session=session, actor=coach)
    session.refresh_from_db()
    return session


def proposed(session, start, actor):
    return services.session_propose_reschedule(
        session=session, start=open_at(session.coach, start), actor=actor
    )


def post(client, name, session, **data):
    """Submit an action form as a page loaded now would (with the status it showed)."""
    data.setdefault("seen_status", Session.objects.get(pk=session.pk).status)
    return client.post(reverse(name, args=[session.pk]), data)


# --- Tasks ---------------------------------------------------------------------------------------


def test_tasks_lists_requests_oldest_expiry_first_in_the_coachs_timezone(client, coach):
    later = booked(coach, NOW + timedelta(days=5))  # expires after the 48 h window
    sooner = booked(coach, NOW + timedelta(hours=20))  # expires at its start, sooner
    client.force_login(coach)

    response = client.get(reverse("sessions:tasks"))

    assert response.status_code == 200
    assert [s.pk for s in response.context["tasks"].requests] == [sooner.pk, later.pk]
    html = response.content.decode()
    assert "Fri 11 Jan, 09:00\u201310:00 CET" in html  # 08:00 UTC start of `sooner`, in Berlin
    assert "Sat 12 Jan, 13:00 CET" in html  # `later` expires now + 48 h
    assert sooner.student.name in html
    assert sooner.package.title in html
    assert html.count(">Accept</button>") == 2
    assert html.count(">Decline</button>") == 2
    assert '<span class="count" aria-label="2 waiting">2</span>' in html


def test_tasks_lists_proposals_awaiting_the_coach_but_not_the_coachs_own(client, coach):
    from_student = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    proposed(from_student, NOW + timedelta(days=3), from_student.student)
    from_coach = booked(coach, NOW + timedelta(days=4), status="CONFIRMED")
    proposed(from_coach, NOW + timedelta(days=6), coach)
    client.force_login(coach)

    response = client.get(reverse("sessions:tasks"))

    assert [s.pk for s in response.context["tasks"].proposals] == [from_student.pk]
    html = response.content.decode()
    assert "Sun 13 Jan, 13:00\u201314:00 CET" in html  # the proposed time
    assert 'Sat 12 Jan, 13:00\u201314:00 CET</time> <span class="muted">(stays until' in html
    assert ">Confirm the new time</button>" in html
    assert ">Propose another time</a>" in html
    assert ">Keep the current time</button>" in html


def busy(coach, start, minutes=30):
    """A busy time from one of the coach's external calendars (as the sync stores it)."""
    return BusyTime.objects.create(coach=coach, start=start, end=start + timedelta(minutes=minutes))


def test_tasks_list_agreed_times_a_busy_time_in_the_coachs_calendar_overlaps(client, coach):
    clash = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    busy(coach, NOW + timedelta(days=2, minutes=30))
    booked(coach, NOW + timedelta(days=3), status="CONFIRMED")  # no clash
    busy(coach, NOW + timedelta(days=3, hours=1))  # right after it: no clash
    client.force_login(coach)

    response = client.get(reverse("sessions:tasks"))

    assert [s.pk for s in response.context["tasks"].conflicts] == [clash.pk]
    html = response.content.decode()
    text = " ".join(re.sub(r"<[^>]+>", "", html).split())
    assert (
        f"Busy in your calendar: {clash.package.title} (1 of 3) with {clash.student.name} at "
        "Sat 12 Jan, 13:00\u201314:00 CET"
    ) in text
    reschedule = reverse("sessions:reschedule", args=[clash.pk])
    assert f'href="{reschedule}?next=/sessions/tasks/">Reschedule<span' in html
    assert f'action="{reverse("sessions:keep_time", args=[clash.pk])}"' in html
    assert ">Keep this time<span" in html
    assert '<span class="count" aria-label="1 waiting">1</span>' in html


def test_keep_this_time_takes_the_conflict_off_tasks_until_a_new_busy_time(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    busy(coach, NOW + timedelta(days=2, minutes=30))
    client.force_login(coach)

    response = post(
        client,
        "sessions:keep_time",
        session,
        seen_slot=session.slot_id,
        next=reverse("sessions:tasks"),
    )

    assert response.url == reverse("sessions:tasks")
    session.refresh_from_db()
    assert (session.status, session.slot.status) == ("CONFIRMED", SlotStatus.BOOKED)
    assert session.slot.conflict_kept_at == NOW
    assert messages_of(response) == [
        f"Kept Sat 12 Jan, 13:00\u201314:00 CET with {session.student.name}: it stays "
        "Confirmed in Upcoming. It leaves Tasks "
        "unless another busy time in your calendar overlaps it."
    ]
    assert client.get(reverse("sessions:tasks")).context["tasks"].conflicts == []
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        busy(coach, NOW + timedelta(days=2, minutes=45), minutes=10)  # seen later
        tasks = client.get(reverse("sessions:tasks")).context["tasks"]
    assert [s.pk for s in tasks.conflicts] == [session.pk]


def test_keep_this_time_from_a_stale_page_or_by_the_student_changes_nothing(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    busy(coach, NOW + timedelta(days=2, minutes=30))
    before = db_state()

    client.force_login(session.student)
    by_student = post(client, "sessions:keep_time", session)
    client.force_login(coach)
    stale = post(client, "sessions:keep_time", session, seen_slot=session.slot_id + 1)
    client.force_login(CoachFactory())
    outsider = post(client, "sessions:keep_time", session)

    assert db_state() == before
    # (Each message joins the ones not shown yet; the newest is last.)
    assert messages_of(by_student)[-1] == (
        "Only the coach can keep a time that their own calendar overlaps."
    )
    assert messages_of(stale)[-1] == (
        "This session's time changed since the page was loaded. "
        "Nothing was done; check the new time."
    )
    assert outsider.status_code == 404
    client.force_login(coach)
    assert client.get(reverse("sessions:keep_time", args=[session.pk])).status_code == 405


def test_tasks_leave_out_requests_past_their_expiry(client, coach):
    booked(coach, NOW + timedelta(hours=5))
    client.force_login(coach)
    with time_machine.travel(NOW + timedelta(hours=6), tick=False):
        response = client.get(reverse("sessions:tasks"))
    assert response.context["tasks"].requests == []
    assert "No booking requests are waiting." in response.content.decode()


def test_coach_pages_send_a_student_to_my_sessions(client):
    client.force_login(StudentFactory())
    for name in ["sessions:tasks", "sessions:upcoming", "sessions:completed", "sessions:canceled"]:
        response = client.get(reverse(name))
        assert response.url == reverse("sessions:my_sessions")


def test_pages_need_a_login(client):
    response = client.get(reverse("sessions:tasks"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


# --- Accept / Decline ----------------------------------------------------------------------------


def test_accept_from_tasks_confirms_the_session_and_returns_to_tasks(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(coach)

    response = post(client, "sessions:accept", session, next=reverse("sessions:tasks"))

    assert response.url == reverse("sessions:tasks")
    session.refresh_from_db()
    assert session.status == "CONFIRMED"
    assert session.slot.status == "BOOKED"
    event = session.events.order_by("-id").first()
    assert (event.action, event.actor, event.to_status) == ("accept", coach, "CONFIRMED")
    assert messages_of(response) == [
        f"Confirmed: {session.student.name}'s session on Sat 12 Jan, 13:00\u201314:00 CET "
        "is in Upcoming and on your calendar."
    ]


def test_accept_submitted_twice_acts_once_and_says_the_session_moved_on(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(coach)
    client.post(reverse("sessions:accept", args=[session.pk]), {"seen_status": "REQUESTED"})
    client.get(reverse("sessions:tasks"))  # shows (and so consumes) the first message
    before = db_state()

    # The same form again, as a double click sends it.
    response = client.post(
        reverse("sessions:accept", args=[session.pk]), {"seen_status": "REQUESTED"}
    )

    assert db_state() == before
    assert messages_of(response) == [
        "This session changed since the page was loaded: it is now Confirmed. "
        "Nothing was done; check it and try again if needed."
    ]
    assert session.events.filter(action="accept").count() == 1


def test_accept_of_an_expired_request_is_refused_and_changes_nothing(client, coach):
    session = booked(coach, NOW + timedelta(hours=3))
    client.force_login(coach)
    before = db_state()
    with time_machine.travel(NOW + timedelta(hours=4), tick=False):
        response = post(client, "sessions:accept", session)
    assert db_state() == before
    assert messages_of(response) == ["This request has expired; the student can book again."]


def test_decline_gives_the_credit_back_reopens_the_slot_and_keeps_the_reason(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    slot = session.slot
    client.force_login(coach)

    response = post(client, "sessions:decline", session, reason="  I am travelling  ")

    session.refresh_from_db()
    slot.refresh_from_db()
    assert (session.status, session.slot_id, slot.status) == ("UNSCHEDULED", None, "RELEASED")
    assert session.events.get(action="decline").details["reason"] == "I am travelling"
    assert messages_of(response) == [
        f"Declined: the session is back to Unscheduled; {session.student.name} keeps the "
        "credit and can book another time."
    ]


def test_decline_with_an_overlong_reason_changes_nothing(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(coach)
    before = db_state()
    response = post(client, "sessions:decline", session, reason="x" * 501)
    assert db_state() == before
    assert messages_of(response) == ["Keep the reason under 500 characters. Nothing was changed."]


def test_student_cannot_accept_their_own_request(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(session.student)
    before = db_state()
    response = post(client, "sessions:accept", session)
    assert db_state() == before
    assert messages_of(response) == ["Only the coach can do that."]


@pytest.mark.parametrize(
    "name", ["sessions:accept", "sessions:decline", "sessions:withdraw", "sessions:cancel"]
)
def test_actions_on_another_coachs_session_are_404_and_change_nothing(client, coach, name):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(CoachFactory())
    before = db_state()
    response = post(client, name, session, refund="none")
    assert response.status_code == 404
    assert db_state() == before


def test_actions_on_an_unknown_session_are_404(client, coach):
    client.force_login(coach)
    pk = unknown_session_pk()
    assert client.post(reverse("sessions:accept", args=[pk])).status_code == 404
    assert client.get(reverse("sessions:detail", args=[pk])).status_code == 404
    assert client.get(reverse("sessions:cancel", args=[pk])).status_code == 404


def test_actions_refuse_get(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(coach)
    assert client.get(reverse("sessions:accept", args=[session.pk])).status_code == 405
    assert Session.objects.get(pk=session.pk).status == "REQUESTED"


def test_next_pointing_to_another_site_is_ignored(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(coach)
    response = post(client, "sessions:accept", session, next="https://evil.example.com/")
    assert response.url == reverse("sessions:detail", args=[session.pk])


# --- answering a proposal ------------------------------------------------------------------------


def test_coach_confirms_the_new_time_the_student_proposed(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    agreed = session.slot
    proposal = proposed(session, NOW + timedelta(days=3), session.student)
    client.force_login(coach)

    response = post(client, "sessions:confirm_reschedule", session, seen_proposal=proposal.pk)

    session.refresh_from_db()
    proposal.refresh_from_db()
    agreed.refresh_from_db()
    assert (session.status, session.slot_id) == ("CONFIRMED", proposal.slot_id)
    assert proposal.status == ProposalStatus.ACCEPTED
    assert agreed.status == SlotStatus.RELEASED
    assert messages_of(response) == [
        "Confirmed at the new time: Sun 13 Jan, 13:00\u201314:00 CET. "
        "The session is in Upcoming and on your calendar."
    ]


def test_confirming_a_proposal_that_was_replaced_meanwhile_changes_nothing(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    student = session.student
    first = proposed(session, NOW + timedelta(days=3), student)
    services.session_counter_propose(
        session=session, start=open_at(coach, NOW + timedelta(days=4)), actor=coach
    )
    services.session_counter_propose(
        session=session, start=open_at(coach, NOW + timedelta(days=5)), actor=student
    )
    client.force_login(coach)
    before = db_state()

    # The coach's page still showed the first proposal.
    response = post(client, "sessions:confirm_reschedule", session, seen_proposal=first.pk)

    assert db_state() == before
    assert messages_of(response) == [
        "The proposed time changed since the page was loaded. "
        "Nothing was done; check the new proposal."
    ]


def test_coach_cannot_confirm_or_keep_against_their_own_proposal(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    proposed(session, NOW + timedelta(days=3), coach)
    client.force_login(coach)
    before = db_state()
    confirm = client.post(reverse("sessions:confirm_reschedule", args=[session.pk]))
    keep = client.post(reverse("sessions:decline_reschedule", args=[session.pk]))
    assert db_state() == before
    assert messages_of(confirm) == ["You proposed this time; the other side answers it."]
    assert messages_of(keep)[-1] == "You proposed this time; the other side answers it."


def test_coach_proposes_another_time_from_the_picker(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    first = proposed(session, NOW + timedelta(days=3), session.student)
    other = open_at(coach, NOW + timedelta(days=3, hours=3))
    client.force_login(coach)

    page = client.get(reverse("sessions:counter_propose", args=[session.pk]))
    # Neither the agreed time (kept by "Keep the current time") nor the proposed one.
    assert [item["start"] for _, items in page.context["days"] for item in items] == [other]
    html = page.content.decode()
    assert 'aria-label="Propose Sun 13 Jan, 16:00\u201317:00 CET"' in html
    response = post(
        client, "sessions:counter_propose", session, start=iso(other), seen_proposal=first.pk
    )

    proposal = session.proposals.get(status=ProposalStatus.PENDING)
    assert (proposal.slot.start, proposal.proposed_by_id) == (other, coach.pk)
    assert messages_of(response) == [
        "Rescheduling: you proposed Sun 13 Jan, 16:00\u201317:00 CET; the agreed time "
        f"Sat 12 Jan, 13:00\u201314:00 CET stays until {session.student.name} answers. "
        "The session stays in Upcoming and on your calendar."
    ]


def test_coach_keeps_the_current_time_from_tasks(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    agreed = session.slot_id
    proposal = proposed(session, NOW + timedelta(days=3), session.student)
    client.force_login(coach)

    response = post(
        client,
        "sessions:decline_reschedule",
        session,
        seen_proposal=proposal.pk,
        seen_slot=agreed,
        next=reverse("sessions:tasks"),
    )

    assert response.url == reverse("sessions:tasks")
    session.refresh_from_db()
    assert (session.status, session.slot_id) == ("CONFIRMED", agreed)
    assert session.proposals.get().status == ProposalStatus.DECLINED
    assert messages_of(response) == [
        "Confirmed at the current time: Sat 12 Jan, 13:00\u201314:00 CET. The proposed time "
        "was declined; the session stays in Upcoming and on your calendar."
    ]


def test_coach_withdraws_their_proposal_from_upcoming(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    proposal = proposed(session, NOW + timedelta(days=3), coach)
    client.force_login(coach)
    page = client.get(reverse("sessions:upcoming")).content.decode()
    assert ">Withdraw my proposal</button>" in page

    response = post(
        client,
        "sessions:withdraw_proposal",
        session,
        seen_proposal=proposal.pk,
        next=reverse("sessions:upcoming"),
    )

    session.refresh_from_db()
    proposal.refresh_from_db()
    assert (session.status, proposal.status) == ("CONFIRMED", ProposalStatus.WITHDRAWN)
    assert TimeSlot.objects.get(pk=proposal.slot_id).status == SlotStatus.RELEASED
    assert messages_of(response) == [
        "Confirmed at the agreed time: your proposal was withdrawn; the session stays at "
        "Sat 12 Jan, 13:00\u201314:00 CET, in Upcoming and on your calendar."
    ]


# --- Reschedule ----------------------------------------------------------------------------------


def test_reschedule_picker_lists_the_coachs_open_times_grouped_by_the_coachs_day(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    day_one_a = open_at(coach, NOW + timedelta(days=3))
    day_one_b = open_at(coach, NOW + timedelta(days=3, hours=2))
    late = open_at(coach, datetime(2030, 1, 13, 23, 30, tzinfo=UTC))  # Mon 14 Jan in Berlin
    open_at(coach, NOW - timedelta(minutes=30))  # too little left of it
    open_at(CoachFactory(), NOW + timedelta(days=3, hours=5))  # another coach's
    client.force_login(coach)

    response = client.get(reverse("sessions:reschedule", args=[session.pk]))

    days = response.context["days"]
    assert [(str(day), [item["start"] for item in items]) for day, items in days] == [
        ("2030-01-13", [day_one_a, day_one_b]),
    ]
    html = response.content.decode()
    assert 'aria-label="Propose Sun 13 Jan, 13:00\u201314:00 CET"' in html
    assert "Agreed time: <strong><time" in html
    # Berlin's week ends at Sunday midnight there: 23:30 UTC on the 13th is next week.
    following = client.get(response.context["following_url"])
    assert [item["start"] for item in following.context["days"][0][1]] == [late]


def test_reschedule_keeps_the_agreed_time_booked_and_holds_the_new_one(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    old_slot, new_start = session.slot, open_at(coach, NOW + timedelta(days=3))
    client.force_login(coach)

    response = post(client, "sessions:reschedule", session, start=iso(new_start))

    assert response.url == reverse("sessions:detail", args=[session.pk])
    session.refresh_from_db()
    old_slot.refresh_from_db()
    new_slot = session.proposals.get().slot
    assert (session.status, session.slot_id) == ("RESCHEDULING", old_slot.pk)
    assert (old_slot.status, new_slot.status) == (SlotStatus.BOOKED, SlotStatus.HELD)
    assert (new_slot.start, new_slot.end) == (new_start, new_start + timedelta(hours=1))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("past", "That time is too soon; pick a later one."),
        ("held", "That time is not free any more. Pick another."),
        ("agreed", "That is the time already agreed; pick a different one."),
        ("other_coach", "That time is not free any more. Pick another."),
        ("abc", "That is not one of the times listed. Pick one of them."),
        ("", "That is not one of the times listed. Pick one of them."),
        ("-4", "That is not one of the times listed. Pick one of them."),
    ],
)
def test_reschedule_to_a_bad_time_is_refused_and_changes_nothing(client, coach, case, message):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    starts = {
        "past": lambda: iso(NOW - timedelta(hours=2)),
        "held": lambda: iso(booked(coach, NOW + timedelta(days=4)).slot.start),
        "agreed": lambda: iso(session.slot.start),
        "other_coach": lambda: iso(open_at(CoachFactory(), NOW + timedelta(days=3))),
    }
    value = starts[case]() if case in starts else case
    client.force_login(coach)
    before = db_state()

    response = post(client, "sessions:reschedule", session, start=value)

    assert db_state() == before
    assert messages_of(response) == [message]
    assert response.url.startswith(reverse("sessions:reschedule", args=[session.pk]))


def test_reschedule_of_a_requested_session_is_refused(client, coach):
    session = booked(coach, NOW + timedelta(days=2))
    client.force_login(coach)
    response = client.get(reverse("sessions:reschedule", args=[session.pk]))
    assert response.url == reverse("sessions:detail", args=[session.pk])
    assert messages_of(response) == ["You can't reschedule this session now: it is Requested."]


# --- Upcoming, Completed, Canceled ---------------------------------------------------------------


def test_upcoming_groups_confirmed_and_rescheduling_sessions_by_local_day(client, coach):
    # 23:30 UTC on the 11th is already the 12th in Berlin.
    late = booked(coach, datetime(2030, 1, 11, 23, 30, tzinfo=UTC), status="CONFIRMED")
    first = booked(coach, datetime(2030, 1, 11, 9, 0, tzinfo=UTC), status="CONFIRMED")
    moving = booked(coach, datetime(2030, 1, 12, 9, 0, tzinfo=UTC), status="CONFIRMED")
    proposed(moving, NOW + timedelta(days=6), coach)
    booked(coach, NOW + timedelta(days=1))  # requested: a task, not upcoming
    client.force_login(coach)

    response = client.get(reverse("sessions:upcoming"))

    groups = [(str(day), [s.pk for s in sessions]) for day, sessions in response.context["days"]]
    assert groups == [("2030-01-11", [first.pk]), ("2030-01-12", [late.pk, moving.pk])]
    html = response.content.decode()
    assert "Saturday 12 January" in html
    text = " ".join(re.sub(r"<[^>]+>", "", html).split())
    # The agreed time stays labelled as agreed while the new one waits for the student; under
    # its day row the agreed time shows only its clock times, the proposed one its day too.
    assert (
        "Agreed: 10:00\u201311:00 Proposed: Wed 16 Jan, 13:00\u201314:00 CET "
        f"(waiting for {moving.student.name})"
    ) in text
    # One table for the whole list, with a row per day.
    assert html.count("<thead>") == 1
    assert html.count('class="day-row"') == 2


def test_upcoming_is_paginated(client, coach, monkeypatch):
    monkeypatch.setattr(views, "LIST_PAGE_SIZE", 2)
    sessions = [
        booked(coach, NOW + timedelta(days=1 + index), status="CONFIRMED") for index in range(3)
    ]
    client.force_login(coach)
    page_one = client.get(reverse("sessions:upcoming")).context["page_obj"]
    page_two = client.get(reverse("sessions:upcoming") + page_one.next_link)
    assert [s.pk for s in page_one] == [sessions[0].pk, sessions[1].pk]
    assert [s.pk for s in page_two.context["page_obj"]] == [sessions[2].pk]
    assert not page_two.context["page_obj"].has_next
    # A cursor that does not parse is the first page, not an error.
    for bad in ({"after": "yesterday~1"}, {"after": "x" * 500}, {"before": "~"}, {"page": "x"}):
        response = client.get(reverse("sessions:upcoming"), bad)
        assert response.status_code == 200
        assert [s.pk for s in response.context["page_obj"]] == [sessions[0].pk, sessions[1].pk]


def test_completed_lists_past_sessions_newest_first(client, coach):
    older = booked(coach, NOW + timedelta(days=1), status="CONFIRMED")
    newer = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    with time_machine.travel(NOW + timedelta(days=10), tick=False):
        services.sessions_complete_past()
    client.force_login(coach)
    response = client.get(reverse("sessions:completed"))
    assert [s.pk for s in response.context["page_obj"]] == [newer.pk, older.pk]
    assert response.content.decode().count("badge--completed") == 2


def test_canceled_tab_shows_what_was_refunded(client, coach):
    session = booked(coach, NOW + timedelta(days=1), status="CONFIRMED")
    services.session_cancel(session=session, actor=coach, refund="partial", amount_cents=1250)
    other = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    services.session_cancel(session=other, actor=coach, refund="none")
    client.force_login(coach)
    response = client.get(reverse("sessions:canceled"))
    assert [s.pk for s in response.context["page_obj"]] == [other.pk, session.pk]
    html = response.content.decode()
    assert "$12.50" in html
    assert "No refund" in html


# --- details -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        ("UNSCHEDULED", ["Cancel Session"]),
        ("REQUESTED", ["Accept", "Decline", "Cancel Session"]),
        ("CONFIRMED", ["Reschedule", "Cancel Session"]),
        ("RESCHEDULING", ["Withdraw my proposal", "Cancel Session"]),  # the coach proposed
        ("COMPLETED", ["Cancel Session"]),
        ("CANCELED", []),
    ],
)
def test_details_show_the_coach_only_the_actions_allowed_now(client, status, shown):
    session = make_session(status)
    client.force_login(session.coach)
    response = client.get(reverse("sessions:detail", args=[session.pk]))
    html = response.content.decode()
    labels = {
        "Accept": ">Accept</button>",
        "Decline": ">Decline</button>",
        "Confirm the new time": ">Confirm the new time</button>",
        "Withdraw my proposal": ">Withdraw my proposal</button>",
        "Reschedule": ">Reschedule</a>",
        "Cancel Session": ">Cancel Session</a>",
        "Withdraw": ">Withdraw</button>",
        "Book": ">Book</a>",
    }
    assert [label for label, marker in labels.items() if marker in html] == shown
    assert f"badge--{status.lower()}" in html


def test_details_show_times_money_refunds_and_the_timeline(client, coach):
    coach.display_name = "Coach Kim"
    coach.save()
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    services.session_cancel(
        session=session, actor=coach, refund="partial", amount_cents=1999, reason="Ill"
    )
    client.force_login(coach)

    html = client.get(reverse("sessions:detail", args=[session.pk])).content.decode()

    assert "Sat 12 Jan, 13:00\u201314:00 CET" in html
    assert "$100.00" in html  # price share: 300.00 over 3 sessions
    assert "$19.99" in html
    assert "Partial refund" in html
    for action in ["Purchased", "Booked", "Accepted", "Canceled"]:
        assert f"<strong>{action}</strong>" in html
    assert f"by {session.student.name}," in html
    assert "Reason: Ill" in html
    assert "This session was canceled; nothing more can change." in html


def test_details_of_another_coachs_or_students_session_are_404(client):
    session = make_session("CONFIRMED")
    for outsider in (CoachFactory(), StudentFactory()):
        client.force_login(outsider)
        assert client.get(reverse("sessions:detail", args=[session.pk])).status_code == 404


def test_details_offer_the_refund_drawer_as_a_dialog_and_a_page(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)
    html = client.get(reverse("sessions:detail", args=[session.pk])).content.decode()
    cancel_url = reverse("sessions:cancel", args=[session.pk])
    assert f'href="{cancel_url}?next=' in html
    assert 'data-dialog="refund-drawer">Cancel Session</a>' in html
    assert '<dialog id="refund-drawer" class="drawer"' in html


# --- the refund drawer ---------------------------------------------------------------------------


def test_cancel_page_offers_the_three_choices_the_rate_and_rescheduling(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    earlier = booked(coach, NOW + timedelta(days=3), status="CONFIRMED")
    services.session_cancel(session=earlier, actor=coach, refund="none")
    client.force_login(coach)

    response = client.get(reverse("sessions:cancel", args=[session.pk]))

    html = response.content.decode()
    assert '<label for="refund-full">Full refund <span class="muted">($100.00)</span>' in html
    assert '<label for="refund-partial">Partial refund</label>' in html
    assert '<label for="refund-none">Cancel without refund</label>' in html
    assert (
        'over the last 90 days: <strong class="refund-rate refund-rate--high">50% \u00b7 High'
        in html
    )
    assert "(1 of 2 booked sessions)" in html
    reschedule_url = reverse("sessions:reschedule", args=[session.pk])
    assert f'<a href="{reschedule_url}">Reschedule instead</a>' in html


def test_cancel_with_full_refund_refunds_the_share_and_reopens_the_slot(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)

    response = post(client, "sessions:cancel", session, refund="full", reason="Sick")

    assert response.url == reverse("sessions:detail", args=[session.pk])
    session.refresh_from_db()
    assert session.status == "CANCELED"
    assert TimeSlot.objects.get(pk=session.slot_id).status == SlotStatus.RELEASED
    refund = Refund.objects.get(session=session)
    assert (refund.kind, refund.amount_cents, refund.reason) == ("full", 10000, "Sick")
    assert messages_of(response) == [
        f"Canceled: {session.student.name}'s session on Sat 12 Jan, 13:00\u201314:00 CET is "
        "under Canceled; a full refund of $100.00."
    ]


def test_cancel_with_a_refund_a_processor_settles_later_says_it_goes_back_to_the_card(
    client, coach, deferred_gateway
):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)

    response = post(client, "sessions:cancel", session, refund="partial", amount="12.50")

    refund = Refund.objects.get(session=session)
    assert (refund.state, refund.amount_cents) == ("CREATED", 1250)
    assert messages_of(response) == [
        f"Canceled: {session.student.name}'s session on Sat 12 Jan, 13:00\u201314:00 CET is "
        "under Canceled; a partial refund of $12.50. It goes back to the student's card; "
        "its state shows below."
    ]


@pytest.mark.parametrize(
    ("amount", "cents"), [("12.50", 1250), ("12,5", 1250), ("12,05", 1205), ("100", 10000)]
)
def test_cancel_with_partial_refund_takes_the_amount_in_money_units(client, coach, amount, cents):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)
    response = post(client, "sessions:cancel", session, refund="partial", amount=amount)
    refund = Refund.objects.get(session=session)
    assert (refund.kind, refund.amount_cents) == ("partial", cents)
    assert Session.objects.get(pk=session.pk).status == "CANCELED"
    assert response.status_code == 302


def test_cancel_without_refund_writes_no_refund(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)
    response = post(client, "sessions:cancel", session, refund="none")
    assert Session.objects.get(pk=session.pk).status == "CANCELED"
    assert Refund.objects.count() == 0
    assert session.events.get(action="cancel").details["refund"] == "none"
    assert messages_of(response) == [
        f"Canceled: {session.student.name}'s session on Sat 12 Jan, 13:00\u201314:00 CET is "
        "under Canceled; canceled without refund."
    ]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"refund": "partial", "amount": "100.01"}, "At most $100.00 can be refunded"),
        ({"refund": "partial", "amount": "1e3"}, "Enter the amount as a number"),
        ({"refund": "partial", "amount": "1e30"}, "Enter the amount as a number"),
        ({"refund": "partial", "amount": "Infinity"}, "Enter the amount as a number"),
        ({"refund": "partial", "amount": "1_000"}, "Enter the amount as a number"),
        ({"refund": "partial", "amount": "9" * 20}, "far larger than anything that can be"),
        ({"refund": "partial", "amount": "1,000"}, "Use a dot for decimals"),
        ({"refund": "partial", "amount": "1,000.00"}, "Use a dot for decimals"),
        ({"refund": "partial", "amount": ""}, "Enter the amount to refund, for example 12.50."),
        ({"refund": "partial", "amount": "abc"}, "Enter the amount as a number"),
        ({"refund": "partial", "amount": "NaN"}, "Enter the amount as a number"),
        ({"refund": "partial", "amount": "12.345"}, "Use at most two decimal places"),
        ({"refund": "partial", "amount": "0"}, "A partial refund must be at least 0.01."),
        ({"refund": "partial", "amount": "-5"}, "A partial refund must be at least 0.01."),
        ({}, "Choose Full refund, Partial refund, Give a make-up credit or Cancel without refund."),
        (
            {"refund": "double"},
            "Choose Full refund, Partial refund, Give a make-up credit or Cancel without refund.",
        ),
        ({"refund": "none", "reason": "x" * 501}, "Ensure this value has at most 500 characters"),
    ],
)
def test_cancel_with_bad_input_shows_the_error_and_changes_nothing(client, coach, data, error):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)
    before = db_state()

    response = post(client, "sessions:cancel", session, **data)

    assert response.status_code == 200
    assert error in response.content.decode()
    assert db_state() == before


def test_cancel_submitted_twice_refunds_once(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(coach)
    data = {"seen_status": "CONFIRMED", "refund": "partial", "amount": "10"}
    client.post(reverse("sessions:cancel", args=[session.pk]), data, follow=True)

    response = client.post(reverse("sessions:cancel", args=[session.pk]), data)

    assert Refund.objects.filter(session=session).count() == 1
    assert session.events.filter(action="cancel").count() == 1
    assert messages_of(response) == [
        "This session changed since the page was loaded: it is now Canceled. "
        "Nothing was done; check it and try again if needed."
    ]


def test_cancel_of_a_free_session_only_allows_cancel_without_refund(client, coach):
    package = make_package(coach=coach, price_cents=0)
    session = package.sessions.order_by("number").first()
    client.force_login(coach)
    page = client.get(reverse("sessions:cancel", args=[session.pk])).content.decode()
    assert "Nothing is left to refund for this session." in page
    assert 'id="refund-full" disabled' in page
    before = db_state()

    refused = post(client, "sessions:cancel", session, refund="full")
    assert db_state() == before
    assert "Nothing is left to refund for this session; choose Cancel without refund." in (
        refused.content.decode()
    )

    post(client, "sessions:cancel", session, refund="none")
    assert Session.objects.get(pk=session.pk).status == "CANCELED"


def test_student_gets_the_policys_cancel_page_not_the_refund_drawer(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    client.force_login(session.student)
    before = db_state()

    html = client.get(reverse("sessions:cancel", args=[session.pk])).content.decode()
    response = post(client, "sessions:cancel", session, refund="partial", amount="1.00")

    # Two days ahead, the default policy's first tier: a full refund or a make-up credit, no
    # amount to type and nothing the drawer lets a coach choose.
    assert "If you cancel now" in html and "make-up credit" in html
    assert 'name="amount"' not in html and 'value="partial"' not in html
    assert db_state() == before
    assert response.status_code == 200
    assert "That is not what the policy gives now" in response.content.decode()
    assert SessionEvent.objects.filter(action="cancel").count() == 0


def test_details_do_not_count_a_failed_refund_as_refunded(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    services.session_cancel(session=session, actor=coach, refund="partial", amount_cents=1999)
    Refund.objects.filter(session=session).update(state=RefundState.FAILED)
    client.force_login(coach)

    html = client.get(reverse("sessions:detail", args=[session.pk])).content.decode()

    assert "<dt>Refunded so far</dt><dd>Nothing</dd>" in html


def test_details_while_rescheduling_tell_the_proposer_what_stands(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    proposed(session, NOW + timedelta(days=3), coach)
    client.force_login(coach)

    html = client.get(reverse("sessions:detail", args=[session.pk])).content.decode()

    text = " ".join(re.sub(r"<[^>]+>", "", html).split())
    assert "Agreed time Sat 12 Jan, 13:00\u201314:00 CET (stays until a new time is agreed)" in text
    assert (
        f"Proposed time Sun 13 Jan, 13:00\u201314:00 CET (waiting for {session.student.name})"
    ) in text
    assert "You proposed a new time" in text
    assert f"Waiting for {session.student.name} to answer, until Sat 12 Jan, 13:00 CET." in text
    assert "withdraw your proposal and then reschedule again" in text
    assert ">Propose another time</a>" not in html


def test_cancel_while_rescheduling_frees_the_agreed_and_the_proposed_time(client, coach):
    session = booked(coach, NOW + timedelta(days=2), status="CONFIRMED")
    proposal = proposed(session, NOW + timedelta(days=3), session.student)
    client.force_login(coach)

    post(client, "sessions:cancel", session, refund="none")

    session.refresh_from_db()
    assert session.status == "CANCELED"
    statuses = {TimeSlot.objects.get(pk=pk).status for pk in (session.slot_id, proposal.slot_id)}
    assert statuses == {SlotStatus.RELEASED}
