"""iCalendar -> busy intervals: one example per rule, a property test, and the privacy canary."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.providers.base import BusyInterval, BusyKind
from server.providers.ical_busy import busy_from_icalendar, busy_from_vfreebusy, merge_intervals

BUSY, TENTATIVE, OOF, ALL_DAY = (
    BusyKind.BUSY,
    BusyKind.TENTATIVE,
    BusyKind.OUT_OF_OFFICE,
    BusyKind.ALL_DAY,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def vcal(*components: str) -> str:
    body = "".join(component.strip() + "\n" for component in components)
    return f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n{body}END:VCALENDAR\n"


def vevent(uid: str, *lines: str) -> str:
    props = "\n".join(lines)
    return f"BEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20260101T000000Z\n{props}\nEND:VEVENT"


def busy(
    *documents: str | bytes,
    start: datetime = utc(2026, 1, 1),
    end: datetime = utc(2027, 1, 1),
    zone: str = "UTC",
) -> list[BusyInterval]:
    return busy_from_icalendar(documents, start, end, zone)


def test_weekly_event_keeps_new_york_wall_time_across_both_dst_changes() -> None:
    doc = vcal(
        vevent(
            "weekly",
            "DTSTART;TZID=America/New_York:20260302T090000",
            "DTEND;TZID=America/New_York:20260302T100000",
            "RRULE:FREQ=WEEKLY;UNTIL=20261110T000000Z",
        )
    )
    result = busy(doc)
    starts = {i.start for i in result}
    assert utc(2026, 3, 2, 14) in starts  # EST, before 2026-03-08
    assert utc(2026, 3, 9, 13) in starts  # EDT, after
    assert utc(2026, 10, 26, 13) in starts  # EDT, before 2026-11-01
    assert utc(2026, 11, 2, 14) in starts  # EST again
    assert all(i.end - i.start == timedelta(hours=1) for i in result)
    assert len(result) == 37  # every Monday from 2026-03-02 to 2026-11-09


def test_exdate_removes_one_instance() -> None:
    doc = vcal(
        vevent(
            "ex",
            "DTSTART;TZID=Europe/Berlin:20260302T090000",
            "DTEND;TZID=Europe/Berlin:20260302T100000",
            "RRULE:FREQ=DAILY;COUNT=3",
            "EXDATE;TZID=Europe/Berlin:20260303T090000",
        )
    )
    assert busy(doc) == [
        BusyInterval(utc(2026, 3, 2, 8), utc(2026, 3, 2, 9), BUSY),
        BusyInterval(utc(2026, 3, 4, 8), utc(2026, 3, 4, 9), BUSY),
    ]


def test_recurrence_id_override_moves_one_instance_and_another_cancels_one() -> None:
    doc = vcal(
        vevent(
            "series",
            "DTSTART:20260302T090000Z",
            "DTEND:20260302T100000Z",
            "RRULE:FREQ=DAILY;COUNT=4",
        ),
        vevent(
            "series",
            "RECURRENCE-ID:20260303T090000Z",
            "DTSTART:20260303T150000Z",
            "DTEND:20260303T163000Z",
        ),
        vevent(
            "series",
            "RECURRENCE-ID:20260304T090000Z",
            "DTSTART:20260304T090000Z",
            "DTEND:20260304T100000Z",
            "STATUS:CANCELLED",
        ),
    )
    assert busy(doc) == [
        BusyInterval(utc(2026, 3, 2, 9), utc(2026, 3, 2, 10), BUSY),
        BusyInterval(utc(2026, 3, 3, 15), utc(2026, 3, 3, 16, 30), BUSY),
        BusyInterval(utc(2026, 3, 5, 9), utc(2026, 3, 5, 10), BUSY),
    ]


def test_all_day_event_covers_the_users_own_day() -> None:
    doc = vcal(vevent("day", "DTSTART;VALUE=DATE:20260310", "DTEND;VALUE=DATE:20260311"))
    assert busy(doc, zone="Asia/Tokyo") == [
        BusyInterval(utc(2026, 3, 9, 15), utc(2026, 3, 10, 15), ALL_DAY)
    ]


def test_multi_day_all_day_end_is_exclusive_and_missing_end_means_one_day() -> None:
    three = vcal(vevent("trip", "DTSTART;VALUE=DATE:20260310", "DTEND;VALUE=DATE:20260313"))
    one = vcal(vevent("one", "DTSTART;VALUE=DATE:20260401"))
    result = busy(three, one, zone="America/Los_Angeles")
    assert result == [
        BusyInterval(utc(2026, 3, 10, 7), utc(2026, 3, 13, 7), ALL_DAY),
        BusyInterval(utc(2026, 4, 1, 7), utc(2026, 4, 2, 7), ALL_DAY),
    ]


def test_floating_time_is_read_in_the_users_zone() -> None:
    doc = vcal(vevent("float", "DTSTART:20260305T120000", "DTEND:20260305T130000"))
    assert busy(doc, zone="Asia/Tokyo") == [
        BusyInterval(utc(2026, 3, 5, 3), utc(2026, 3, 5, 4), BUSY)
    ]


def test_duration_instead_of_dtend() -> None:
    doc = vcal(vevent("dur", "DTSTART:20260307T120000Z", "DURATION:PT90M"))
    assert busy(doc) == [BusyInterval(utc(2026, 3, 7, 12), utc(2026, 3, 7, 13, 30), BUSY)]


def test_datetime_without_end_has_zero_length_and_blocks_nothing() -> None:
    doc = vcal(vevent("point", "DTSTART:20260307T120000Z"))
    assert busy(doc) == []


def test_events_crossing_the_window_edges_are_clipped() -> None:
    doc = vcal(
        vevent("early", "DTSTART:20260310T070000Z", "DTEND:20260310T100000Z"),
        vevent("late", "DTSTART:20260310T170000Z", "DTEND:20260311T020000Z"),
        vevent("outside", "DTSTART:20260311T030000Z", "DTEND:20260311T040000Z"),
    )
    result = busy(doc, start=utc(2026, 3, 10, 9), end=utc(2026, 3, 10, 18))
    assert result == [
        BusyInterval(utc(2026, 3, 10, 9), utc(2026, 3, 10, 10), BUSY),
        BusyInterval(utc(2026, 3, 10, 17), utc(2026, 3, 10, 18), BUSY),
    ]


def test_an_event_ending_exactly_at_the_window_start_is_not_busy() -> None:
    doc = vcal(vevent("before", "DTSTART:20260310T080000Z", "DTEND:20260310T090000Z"))
    assert busy(doc, start=utc(2026, 3, 10, 9), end=utc(2026, 3, 10, 18)) == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("TRANSP:TRANSPARENT", None),
        ("STATUS:CANCELLED", None),
        ("STATUS:TENTATIVE", TENTATIVE),
        ("STATUS:CONFIRMED", BUSY),
        ("TRANSP:OPAQUE", BUSY),
        ("X-MICROSOFT-CDO-BUSYSTATUS:OOF", OOF),
        ("X-MICROSOFT-CDO-INTENDEDSTATUS:OOF", OOF),
        ("X-MICROSOFT-CDO-BUSYSTATUS:FREE", None),
        ("X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE", TENTATIVE),
        ("X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE", None),  # free on every provider
    ],
)
def test_status_transparency_and_busy_status_decide_the_kind(
    extra: str, expected: BusyKind | None
) -> None:
    doc = vcal(vevent("x", "DTSTART:20260310T090000Z", "DTEND:20260310T100000Z", extra))
    result = busy(doc)
    if expected is None:
        assert result == []
    else:
        assert result == [BusyInterval(utc(2026, 3, 10, 9), utc(2026, 3, 10, 10), expected)]


def test_busy_status_wins_over_intended_status() -> None:
    doc = vcal(
        vevent(
            "both",
            "DTSTART:20260310T090000Z",
            "DTEND:20260310T100000Z",
            "X-MICROSOFT-CDO-BUSYSTATUS:BUSY",
            "X-MICROSOFT-CDO-INTENDEDSTATUS:OOF",
        )
    )
    assert [i.kind for i in busy(doc)] == [BUSY]


def test_all_day_out_of_office_keeps_the_specific_kind() -> None:
    doc = vcal(vevent("vacation", "DTSTART;VALUE=DATE:20260310", "X-MICROSOFT-CDO-BUSYSTATUS:OOF"))
    assert [i.kind for i in busy(doc)] == [OOF]


def test_todos_and_journals_are_ignored() -> None:
    doc = vcal(
        "BEGIN:VTODO\nUID:t\nDTSTAMP:20260101T000000Z\nDTSTART:20260310T090000Z\n"
        "DUE:20260310T100000Z\nEND:VTODO",
        "BEGIN:VJOURNAL\nUID:j\nDTSTAMP:20260101T000000Z\nDTSTART:20260310T090000Z\nEND:VJOURNAL",
    )
    assert busy(doc) == []


def test_output_is_utc_sorted_and_merged_per_kind() -> None:
    doc = vcal(
        vevent("b", "DTSTART;TZID=Europe/Paris:20260310T110000", "DTEND:20260310T120000Z"),
        vevent("a", "DTSTART:20260310T090000Z", "DTEND:20260310T103000Z"),
        vevent("c", "DTSTART:20260310T120000Z", "DTEND:20260310T130000Z"),  # touches b
        vevent("t", "DTSTART:20260310T093000Z", "DTEND:20260310T110000Z", "STATUS:TENTATIVE"),
    )
    result = busy(doc)
    assert result == [
        BusyInterval(utc(2026, 3, 10, 9), utc(2026, 3, 10, 13), BUSY),
        BusyInterval(utc(2026, 3, 10, 9, 30), utc(2026, 3, 10, 11), TENTATIVE),
    ]
    assert all(i.start.tzinfo == UTC and i.end.tzinfo == UTC for i in result)


def test_bytes_input_and_an_unparsable_document_do_not_hide_the_others() -> None:
    good = vcal(vevent("ok", "DTSTART:20260310T090000Z", "DTEND:20260310T100000Z"))
    result = busy(good.encode(), "BEGIN:VCALENDAR\nthis is not ical")
    assert result == [BusyInterval(utc(2026, 3, 10, 9), utc(2026, 3, 10, 10), BUSY)]


def test_naive_window_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        busy_from_icalendar([], datetime(2026, 1, 1), datetime(2026, 1, 2), "UTC")


def test_merge_intervals_keeps_kinds_apart_and_joins_touching() -> None:
    merged = merge_intervals(
        [
            BusyInterval(utc(2026, 1, 1, 10), utc(2026, 1, 1, 11), BUSY),
            BusyInterval(utc(2026, 1, 1, 9), utc(2026, 1, 1, 10), BUSY),
            BusyInterval(utc(2026, 1, 1, 9), utc(2026, 1, 1, 12), OOF),
            BusyInterval(utc(2026, 1, 1, 9, 30), utc(2026, 1, 1, 9, 45), BUSY),
        ]
    )
    assert merged == [
        BusyInterval(utc(2026, 1, 1, 9), utc(2026, 1, 1, 11), BUSY),
        BusyInterval(utc(2026, 1, 1, 9), utc(2026, 1, 1, 12), OOF),
    ]


# -- VFREEBUSY fallback -------------------------------------------------------------------

SINGLE_VFREEBUSY = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VFREEBUSY\r
DTSTART:20300107T000000Z\r
DTEND:20300108T000000Z\r
FREEBUSY:20300107T090000Z/20300107T100000Z,20300107T110000Z/PT30M\r
FREEBUSY;FBTYPE=BUSY-TENTATIVE:20300107T120000Z/20300107T13000\r
 0Z\r
FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20300107T200000Z/20300108T020000Z\r
FREEBUSY;FBTYPE=FREE:20300107T140000Z/20300107T150000Z\r
END:VFREEBUSY\r
END:VCALENDAR\r
"""

PER_OCCURRENCE_VFREEBUSY = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VFREEBUSY
UID:1
DTSTAMP:20300101T000000Z
DTSTART:20300107T090000Z
DTEND:20300107T100000Z
END:VFREEBUSY
BEGIN:VFREEBUSY
UID:2
DTSTAMP:20300101T000000Z
DTSTART:20300107T120000Z
DTEND:20300107T130000Z
FBTYPE:BUSY-TENTATIVE
END:VFREEBUSY
BEGIN:VFREEBUSY
UID:3
DTSTAMP:20300101T000000Z
DTSTART:20300107T140000Z
DTEND:20300107T150000Z
FBTYPE:FREE
END:VFREEBUSY
END:VCALENDAR
"""


def test_vfreebusy_with_freebusy_lines_unfolded_typed_and_clipped() -> None:
    result = busy_from_vfreebusy(SINGLE_VFREEBUSY, utc(2030, 1, 7), utc(2030, 1, 8))
    assert result == [
        BusyInterval(utc(2030, 1, 7, 9), utc(2030, 1, 7, 10), BUSY),
        BusyInterval(utc(2030, 1, 7, 11), utc(2030, 1, 7, 11, 30), BUSY),
        BusyInterval(utc(2030, 1, 7, 12), utc(2030, 1, 7, 13), TENTATIVE),
        BusyInterval(utc(2030, 1, 7, 20), utc(2030, 1, 8), OOF),
    ]


def test_vfreebusy_one_component_per_occurrence() -> None:
    result = busy_from_vfreebusy(PER_OCCURRENCE_VFREEBUSY, utc(2030, 1, 7), utc(2030, 1, 8))
    assert result == [
        BusyInterval(utc(2030, 1, 7, 9), utc(2030, 1, 7, 10), BUSY),
        BusyInterval(utc(2030, 1, 7, 12), utc(2030, 1, 7, 13), TENTATIVE),
    ]


# -- property: simple events against an independent minute-by-minute computation --------

BASE = utc(2026, 6, 1)
_events = st.lists(
    st.tuples(st.integers(0, 2000), st.integers(0, 300), st.sampled_from(["", "TRANSPARENT"])),
    max_size=12,
)


def _stamp(minutes: int) -> str:
    return (BASE + timedelta(minutes=minutes)).strftime("%Y%m%dT%H%M%SZ")


@settings(max_examples=60, deadline=None)
@given(events=_events, window=st.tuples(st.integers(0, 1000), st.integers(1, 1200)))
def test_simple_events_match_a_minute_by_minute_computation(
    events: list[tuple[int, int, str]], window: tuple[int, int]
) -> None:
    window_start, window_length = window
    window_end = window_start + window_length
    components = [
        vevent(
            f"e{n}",
            f"DTSTART:{_stamp(begin)}",
            f"DTEND:{_stamp(begin + length)}",
            *([f"TRANSP:{transp}"] if transp else []),
        )
        for n, (begin, length, transp) in enumerate(events)
    ]
    result = busy_from_icalendar(
        [vcal(*components)],
        BASE + timedelta(minutes=window_start),
        BASE + timedelta(minutes=window_end),
        "Europe/Berlin",
    )
    expected = {
        minute
        for begin, length, transp in events
        if not transp
        for minute in range(max(begin, window_start), min(begin + length, window_end))
    }
    covered = {
        minute
        for interval in result
        for minute in range(
            int((interval.start - BASE).total_seconds() // 60),
            int((interval.end - BASE).total_seconds() // 60),
        )
    }
    assert covered == expected
    assert all(i.kind is BUSY for i in result)
    # merged: sorted, non-empty, neither overlapping nor touching
    assert all(i.start < i.end for i in result)
    assert all(a.end < b.start for a, b in itertools.pairwise(result))


# -- declined invitations ------------------------------------------------------------------


def test_an_invitation_the_user_declined_does_not_block() -> None:
    declined = vcal(
        vevent(
            "declined",
            "DTSTART:20260302T090000Z",
            "DTEND:20260302T100000Z",
            "ORGANIZER:mailto:boss@example.com",
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:boss@example.com",
            "ATTENDEE;PARTSTAT=DECLINED;CN=Me:MAILTO:Me@Example.com",
        )
    )
    accepted = vcal(
        vevent(
            "accepted",
            "DTSTART:20260302T110000Z",
            "DTEND:20260302T120000Z",
            "ATTENDEE;PARTSTAT=DECLINED:mailto:someone-else@example.com",
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:me@example.com",
        )
    )
    window = (utc(2026, 3, 2), utc(2026, 3, 3))
    mine = busy_from_icalendar([declined, accepted], *window, "UTC", ["mailto:me@example.com"])
    assert mine == [BusyInterval(utc(2026, 3, 2, 11), utc(2026, 3, 2, 12), BUSY)]
    # Without knowing the user's addresses nothing is skipped (no guessing).
    assert len(busy_from_icalendar([declined, accepted], *window, "UTC")) == 2


def test_declining_one_occurrence_frees_only_that_one() -> None:
    doc = vcal(
        vevent(
            "series",
            "DTSTART:20260302T090000Z",
            "DTEND:20260302T100000Z",
            "RRULE:FREQ=DAILY;COUNT=3",
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:me@example.com",
        ),
        vevent(
            "series",
            "RECURRENCE-ID:20260303T090000Z",
            "DTSTART:20260303T090000Z",
            "DTEND:20260303T100000Z",
            "ATTENDEE;PARTSTAT=DECLINED:mailto:me@example.com",
        ),
    )
    result = busy_from_icalendar(
        [doc], utc(2026, 3, 1), utc(2026, 3, 10), "UTC", ["me@example.com"]
    )
    assert [i.start for i in result] == [utc(2026, 3, 2, 9), utc(2026, 3, 4, 9)]


# -- privacy canary ----------------------------------------------------------------------

CANARY = "zq-canary-7f3a91"


def test_no_event_text_survives_in_the_result() -> None:
    doc = vcal(
        vevent(
            "secret",
            "DTSTART;TZID=America/New_York:20260302T090000",
            "DTEND;TZID=America/New_York:20260302T100000",
            "RRULE:FREQ=WEEKLY;COUNT=3",
            f"SUMMARY:{CANARY} summary",
            f"DESCRIPTION:{CANARY} description",
            f"LOCATION:{CANARY} room",
            f"ATTENDEE;CN={CANARY}:mailto:{CANARY}@example.com",
            f"ORGANIZER;CN={CANARY}:mailto:boss-{CANARY}@example.com",
            f"CATEGORIES:{CANARY}",
        )
    )
    result = busy(doc)
    assert len(result) == 3
    assert CANARY not in repr(result)
    assert CANARY not in str([vars(i) if hasattr(i, "__dict__") else i for i in result])
    assert all(set(i.__slots__) == {"start", "end", "kind"} for i in result)
