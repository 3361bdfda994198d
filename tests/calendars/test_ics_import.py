"""Reading iCalendar files into busy times: real-world files, sloppy ones, and ones built to
cost too much (calendars.ics_import). No database, no network; the clock is an input."""

import resource
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from calendars import ics_import
from calendars.errors import CalendarFetchError
from calendars.ics_import import MAX_BUSY_TIMES, MAX_EVENTS, read_calendar
from calendars.windows_zones import iana_zone

FIXTURES = Path(__file__).parent / "fixtures" / "ics"
BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2027, 1, 4, tzinfo=UTC)
END = datetime(2027, 1, 25, tzinfo=UTC)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def read(data: bytes | str, *, tz=BERLIN, start=START, end=END):
    if isinstance(data, str):
        data = data.encode()
    return read_calendar(data, start=start, end=end, tz=tz)


def fixture(name: str):
    return read((FIXTURES / name).read_bytes())


def calendar(*events: str, extra: str = "") -> str:
    body = "".join(textwrap.dedent(event).strip() + "\n" for event in events)
    text = f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n{extra}{body}END:VCALENDAR\n"
    return text.replace("\n", "\r\n")


def event(uid: str, *lines: str) -> str:
    return "\n".join(["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20270101T000000Z", *lines]) + (
        "\nEND:VEVENT"
    )


# --- real-world files ---------------------------------------------------------------------------


def test_google_calendar_reads_its_series_exceptions_moves_and_all_day_events():
    read_ = fixture("google.ics")

    assert (read_.busy, read_.notes) == (
        [
            (utc(2027, 1, 4, 16, 30), utc(2027, 1, 4, 17)),  # daily, UNTIL in UTC
            (utc(2027, 1, 5, 16, 30), utc(2027, 1, 5, 17)),
            (utc(2027, 1, 5, 18), utc(2027, 1, 5, 19)),  # weekly Tuesday 10:00 PST
            (utc(2027, 1, 6, 16, 30), utc(2027, 1, 6, 17)),
            (utc(2027, 1, 7, 16), utc(2027, 1, 7, 17)),
            # 8 Jan: transparent all-day event; 12 Jan: EXDATE
            (utc(2027, 1, 14, 23), utc(2027, 1, 15, 23)),  # all-day, Berlin's day
            (utc(2027, 1, 19, 22), utc(2027, 1, 19, 23)),  # moved to 14:00 PST
            # 20 Jan: cancelled
        ],
        [],
    )


def test_outlook_display_name_time_zones_block_the_right_hours():
    read_ = fixture("outlook365.ics")

    assert (read_.busy, read_.notes) == (
        [
            (utc(2027, 1, 4, 14), utc(2027, 1, 4, 14, 30)),  # Mon/Wed 09:00 Eastern, to 20 Jan
            (utc(2027, 1, 6, 14), utc(2027, 1, 6, 14, 30)),
            (utc(2027, 1, 11, 14), utc(2027, 1, 11, 14, 30)),
            (utc(2027, 1, 12, 14), utc(2027, 1, 12, 15)),  # 09:00-10:00 Eastern (winter)
            (utc(2027, 1, 13, 14), utc(2027, 1, 13, 14, 30)),
            (utc(2027, 1, 14, 12), utc(2027, 1, 14, 13)),  # 13:00 "(UTC+01:00) Amsterdam, ..."
            (utc(2027, 1, 18, 14), utc(2027, 1, 18, 14, 30)),
            (utc(2027, 1, 20, 14), utc(2027, 1, 20, 14, 30)),
            # 15 Jan: free (TRANSPARENT)
        ],
        [],
    )


def test_exchange_owa_windows_time_zone_ids_are_read_as_their_iana_zones():
    read_ = fixture("exchange_owa.ics")

    assert (read_.busy, read_.notes) == (
        [
            (utc(2027, 1, 13, 8), utc(2027, 1, 13, 9)),  # W. Europe 09:00
            (utc(2027, 1, 14, 10), utc(2027, 1, 14, 11)),  # 2nd Thursday, monthly
            (utc(2027, 1, 19, 21), utc(2027, 1, 19, 21, 45)),  # Eastern 16:00
        ],
        [],
    )


def test_icloud_calendar_with_alarms_counted_series_and_all_day_event():
    read_ = fixture("icloud.ics")

    assert (read_.busy, read_.notes) == (
        [
            (utc(2027, 1, 18, 7), utc(2027, 1, 18, 7, 30)),
            (utc(2027, 1, 19, 7), utc(2027, 1, 19, 7, 30)),
            (utc(2027, 1, 20, 7), utc(2027, 1, 20, 7, 30)),
            (utc(2027, 1, 21, 23), utc(2027, 1, 22, 23)),
        ],
        [],
    )


def test_apple_calendar_with_floating_times_durations_and_folded_locations():
    read_ = fixture("apple.ics")

    assert (read_.busy, read_.notes) == (
        [
            (utc(2027, 1, 5, 14), utc(2027, 1, 5, 15, 30)),  # Paris 15:00 + PT1H30M
            (utc(2027, 1, 11, 9), utc(2027, 1, 11, 10)),  # floating 10:00: the coach's zone
            (utc(2027, 1, 21, 13), utc(2027, 1, 21, 14)),  # New York 08:00
        ],
        [],
    )


def test_thunderbird_mozilla_style_tzids_and_biweekly_rule():
    read_ = fixture("thunderbird.ics")

    assert (read_.busy, read_.notes) == (
        [
            (utc(2027, 1, 7, 9), utc(2027, 1, 7, 10)),
            (utc(2027, 1, 8, 11), utc(2027, 1, 8, 12)),
            (utc(2027, 1, 22, 11), utc(2027, 1, 22, 12)),
        ],
        [],
    )


def test_zimbra_gmt_display_names_with_slashes_map_to_iana_zones():
    read_ = fixture("zimbra.ics")

    assert (read_.busy, read_.notes) == (
        [
            (utc(2027, 1, 6, 14), utc(2027, 1, 6, 15)),
            (utc(2027, 1, 21, 14), utc(2027, 1, 21, 15)),
        ],
        [],
    )


def test_free_busy_periods_count_as_busy_except_free_ones():
    read_ = fixture("freebusy.ics")

    assert (read_.busy, read_.notes) == (
        [
            (utc(2027, 1, 5, 9), utc(2027, 1, 5, 10)),
            (utc(2027, 1, 6, 9), utc(2027, 1, 6, 9, 30)),  # start/duration
            (utc(2027, 1, 7, 13), utc(2027, 1, 7, 14)),  # BUSY-TENTATIVE
            (utc(2027, 1, 8, 8), utc(2027, 1, 8, 16)),  # BUSY-UNAVAILABLE
            (utc(2027, 1, 11, 10), utc(2027, 1, 11, 11)),  # no FBTYPE: BUSY
        ],
        [],
    )


# --- sloppy repeat rules ------------------------------------------------------------------------


def test_a_sloppy_rule_is_repaired_and_an_unreadable_one_keeps_its_first_time_with_a_note():
    read_ = fixture("sloppy_rrule.ics")

    standup = [
        (utc(2027, 1, day, 8, 30), utc(2027, 1, day, 8, 45)) for day in (4, 5, 6, 11, 12, 13)
    ]
    review = [(utc(2027, 1, day, 15), utc(2027, 1, day, 16)) for day in (8, 15)]
    sync = [(utc(2027, 1, 5, 13), utc(2027, 1, 5, 14))]
    assert read_.busy == sorted(standup + review + sync)
    assert read_.notes == [
        "“Weekly team sync”: its repeat rule could not be read, so only its first time counts "
        "as busy."
    ]


# --- time zones ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tzid", "zone"),
    [
        ("Eastern Standard Time", "America/New_York"),
        ("(UTC-05:00) Eastern Time (US & Canada)", "America/New_York"),
        ("(GMT-05.00) Eastern Time (US & Canada)", "America/New_York"),
        ("(UTC-08:00) Pacific Time (US & Canada)", "America/Los_Angeles"),
        ("(UTC+01:00) Brussels, Copenhagen, Madrid, Paris", "Europe/Paris"),
        ("(UTC) Dublin, Edinburgh, Lisbon, London", "Europe/London"),
        ("(UTC+00:00) Dublin, Edinburgh, Lisbon, London", "Europe/London"),
        ("(UTC+05:30) Chennai, Kolkata, Mumbai, New Delhi", "Asia/Calcutta"),
        ("(UTC+10:00) Canberra, Melbourne, Sydney", "Australia/Sydney"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("/mozilla.org/20050126_1/America/Chicago", "America/Chicago"),
        ("Europe/Vienna", "Europe/Vienna"),
        ("Somewhere/Nowhere", None),
    ],
)
def test_windows_and_display_name_tzids_map_to_iana_zones(tzid, zone):
    assert iana_zone(tzid) == zone


def test_a_display_name_tzid_wins_over_a_wrong_vtimezone_of_that_name():
    # A VTIMEZONE that never switches to summer time: New York in July is UTC-4, not UTC-5.
    vtimezone = (
        "BEGIN:VTIMEZONE\nTZID:(UTC-05:00) Eastern Time (US & Canada)\nBEGIN:STANDARD\n"
        "DTSTART:16010101T000000\nTZOFFSETFROM:-0500\nTZOFFSETTO:-0500\nEND:STANDARD\n"
        "END:VTIMEZONE\n"
    )
    data = calendar(
        event(
            "summer",
            'DTSTART;TZID="(UTC-05:00) Eastern Time (US & Canada)":20270706T090000',
            'DTEND;TZID="(UTC-05:00) Eastern Time (US & Canada)":20270706T100000',
        ),
        extra=vtimezone,
    )

    read_ = read(data, start=utc(2027, 7, 1), end=utc(2027, 7, 31))

    assert (read_.busy, read_.notes) == ([(utc(2027, 7, 6, 13), utc(2027, 7, 6, 14))], [])


def test_an_unknown_tzid_without_a_vtimezone_falls_back_to_the_coachs_zone_with_a_note():
    data = calendar(event("x", "DTSTART;TZID=Mars Standard Time:20270106T090000", "DURATION:PT1H"))

    read_ = read(data)

    assert read_.busy == [(utc(2027, 1, 6, 8), utc(2027, 1, 6, 9))]
    assert read_.notes == [
        "Times in the time zone “Mars Standard Time”, which Coachbook does not know, were read "
        "in your own time zone (Europe/Berlin)."
    ]


def test_an_unknown_tzid_with_its_own_vtimezone_is_read_in_that_zone_without_a_note():
    vtimezone = (
        "BEGIN:VTIMEZONE\nTZID:Custom Zone\nBEGIN:STANDARD\nDTSTART:19700101T000000\n"
        "TZOFFSETFROM:+0300\nTZOFFSETTO:+0300\nEND:STANDARD\nEND:VTIMEZONE\n"
    )
    data = calendar(
        event("x", "DTSTART;TZID=Custom Zone:20270106T090000", "DURATION:PT1H"),
        extra=vtimezone,
    )

    assert (read(data).busy, read(data).notes) == (
        [(utc(2027, 1, 6, 6), utc(2027, 1, 6, 7))],
        [],
    )


# --- bounded reading ----------------------------------------------------------------------------

LONG_WINDOW = dict(start=utc(2026, 10, 20, 12), end=utc(2026, 10, 20, 12) + timedelta(days=732))


def _exploding() -> bytes:
    data = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:boom\r\n"
        "DTSTAMP:20261001T000000Z\r\nDTSTART:20261020T130000Z\r\nDTEND:20261020T130001Z\r\n"
        "RRULE:FREQ=SECONDLY;COUNT=1000000000\r\nSUMMARY:Tick\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    return data.encode()


def test_the_exploding_rule_is_refused_quickly_and_memory_stays_flat():
    data = _exploding()
    assert len(data) < 250
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.monotonic()

    with pytest.raises(CalendarFetchError, match=f"more than {MAX_BUSY_TIMES:,} events") as err:
        read(data, tz=ZoneInfo("UTC"), **LONG_WINDOW)

    assert time.monotonic() - began < 2
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 50  # MB
    assert "“Tick” alone repeats" in str(err.value)
    assert "Its previous busy times still count." in str(err.value)


def test_the_exploding_rule_in_a_fresh_process_under_a_memory_limit():
    # ru_maxrss of this process is a high-water mark others may have raised: measure afresh.
    script = textwrap.dedent(
        f"""
        import resource, time, sys
        resource.setrlimit(resource.RLIMIT_AS, (1024 * 2**20, 1024 * 2**20))
        from datetime import datetime, timedelta, UTC
        from zoneinfo import ZoneInfo
        from calendars.ics_import import read_calendar
        from calendars.errors import CalendarFetchError
        data = {_exploding()!r}
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        began = time.monotonic()
        start = datetime(2026, 10, 20, 12, tzinfo=UTC)
        for rule in ("FREQ=SECONDLY;COUNT=1000000000", "FREQ=SECONDLY", "FREQ=MINUTELY"):
            try:
                read_calendar(data.replace(b"FREQ=SECONDLY;COUNT=1000000000", rule.encode()),
                              start=start, end=start + timedelta(days=732), tz=ZoneInfo("UTC"))
                sys.exit("read whole: " + rule)
            except CalendarFetchError:
                pass
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(time.monotonic() - began, grown)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    seconds, megabytes = map(float, done.stdout.split())
    assert (seconds < 2, megabytes < 50) == (True, True), (seconds, megabytes)


def test_a_rule_running_since_long_ago_costs_what_the_window_costs():
    # Every 5 minutes since 2000, 15 minutes a day in the window: expanded from the window only.
    data = calendar(
        event(
            "old",
            "DTSTART:20000101T000000Z",
            "DTEND:20000101T000100Z",
            "RRULE:FREQ=MINUTELY;INTERVAL=5",
            "SUMMARY:Ping",
        )
    )
    began = time.monotonic()

    with pytest.raises(CalendarFetchError, match="“Ping” alone repeats"):
        read(data, tz=ZoneInfo("UTC"))

    assert time.monotonic() - began < 2


def test_a_hundred_minutely_rules_are_refused_in_bounded_time():
    data = calendar(
        *(
            event(
                f"m{i}",
                f"DTSTART:20261020T13{i % 60:02d}00Z",
                f"DTEND:20261020T13{i % 60:02d}30Z",
                "RRULE:FREQ=MINUTELY",
            )
            for i in range(100)
        )
    )
    began = time.monotonic()

    with pytest.raises(CalendarFetchError, match=f"more than {MAX_BUSY_TIMES:,} events"):
        read(data, tz=ZoneInfo("UTC"), **LONG_WINDOW)

    assert time.monotonic() - began < 10


def test_22k_events_in_the_window_are_refused_before_parsing():
    first = utc(2026, 10, 21)
    data = calendar(
        *(
            event(
                f"p{i}",
                f"DTSTART:{first + timedelta(minutes=30 * i):%Y%m%dT%H%M%SZ}",
                "DTEND:" + f"{first + timedelta(minutes=30 * i + 15):%Y%m%dT%H%M%SZ}",
            )
            for i in range(22_000)
        )
    )
    began = time.monotonic()

    with pytest.raises(CalendarFetchError, match=f"more than {MAX_EVENTS:,} events") as err:
        read(data, tz=ZoneInfo("UTC"), **LONG_WINDOW)

    assert time.monotonic() - began < 10
    assert "Its previous busy times still count." in str(err.value)


def test_22k_past_events_cost_a_line_scan_and_the_ones_in_the_window_still_count():
    first = utc(2020, 1, 1)
    past = [
        event(
            f"p{i}",
            f"DTSTART:{first + timedelta(hours=2 * i):%Y%m%dT%H%M%SZ}",
            "DURATION:PT1H"
            if i % 2
            else f"DTEND:{first + timedelta(hours=2 * i + 1):%Y%m%dT%H%M%SZ}",
        )
        for i in range(22_000)
    ]
    now = event("now", "DTSTART:20270105T100000Z", "DTEND:20270105T110000Z")
    began = time.monotonic()

    read_ = read(calendar(*past, now))

    assert time.monotonic() - began < 10
    assert read_.busy == [(utc(2027, 1, 5, 10), utc(2027, 1, 5, 11))]


def test_50k_exdate_lines_are_refused_in_bounded_time():
    first = utc(2026, 10, 21, 13)
    exdates = [f"EXDATE:{first + timedelta(days=i):%Y%m%dT%H%M%SZ}" for i in range(50_000)]
    data = calendar(
        event(
            "e", "DTSTART:20261020T130000Z", "DTEND:20261020T140000Z", "RRULE:FREQ=DAILY", *exdates
        )
    )
    began = time.monotonic()

    with pytest.raises(CalendarFetchError, match="skipped dates of its repeat rule"):
        read(data, tz=ZoneInfo("UTC"), **LONG_WINDOW)

    assert time.monotonic() - began < 10


def test_reading_stops_at_the_cpu_deadline(monkeypatch):
    monkeypatch.setattr(ics_import, "READ_CPU_SECONDS", 0.0)
    data = calendar(
        event(
            "d",
            "DTSTART:20270104T090000Z",
            "DTEND:20270104T091500Z",
            "RRULE:FREQ=HOURLY;COUNT=1000",
        )
    )

    with pytest.raises(CalendarFetchError, match="takes too long to read"):
        read(data)


def test_a_rule_that_needs_too_many_steps_is_refused(monkeypatch):
    monkeypatch.setattr(ics_import, "MAX_RULE_STEPS", 100)
    # Monthly rules are expanded from their start: some 440 months since 1990.
    data = calendar(
        event(
            "s",
            "DTSTART:19900101T090000Z",
            "DTEND:19900101T091500Z",
            "RRULE:FREQ=MONTHLY;BYMONTHDAY=1",
            "SUMMARY:Old monthly",
        )
    )

    with pytest.raises(CalendarFetchError, match="“Old monthly” repeats so often"):
        read(data)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",  # never: dateutil would search to the year 9999
        "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;INTERVAL=7;BYDAY=WE",  # every 7th day is always a Monday
        "FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=31",
    ],
)
def test_a_rule_that_never_matches_costs_no_more_than_the_window(rule):
    data = calendar(
        event("n", "DTSTART:20270104T090000Z", "DTEND:20270104T100000Z", f"RRULE:{rule}")
    )
    began = time.thread_time()

    read_ = read(data, **LONG_WINDOW)

    assert time.thread_time() - began < 1
    assert (read_.busy, read_.notes) == ([(utc(2027, 1, 4, 9), utc(2027, 1, 4, 10))], [])


def test_a_weekly_rule_since_long_ago_is_read_from_the_window():
    data = calendar(
        event(
            "w",
            "DTSTART;TZID=Europe/Berlin:19800107T090000",
            "DTEND;TZID=Europe/Berlin:19800107T100000",
            "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH",
        )
    )

    # 1980-01-07 was a Monday; 2027-01-04 is 2452 weeks later (an even number).
    assert read(data).busy == [
        (utc(2027, 1, day, 8), utc(2027, 1, day, 9)) for day in (4, 7, 18, 21)
    ]


def test_an_rrule_dateutil_cannot_expand_keeps_its_first_time_with_a_note():
    data = calendar(
        event(
            "b",
            "DTSTART:20270105T090000Z",
            "DTEND:20270105T100000Z",
            "RRULE:FREQ=SECONDLY;BYSECOND=61",
            "SUMMARY:Odd",
        )
    )

    read_ = read(data)

    assert read_.busy == [(utc(2027, 1, 5, 9), utc(2027, 1, 5, 10))]
    assert read_.notes == [
        "“Odd”: its repeat rule could not be read, so only its first time counts as busy."
    ]


def test_moved_occurrences_count_by_their_old_and_new_times_and_old_ones_are_dropped_unread():
    master = event(
        "s",
        "DTSTART:20261103T090000Z",
        "DTEND:20261103T100000Z",
        "RRULE:FREQ=WEEKLY",
        "SUMMARY:Weekly",
    )
    into_the_past = event(  # 5 Jan moved out of the window: 5 Jan is free
        "s", "RECURRENCE-ID:20270105T090000Z", "DTSTART:20261201T120000Z", "DURATION:PT1H"
    )
    into_the_window = event(  # 10 Nov (long past) moved to 14 Jan
        "s", "RECURRENCE-ID:20261110T090000Z", "DTSTART:20270114T120000Z", "DURATION:PT1H"
    )
    in_the_past = event(
        "s", "RECURRENCE-ID:20261117T090000Z", "DTSTART:20261118T120000Z", "DURATION:PT1H"
    )

    assert (
        ics_import._prefilter(calendar(in_the_past).encode(), start=START, end=END).count(
            "BEGIN:VEVENT"
        )
        == 0
    )
    read_ = read(calendar(master, into_the_past, into_the_window, in_the_past))

    assert read_.busy == [
        (utc(2027, 1, 12, 9), utc(2027, 1, 12, 10)),
        (utc(2027, 1, 14, 12), utc(2027, 1, 14, 13)),
        (utc(2027, 1, 19, 9), utc(2027, 1, 19, 10)),
    ]


def test_a_file_with_too_many_lines_for_the_window_is_refused_before_parsing(monkeypatch):
    monkeypatch.setattr(ics_import, "MAX_LINES", 100)
    data = calendar(
        *(
            event(f"e{i}", f"DTSTART:202701{5 + i % 10:02d}T090000Z", "DURATION:PT1H")
            for i in range(30)
        )
    )

    with pytest.raises(CalendarFetchError, match="more than 100 lines") as err:
        read(data)

    assert "Its previous busy times still count." in str(err.value)
