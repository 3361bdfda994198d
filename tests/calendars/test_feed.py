"""The secret subscription feed: what it publishes, how it changes, and who can read it."""

from datetime import UTC, datetime, timedelta

import icalendar
import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.http import http_date, parse_http_date

from accounts.services import calendar_token_regenerate
from calendars import feeds, ical
from sessions_app import services
from tests.factories import (
    AvailabilityWindowFactory,
    CoachFactory,
    OfferingFactory,
    StudentFactory,
    make_package,
    make_session,
    next_free_start,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("coaches_decide_refunds")]


@pytest.fixture(autouse=True)
def _empty_feed_cache():
    """Built feeds are cached under the user's id: ids come round again between tests."""
    cache.clear()
    yield
    cache.clear()


def feed_url(user) -> str:
    return reverse("feeds:feed", kwargs={"token": user.calendar_token})


def get_feed(client, user) -> icalendar.Calendar:
    response = client.get(feed_url(user))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    return icalendar.Calendar.from_ical(response.content)


def events_by_uid(calendar) -> dict[str, icalendar.Event]:
    return {str(event["UID"]): event for event in calendar.walk("VEVENT")}


def confirmed_sessions(coach_offering, count):
    """`count` confirmed sessions of one coach, each with its own student."""
    coach = coach_offering.coach
    sessions = []
    for _ in range(count):
        package = make_package(offering=coach_offering)
        session = package.sessions.order_by("number").first()
        services.session_book(session=session, start=next_free_start(coach), actor=package.student)
        services.session_accept(session=session, actor=coach)
        session.refresh_from_db()
        sessions.append(session)
    return sessions


def test_feed_parses_back_with_calendar_properties_and_the_confirmed_session(client):
    session = make_session("CONFIRMED")
    coach, student = session.coach, session.student

    response = client.get(feed_url(coach))
    calendar = icalendar.Calendar.from_ical(response.content)

    assert str(calendar["PRODID"]) == "-//Coachbook//Coachbook sessions//EN"
    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["X-WR-CALNAME"]) == f"Coachbook: {coach.name}"
    [event] = calendar.walk("VEVENT")
    assert str(event["UID"]) == f"session-{session.pk}@coachbook"
    assert int(event["SEQUENCE"]) == 0
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["SUMMARY"]) == f"{session.package.title} with {student.name}"
    assert str(event["URL"]).endswith(f"/sessions/{session.pk}/")
    assert event["DTSTART"].dt == session.slot.start
    assert event["DTEND"].dt == session.slot.end
    assert event["DTSTART"].dt.utcoffset() == timedelta(0)
    assert event["DTSTAMP"].dt.utcoffset() == timedelta(0)
    text = response.content.decode()
    assert f"DTSTART:{session.slot.start.astimezone(UTC):%Y%m%dT%H%M%SZ}" in text
    assert response["Cache-Control"] == "private, max-age=300"


def test_student_feed_names_the_coach(client):
    session = make_session("CONFIRMED")

    [event] = get_feed(client, session.student).walk("VEVENT")

    assert str(event["SUMMARY"]) == f"{session.package.title} with {session.coach.name}"
    assert str(event["UID"]) == f"session-{session.pk}@coachbook"


def test_feed_leaves_out_unscheduled_and_requested_sessions(client):
    requested = make_session("REQUESTED")
    package = make_package(student=requested.student)

    assert get_feed(client, requested.student).walk("VEVENT") == []
    assert get_feed(client, package.offering.coach).walk("VEVENT") == []


def test_rescheduling_session_stays_at_its_agreed_time_as_tentative(client):
    session = make_session("RESCHEDULING")
    proposal = session.proposals.get()

    [event] = get_feed(client, session.coach).walk("VEVENT")

    assert str(event["STATUS"]) == "TENTATIVE"
    assert session.slot.status == "BOOKED"
    assert (event["DTSTART"].dt, event["DTEND"].dt) == (session.slot.start, session.slot.end)
    assert event["DTSTART"].dt != proposal.slot.start
    assert str(event["UID"]) == f"session-{session.pk}@coachbook"


def test_confirmed_reschedule_bumps_sequence_and_moves_the_same_uid(client):
    session = make_session("CONFIRMED")
    new_start = next_free_start(session.coach)
    services.session_propose_reschedule(session=session, start=new_start, actor=session.student)
    services.session_confirm_reschedule(session=session, actor=session.coach)

    events = events_by_uid(get_feed(client, session.coach))

    event = events[f"session-{session.pk}@coachbook"]
    assert len(events) == 1
    assert int(event["SEQUENCE"]) == 1
    assert event["DTSTART"].dt == new_start
    assert event["DTEND"].dt == new_start + timedelta(minutes=session.package.duration_minutes)
    assert str(event["STATUS"]) == "CONFIRMED"


def test_canceled_session_is_kept_cancelled_for_30_days_then_dropped(client):
    session = make_session("CONFIRMED")
    services.session_cancel(session=session, actor=session.coach, refund="none")

    [event] = get_feed(client, session.student).walk("VEVENT")
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == f"session-{session.pk}@coachbook"

    with time_machine.travel(timezone.now() + timedelta(days=29)):
        assert len(get_feed(client, session.student).walk("VEVENT")) == 1
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        assert get_feed(client, session.student).walk("VEVENT") == []


def test_canceled_request_never_appears(client):
    session = make_session("REQUESTED")
    services.session_cancel(session=session, actor=session.coach, refund="none")

    assert get_feed(client, session.coach).walk("VEVENT") == []


def test_unknown_token_is_404(client):
    make_session("CONFIRMED")

    assert client.get("/calendar/feed/not-a-real-token-at-all-0000.ics").status_code == 404
    assert client.get("/calendar/feed/short.ics").status_code == 404


def test_regenerating_kills_the_old_url_and_the_new_one_works(client):
    session = make_session("CONFIRMED")
    coach = session.coach
    old_url = feed_url(coach)
    client.force_login(coach)

    response = client.post(reverse("feeds:regenerate"))

    coach.refresh_from_db()
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:profile") + "#calendar-feed"
    client.logout()
    assert client.get(old_url).status_code == 404
    assert len(get_feed(client, coach).walk("VEVENT")) == 1


def test_regenerate_needs_a_post_from_a_signed_in_user(client):
    user = StudentFactory()
    token = user.calendar_token

    assert client.post(reverse("feeds:regenerate")).status_code == 302  # to the login page
    client.force_login(user)
    assert client.get(reverse("feeds:regenerate")).status_code == 405
    user.refresh_from_db()
    assert user.calendar_token == token


def test_calendar_token_regenerate_changes_the_token():
    user = StudentFactory()
    old = user.calendar_token

    calendar_token_regenerate(user=user)

    user.refresh_from_db()
    assert user.calendar_token != old
    assert len(user.calendar_token) == 43


def test_feed_query_count_does_not_grow_with_sessions(client):
    offering = OfferingFactory(session_count=1)
    confirmed_sessions(offering, 1)
    with CaptureQueriesContext(connection) as one:
        client.get(feed_url(offering.coach))
    confirmed_sessions(offering, 6)
    with CaptureQueriesContext(connection) as seven:
        calendar = get_feed(client, offering.coach)

    assert len(calendar.walk("VEVENT")) == 7
    # The token's user, the feed's version, the feed's sessions (a change: built again).
    assert len(one.captured_queries) == len(seven.captured_queries) == 3


def test_feed_instructions_show_the_url_the_apps_and_the_regenerate_form():
    user = StudentFactory()
    request = RequestFactory().get("/profile/")
    request.user = user

    html = render_to_string("calendars/_feed_instructions.html", {"user": user}, request=request)

    assert f'value="http://testserver/calendar/feed/{user.calendar_token}.ics"' in html
    assert f'href="webcal://testserver/calendar/feed/{user.calendar_token}.ics"' in html
    assert "From URL" in html
    assert "New Calendar Subscription" in html
    assert "Subscribe from web" in html
    assert f'action="{reverse("feeds:regenerate")}"' in html
    assert "Regenerate feed URL" in html


# --- conditional GET ----------------------------------------------------------------------------

FROZEN = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def frozen():
    with time_machine.travel(FROZEN, tick=False) as traveller:
        yield traveller


def test_feed_answers_with_a_strong_etag_and_last_modified(client, frozen):
    session = make_session("CONFIRMED")

    response = client.get(feed_url(session.coach))

    assert response.status_code == 200
    etag = response["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 34  # strong, not W/
    assert response["Last-Modified"] == http_date(session.updated_at.timestamp())
    assert parse_http_date(response["Last-Modified"]) == int(FROZEN.timestamp())
    assert response["Cache-Control"] == "private, max-age=300"
    # The same feed again: the same bytes, the same validators.
    again = client.get(feed_url(session.coach))
    assert (again.content, again["ETag"]) == (response.content, etag)


def test_if_none_match_gets_a_304_without_a_body_in_two_queries(client, frozen):
    session = make_session("CONFIRMED")
    first = client.get(feed_url(session.coach))

    with CaptureQueriesContext(connection) as queries:
        response = client.get(feed_url(session.coach), HTTP_IF_NONE_MATCH=first["ETag"])

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == first["ETag"]
    assert response["Last-Modified"] == first["Last-Modified"]
    assert response["Cache-Control"] == "private, max-age=300"
    assert len(queries.captured_queries) == 2  # the token's user, the feed's version
    head = client.head(feed_url(session.coach), HTTP_IF_NONE_MATCH=f'"other", {first["ETag"]}')
    assert head.status_code == 304


def test_if_modified_since_gets_a_304_until_a_later_change(client, frozen):
    session = make_session("CONFIRMED")
    first = client.get(feed_url(session.coach))

    response = client.get(feed_url(session.coach), HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert response.status_code == 304

    frozen.shift(timedelta(minutes=5))
    services.session_cancel(session=session, actor=session.coach, refund="none")
    changed = client.get(feed_url(session.coach), HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert changed.status_code == 200
    assert parse_http_date(changed["Last-Modified"]) == int(FROZEN.timestamp()) + 300


def test_a_change_gets_a_200_with_a_new_etag_and_the_new_one_a_304(client, frozen):
    session = make_session("CONFIRMED")
    coach = session.coach
    old = client.get(feed_url(coach))["ETag"]
    frozen.shift(timedelta(minutes=1))
    new_start = next_free_start(coach)
    services.session_propose_reschedule(session=session, start=new_start, actor=session.student)
    services.session_confirm_reschedule(session=session, actor=coach)

    response = client.get(feed_url(coach), HTTP_IF_NONE_MATCH=old)

    assert response.status_code == 200
    assert response["ETag"] != old
    [event] = icalendar.Calendar.from_ical(response.content).walk("VEVENT")
    assert (int(event["SEQUENCE"]), event["DTSTART"].dt) == (1, new_start)
    assert client.get(feed_url(coach), HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    # With both validators, If-None-Match decides (RFC 9110): an old ETag is a 200 even when
    # If-Modified-Since alone would have said "not modified".
    both = client.get(
        feed_url(coach), HTTP_IF_NONE_MATCH=old, HTTP_IF_MODIFIED_SINCE=response["Last-Modified"]
    )
    assert both.status_code == 200


def test_a_renamed_other_side_reaches_the_feed_the_next_day(client, frozen):
    """The documented limitation: a rename moves no session's `updated_at`, so the version
    holds until the window's day moves (or one of the user's sessions changes)."""
    session = make_session("CONFIRMED")
    old = client.get(feed_url(session.coach))["ETag"]
    session.student.display_name = "Renamed Student"
    session.student.save(update_fields=["display_name"])

    same_day = client.get(feed_url(session.coach), HTTP_IF_NONE_MATCH=old)
    frozen.shift(timedelta(days=1))
    next_day = client.get(feed_url(session.coach), HTTP_IF_NONE_MATCH=old)

    assert same_day.status_code == 304
    assert next_day.status_code == 200
    assert b"with Renamed Student" in next_day.content


def test_renaming_oneself_renames_the_calendar_at_once(client, frozen):
    session = make_session("CONFIRMED")
    coach = session.coach
    old = client.get(feed_url(coach))["ETag"]
    coach.display_name = "Carla Renamed"
    coach.save(update_fields=["display_name"])

    response = client.get(feed_url(coach), HTTP_IF_NONE_MATCH=old)

    assert response.status_code == 200
    assert str(icalendar.Calendar.from_ical(response.content)["X-WR-CALNAME"]) == (
        "Coachbook: Carla Renamed"
    )


def test_an_empty_feed_has_validators_too(client, frozen):
    user = StudentFactory()

    response = client.get(feed_url(user))

    assert response.status_code == 200
    assert response["Last-Modified"] == http_date(user.date_joined.timestamp())
    assert client.get(feed_url(user), HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304


def test_validators_do_not_get_past_the_token_check(client, frozen):
    session = make_session("CONFIRMED")
    coach = session.coach
    url = feed_url(coach)
    etag = client.get(url)["ETag"]
    calendar_token_regenerate(user=coach)

    assert client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 404
    unknown = "/calendar/feed/not-a-real-token-at-all-0000.ics"
    assert client.get(unknown, HTTP_IF_NONE_MATCH="*").status_code == 404


# --- the window: a year ahead, the recent past ----------------------------------------------------


def confirmed_at(start, **package_fields):
    """A session booked and accepted at `start` (a one-off window opened there first)."""
    package = make_package(**package_fields)
    coach = package.offering.coach
    session = package.sessions.order_by("number").first()
    minutes = package.duration_minutes
    AvailabilityWindowFactory(coach=coach, start=start, end=start + timedelta(minutes=minutes))
    services.session_book(session=session, start=start, actor=package.student)
    services.session_accept(session=session, actor=coach)
    session.refresh_from_db()
    return session


def uids(response) -> set[str]:
    assert response.status_code == 200
    return set(events_by_uid(icalendar.Calendar.from_ical(response.content)))


def uid(session) -> str:
    return f"session-{session.pk}@coachbook"


def test_feed_publishes_a_year_ahead_and_not_beyond(client, frozen):
    coach = CoachFactory()
    soon = confirmed_at(FROZEN + timedelta(days=3), coach=coach)
    eleven_months = confirmed_at(FROZEN + timedelta(days=335), coach=coach)
    thirteen_months = confirmed_at(FROZEN + timedelta(days=395), coach=coach)

    shown = uids(client.get(feed_url(coach)))

    assert shown == {uid(soon), uid(eleven_months)}
    assert uid(thirteen_months) not in uids(client.get(feed_url(thirteen_months.student)))
    # The window moves with the days: a month later the far session is in.
    frozen.shift(timedelta(days=31))
    assert uid(thirteen_months) in uids(client.get(feed_url(coach)))


def test_feed_keeps_the_recent_past_only(client, frozen):
    coach = CoachFactory()
    frozen.move_to(FROZEN - timedelta(days=120))
    old = confirmed_at(FROZEN - timedelta(days=95), coach=coach)
    recent = confirmed_at(FROZEN - timedelta(days=60), coach=coach)
    unmarked = confirmed_at(FROZEN - timedelta(days=30), coach=coach)
    frozen.move_to(FROZEN - timedelta(days=40))
    completed = services.sessions_complete_past()  # old and recent; `unmarked` was still ahead
    frozen.move_to(FROZEN)

    shown = uids(client.get(feed_url(coach)))

    old.refresh_from_db()
    unmarked.refresh_from_db()
    assert (completed, old.status, unmarked.status) == (2, "COMPLETED", "CONFIRMED")
    assert shown == {uid(recent), uid(unmarked)}  # old ended 95 days ago: out


def test_a_confirmed_session_past_its_time_stays_until_the_window_drops_it(client, frozen):
    coach = CoachFactory()
    frozen.move_to(FROZEN - timedelta(days=10))
    session = confirmed_at(FROZEN - timedelta(days=5), coach=coach)
    frozen.move_to(FROZEN)  # no completion sweep ran: still confirmed, its time passed

    assert uids(client.get(feed_url(coach))) == {uid(session)}
    frozen.shift(timedelta(days=86))
    assert uids(client.get(feed_url(coach))) == set()


# --- the version: 304s in two queries, every change seen -------------------------------------


def test_a_poll_with_the_etag_is_a_304_in_exactly_two_queries(
    client, frozen, monkeypatch, django_assert_num_queries
):
    coach = CoachFactory()
    for day in range(5):
        confirmed_at(FROZEN + timedelta(days=3 + day), coach=coach)
    first = client.get(feed_url(coach))
    cache.clear()  # a 304 needs no body: neither built nor read from the cache

    def must_not_fetch(**kwargs):
        raise AssertionError("a 304 fetched the feed's body")

    monkeypatch.setattr(feeds, "feed_document", must_not_fetch)

    with django_assert_num_queries(2):  # the token's user, the version
        response = client.get(feed_url(coach), HTTP_IF_NONE_MATCH=first["ETag"])
    with django_assert_num_queries(2):
        by_date = client.get(feed_url(coach), HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])

    assert (response.status_code, response.content) == (304, b"")
    assert response["ETag"] == first["ETag"]
    assert by_date.status_code == 304


def test_a_second_fetch_is_served_from_the_cache_without_building(
    client, frozen, monkeypatch, django_assert_num_queries
):
    session = make_session("CONFIRMED")
    first = client.get(feed_url(session.coach))

    def must_not_build(**kwargs):
        raise AssertionError("the feed was built again")

    monkeypatch.setattr(feeds, "feed_body", must_not_build)
    with django_assert_num_queries(2):  # the token's user, the version: no sessions query
        again = client.get(feed_url(session.coach))

    assert again.status_code == 200
    assert (again.content, again["ETag"]) == (first.content, first["ETag"])


def test_a_lost_cache_builds_the_same_bytes_again(client, frozen, django_assert_num_queries):
    session = make_session("CONFIRMED")
    first = client.get(feed_url(session.coach))
    cache.clear()

    with django_assert_num_queries(3):
        again = client.get(feed_url(session.coach))

    assert (again.content, again["ETag"]) == (first.content, first["ETag"])


def test_a_cancellation_gets_a_200_with_a_new_etag_and_the_new_content(client, frozen):
    session = make_session("CONFIRMED")
    first = client.get(feed_url(session.student))
    frozen.shift(timedelta(minutes=3))
    services.session_cancel(session=session, actor=session.coach, refund="none")

    response = client.get(feed_url(session.student), HTTP_IF_NONE_MATCH=first["ETag"])

    assert response.status_code == 200
    assert response["ETag"] != first["ETag"]
    [event] = icalendar.Calendar.from_ical(response.content).walk("VEVENT")
    assert (str(event["STATUS"]), int(event["SEQUENCE"])) == ("CANCELLED", 1)
    assert parse_http_date(response["Last-Modified"]) == int(FROZEN.timestamp()) + 180
    unconditional = client.get(feed_url(session.student))
    assert b"STATUS:CANCELLED" in unconditional.content  # not the cached confirmed feed


def test_a_sweep_stamping_an_older_time_still_changes_the_etag(client, frozen):
    """A sweep writes `updated_at` = the `now` it started with, which can be older than another
    session's latest change: the version must not rest on the latest stamp alone."""
    coach = CoachFactory()
    frozen.move_to(FROZEN - timedelta(days=2))
    past = confirmed_at(FROZEN - timedelta(days=1), coach=coach)
    frozen.move_to(FROZEN)
    later = make_session("CONFIRMED", coach=coach)  # stamped FROZEN, the latest change
    first = client.get(feed_url(coach))

    swept = services.sessions_complete_past(now=FROZEN - timedelta(minutes=5))
    response = client.get(feed_url(coach), HTTP_IF_NONE_MATCH=first["ETag"])

    past.refresh_from_db()
    assert swept == 1
    assert past.updated_at < later.updated_at
    assert response.status_code == 200
    assert response["ETag"] != first["ETag"]
    event = events_by_uid(icalendar.Calendar.from_ical(response.content))[uid(past)]
    assert event["LAST-MODIFIED"].dt == FROZEN - timedelta(minutes=5)


def test_if_modified_since_hears_of_the_window_moving_once_a_day(client, frozen):
    session = make_session("CONFIRMED")
    first = client.get(feed_url(session.coach))
    frozen.shift(timedelta(days=1))

    response = client.get(feed_url(session.coach), HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])

    assert response.status_code == 200
    next_midnight = datetime(2025, 3, 4, tzinfo=UTC)
    assert parse_http_date(response["Last-Modified"]) == int(next_midnight.timestamp())
    assert (
        client.get(
            feed_url(session.coach), HTTP_IF_MODIFIED_SINCE=response["Last-Modified"]
        ).status_code
        == 304
    )


def test_an_unknown_token_is_404_even_with_a_cached_feed(client, frozen):
    session = make_session("CONFIRMED")
    etag = client.get(feed_url(session.coach))["ETag"]

    unknown = "/calendar/feed/not-a-real-token-at-all-0000.ics"
    assert client.get(unknown).status_code == 404
    assert client.get(unknown, HTTP_IF_NONE_MATCH=etag).status_code == 404


# --- the writer: icalendar's bytes, RFC 5545 lines ------------------------------------------------

AWKWARD_NAMES = [
    "Zoë Ünïcödé-Ålesund 李小龍 🎻",
    'Backslash \\ Semi; Comma, Colon: Quote"',
    "A" * 60 + "é" * 30 + "\\" * 3 + ";,",
    "Ab,",
]


def _reference_body(user, sessions) -> bytes:
    """The feed as icalendar builds it from `session_vevent`, the invitations' builder."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", ical.PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", f"Coachbook: {user.name}")
    calendar.add("x-wr-caldesc", "Your Coachbook sessions. Keep this address secret.")
    calendar.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")
    for session in sessions:
        fields = feeds.feed_event_fields(session, user)
        created, last_modified = fields.pop("created"), fields.pop("last_modified")
        event = ical.session_vevent(**fields)
        event.add("last-modified", last_modified.astimezone(UTC))
        event.add("created", created.astimezone(UTC))
        calendar.add_component(event)
    return calendar.to_ical()


def test_the_feed_writer_gives_icalendars_bytes_for_awkward_names(frozen):
    coach = CoachFactory(display_name="Carla, the; Coach \\ " + "ñ" * 50)
    for index, name in enumerate(AWKWARD_NAMES):
        session = confirmed_at(
            FROZEN + timedelta(days=3 + index),
            coach=coach,
            student=StudentFactory(display_name=name[:120]),
            title=f"Title {index}: {name}"[:120],
        )
    make_session("RESCHEDULING", coach=coach)
    services.session_cancel(session=session, actor=coach, refund="none")
    sessions = feeds.feed_sessions(user=coach)
    assert {s.status for s in sessions} == {"CONFIRMED", "RESCHEDULING", "CANCELED"}

    body = feeds.feed_body(user=coach, sessions=sessions)

    assert body == _reference_body(coach, sessions)
    parsed = icalendar.Calendar.from_ical(body)
    by_uid = events_by_uid(parsed)
    for session in sessions:
        event, fields = by_uid[uid(session)], feeds.feed_event_fields(session, coach)
        assert str(event["SUMMARY"]) == fields["summary"]
        assert str(event["DESCRIPTION"]) == fields["description"]
        assert (event["DTSTART"].dt, event["DTEND"].dt) == (session.start, session.end)
        assert int(event["SEQUENCE"]) == session.sequence
    assert str(parsed["X-WR-CALNAME"]) == f"Coachbook: {coach.name}"


def test_feed_lines_are_folded_crlf_lines_of_at_most_75_octets():
    text = "Zoë 🎻 \\;, " * 40
    body = ical.ics_lines(["BEGIN:VEVENT", f"DESCRIPTION:{ical.ics_text(text)}", "END:VEVENT"])

    assert body.endswith(b"\r\n")
    physical = body[:-2].split(b"\r\n")
    assert all(len(line) <= 75 for line in physical)
    assert all(line.startswith(b" ") for line in physical[2:-1])
    for line in physical:
        line.decode("utf-8")  # never a character cut in two
    wrapped = b"BEGIN:VCALENDAR\r\n" + body + b"END:VCALENDAR\r\n"
    [event] = icalendar.Calendar.from_ical(wrapped).walk("VEVENT")
    assert str(event["DESCRIPTION"]) == text


def test_ics_text_escapes_and_drops_control_characters():
    assert ical.ics_text("a\\b;c,d\r\ne\nf\rg\x00h\x07\ti") == "a\\\\b\\;c\\,d\\ne\\nf\\ngh\ti"
