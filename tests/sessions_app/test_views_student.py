"""The student's pages: My sessions, booking, withdrawing, answering and proposing new times."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from calendars.models import TimeSlot
from sessions_app import services
from sessions_app.models import ProposalStatus, Session
from tests.conftest import messages_of
from tests.factories import CoachFactory, StudentFactory, TimeSlotFactory, make_package
from tests.sessions_app.test_views_helpers import db_state, slot_at, unknown_session_pk

NOW = datetime(2030, 1, 10, 12, 0, tzinfo=UTC)
pytestmark = [pytest.mark.django_db, pytest.mark.time_machine(NOW, tick=False)]


@pytest.fixture
def coach():
    return CoachFactory(timezone="UTC")


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
    services.session_book(session=credit, slot=slot_at(credit.coach, start), actor=credit.student)
    return Session.objects.get(pk=credit.pk)


def confirmed(credit, start):
    session = requested(credit, start)
    services.session_accept(session=session, actor=credit.coach)
    return Session.objects.get(pk=credit.pk)


# --- My sessions ---------------------------------------------------------------------------------


def test_my_sessions_sorts_sessions_into_what_the_student_can_do(client, coach, student, credit):
    siblings = list(credit.package.sessions.order_by("number"))
    waiting = requested(siblings[1], NOW + timedelta(days=2))
    answer = confirmed(siblings[2], NOW + timedelta(days=3))
    services.session_propose_reschedule(
        session=answer, slot=slot_at(coach, NOW + timedelta(days=4)), actor=coach
    )
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
    assert [s.pk for s in context["page_obj"]] == [refunded.pk, done.pk]
    html = response.content.decode()
    assert ">Book<span" in html
    assert ">Withdraw</button>" in html
    assert ">Confirm new time</button>" in html
    assert ">Propose another time</a>" in html
    assert ">Reschedule</a>" in html
    assert "$25.00" in html
    # Times in the student's own timezone: 12:00 UTC is 07:00 in New York.
    assert "Sat 12 Jan 2030, 07:00 EST" in html


def test_my_sessions_shows_only_the_students_own_sessions(client, credit):
    other = make_package(coach=credit.coach)
    client.force_login(credit.student)
    response = client.get(reverse("sessions:my_sessions"))
    shown = {s.pk for s in response.context["credits"]}
    assert shown == set(credit.package.sessions.values_list("pk", flat=True))
    assert not shown & set(other.sessions.values_list("pk", flat=True))


# --- Book ----------------------------------------------------------------------------------------


def test_book_chooser_lists_the_coachs_open_future_slots_by_the_students_day(client, credit):
    coach = credit.coach
    evening = slot_at(coach, datetime(2030, 1, 12, 3, 0, tzinfo=UTC))  # 11 Jan, 22:00 in NY
    morning = slot_at(coach, datetime(2030, 1, 12, 15, 0, tzinfo=UTC))
    slot_at(coach, NOW - timedelta(hours=1))  # past
    slot_at(coach, NOW + timedelta(days=4), status="BOOKED")
    TimeSlotFactory(start=NOW + timedelta(days=2))  # another coach's
    client.force_login(credit.student)

    response = client.get(reverse("sessions:book", args=[credit.pk]))

    days = [(str(day), [s.pk for s in slots]) for day, slots in response.context["days"]]
    assert days == [("2030-01-11", [evening.pk]), ("2030-01-12", [morning.pk])]
    html = response.content.decode()
    assert "Book Fri 11 Jan 2030, </span>22:00\u201323:00 EST" in html


def test_book_requests_the_time_and_holds_the_slot(client, credit):
    slot = slot_at(credit.coach, NOW + timedelta(days=1))
    client.force_login(credit.student)

    response = post(
        client, "sessions:book", credit, slot=slot.pk, next=reverse("sessions:my_sessions")
    )

    assert response.url == reverse("sessions:my_sessions")
    credit.refresh_from_db()
    slot.refresh_from_db()
    assert (credit.status, credit.slot_id, slot.status) == ("REQUESTED", slot.pk, "HELD")
    assert credit.request_expires_at == NOW + timedelta(days=1)
    assert messages_of(response) == ["Requested Fri 11 Jan 2030, 07:00 EST. The coach will answer."]


def test_book_submitted_twice_books_once(client, credit):
    slot = slot_at(credit.coach, NOW + timedelta(days=1))
    client.force_login(credit.student)
    data = {"slot": slot.pk, "seen_status": "UNSCHEDULED"}
    client.post(reverse("sessions:book", args=[credit.pk]), data, follow=True)
    before = db_state()

    response = client.post(reverse("sessions:book", args=[credit.pk]), data)

    assert db_state() == before
    assert credit.events.filter(action="book").count() == 1
    assert messages_of(response) == [
        "This session changed since the page was loaded: it is now Requested. "
        "Nothing was done; check it and try again if needed."
    ]


@pytest.mark.parametrize(
    ("slot_value", "message"),
    [
        ("past", "That time is too soon; pick a later one."),
        ("taken", "That time was just taken. Pick another."),
        ("other_coach", "That time is not one of the coach's open times. Pick another."),
        ("unknown", "That time is not one of the coach's open times. Pick another."),
        ("12abc", "That time is not one of the coach's open times. Pick another."),
        ("", "That time is not one of the coach's open times. Pick another."),
    ],
)
def test_book_of_a_bad_slot_is_refused_and_changes_nothing(client, credit, slot_value, message):
    coach = credit.coach
    makers = {
        "past": lambda: slot_at(coach, NOW - timedelta(days=1)).pk,
        "taken": lambda: (
            requested(make_package(coach=coach).sessions.first(), NOW + timedelta(days=2)).slot_id
        ),
        "other_coach": lambda: TimeSlotFactory(start=NOW + timedelta(days=1)).pk,
        "unknown": lambda: (
            (TimeSlot.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        ),
    }
    value = makers[slot_value]() if slot_value in makers else slot_value
    client.force_login(credit.student)
    before = db_state()

    response = post(client, "sessions:book", credit, slot=value)

    assert db_state() == before
    assert messages_of(response) == [message]
    assert response.url == reverse("sessions:book", args=[credit.pk])


def test_book_keeps_where_the_student_came_from_after_a_refusal(client, credit):
    past = slot_at(credit.coach, NOW - timedelta(days=1))
    client.force_login(credit.student)
    response = post(
        client, "sessions:book", credit, slot=past.pk, next=reverse("sessions:my_sessions")
    )
    assert response.url == reverse("sessions:book", args=[credit.pk]) + "?next=%2Fsessions%2Fmy%2F"


def test_book_at_a_time_the_student_already_has_is_refused(client, credit):
    start = NOW + timedelta(days=1)
    # A request with another coach at that time (a coach's own slots never overlap).
    elsewhere = make_package(student=credit.student).sessions.order_by("number").first()
    requested(elsewhere, start)
    overlapping = slot_at(credit.coach, start + timedelta(minutes=30))
    client.force_login(credit.student)
    before = db_state()
    response = post(client, "sessions:book", credit, slot=overlapping.pk)
    assert db_state() == before
    assert messages_of(response) == ["The student already has a session at that time."]


def test_coach_cannot_book_a_students_credit(client, credit):
    slot = slot_at(credit.coach, NOW + timedelta(days=1))
    client.force_login(credit.coach)
    before = db_state()
    page = client.get(reverse("sessions:book", args=[credit.pk]))
    response = post(client, "sessions:book", credit, slot=slot.pk)
    assert db_state() == before
    assert page.url == reverse("sessions:detail", args=[credit.pk])
    assert messages_of(response)[-1] == "You can't book this session now: it is Unscheduled."


def test_another_students_credit_is_404(client, credit):
    slot = slot_at(credit.coach, NOW + timedelta(days=1))
    client.force_login(StudentFactory())
    before = db_state()
    assert client.get(reverse("sessions:book", args=[credit.pk])).status_code == 404
    assert post(client, "sessions:book", credit, slot=slot.pk).status_code == 404
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
    assert (session.status, session.slot_id, slot.status) == ("UNSCHEDULED", None, "OPEN")
    assert messages_of(response) == [
        f"Request withdrawn: {session.package.title} is a credit to book again."
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


# --- Reschedule, confirm new time, propose another time -----------------------------------------


def test_student_reschedules_a_confirmed_session(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    new_slot = slot_at(credit.coach, NOW + timedelta(days=2))
    client.force_login(credit.student)

    post(client, "sessions:reschedule", session, slot=new_slot.pk)

    proposal = session.proposals.get()
    assert (proposal.slot_id, proposal.proposed_by_id) == (new_slot.pk, credit.student_id)
    assert Session.objects.get(pk=session.pk).status == "RESCHEDULING"


def test_student_confirms_the_new_time_the_coach_proposed(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    new_slot = slot_at(credit.coach, NOW + timedelta(days=2))
    proposal = services.session_propose_reschedule(
        session=session, slot=new_slot, actor=credit.coach
    )
    client.force_login(credit.student)

    response = post(client, "sessions:confirm_reschedule", session, seen_proposal=proposal.pk)

    session.refresh_from_db()
    assert (session.status, session.slot_id) == ("CONFIRMED", new_slot.pk)
    assert TimeSlot.objects.get(pk=new_slot.pk).status == "BOOKED"
    assert messages_of(response) == ["New time confirmed: Sat 12 Jan 2030, 07:00 EST."]


def test_student_proposes_another_time_instead(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    first = services.session_propose_reschedule(
        session=session, slot=slot_at(credit.coach, NOW + timedelta(days=2)), actor=credit.coach
    )
    other = slot_at(credit.coach, NOW + timedelta(days=3))
    client.force_login(credit.student)

    page = client.get(reverse("sessions:counter_propose", args=[session.pk]))
    assert page.context["proposal"] == first
    post(client, "sessions:counter_propose", session, slot=other.pk, seen_proposal=first.pk)

    first.refresh_from_db()
    assert first.status == ProposalStatus.SUPERSEDED
    pending = session.proposals.get(status=ProposalStatus.PENDING)
    assert (pending.slot_id, pending.proposed_by_id) == (other.pk, credit.student_id)
    assert TimeSlot.objects.get(pk=first.slot_id).status == "OPEN"


def test_student_can_propose_to_keep_the_original_time(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    original = session.slot
    first = services.session_propose_reschedule(
        session=session, slot=slot_at(credit.coach, NOW + timedelta(days=2)), actor=credit.coach
    )
    client.force_login(credit.student)

    page = client.get(reverse("sessions:counter_propose", args=[session.pk]))
    assert [slot.pk for slot in page.context["page_obj"]] == [original.pk]
    post(client, "sessions:counter_propose", session, slot=original.pk, seen_proposal=first.pk)

    pending = session.proposals.get(status=ProposalStatus.PENDING)
    assert (pending.slot_id, pending.proposed_by_id) == (original.pk, credit.student_id)
    assert TimeSlot.objects.get(pk=original.pk).status == "HELD"


def test_student_cannot_answer_their_own_proposal(client, credit):
    session = confirmed(credit, NOW + timedelta(days=1))
    services.session_propose_reschedule(
        session=session, slot=slot_at(credit.coach, NOW + timedelta(days=2)), actor=credit.student
    )
    client.force_login(credit.student)
    before = db_state()
    response = post(client, "sessions:confirm_reschedule", session)
    assert db_state() == before
    assert messages_of(response) == ["You proposed this time; the other side answers it."]
    page = client.get(reverse("sessions:counter_propose", args=[session.pk]))
    assert page.url == reverse("sessions:detail", args=[session.pk])


# --- details -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "shown"),
    [
        ("credit", ["Book"]),
        ("requested", ["Withdraw"]),
        ("confirmed", ["Reschedule"]),
        ("proposed_by_coach", ["Confirm new time", "Propose another time"]),
    ],
)
def test_details_show_the_student_only_the_actions_allowed_now(client, credit, state, shown):
    if state == "requested":
        requested(credit, NOW + timedelta(days=1))
    elif state == "confirmed":
        confirmed(credit, NOW + timedelta(days=1))
    elif state == "proposed_by_coach":
        session = confirmed(credit, NOW + timedelta(days=1))
        services.session_propose_reschedule(
            session=session, slot=slot_at(credit.coach, NOW + timedelta(days=2)), actor=credit.coach
        )
    client.force_login(credit.student)
    html = client.get(reverse("sessions:detail", args=[credit.pk])).content.decode()
    labels = {
        "Book": ">Book</a>",
        "Withdraw": ">Withdraw</button>",
        "Accept": ">Accept</button>",
        "Decline": ">Decline</button>",
        "Reschedule": ">Reschedule</a>",
        "Confirm new time": ">Confirm new time</button>",
        "Propose another time": ">Propose another time</a>",
        "Cancel Session": ">Cancel Session</a>",
    }
    assert [label for label, marker in labels.items() if marker in html] == shown
    assert "<dialog" not in html
