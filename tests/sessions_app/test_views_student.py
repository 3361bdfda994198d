"""The student's pages: My sessions, the picker (book, reschedule, propose another time) with its
confirm step, withdrawing, and answering or withdrawing proposals."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from calendars.models import SlotStatus, TimeSlot
from sessions_app import services
from sessions_app.models import ProposalStatus, Session
from tests.conftest import messages_of
from tests.factories import CoachFactory, StudentFactory, make_package
from tests.sessions_app.test_views_helpers import db_state, iso, open_at, unknown_session_pk

# A Thursday; 07:00 in New York, where the student lives.
NOW = datetime(2030, 1, 10, 12, 0, tzinfo=UTC)
THIS_WEEK = "2030-01-07"  # the student's Monday
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("coaches_decide_refunds"),
    pytest.mark.time_machine(NOW, tick=False),
]


@pytest.fixture
def coach():
    return CoachFactory(timezone="UTC", display_name="Coach Kim")


@pytest.fixture
def student():
    return StudentFactory(timezone="America/New_York")


@pytest.fixture
def credit(coach, student):
    """An unscheduled session of a three-session package the student bought from `coach`."""
    return make_package(student=student, coach=coach).sessions.order_by("number").first()


def post(client, name, session, **data):
    """Submit an action form as a page loaded now would (with the status it showed)."""
    data.setdefault("seen_status", Session.objects.get(pk=session.pk).status)
    return client.post(reverse(name, args=[session.pk]), data)


def requested(credit, start):
    services.session_book(session=credit, start=open_at(credit.coach, start), actor=credit.student)
    return Session.objects.get(pk=credit.pk)


def confirmed(credit, start):
    session = requested(credit, start)
    services.session_accept(session=session, actor=credit.coach)
    return Session.objects.get(pk=credit.pk)


def proposed(session, start, actor):
    return services.session_propose_reschedule(
        session=session, start=open_at(session.coach, start), actor=actor
    )


def picker_url(name, session, **query):
    url = reverse(name, args=[session.pk])
    if not query:
        return url
    from django.utils.http import urlencode

    return f"{url}?{urlencode(query)}"


def shown_starts(response) -> list[tuple[str, list[datetime]]]:
    return [
        (str(day), [item["start"] for item in items]) for day, items in response.context["days"]
    ]


# --- My sessions ---------------------------------------------------------------------------------


def test_my_sessions_sorts_sessions_into_what_the_student_can_do(client, coach, student, credit):
    siblings = list(credit.package.sessions.order_by("number"))
    waiting = requested(siblings[1], NOW + timedelta(days=2))
    answer = confirmed(siblings[2], NOW + timedelta(days=3))
    proposed(answer, NOW + timedelta(days=4), coach)
    more = make_package(student=student, coach=coach).sessions.order_by("number")
    upcoming = confirmed(more[0], NOW + timedelta(days=5))
    done = confirmed(more[1], NOW + timedelta(days=1))
    with time_machine.travel(NOW + timedelta(days=2), tick=False):
        services.sessions_complete_past()
    refunded = confirmed(more[2], NOW + timedelta(days=6))
    services.session_cancel(session=refunded, actor=coach, refund="partial", amount_cents=2500)
    client.force_login(student)

    response = client.get(reverse("sessions:my_sessions"))

    context = response.context
    assert [s.pk for s in context["credits"]] == [credit.pk]
    assert [s.pk for s in context["requested"]] == [waiting.pk]
    assert [s.pk for s in context["awaiting"]] == [answer.pk]
    assert [s.pk for s in context["upcoming"]] == [upcoming.pk]
    # Past sessions, the most recently ended first: completed two days on, canceled today.
    assert [s.pk for s in context["page_obj"]] == [done.pk, refunded.pk]
    html = response.content.decode()
    assert ">Book<span" in html
    assert ">Withdraw</button>" in html
    assert ">Confirm the new time</button>" in html
    assert ">Propose another time</a>" in html
    assert ">Keep the current time</button>" in html
    assert ">Reschedule</a>" in html
    assert "$25.00" in html
    # Times in the student's own timezone, start to end: 12:00 UTC is 07:00 in New York.
    assert "Sat 12 Jan, 07:00\u201308:00 EST" in html
    # The proposal to answer: the new time, and the agreed one that stays until then.
    assert "Mon 14 Jan, 07:00\u201308:00 EST" in html
    assert 'Sun 13 Jan, 07:00\u201308:00 EST</time> <span class="muted">(stays until' in html


def test_my_sessions_shows_the_students_own_proposal_as_agreed_and_proposed(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    proposed(session, NOW + timedelta(days=2), credit.student)
    client.force_login(credit.student)

    html = client.get(reverse("sessions:my_sessions")).content.decode()

    text = re.sub(r"<[^>]+>", "", html)
    assert "Agreed: Fri 11 Jan, 07:00\u201308:00 EST" in text
    assert "Proposed: Sat 12 Jan, 07:00\u201308:00 EST" in text
    assert "(waiting for Coach Kim)" in text
    assert ">Withdraw my proposal</button>" in html
    assert ">Confirm the new time</button>" not in html


def test_my_sessions_shows_only_the_students_own_sessions(client, credit):
    other = make_package(coach=credit.coach)
    client.force_login(credit.student)
    response = client.get(reverse("sessions:my_sessions"))
    shown = {s.pk for s in response.context["credits"]}
    assert shown == set(credit.package.sessions.values_list("pk", flat=True))
    assert not shown & set(other.sessions.values_list("pk", flat=True))


# --- the picker: one week of bookable starts ----------------------------------------------------


def test_book_picker_lists_this_weeks_open_times_by_the_students_day(client, coach, credit):
    evening = open_at(coach, datetime(2030, 1, 12, 3, 0, tzinfo=UTC))  # Fri 11 Jan, 22:00 NY
    morning = open_at(coach, datetime(2030, 1, 12, 15, 0, tzinfo=UTC))  # Sat 12 Jan, 10:00
    sunday_night = open_at(coach, datetime(2030, 1, 14, 3, 0, tzinfo=UTC))  # Sun 13 Jan, 22:00
    open_at(coach, datetime(2030, 1, 15, 15, 0, tzinfo=UTC))  # next week
    open_at(coach, NOW - timedelta(minutes=30))  # too little of it is left
    taken = open_at(coach, NOW + timedelta(days=2, hours=5))
    requested(make_package(coach=coach).sessions.first(), taken)  # another student's request
    open_at(CoachFactory(), NOW + timedelta(days=2, hours=7))  # another coach's
    client.force_login(credit.student)
    before = db_state()

    response = client.get(reverse("sessions:book", args=[credit.pk]))

    assert response.status_code == 200
    assert shown_starts(response) == [
        ("2030-01-11", [evening]),
        ("2030-01-12", [morning]),
        ("2030-01-13", [sunday_night]),
    ]
    html = response.content.decode()
    assert '<h3 id="day-1">Friday 11 January</h3>' in html
    link = picker_url("sessions:book", credit, start=iso(evening))
    assert (
        f'href="{link.replace("&", "&amp;")}" aria-label="Book Fri 11 Jan, 22:00\u201323:00 EST">'
        in html
    )
    assert "22:00\u201323:00</time></a>" in html
    assert "Mon 7 Jan \u2013 Sun 13 Jan" in html
    assert "Times are in America/New_York (EST)." in html
    # This week is the first one: no way back, a way forward.
    assert response.context["previous_url"] is None
    assert response.context["following_url"] == picker_url(
        "sessions:book", credit, week="2030-01-14"
    )
    assert db_state() == before


def test_book_picker_shows_the_week_asked_for_with_links_either_side(client, coach, credit):
    later = open_at(coach, datetime(2030, 1, 22, 15, 0, tzinfo=UTC))
    client.force_login(credit.student)

    response = client.get(reverse("sessions:book", args=[credit.pk]), {"week": "2030-01-23"})

    assert shown_starts(response) == [("2030-01-22", [later])]
    assert response.context["week"].isoformat() == "2030-01-21"
    assert response.context["previous_url"] == picker_url(
        "sessions:book", credit, week="2030-01-14"
    )
    assert response.context["following_url"] == picker_url(
        "sessions:book", credit, week="2030-01-28"
    )
    assert messages_of(response) == []


def test_book_picker_keeps_where_the_student_came_from_in_every_link(client, coach, credit):
    start = open_at(coach, NOW + timedelta(days=1))
    client.force_login(credit.student)
    came_from = reverse("sessions:my_sessions")

    response = client.get(reverse("sessions:book", args=[credit.pk]), {"next": came_from})

    (item,) = response.context["days"][0][1]
    assert item["url"] == picker_url("sessions:book", credit, start=iso(start), next=came_from)
    assert response.context["following_url"] == picker_url(
        "sessions:book", credit, week="2030-01-14", next=came_from
    )


def test_an_empty_week_points_to_the_next_open_time(client, coach, credit):
    later = open_at(coach, datetime(2030, 2, 6, 15, 0, tzinfo=UTC))  # a Wednesday, 10:00 NY
    client.force_login(credit.student)

    response = client.get(reverse("sessions:book", args=[credit.pk]))

    assert response.context["days"] == []
    html = response.content.decode()
    assert "No open times this week. The next one is Wed 6 Feb, 10:00\u201311:00 EST." in html
    assert response.context["next_open"]["url"] == picker_url(
        "sessions:book", credit, week="2030-02-04"
    )
    assert later


@pytest.mark.parametrize(
    ("week", "message"),
    [
        ("next tuesday", "That is not a week that can be shown. Here is this week."),
        ("2030-02-30", "That is not a week that can be shown. Here is this week."),
        ("20300115", "That is not a week that can be shown. Here is this week."),
        ("2030-01-15T00:00", "That is not a week that can be shown. Here is this week."),
        ("9" * 5000, "That is not a week that can be shown. Here is this week."),
        ("2029-12-31", "That week has passed. Here is this week."),
        ("2032-06-01", "Times can be booked only until Sat 10 Jan 2032. Here is this week."),
    ],
)
def test_book_picker_shows_this_week_for_a_week_it_cannot_show(client, credit, week, message):
    client.force_login(credit.student)

    response = client.get(reverse("sessions:book", args=[credit.pk]), {"week": week})

    assert response.status_code == 200
    assert response.context["week"].isoformat() == THIS_WEEK
    assert messages_of(response) == [message]


def test_book_picker_weeks_follow_the_students_clock_across_a_dst_change(client, coach, credit):
    # New York moves to EDT on Sun 10 Mar 2030, so that week is an hour short: it ends at
    # Monday 04:00 UTC, not 05:00.
    sunday_late = open_at(coach, datetime(2030, 3, 11, 3, 0, tzinfo=UTC))  # 23:00 EDT Sun
    monday_early = open_at(coach, datetime(2030, 3, 11, 4, 30, tzinfo=UTC))  # 00:30 EDT Mon
    client.force_login(credit.student)

    this = client.get(reverse("sessions:book", args=[credit.pk]), {"week": "2030-03-10"})
    following = client.get(reverse("sessions:book", args=[credit.pk]), {"week": "2030-03-11"})

    assert shown_starts(this) == [("2030-03-10", [sunday_late])]
    assert shown_starts(following) == [("2030-03-11", [monday_early])]
    assert "23:00\u201300:00 (next day)" in this.content.decode()


# --- the confirm step ----------------------------------------------------------------------------


def test_choosing_a_time_asks_to_confirm_before_anything_is_written(client, coach, credit):
    start = open_at(coach, NOW + timedelta(days=1), minutes=90)
    package = credit.package
    package.duration_minutes = 90  # a longer package, as bought
    package.save(update_fields=["duration_minutes"])
    client.force_login(credit.student)
    before = db_state()

    response = client.get(reverse("sessions:book", args=[credit.pk]), {"start": iso(start)})

    assert db_state() == before
    html = response.content.decode()
    assert "Book <time" in html
    assert ">Fri 11 Jan, 07:00\u201308:30 EST</time>?</h1>" in html
    assert "with Coach Kim. For Coach Kim that is Fri 11 Jan, 12:00\u201313:30 UTC." in html
    assert f'<input type="hidden" name="start" value="{iso(start)}">' in html
    assert '<input type="hidden" name="seen_status" value="UNSCHEDULED">' in html
    assert ">Confirm</button>" in html
    assert response.context["back_url"] == picker_url("sessions:book", credit, week=THIS_WEEK)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "tomorrow",
        "2030-01-11",
        "2030-01-11T12:00:00",  # no offset
        "2030-01-11T12:00:00 00:00",  # a '+' lost in an unencoded address
        "2030-01-11T25:00:00Z",
        "2030-01-11T12:00:00+24:00",
        "9999-12-31T23:00:00-05:00",
        "2030-01-11T12:00:00Z" + "0" * 100,
    ],
)
def test_the_confirm_step_refuses_a_start_it_cannot_read(client, credit, value):
    client.force_login(credit.student)

    response = client.get(reverse("sessions:book", args=[credit.pk]), {"start": value})

    assert response.url == reverse("sessions:book", args=[credit.pk])
    assert messages_of(response) == ["That is not one of the times listed. Pick one of them."]


def test_the_confirm_step_for_a_time_just_taken_goes_back_to_its_week(client, coach, credit):
    start = NOW + timedelta(days=8)
    requested(make_package(coach=coach).sessions.first(), start)  # another student was quicker
    client.force_login(credit.student)

    response = client.get(reverse("sessions:book", args=[credit.pk]), {"start": iso(start)})

    assert response.url == picker_url("sessions:book", credit, week="2030-01-14")
    assert messages_of(response) == ["That time is not free any more. Pick another."]


def test_book_requests_the_time_and_holds_exactly_the_sessions_length(client, coach, credit):
    start = open_at(coach, NOW + timedelta(days=1), minutes=180)
    client.force_login(credit.student)

    response = post(
        client, "sessions:book", credit, start=iso(start), next=reverse("sessions:my_sessions")
    )

    assert response.url == reverse("sessions:my_sessions")
    credit.refresh_from_db()
    slot = credit.slot
    assert (credit.status, slot.start, slot.end, slot.status) == (
        "REQUESTED",
        start,
        start + timedelta(minutes=60),
        SlotStatus.HELD,
    )
    assert credit.request_expires_at == start  # sooner than the 48-hour window
    assert messages_of(response) == [
        "Requested: Fri 11 Jan, 07:00\u201308:00 EST waits for Coach Kim to accept, by "
        "Fri 11 Jan, 07:00 EST; you'll get an email. It is under Requests in My sessions."
    ]
    assert credit.events.get(action="book").actor == credit.student


def test_book_submitted_twice_books_once(client, coach, credit):
    start = open_at(coach, NOW + timedelta(days=1))
    client.force_login(credit.student)
    data = {"start": iso(start), "seen_status": "UNSCHEDULED", "seen_slot": ""}
    client.post(reverse("sessions:book", args=[credit.pk]), data, follow=True)
    before = db_state()

    response = client.post(reverse("sessions:book", args=[credit.pk]), data)

    assert db_state() == before
    assert credit.events.filter(action="book").count() == 1
    assert messages_of(response) == [
        "This session changed since the page was loaded: it is now Requested. "
        "Nothing was done; check it and try again if needed."
    ]


SAT = NOW + timedelta(days=2)  # Sat 12 Jan, in the week of 7 Jan


@pytest.mark.parametrize(
    ("case", "message", "week"),
    [
        ("past", "That time is too soon; pick a later one.", THIS_WEEK),
        ("taken", "That time is not free any more. Pick another.", THIS_WEEK),
        ("closed", "That time is not free any more. Pick another.", THIS_WEEK),
        ("off_grid", "That time is not free any more. Pick another.", THIS_WEEK),
        ("students_own", "That time is not free any more. Pick another.", THIS_WEEK),
        ("far", "That time is too far ahead; pick an earlier one.", ""),
        ("naive", "That is not one of the times listed. Pick one of them.", ""),
        ("junk", "That is not one of the times listed. Pick one of them.", ""),
        ("empty", "That is not one of the times listed. Pick one of them.", ""),
        ("long", "That is not one of the times listed. Pick one of them.", ""),
    ],
)
def test_book_of_a_bad_time_is_refused_back_to_its_week_and_changes_nothing(
    client, coach, credit, case, message, week
):
    def students_own():
        # The student already has a session with another coach then.
        requested(make_package(student=credit.student).sessions.first(), SAT)
        return iso(open_at(coach, SAT + timedelta(minutes=30)) - timedelta(minutes=30))

    makers = {
        "past": lambda: iso(NOW - timedelta(days=1)),
        "taken": lambda: iso(requested(make_package(coach=coach).sessions.first(), SAT).slot.start),
        "closed": lambda: iso(SAT),
        "off_grid": lambda: iso(open_at(coach, SAT, minutes=120) + timedelta(minutes=10)),
        "students_own": students_own,
        "far": lambda: iso(NOW + timedelta(days=800)),
        "naive": lambda: "2030-01-12T12:00:00",
        "junk": lambda: "12abc",
        "empty": lambda: "",
        "long": lambda: iso(SAT) + " " * 60,
    }
    value = makers[case]()
    client.force_login(credit.student)
    before = db_state()

    response = post(client, "sessions:book", credit, start=value)

    assert db_state() == before
    assert messages_of(response) == [message]
    expected = {"week": week} if week else {}
    assert response.url == picker_url("sessions:book", credit, **expected)


def test_book_keeps_where_the_student_came_from_after_a_refusal(client, credit):
    client.force_login(credit.student)
    came_from = reverse("sessions:my_sessions")
    response = post(client, "sessions:book", credit, start=iso(SAT), next=came_from)
    assert response.url == picker_url("sessions:book", credit, week=THIS_WEEK, next=came_from)


def test_coach_cannot_book_a_students_credit(client, coach, credit):
    start = open_at(coach, NOW + timedelta(days=1))
    client.force_login(coach)
    before = db_state()
    page = client.get(reverse("sessions:book", args=[credit.pk]))
    confirm = client.get(reverse("sessions:book", args=[credit.pk]), {"start": iso(start)})
    response = post(client, "sessions:book", credit, start=iso(start))
    assert db_state() == before
    assert page.url == confirm.url == reverse("sessions:detail", args=[credit.pk])
    assert messages_of(response)[-1] == "You can't book this session now: it is Unscheduled."


def test_another_students_credit_is_404(client, coach, credit):
    start = open_at(coach, NOW + timedelta(days=1))
    client.force_login(StudentFactory())
    before = db_state()
    assert client.get(reverse("sessions:book", args=[credit.pk])).status_code == 404
    assert post(client, "sessions:book", credit, start=iso(start)).status_code == 404
    assert client.get(reverse("sessions:book", args=[unknown_session_pk()])).status_code == 404
    assert db_state() == before


# --- Withdraw ------------------------------------------------------------------------------------


def test_withdraw_turns_the_request_back_into_a_credit(client, credit):
    session = requested(credit, NOW + timedelta(days=1))
    slot = session.slot
    client.force_login(credit.student)

    response = post(client, "sessions:withdraw", session, next=reverse("sessions:my_sessions"))

    assert response.url == reverse("sessions:my_sessions")
    session.refresh_from_db()
    slot.refresh_from_db()
    assert (session.status, session.slot_id, slot.status) == ("UNSCHEDULED", None, "RELEASED")
    assert messages_of(response) == [
        "Withdrawn: the session is back to Unscheduled in My sessions, "
        f"a credit of {session.package.title} to book again."
    ]


def test_withdraw_after_the_coach_accepted_changes_nothing(client, credit):
    session = requested(credit, NOW + timedelta(days=1))
    client.force_login(credit.student)
    services.session_accept(session=session, actor=credit.coach)  # meanwhile
    before = db_state()
    response = client.post(
        reverse("sessions:withdraw", args=[session.pk]), {"seen_status": "REQUESTED"}
    )
    assert db_state() == before
    assert messages_of(response) == [
        "This session changed since the page was loaded: it is now Confirmed. "
        "Nothing was done; check it and try again if needed."
    ]


def test_withdraw_without_the_page_state_still_gets_the_lifecycle_refusal(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    client.force_login(credit.student)
    before = db_state()
    response = client.post(reverse("sessions:withdraw", args=[session.pk]))
    assert db_state() == before
    assert messages_of(response) == ["You can't withdraw a confirmed session."]


# --- Reschedule: propose, confirm the new time, propose another, keep, withdraw -----------------


def test_student_reschedules_and_the_agreed_time_stays_booked(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    agreed = session.slot
    new_start = open_at(credit.coach, NOW + timedelta(days=2))
    client.force_login(credit.student)

    page = client.get(reverse("sessions:reschedule", args=[session.pk]))
    confirm = client.get(
        reverse("sessions:reschedule", args=[session.pk]), {"start": iso(new_start)}
    )
    response = post(client, "sessions:reschedule", session, start=iso(new_start))

    assert shown_starts(page) == [("2030-01-12", [new_start])]  # not the agreed time itself
    assert ">Sat 12 Jan, 07:00\u201308:00 EST</time>?</h1>" in confirm.content.decode()
    assert "the session stays at its agreed time" in confirm.content.decode()
    proposal = session.proposals.get()
    assert (proposal.slot.start, proposal.proposed_by_id) == (new_start, credit.student_id)
    session.refresh_from_db()
    agreed.refresh_from_db()
    assert (session.status, session.slot_id, agreed.status) == (
        "RESCHEDULING",
        agreed.pk,
        SlotStatus.BOOKED,
    )
    assert messages_of(response) == [
        "Rescheduling: you proposed Sat 12 Jan, 07:00\u201308:00 EST; the agreed time "
        "Fri 11 Jan, 07:00\u201308:00 EST stays until Coach Kim answers. "
        "The session stays in My sessions."
    ]


def test_student_confirms_the_new_time_the_coach_proposed(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    agreed = session.slot
    proposal = proposed(session, NOW + timedelta(days=2), credit.coach)
    client.force_login(credit.student)

    response = post(client, "sessions:confirm_reschedule", session, seen_proposal=proposal.pk)

    session.refresh_from_db()
    agreed.refresh_from_db()
    assert (session.status, session.slot_id) == ("CONFIRMED", proposal.slot_id)
    assert TimeSlot.objects.get(pk=proposal.slot_id).status == SlotStatus.BOOKED
    assert agreed.status == SlotStatus.RELEASED
    assert messages_of(response) == [
        "Confirmed at the new time: Sat 12 Jan, 07:00\u201308:00 EST. "
        "The session is in My sessions."
    ]


def test_student_proposes_another_time_instead(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    first = proposed(session, NOW + timedelta(days=2), credit.coach)
    other = open_at(credit.coach, NOW + timedelta(days=3))
    client.force_login(credit.student)

    page = client.get(reverse("sessions:counter_propose", args=[session.pk]))
    response = post(
        client, "sessions:counter_propose", session, start=iso(other), seen_proposal=first.pk
    )

    # Neither the agreed time nor the pending proposal's is offered.
    assert shown_starts(page) == [("2030-01-13", [other])]
    assert page.context["proposal"] == first
    first.refresh_from_db()
    assert first.status == ProposalStatus.SUPERSEDED
    assert TimeSlot.objects.get(pk=first.slot_id).status == SlotStatus.RELEASED
    pending = session.proposals.get(status=ProposalStatus.PENDING)
    assert (pending.slot.start, pending.proposed_by_id) == (other, credit.student_id)
    assert Session.objects.get(pk=session.pk).slot.status == SlotStatus.BOOKED
    assert messages_of(response) == [
        "Rescheduling: you proposed Sun 13 Jan, 07:00\u201308:00 EST; the agreed time "
        "Fri 11 Jan, 07:00\u201308:00 EST stays until Coach Kim answers. "
        "The session stays in My sessions."
    ]


def test_counter_proposal_on_a_page_showing_an_older_proposal_changes_nothing(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    first = proposed(session, NOW + timedelta(days=2), credit.coach)
    other = open_at(credit.coach, NOW + timedelta(days=3))
    services.session_withdraw_proposal(session=session, actor=credit.coach)
    proposed(session, NOW + timedelta(days=4), credit.coach)  # a new proposal meanwhile
    client.force_login(credit.student)
    before = db_state()

    response = post(
        client, "sessions:counter_propose", session, start=iso(other), seen_proposal=first.pk
    )

    assert db_state() == before
    assert messages_of(response) == [
        "The proposed time changed since the page was loaded. "
        "Nothing was done; check the new proposal."
    ]


def test_student_keeps_the_current_time(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    agreed = session.slot
    proposal = proposed(session, NOW + timedelta(days=2), credit.coach)
    client.force_login(credit.student)

    response = post(client, "sessions:decline_reschedule", session, seen_proposal=proposal.pk)

    session.refresh_from_db()
    proposal.refresh_from_db()
    assert (session.status, session.slot_id) == ("CONFIRMED", agreed.pk)
    assert session.slot.status == SlotStatus.BOOKED
    assert proposal.status == ProposalStatus.DECLINED
    assert TimeSlot.objects.get(pk=proposal.slot_id).status == SlotStatus.RELEASED
    event = session.events.order_by("-id").first()
    assert (event.action, event.actor_id) == ("decline_reschedule", credit.student_id)
    assert messages_of(response) == [
        "Confirmed at the current time: Fri 11 Jan, 07:00\u201308:00 EST. The proposed time "
        "was declined; the session stays in My sessions."
    ]


def test_student_withdraws_their_own_proposal_and_may_propose_again(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    proposal = proposed(session, NOW + timedelta(days=2), credit.student)
    client.force_login(credit.student)

    response = post(client, "sessions:withdraw_proposal", session, seen_proposal=proposal.pk)

    session.refresh_from_db()
    proposal.refresh_from_db()
    assert (session.status, proposal.status) == ("CONFIRMED", ProposalStatus.WITHDRAWN)
    assert messages_of(response) == [
        "Confirmed at the agreed time: your proposal was withdrawn; the session stays at "
        "Fri 11 Jan, 07:00\u201308:00 EST, in My sessions."
    ]
    page = client.get(reverse("sessions:reschedule", args=[session.pk]))
    assert shown_starts(page) == [("2030-01-12", [proposal.slot.start])]


def test_student_cannot_answer_their_own_proposal(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    proposal = proposed(session, NOW + timedelta(days=2), credit.student)
    client.force_login(credit.student)
    before = db_state()

    confirm = post(client, "sessions:confirm_reschedule", session)
    keep = post(client, "sessions:decline_reschedule", session)
    counter = post(client, "sessions:counter_propose", session, start=iso(proposal.slot.start))
    page = client.get(reverse("sessions:counter_propose", args=[session.pk]))

    assert db_state() == before
    # (Each message joins the ones not shown yet; the newest is last.)
    assert messages_of(confirm)[-1] == "You proposed this time; the other side answers it."
    assert messages_of(keep)[-1] == "You proposed this time; the other side answers it."
    assert messages_of(counter)[-1] == (
        "You have proposed a new time already. Withdraw it first to propose another."
    )
    assert page.url == reverse("sessions:detail", args=[session.pk])


def test_student_cannot_withdraw_the_coachs_proposal(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    proposed(session, NOW + timedelta(days=2), credit.coach)
    client.force_login(credit.student)
    before = db_state()
    response = post(client, "sessions:withdraw_proposal", session)
    assert db_state() == before
    assert messages_of(response) == ["Only the side that proposed this time can withdraw it."]


def test_the_new_lifecycle_actions_refuse_get_and_outsiders(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    proposed(session, NOW + timedelta(days=2), credit.coach)
    client.force_login(credit.student)
    for name in ["sessions:decline_reschedule", "sessions:withdraw_proposal"]:
        assert client.get(reverse(name, args=[session.pk])).status_code == 405
    client.force_login(StudentFactory())
    before = db_state()
    for name in ["sessions:decline_reschedule", "sessions:withdraw_proposal"]:
        assert post(client, name, session).status_code == 404
    assert db_state() == before


# --- details -------------------------------------------------------------------------------------

DETAIL_LABELS = {
    "Book": ">Book</a>",
    "Withdraw": ">Withdraw</button>",
    "Accept": ">Accept</button>",
    "Decline": ">Decline</button>",
    "Confirm the new time": ">Confirm the new time</button>",
    "Propose another time": ">Propose another time</a>",
    "Keep the current time": ">Keep the current time</button>",
    "Withdraw my proposal": ">Withdraw my proposal</button>",
    "Reschedule": ">Reschedule</a>",
    "Cancel Session": ">Cancel Session</a>",
}


@pytest.mark.parametrize(
    ("state", "shown"),
    [
        ("credit", ["Book"]),
        ("requested", ["Withdraw"]),
        ("confirmed", ["Reschedule", "Cancel Session"]),
        (
            "proposed_by_coach",
            [
                "Confirm the new time",
                "Propose another time",
                "Keep the current time",
                "Cancel Session",
            ],
        ),
        ("proposed_by_student", ["Withdraw my proposal", "Cancel Session"]),
    ],
)
def test_details_show_the_student_only_the_actions_allowed_now(client, credit, state, shown):
    if state == "requested":
        requested(credit, NOW + timedelta(days=1))
    elif state != "credit":
        session = confirmed(credit, NOW + timedelta(days=1))
        if state == "proposed_by_coach":
            proposed(session, NOW + timedelta(days=2), credit.coach)
        elif state == "proposed_by_student":
            proposed(session, NOW + timedelta(days=2), credit.student)
    client.force_login(credit.student)
    html = client.get(reverse("sessions:detail", args=[credit.pk])).content.decode()
    assert [label for label, marker in DETAIL_LABELS.items() if marker in html] == shown
    # A booked session's cancel opens what the policy gives back (a dialog); the coach's
    # refund drawer never shows to a student.
    assert ("<dialog" in html) == ("Cancel Session" in shown)
    assert "Partial refund" not in html


def test_details_label_the_agreed_time_as_agreed_while_a_new_one_is_proposed(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    proposed(session, NOW + timedelta(days=2), credit.coach)
    client.force_login(credit.student)

    html = client.get(reverse("sessions:detail", args=[session.pk])).content.decode()

    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))
    assert "Agreed time Fri 11 Jan, 07:00\u201308:00 EST (stays until a new time is agreed)" in text
    assert "Proposed time Sat 12 Jan, 07:00\u201308:00 EST (proposed by Coach Kim)" in text
    assert "Coach Kim proposed a new time" in text
    assert "Answer by Fri 11 Jan, 07:00 EST" in text
