"""The week grid of the pair scheduling page: zones, rules shading, busy, DST weeks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from server.models import User
from server.models.enums import BusyKind
from server.providers.base import BusyInterval
from server.services.availability import Participant, Rules, find_slots
from server.services.availability.query import (
    AvailabilityAnswer,
    ParticipantState,
    UserBusy,
    UserUnknown,
)
from server.services.availability.week import (
    Band,
    CellState,
    Row,
    WeekView,
    build_week,
    monday_of,
    step_for,
    week_window,
)

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)


def _user(name: str, zone: str) -> User:
    return User(id=uuid.uuid4(), email=f"{name.lower()}@example.org", name=name, time_zone=zone)


def _answer(
    people: Sequence[tuple[User, list[tuple[datetime, datetime]] | None]],
    rules: Rules,
    monday: date,
    zone: str,
    *,
    duration: int = 30,
    now: datetime = LONG_AGO,
) -> AvailabilityAnswer:
    """What ``find_availability`` answers, built from the engine without a database."""
    start, end = week_window(monday, zone)
    participants = [
        Participant(
            user.id,
            user.name,
            user.time_zone,
            None if busy is None else [BusyInterval(s, e, BusyKind.BUSY) for s, e in busy],
        )
        for user, busy in people
    ]
    result = find_slots(
        participants,
        rules,
        start=start,
        end=end,
        duration=timedelta(minutes=duration),
        step=timedelta(minutes=step_for(duration)),
        now=now,
    )
    states = [
        ParticipantState(user, False, "not_connected", None)
        if busy is None
        else ParticipantState(user, False, "connected", now)
        for user, busy in people
    ]
    blocks = [
        UserBusy(user.id, s, e, BusyKind.BUSY) for user, busy in people for s, e in (busy or [])
    ]
    return AvailabilityAnswer(states, blocks, result, rules)


def _cell(week: WeekView, day: int, clock: str) -> tuple[CellState, str, str]:
    row = next(r for r in week.rows if r.time == clock)
    cell = row.cells[day]
    return cell.state, cell.detail, cell.label


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


ANA = _user("Ana", PARIS)
MAYA = _user("Maya", NEW_YORK)
NOV_11 = date(2024, 11, 11)  # a Monday, no clock change in either zone that week


def _ana_week(
    answer: AvailabilityAnswer,
    *,
    first_day: date = NOV_11,
    duration: int = 30,
    now: datetime = LONG_AGO,
) -> WeekView:
    """The grid as Ana sees it from Paris, the viewer most of these tests take."""
    return build_week(
        answer,
        viewer_id=ANA.id,
        viewer_zone=PARIS,
        first_day=first_day,
        duration_minutes=duration,
        now=now,
    )


def test_monday_of_and_step() -> None:
    assert monday_of(date(2024, 11, 17)) == NOV_11
    assert monday_of(NOV_11) == NOV_11
    assert step_for(15) == 15
    assert [step_for(m) for m in (30, 45, 60, 90)] == [30, 30, 30, 30]


def test_viewer_week_with_partner_in_another_zone() -> None:
    # Maya is busy Tue 10:00-11:00 in New York, which is 16:00-17:00 in Paris.
    maya_busy = [(_utc("2024-11-12T15:00"), _utc("2024-11-12T16:00"))]
    answer = _answer([(ANA, []), (MAYA, maya_busy)], Rules(), NOV_11, PARIS)
    week = _ana_week(answer)

    assert [d.heading for d in week.days] == [
        "Mon 11 Nov",
        "Tue 12 Nov",
        "Wed 13 Nov",
        "Thu 14 Nov",
        "Fri 15 Nov",
        "Sat 16 Nov",
        "Sun 17 Nov",
    ]
    assert week.heading == "Week of Monday 11 November 2024"
    # Rows run through Ana's own meeting hours; Maya's limits are shaded inside them.
    assert (week.rows[0].time, week.rows[-1].time) == ("08:00", "19:30")
    state, detail, _ = _cell(week, 1, "10:00")  # 04:00 in New York
    assert (state, detail) == (CellState.OUTSIDE_RULES, "for Maya")
    state, detail, label = _cell(week, 1, "15:00")
    assert state == CellState.FREE_SLOT
    assert label == "Book Tue 12 Nov 15:00-15:30"
    cell = next(r for r in week.rows if r.time == "15:00").cells[1]
    assert cell.book_start == "2024-11-12T14:00:00Z"
    for clock in ("16:00", "16:30"):
        state, detail, _ = _cell(week, 1, clock)
        assert (state, detail) == (CellState.UNAVAILABLE, "Maya is busy")
    assert _cell(week, 1, "17:00")[0] == CellState.FREE_SLOT
    assert week.slot_count == len(answer.result.slots)
    booked = {c.book_start for r in week.rows for c in r.cells if c.state == CellState.FREE_SLOT}
    assert len(booked) == len(answer.result.slots)


def test_same_answer_seen_from_the_partner_zone() -> None:
    ana_busy = [(_utc("2024-11-12T14:00"), _utc("2024-11-12T14:30"))]  # 15:00 Paris, 09:00 NY
    answer = _answer([(ANA, ana_busy), (MAYA, [])], Rules(), NOV_11, NEW_YORK)
    week = build_week(
        answer,
        viewer_id=MAYA.id,
        viewer_zone=NEW_YORK,
        first_day=NOV_11,
        duration_minutes=30,
        now=LONG_AGO,
    )
    # Maya's own hours, in New York time; Ana's Paris evening ends at 14:00 here.
    assert (week.rows[0].time, week.rows[-1].time) == ("08:00", "19:30")
    assert _cell(week, 1, "09:00")[:2] == (CellState.UNAVAILABLE, "Ana is busy")
    state, _detail, label = _cell(week, 1, "09:30")
    assert (state, label) == (CellState.FREE_SLOT, "Book Tue 12 Nov 09:30-10:00")
    assert _cell(week, 1, "14:00")[:2] == (CellState.OUTSIDE_RULES, "for Ana")
    assert _cell(week, 5, "09:00")[:2] == (CellState.OUTSIDE_RULES, "for you and Ana")


def test_administrator_outside_the_pair_sees_every_hour_anyone_may_meet() -> None:
    admin = _user("Root", "UTC")
    lou = _user("Lou", "Asia/Tokyo")  # 08:00-20:00 Tokyo is 23:00-11:00 UTC
    answer = _answer([(ANA, []), (lou, [])], Rules(), NOV_11, "UTC")
    week = build_week(
        answer,
        viewer_id=admin.id,
        viewer_zone="UTC",
        first_day=NOV_11,
        duration_minutes=30,
        now=LONG_AGO,
    )
    assert not any(p.is_viewer for p in week.people)
    # Ana 07:00-19:00 UTC, Lou 23:00-11:00 UTC: only 19:00-23:00 UTC is nobody's.
    times = [r.time for r in week.rows]
    assert (times[0], times[-1]) == ("00:00", "23:30")
    assert _cell(week, 1, "20:00")[:2] == (CellState.OUTSIDE_RULES, "for Ana and Lou")
    assert _cell(week, 1, "08:00")[0] == CellState.FREE_SLOT


def test_viewer_busy_is_named_you() -> None:
    ana_busy = [(_utc("2024-11-13T14:00"), _utc("2024-11-13T15:00"))]
    maya_busy = [(_utc("2024-11-13T14:30"), _utc("2024-11-13T15:00"))]
    answer = _answer([(ANA, ana_busy), (MAYA, maya_busy)], Rules(), NOV_11, PARIS)
    week = _ana_week(answer)
    assert _cell(week, 2, "15:00")[:2] == (CellState.UNAVAILABLE, "you are busy")
    assert _cell(week, 2, "15:30")[:2] == (CellState.UNAVAILABLE, "you and Maya are busy")


@pytest.mark.parametrize("weekends", [False, True])
def test_weekend_shading_follows_the_rule(weekends: bool) -> None:
    answer = _answer([(ANA, []), (MAYA, [])], Rules(allow_weekends=weekends), NOV_11, PARIS)
    week = _ana_week(answer)
    saturday = [row.cells[5].state for row in week.rows]
    sunday_detail = _cell(week, 6, "15:00")[1]
    if weekends:
        assert _cell(week, 5, "15:00")[0] == CellState.FREE_SLOT
    else:
        assert set(saturday) == {CellState.OUTSIDE_RULES}
        assert sunday_detail == "for you and Maya"
    assert _cell(week, 4, "15:00")[0] == CellState.FREE_SLOT  # Friday either way


def test_unknown_partner_is_never_painted_busy_and_slots_stay_bookable() -> None:
    answer = _answer([(ANA, []), (MAYA, None)], Rules(), NOV_11, PARIS)
    week = _ana_week(answer)
    maya = next(p for p in week.people if not p.is_viewer)
    assert (maya.known, maya.calendar_status) == (False, "not_connected")
    states = {c.state for r in week.rows for c in r.cells}
    assert CellState.UNAVAILABLE not in states
    assert _cell(week, 0, "15:00")[0] == CellState.FREE_SLOT


def test_long_meetings_that_do_not_fit_and_past_cells() -> None:
    maya_busy = [(_utc("2024-11-12T15:00"), _utc("2024-11-12T16:00"))]  # 16:00-17:00 Paris
    now = _utc("2024-11-12T13:10")  # Tue 14:10 in Paris
    answer = _answer([(ANA, []), (MAYA, maya_busy)], Rules(), NOV_11, PARIS, duration=60, now=now)
    week = _ana_week(answer, duration=60, now=now)
    assert _cell(week, 0, "15:00")[0] == CellState.PAST
    assert _cell(week, 1, "14:00")[0] == CellState.PAST  # started ten minutes ago
    assert _cell(week, 1, "14:30")[0] == CellState.FREE_SLOT
    assert _cell(week, 1, "15:00")[0] == CellState.FREE_SLOT  # ends as Maya's block starts
    assert _cell(week, 1, "15:30")[:2] == (
        CellState.NO_FIT,
        "a 60-minute meeting does not fit here",
    )
    assert _cell(week, 2, "19:30")[0] == CellState.NO_FIT  # would end after 20:00
    assert _cell(week, 2, "19:00")[2] == "Book Wed 13 Nov 19:00-20:00"


def test_minimum_notice_marks_cells_too_soon() -> None:
    now = _utc("2024-11-12T08:00")  # Tue 09:00 in Paris
    rules = Rules(minimum_notice_minutes=24 * 60)
    answer = _answer([(ANA, []), (MAYA, [])], rules, NOV_11, PARIS, now=now)
    week = _ana_week(answer, now=now)
    assert _cell(week, 1, "16:00")[:2] == (CellState.PAST, "more notice is needed")
    assert _cell(week, 2, "15:00")[0] == CellState.FREE_SLOT


def test_spring_forward_week_keeps_wall_clock_rows() -> None:
    monday = date(2024, 3, 25)  # Paris skips 02:00-03:00 on Sunday 31 March
    start, end = week_window(monday, PARIS)
    assert (start, end) == (_utc("2024-03-24T23:00"), _utc("2024-03-31T22:00"))
    rules = Rules(allow_weekends=True, earliest_hour=0, latest_hour=24)
    answer = _answer([(ANA, []), (_user("Lou", PARIS), [])], rules, monday, PARIS)
    week = _ana_week(answer, first_day=monday)
    assert len(week.rows) == 48
    assert _cell(week, 6, "02:00")[0] == CellState.SKIPPED
    assert _cell(week, 6, "02:30")[0] == CellState.SKIPPED
    assert _cell(week, 5, "02:00")[0] == CellState.FREE_SLOT  # Saturday is an ordinary day
    sat, sun = (next(r for r in week.rows if r.time == "10:00").cells[i] for i in (5, 6))
    assert sat.book_start == "2024-03-30T09:00:00Z"  # CET
    assert sun.book_start == "2024-03-31T08:00:00Z"  # CEST
    assert week.slot_count == 7 * 48 - 2  # every wall-clock half hour but Sunday 02:xx
    booked = [c for r in week.rows for c in r.cells if c.state == CellState.FREE_SLOT]
    assert len(booked) == week.slot_count


def test_fall_back_week_cell_covers_both_occurrences_of_the_repeated_hour() -> None:
    monday = date(2024, 10, 21)  # Paris repeats 02:00-03:00 on Sunday 27 October
    rules = Rules(allow_weekends=True, earliest_hour=0, latest_hour=24)
    # Busy during the second 02:00-02:30 only (01:00-01:30 UTC, after the change).
    ana_busy = [(_utc("2024-10-27T01:00"), _utc("2024-10-27T01:30"))]
    answer = _answer([(ANA, ana_busy), (_user("Lou", PARIS), [])], rules, monday, PARIS)
    week = _ana_week(answer, first_day=monday)
    assert _cell(week, 6, "02:00")[:2] == (CellState.UNAVAILABLE, "you are busy")
    assert _cell(week, 6, "02:30")[0] == CellState.FREE_SLOT
    assert _cell(week, 5, "02:00")[0] == CellState.FREE_SLOT


def test_view_starts_on_any_day_with_no_past_days() -> None:
    wednesday = date(2024, 11, 13)
    now = _utc("2024-11-13T14:10")  # 15:10 in Paris
    answer = _answer([(ANA, []), (MAYA, [])], Rules(), wednesday, PARIS, now=now)
    week = _ana_week(answer, first_day=wednesday, now=now)
    assert [d.heading for d in week.days][0::6] == ["Wed 13 Nov", "Tue 19 Nov"]
    assert week.days[0].is_today
    assert week.heading == "7 days from Wednesday 13 November 2024"
    assert (week.previous_start, week.next_start) == (date(2024, 11, 6), date(2024, 11, 20))
    assert _cell(week, 0, "15:00")[0] == CellState.PAST
    assert _cell(week, 1, "15:00")[0] == CellState.FREE_SLOT


def test_busy_cells_say_who_is_busy_me_partner_or_both() -> None:
    ana_busy = [(_utc("2024-11-12T15:00"), _utc("2024-11-12T16:00"))]  # 16:00-17:00 Paris
    maya_busy = [(_utc("2024-11-12T15:30"), _utc("2024-11-12T17:00"))]  # 16:30-18:00 Paris
    answer = _answer([(ANA, ana_busy), (MAYA, maya_busy)], Rules(), NOV_11, PARIS)
    week = _ana_week(answer)
    cells = {
        t: next(r for r in week.rows if r.time == t).cells[1] for t in ("16:00", "16:30", "17:00")
    }
    assert (cells["16:00"].busy, cells["16:00"].text, cells["16:00"].detail) == (
        "me",
        "You're busy",
        "you are busy",
    )
    assert (cells["16:30"].busy, cells["16:30"].text, cells["16:30"].detail) == (
        "both",
        "Both busy",
        "you and Maya are busy",
    )
    assert (cells["17:00"].busy, cells["17:00"].text, cells["17:00"].detail) == (
        "partner",
        "Maya busy",
        "Maya is busy",
    )
    assert cells["16:30"].label == "Tue 12 Nov 16:30: you and Maya are busy"


def test_partner_clock_beside_mine_and_closed_rows_fold_into_one_band() -> None:
    answer = _answer([(ANA, []), (MAYA, [])], Rules(allow_weekends=False), NOV_11, PARIS)
    week = _ana_week(answer)
    assert week.partner is not None and week.partner.name == "Maya"
    assert next(r for r in week.rows if r.time == "15:00").partner_time == "09:00"
    # 08:00-13:59 Paris is before 08:00 in New York every day: one band, not twelve rows.
    first = week.blocks[0]
    assert isinstance(first, Band)
    assert (first.first, first.until, first.rows) == ("08:00", "14:00", 12)
    assert first.text == "Outside meeting hours for Maya"
    shown = [b.time for b in week.blocks if isinstance(b, Row)]
    assert shown[0] == "14:00" and shown[-1] == "19:30"
    assert len(week.rows) == 24  # every row is still there for other readers


def test_no_partner_clock_when_everyone_shares_my_zone() -> None:
    lea = _user("Lea", PARIS)
    answer = _answer([(ANA, []), (lea, [])], Rules(), NOV_11, PARIS)
    week = _ana_week(answer)
    assert week.partner is None and {r.partner_time for r in week.rows} == {""}
    assert not any(isinstance(b, Band) for b in week.blocks)


@pytest.mark.parametrize(
    ("zone_name", "day", "skipped", "repeated"),
    [
        ("Europe/Paris", date(2026, 3, 29), 4, 0),  # 02:00-03:00 does not exist
        ("Europe/Paris", date(2026, 10, 25), 0, 4),  # 02:00-03:00 happens twice
        ("America/New_York", date(2026, 11, 1), 0, 4),
        ("Australia/Lord_Howe", date(2026, 4, 5), 0, 2),  # a half-hour change
        ("Australia/Lord_Howe", date(2026, 10, 4), 2, 0),
        ("Asia/Kolkata", date(2026, 3, 29), 0, 0),
    ],
)
def test_each_wall_time_maps_to_the_instants_that_show_it(
    zone_name: str, day: date, skipped: int, repeated: int
) -> None:
    """The grid's clock (offset stretches, in epoch microseconds) agrees with zoneinfo:
    every instant it gives shows that wall time, repeated times give two (earlier
    first), skipped ones none, and no instant that shows it is missed."""
    from zoneinfo import ZoneInfo

    import numpy as np

    from server.services.availability.grid import from_us, to_us
    from server.services.availability.week import _clock_of

    zone = ZoneInfo(zone_name)
    midnight = datetime.combine(day, datetime.min.time())
    walls = [midnight + timedelta(minutes=minute) for minute in range(0, 24 * 60, 15)]
    first, last, count = _clock_of(zone_name, day, day).instants(
        np.array([to_us(wall.replace(tzinfo=UTC)) for wall in walls], dtype=np.int64)
    )
    counts = {0: 0, 1: 0, 2: 0}
    for wall, early, late, found in zip(
        walls, first.tolist(), last.tolist(), count.tolist(), strict=True
    ):
        counts[found] += 1
        expected = sorted(
            {
                instant
                for fold in (0, 1)
                if (instant := wall.replace(tzinfo=zone, fold=fold).astimezone(UTC))
                .astimezone(zone)
                .replace(tzinfo=None)
                == wall
            }
        )
        got = [from_us(early), from_us(late)][:found]
        assert got == expected
        assert found != 1 or early == late
        for instant in got:
            assert instant.astimezone(zone).replace(tzinfo=None) == wall
    assert (counts[0], counts[2]) == (skipped, repeated)
    assert counts[1] == 96 - skipped - repeated


def _reference_instants(day: date, minute: int, zone_name: str) -> list[datetime]:
    """The instants at which ``zone_name``'s clock shows ``minute`` of ``day`` (zoneinfo)."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(zone_name)
    wall = datetime.combine(day, datetime.min.time()) + timedelta(minutes=minute)
    return sorted(
        {
            instant
            for fold in (0, 1)
            if (instant := wall.replace(tzinfo=zone, fold=fold).astimezone(UTC))
            .astimezone(zone)
            .replace(tzinfo=None)
            == wall
        }
    )


def _reference_cell(
    answer: AvailabilityAnswer, week: WeekView, day: date, minute: int, now: datetime
) -> tuple[object, ...]:
    """One cell by the grid's rules, straight from their definition: zoneinfo for the
    instants, a scan of every busy block and gap, the words built in place."""
    from bisect import bisect_right
    from zoneinfo import ZoneInfo

    from server.services.availability.grid import to_us
    from server.services.availability.reasons import names
    from server.services.availability.zones import allowed_spans

    zone, step = ZoneInfo(week.zone), timedelta(minutes=week.step_minutes)
    instants = _reference_instants(day, minute, week.zone)
    when = f"{day:%a} {day.day} {day:%b} {minute // 60:02d}:{minute % 60:02d}"

    def plain(state: CellState, text: str, detail: str, who: tuple[str, ...] = ()) -> tuple:
        return (state, text, detail, f"{when}: {text.lower()}, {detail}", None, None, who)

    def ordered(people: list) -> list:
        return sorted(people, key=lambda p: not p.is_viewer)

    def who(people: list) -> str:
        return names(p.called for p in ordered(people))

    if not instants:
        return plain(CellState.SKIPPED, "Clock change", "skipped by the clock change")
    if instants[0] < now:
        return plain(CellState.PAST, "Past", "in the past")
    if instants[0] < now + timedelta(minutes=answer.rules.minimum_notice_minutes):
        return plain(CellState.PAST, "Too soon", "more notice is needed")
    rules, first = answer.rules, week.first_day

    def inside(person_zone: str, start: datetime) -> bool:
        spans = allowed_spans(
            person_zone,
            rules.earliest_hour,
            rules.latest_hour,
            rules.allow_weekends,
            first - timedelta(days=2),
            first + timedelta(days=9),
        )
        index = bisect_right([lo for lo, _ in spans], to_us(start)) - 1
        return index >= 0 and to_us(start + step) <= spans[index][1]

    outside = [p for p in week.people if not all(inside(p.time_zone, s) for s in instants)]
    if outside:
        called = tuple(p.called for p in ordered(outside))
        return plain(
            CellState.OUTSIDE_RULES, "Outside meeting hours", f"for {who(outside)}", called
        )

    def overlapping(intervals: list[tuple[datetime, datetime]]) -> bool:
        return any(s < i + step and e > i for s, e in intervals for i in instants)

    busy = [
        p
        for p in week.people
        if p.known
        and overlapping(
            [(b.start, b.end) for b in answer.busy if b.user_id == p.user_id and b.end > b.start]
        )
    ]
    if busy:
        theirs = [p for p in busy if not p.is_viewer]
        viewer_busy = len(theirs) < len(busy)
        if (viewer_busy and theirs) or (
            not any(p.is_viewer for p in week.people) and len(theirs) > 1
        ):
            kind, text = "both", "Both busy"
        elif viewer_busy:
            kind, text = "me", "You're busy"
        else:
            kind, text = "partner", f"{theirs[0].name} busy"
        verb = "is" if len(busy) == 1 and not busy[0].is_viewer else "are"
        detail = f"{who(busy)} {verb} busy"
        called = tuple(p.called for p in ordered(busy))
        return (CellState.UNAVAILABLE, text, detail, f"{when}: {detail}", None, kind, called)
    unread = [
        p
        for p in week.people
        if p.known
        and overlapping([(g.start, g.end) for g in answer.unknown if g.user_id == p.user_id])
    ]
    if unread:
        return plain(CellState.UNKNOWN, "Unknown", f"calendar not read for {who(unread)}")
    for slot in answer.result.slots:
        local = slot.start.astimezone(zone)
        if (local.date(), local.hour * 60 + local.minute) == (day, minute):
            label = f"Book {when}-{slot.end.astimezone(zone):%H:%M}"
            book = slot.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return (CellState.FREE_SLOT, "Book", label, label, book, None, ())
    detail = f"a {week.duration_minutes}-minute meeting does not fit here"
    return plain(CellState.NO_FIT, "No room", detail)


LOU = _user("Lou", "Australia/Lord_Howe")  # half-hour DST changes, a day ahead of Paris
ROOT = _user("Root", "UTC")  # an administrator outside the pair


@pytest.mark.parametrize(
    ("viewer", "others", "zone", "first_day", "now", "rules", "duration", "shown"),
    [
        (ANA, [MAYA], PARIS, date(2024, 3, 28), LONG_AGO, Rules(True, 0, 24), 30, "skipped"),
        (ANA, [MAYA], PARIS, date(2024, 10, 24), LONG_AGO, Rules(True, 0, 24), 15, "both"),
        (
            MAYA,
            [ANA],
            NEW_YORK,
            date(2024, 10, 30),
            LONG_AGO,
            Rules(True, 0, 24, 0, 15),
            60,
            "no-fit",
        ),
        (
            ANA,
            [MAYA],
            PARIS,
            NOV_11,
            _utc("2024-11-12T13:10:07"),
            Rules(False, 8, 20, 90),
            45,
            "past",
        ),
        (
            LOU,
            [ANA],
            LOU.time_zone,
            date(2026, 4, 2),
            LONG_AGO,
            Rules(True, 1, 23),
            30,
            "outside-rules",
        ),
        (
            LOU,
            [MAYA],
            LOU.time_zone,
            date(2026, 10, 1),
            LONG_AGO,
            Rules(True, 0, 24),
            15,
            "skipped",
        ),
        (
            ROOT,
            [ANA, MAYA, LOU],
            "UTC",
            date(2024, 10, 24),
            LONG_AGO,
            Rules(True, 0, 24),
            90,
            "both",
        ),
    ],
)
def test_every_cell_matches_the_rules_read_one_cell_at_a_time(
    viewer: User,
    others: list[User],
    zone: str,
    first_day: date,
    now: datetime,
    rules: Rules,
    duration: int,
    shown: str,
) -> None:
    """The whole-week masks against a cell-by-cell reading of the same rules, on clock
    change weeks (Paris, New York, Lord Howe's half hour), a partner in another zone,
    busy and unread times of each person, notice, an administrator outside the pair."""
    people = [viewer, *others] if viewer is not ROOT else others
    start, _ = week_window(first_day, zone)

    def at(hours: float, minutes: int) -> tuple[datetime, datetime]:
        begin = start + timedelta(hours=hours)
        return begin, begin + timedelta(minutes=minutes)

    busy = {
        ANA.id: [at(h, m) for h, m in ((9, 60), (33.5, 90), (57, 25), (80, 0), (120.25, 200))],
        MAYA.id: [at(h, m) for h, m in ((9.5, 30), (34, 120), (58, 45), (101, 600), (150, 7))],
        LOU.id: [at(h, m) for h, m in ((2, 240), (33, 90), (75.5, 30), (122, 360))],
    }
    answer = _answer(
        [(user, sorted(busy[user.id])) for user in people],
        rules,
        first_day,
        zone,
        duration=duration,
        now=now,
    )
    gaps = [UserUnknown(MAYA.id, *at(130, 180), "x"), UserUnknown(LOU.id, *at(60, 0), "x")]
    answer = AvailabilityAnswer(answer.participants, answer.busy, answer.result, rules, [], gaps)
    week = build_week(
        answer,
        viewer_id=viewer.id,
        viewer_zone=zone,
        first_day=first_day,
        duration_minutes=duration,
        now=now,
    )
    seen: set[object] = set()
    for row in week.rows:
        minute = int(row.time[:2]) * 60 + int(row.time[3:])
        for day, cell in zip(week.days, row.cells, strict=True):
            expected = _reference_cell(answer, week, day.date, minute, now)
            assert tuple(cell) == expected, (day.date, row.time)
            seen.add(cell.busy or cell.state)
    assert {"free-slot", shown} <= seen
    if len(people) > 1 and rules.latest_hour == 24:
        assert {"me" if viewer is not ROOT else "partner", "partner", "both", "unknown"} <= seen
    assert week.partner is not None
    partner_zone = ZoneInfo(week.partner.time_zone)
    for row in week.rows:
        minute = int(row.time[:2]) * 60 + int(row.time[3:])
        clocks: list[str] = []
        for day in week.days:
            found = _reference_instants(day.date, minute, zone)
            clock = f"{found[0].astimezone(partner_zone):%H:%M}" if found else None
            if clock is not None and clock not in clocks:
                clocks.append(clock)
        assert row.partner_time == "/".join(clocks)
