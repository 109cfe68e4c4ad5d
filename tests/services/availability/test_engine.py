"""The availability engine: one example per rule, then properties against a brute-force
per-minute oracle (``bench.oracle``) on random participants, zones and DST windows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.oracle import oracle_slots
from server.providers.base import BusyInterval, BusyKind
from server.services.availability import (
    AvailabilityResult,
    Mode,
    PackedBusy,
    Participant,
    Rules,
    find_slots,
)
from server.services.availability.grid import to_us
from server.services.availability.model import LazySlots, slot_standings, slot_times

HALF_HOUR = timedelta(minutes=30)
ALL_DAY = Rules(allow_weekends=True, earliest_hour=0, latest_hour=24)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def person(
    name: str,
    zone: str = "UTC",
    busy: list[tuple[datetime, datetime]] | None = None,
    *,
    optional: bool = False,
) -> Participant:
    intervals = None if busy is None else [BusyInterval(a, b) for a, b in busy]
    return Participant(uuid.uuid4(), name, zone, intervals, optional)


def search(
    participants: list[Participant],
    rules: Rules = ALL_DAY,
    start: datetime = utc(2026, 3, 2, 9),  # a Monday
    end: datetime = utc(2026, 3, 2, 12),
    **kwargs: object,
) -> AvailabilityResult:
    options: dict[str, object] = {
        "duration": HALF_HOUR,
        "step": HALF_HOUR,
        "now": utc(2026, 1, 1),
    }
    options.update(kwargs)
    return find_slots(participants, rules, start=start, end=end, **options)  # type: ignore[arg-type]


def starts(result: AvailabilityResult) -> list[datetime]:
    return [slot.start for slot in result.slots]


# --- candidate slots -----------------------------------------------------------------


def test_slots_tile_the_window_and_come_back_in_utc() -> None:
    ana, ben = person("Ana", busy=[]), person("Ben", busy=[])
    start = datetime(2026, 3, 2, 10, tzinfo=ZoneInfo("Europe/Berlin"))  # 09:00 UTC
    result = search([ana, ben], start=start, end=start + timedelta(hours=2))
    assert starts(result) == [utc(2026, 3, 2, 9) + k * HALF_HOUR for k in range(4)]
    assert all(slot.start.tzinfo is UTC for slot in result.slots)
    assert result.slots[0].end == utc(2026, 3, 2, 9, 30)
    assert result.slots[0].free == (ana.user_id, ben.user_id)
    assert result.slots[0].reason == "both free"
    assert result.empty_reason is None


def test_a_slot_must_fit_inside_the_window() -> None:
    result = search(
        [person("Ana", busy=[])], end=utc(2026, 3, 2, 10, 15), step=timedelta(minutes=15)
    )
    assert starts(result)[-1] == utc(2026, 3, 2, 9, 45)


def test_busy_blocks_overlap_half_open() -> None:
    ana = person("Ana", busy=[(utc(2026, 3, 2, 10), utc(2026, 3, 2, 10, 30))])
    result = search([ana, person("Ben", busy=[])])
    assert utc(2026, 3, 2, 10) not in starts(result)
    assert utc(2026, 3, 2, 9, 30) in starts(result)  # ends exactly when Ana gets busy
    assert utc(2026, 3, 2, 10, 30) in starts(result)  # starts exactly when she is free


def test_empty_busy_intervals_block_nothing() -> None:
    ana = person("Ana", busy=[(utc(2026, 3, 2, 10, 10), utc(2026, 3, 2, 10, 10))])
    assert utc(2026, 3, 2, 10) in starts(search([ana]))


def test_buffer_widens_busy_blocks_on_both_sides() -> None:
    ana = person("Ana", busy=[(utc(2026, 3, 2, 10), utc(2026, 3, 2, 10, 30))])
    rules = Rules(allow_weekends=True, earliest_hour=0, latest_hour=24, buffer_minutes=15)
    result = search([ana], rules)
    assert starts(result) == [utc(2026, 3, 2, 9), utc(2026, 3, 2, 11), utc(2026, 3, 2, 11, 30)]


def test_minimum_notice_skips_early_starts() -> None:
    rules = Rules(allow_weekends=True, earliest_hour=0, latest_hour=24, minimum_notice_minutes=60)
    result = search([person("Ana", busy=[])], rules, now=utc(2026, 3, 2, 9, 40))
    assert starts(result) == [utc(2026, 3, 2, 11), utc(2026, 3, 2, 11, 30)]


# --- rules on each participant's wall clock ---------------------------------------------


def test_weekends_are_off_by_default() -> None:
    friday, monday = utc(2026, 3, 6), utc(2026, 3, 9)
    rules = Rules(earliest_hour=0, latest_hour=24)
    result = search(
        [person("Ana", busy=[])], rules, start=friday, end=monday, step=timedelta(hours=6)
    )
    assert {slot.start.date() for slot in result.slots} == {friday.date()}
    allowed = search(
        [person("Ana", busy=[])], ALL_DAY, start=friday, end=monday, step=timedelta(hours=6)
    )
    assert len(allowed.slots) == 12


def test_hours_apply_in_each_participants_own_zone() -> None:
    london = person("Ana", "Europe/London", busy=[])
    new_york = person("Ben", "America/New_York", busy=[])
    result = search(
        [london, new_york],
        Rules(),
        start=utc(2026, 3, 2),
        end=utc(2026, 3, 3),
        step=timedelta(hours=1),
    )
    # 08:00 New York (EST) is 13:00 UTC; 20:00 London (GMT) is 20:00 UTC.
    assert starts(result) == [utc(2026, 3, 2, hour) for hour in range(13, 20)]


def test_a_slot_must_end_by_latest_hour_and_24_means_midnight() -> None:
    rules = Rules(earliest_hour=22, latest_hour=24, allow_weekends=True)
    result = search(
        [person("Ana", busy=[])], rules, start=utc(2026, 3, 2, 21), end=utc(2026, 3, 3, 2)
    )
    assert starts(result) == [utc(2026, 3, 2, 22) + k * HALF_HOUR for k in range(4)]
    crossing = search(
        [person("Ana", busy=[])],
        rules,
        start=utc(2026, 3, 2, 23, 30),
        end=utc(2026, 3, 3, 1),
        duration=timedelta(hours=1),
    )
    assert crossing.slots == []


def test_spring_forward_day_has_23_hours() -> None:
    ana = person("Ana", "America/New_York", busy=[])
    day_start = datetime(2026, 3, 8, tzinfo=ZoneInfo("America/New_York"))
    result = search(
        [ana],
        ALL_DAY,
        start=day_start,
        end=day_start + timedelta(hours=30),
        step=timedelta(hours=1),
        duration=timedelta(hours=1),
    )
    on_the_day = [
        s for s in result.slots if s.start.astimezone(ZoneInfo("America/New_York")).day == 8
    ]
    assert len(on_the_day) == 23


def test_fall_back_day_has_25_hours_and_the_fold_counts_once_per_instant() -> None:
    ana = person("Ana", "Europe/London", busy=[])
    day_start = utc(2026, 10, 24, 23)  # midnight in London (BST)
    result = search(
        [ana],
        ALL_DAY,
        start=day_start,
        end=day_start + timedelta(hours=30),
        step=timedelta(hours=1),
        duration=timedelta(hours=1),
    )
    on_the_day = [
        s for s in result.slots if s.start.astimezone(ZoneInfo("Europe/London")).day == 25
    ]
    assert len(on_the_day) == 25


def test_earliest_hour_inside_a_spring_forward_gap() -> None:
    # 02:00 does not exist in New York on 2026-03-08; the first allowed time is 03:00 EDT.
    ana = person("Ana", "America/New_York", busy=[])
    rules = Rules(allow_weekends=True, earliest_hour=2, latest_hour=4)
    result = search([ana], rules, start=utc(2026, 3, 8, 5), end=utc(2026, 3, 8, 10))
    assert starts(result) == [utc(2026, 3, 8, 7), utc(2026, 3, 8, 7, 30)]


def test_lord_howe_half_hour_dst() -> None:
    # Lord Howe moves from +11 to +10:30 at 02:00 local on 2026-04-05 (15:00 UTC on the 4th).
    ana = person("Ana", "Australia/Lord_Howe", busy=[])
    rules = Rules(allow_weekends=True, earliest_hour=1, latest_hour=3)
    result = search([ana], rules, start=utc(2026, 4, 4, 13), end=utc(2026, 4, 4, 18))
    # 01:00 +11 is 14:00 UTC; 03:00 +10:30 is 16:30 UTC: two and a half hours of wall clock.
    assert starts(result) == [utc(2026, 4, 4, 14) + k * HALF_HOUR for k in range(5)]


# --- who is free, busy, unknown -----------------------------------------------------------


def test_no_calendar_means_unknown_never_free() -> None:
    ana, kim = person("Ana", busy=[]), person("Kim", busy=None)
    slot = search([ana, kim]).slots[0]
    assert (slot.free, slot.busy, slot.unknown) == ((ana.user_id,), (), (kim.user_id,))
    assert slot.reason == "1 of 2 free: Kim has no calendar connected"


def test_times_a_calendar_was_not_read_are_unknown_never_free() -> None:
    ana = Participant(
        uuid.uuid4(), "Ana", "UTC", [], unknown=[(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11))]
    )
    kim, ben = person("Kim", busy=None), person("Ben", busy=[])
    slots = {slot.start: slot for slot in search([kim, ana, ben]).slots}
    assert slots[utc(2026, 3, 2, 9, 30)].free == (ana.user_id, ben.user_id)
    inside = slots[utc(2026, 3, 2, 10, 30)]
    assert (inside.free, inside.busy, inside.unknown) == (
        (ben.user_id,),
        (),
        (kim.user_id, ana.user_id),
    )
    assert inside.reason == (
        "1 of 3 free: Kim has no calendar connected; "
        "Ana is unknown (calendar not read for this time)"
    )
    assert slots[utc(2026, 3, 2, 11)].free == (ana.user_id, ben.user_id)


def test_busy_wins_over_unknown_and_unknown_widens_by_the_buffer() -> None:
    ana = Participant(
        uuid.uuid4(),
        "Ana",
        "UTC",
        [BusyInterval(utc(2026, 3, 2, 10), utc(2026, 3, 2, 10, 30))],
        optional=True,
        unknown=[(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11))],
    )
    rules = Rules(allow_weekends=True, earliest_hour=0, latest_hour=24, buffer_minutes=15)
    slots = {slot.start: slot for slot in search([person("Org", busy=[]), ana], rules).slots}
    assert slots[utc(2026, 3, 2, 10)].busy == (ana.user_id,)
    assert slots[utc(2026, 3, 2, 10, 30)].busy == (ana.user_id,)  # busy, widened, wins
    assert slots[utc(2026, 3, 2, 11)].unknown == (ana.user_id,)  # within the buffer
    assert slots[utc(2026, 3, 2, 11, 30)].free[-1] == ana.user_id


def test_optional_busy_does_not_block_but_is_listed_busy() -> None:
    ana = person("Ana", busy=[])
    sam = person("Sam", busy=[(utc(2026, 3, 2, 9), utc(2026, 3, 2, 12))], optional=True)
    result = search([ana, sam])
    assert len(result.slots) == 6
    assert result.slots[0].busy == (sam.user_id,)
    assert result.slots[0].reason == "1 of 2 free: Sam is busy"


def test_optional_outside_their_hours_counts_as_busy() -> None:
    ana = person("Ana", "Europe/London", busy=[])
    lee = person("Lee", "Asia/Tokyo", busy=[], optional=True)  # 18:00-21:00 in Tokyo
    result = search([ana, lee], Rules(), start=utc(2026, 3, 2, 9), end=utc(2026, 3, 2, 12))
    assert [s.busy for s in result.slots] == [()] * 4 + [(lee.user_id,)] * 2
    assert result.slots[-1].reason == "1 of 2 free: Lee is outside their allowed hours"


def test_a_required_busy_person_blocks() -> None:
    ana = person("Ana", busy=[(utc(2026, 3, 2, 9), utc(2026, 3, 2, 11))])
    result = search([ana, person("Ben", busy=[])])
    assert starts(result) == [utc(2026, 3, 2, 11), utc(2026, 3, 2, 11, 30)]


def test_group_mode_ranks_by_number_free_then_time_and_limit_truncates() -> None:
    required = person("Org", busy=[])
    people = [
        person("Sam", busy=[(utc(2026, 3, 2, 9), utc(2026, 3, 2, 10))], optional=True),
        person("Kim", busy=[(utc(2026, 3, 2, 9), utc(2026, 3, 2, 11))], optional=True),
        person("Lee", busy=[(utc(2026, 3, 2, 11, 30), utc(2026, 3, 2, 12))], optional=True),
    ]
    result = search([required, *people], mode=Mode.GROUP, limit=3)
    assert starts(result) == [utc(2026, 3, 2, 11), utc(2026, 3, 2, 10), utc(2026, 3, 2, 10, 30)]
    assert result.slots[0].reason == "all 4 free"
    assert result.slots[1].reason == "3 of 4 free: Kim is busy"
    pair = search([required, *people], mode=Mode.PAIR, minimum_free=3)
    assert starts(pair) == [
        utc(2026, 3, 2, 10),
        utc(2026, 3, 2, 10, 30),
        utc(2026, 3, 2, 11),
        utc(2026, 3, 2, 11, 30),
    ]


def test_reasons_shorten_long_lists_of_names() -> None:
    org = person("Org", busy=[])
    blocked = [(utc(2026, 3, 2, 9), utc(2026, 3, 2, 12))]
    others = [person(f"P{i}", busy=blocked, optional=True) for i in range(5)]
    slot = search([org, *others], mode=Mode.GROUP).slots[0]
    assert slot.reason == "1 of 6 free: P0, P1, P2 and 2 others are busy"


# --- why nothing fits ---------------------------------------------------------------------


def test_empty_window_shorter_than_the_meeting() -> None:
    result = search([person("Ana", busy=[])], end=utc(2026, 3, 2, 9, 20))
    assert result.slots == []
    assert result.empty_reason is not None
    assert "shorter than the meeting" in result.empty_reason


def test_empty_window_in_the_past() -> None:
    result = search([person("Ana", busy=[])], now=utc(2026, 3, 3))
    assert result.empty_reason == "The window is in the past: choose a later window."


def test_empty_only_weekend_days() -> None:
    result = search([person("Ana", busy=[])], Rules(), start=utc(2026, 3, 7), end=utc(2026, 3, 9))
    assert result.empty_reason is not None
    assert result.empty_reason.startswith("Weekends are off")


def test_empty_hours_never_overlap_names_who() -> None:
    ana = person("Ana", "Asia/Tokyo", busy=[])
    ben = person("Ben", "America/New_York", busy=[])
    cy = person("Cy", "Asia/Shanghai", busy=[])
    rules = Rules(earliest_hour=9, latest_hour=17)  # 00-08 UTC in Tokyo, 14-22 in New York
    result = search([ana, cy, ben], rules, start=utc(2026, 3, 2), end=utc(2026, 3, 6))
    assert result.empty_reason == (
        "No time is inside everyone's allowed hours (09:00-17:00 local): Ana (Asia/Tokyo) "
        "and Ben (America/New_York) have no overlap. Widen the allowed hours, choose a "
        "longer window, or make someone optional."
    )


def test_empty_window_outside_someones_day() -> None:
    result = search(
        [person("Ana", "Asia/Tokyo", busy=[])],
        Rules(),
        start=utc(2026, 3, 2, 12),
        end=utc(2026, 3, 2, 20),
    )
    assert result.empty_reason is not None
    assert "of Ana (Asia/Tokyo)" in result.empty_reason


def test_empty_everyone_busy_names_who_blocks_most() -> None:
    ana = person("Ana", busy=[(utc(2026, 3, 2, 9), utc(2026, 3, 2, 11))])
    ben = person("Ben", busy=[(utc(2026, 3, 2, 10), utc(2026, 3, 2, 12))])
    result = search([ana, ben])
    assert result.empty_reason is not None
    assert "Ana at 4 of 6, Ben at 4 of 6" in result.empty_reason
    both = search([ben, person("Cy", busy=[(utc(2026, 3, 2, 9), utc(2026, 3, 2, 12))])])
    assert both.empty_reason is not None
    assert both.empty_reason.startswith("Cy is busy at every allowed time")


def test_empty_too_few_free() -> None:
    ana, kim = person("Ana", busy=[]), person("Kim", busy=None)
    result = search([ana, kim], minimum_free=2)
    assert result.empty_reason is not None
    assert result.empty_reason.startswith("No time has at least 2 of 2 free (at most 1 at once)")


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"start": datetime(2026, 3, 2, 9)}, "start must be an aware datetime"),
        ({"now": datetime(2026, 3, 2, 9)}, "now must be an aware datetime"),
        ({"end": utc(2026, 3, 2, 8)}, "must be after start"),
        ({"duration": timedelta(0)}, "duration must be positive"),
        ({"step": -HALF_HOUR}, "step must be positive"),
        ({"limit": 0}, "limit must be positive"),
        ({"minimum_free": -1}, "minimum_free must be >= 0"),
        ({"mode": "poll"}, "'poll' is not a valid Mode"),
        ({"end": utc(2028, 3, 2), "step": timedelta(minutes=5)}, "at most 110000 are searched"),
    ],
)
def test_invalid_calls_raise_clear_errors(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        search([person("Ana", busy=[])], **change)  # type: ignore[arg-type]


def test_invalid_participants_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus' for Ana"):
        search([person("Ana", "Mars/Olympus", busy=[])])
    with pytest.raises(ValueError, match="naive ones for Ana"):
        search([person("Ana", busy=[(datetime(2026, 3, 2, 9), datetime(2026, 3, 2, 10))])])
    ana = person("Ana", busy=[])
    with pytest.raises(ValueError, match="only once"):
        search([ana, ana])
    with pytest.raises(ValueError, match="at least one participant"):
        search([])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"earliest_hour": 20, "latest_hour": 8}, "must be before latest_hour"),
        ({"earliest_hour": 24}, "earliest_hour must be 0..23"),
        ({"latest_hour": 25}, "latest_hour must be 1..24"),
        ({"buffer_minutes": -5}, "buffer_minutes must be >= 0"),
        ({"minimum_notice_minutes": -1}, "minimum_notice_minutes must be >= 0"),
    ],
)
def test_invalid_rules_raise_clear_errors(fields: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rules(**fields)  # type: ignore[arg-type]


# --- properties against the brute-force oracle ------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
]
# US and EU DST changes, Lord Howe's, and an ordinary week.
DAYS = [
    utc(2026, 3, 8),
    utc(2026, 3, 29),
    utc(2026, 10, 25),
    utc(2026, 11, 1),
    utc(2026, 4, 5),
    utc(2026, 10, 4),
    utc(2026, 6, 10),
]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    day = draw(st.sampled_from(DAYS))
    start = day + timedelta(minutes=15 * draw(st.integers(-4 * 36, 4 * 12)))
    length = timedelta(minutes=15 * draw(st.integers(1, 4 * 36) | st.integers(4 * 12, 4 * 36)))
    pool = draw(st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True))
    people = []
    for index in range(draw(st.integers(1, 4))):
        busy: list[BusyInterval] | PackedBusy | None = None
        if draw(st.integers(0, 4)):
            plain: list[BusyInterval] = []
            for _ in range(draw(st.integers(0, 6))):
                lo = start + timedelta(
                    minutes=draw(st.integers(-240, int(length / timedelta(minutes=1)) + 240))
                )
                hi = lo + timedelta(minutes=draw(st.integers(-30, 300)))
                plain.append(BusyInterval(lo, hi, draw(st.sampled_from(list(BusyKind)))))
            busy = PackedBusy.from_intervals(plain) if draw(st.booleans()) else plain
        unread: list[tuple[datetime, datetime]] = []
        for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
            lo = start + timedelta(
                minutes=draw(st.integers(-240, int(length / timedelta(minutes=1)) + 240))
            )
            unread.append((lo, lo + timedelta(minutes=draw(st.integers(-30, 600)))))
        people.append(
            Participant(
                uuid.UUID(int=index + 1),
                f"P{index}",
                draw(st.sampled_from(pool)),
                busy,
                draw(st.booleans()),
                unread,
            )
        )
    # Biased towards wide hours so that most examples find slots to compare.
    earliest = draw(st.just(0) | st.integers(0, 23))
    rules = Rules(
        allow_weekends=draw(st.sampled_from([True, True, False])),
        earliest_hour=earliest,
        latest_hour=draw(st.just(24) | st.integers(earliest + 1, 24)),
        minimum_notice_minutes=draw(st.sampled_from([0, 0, 30, 90, 600])),
        buffer_minutes=draw(st.sampled_from([0, 0, 5, 15, 60])),
    )
    return {
        "participants": people,
        "rules": rules,
        "start": start,
        "end": start + length,
        "duration": timedelta(minutes=draw(st.sampled_from([15, 30, 45, 60, 90, 150]))),
        "step": timedelta(minutes=draw(st.sampled_from([15, 30, 60, 25]))),
        "now": start + timedelta(minutes=draw(st.integers(-600, 0) | st.integers(-600, 600))),
        "mode": draw(st.sampled_from(list(Mode))),
        "minimum_free": draw(st.sampled_from([0, 0, 0, 1, 2, 3])),
        "limit": draw(st.none() | st.integers(1, 6)),
    }


def _as_tuples(slots: list) -> list[tuple[object, ...]]:  # type: ignore[type-arg]
    return [(s.start, s.end, s.free, s.busy, s.unknown) for s in slots]


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_matches_the_per_minute_oracle(scenario: dict[str, object]) -> None:
    result = find_slots(**scenario)  # type: ignore[arg-type]
    expected = oracle_slots(**scenario)  # type: ignore[arg-type]
    assert _as_tuples(result.slots) == _as_tuples(expected)
    assert (result.empty_reason is None) == bool(result.slots)


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_each_slot_lists_every_participant_exactly_once(scenario: dict[str, object]) -> None:
    result = find_slots(**scenario)  # type: ignore[arg-type]
    people = [p.user_id for p in scenario["participants"]]  # type: ignore[attr-defined]
    for slot in result.slots:
        listed = [*slot.free, *slot.busy, *slot.unknown]
        assert sorted(listed) == sorted(people)
        for group in (slot.free, slot.busy, slot.unknown):
            assert list(group) == [p for p in people if p in group]
        assert slot.start.utcoffset() == timedelta(0)
        assert slot.reason


def test_slots_are_counted_at_once_and_built_on_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An answer asking only ``emptyReason`` (or a count) never works out where anyone
    stands, let alone builds a ``Slot``; the standings are worked out once for both."""
    from server.services.availability import engine

    made: list[int] = []
    build = engine._standings

    def counting(*args: object) -> object:
        made.append(1)
        return build(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_standings", counting)
    ana = person("Ana", busy=[(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11))])
    result = search([ana, person("Ben", busy=[])])
    assert len(result.slots) == 4 and result.empty_reason is None and made == []
    hours = [(9, 0), (9, 30), (11, 0), (11, 30)]
    assert starts(result) == [utc(2026, 3, 2, h, m) for h, m in hours]
    assert result.slots[1:] == list(result.slots)[1:] and made == [1]  # built once
    standings = slot_standings(result.slots)
    assert made == [1]  # the same standings, not worked out again
    assert standings == [(s.free, s.busy, s.unknown, s.reason) for s in result.slots]
    assert result == AvailabilityResult(slots=list(result.slots), empty_reason=None)


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_slot_times_are_the_built_slots_times_without_building_them(
    scenario: dict[str, object],
) -> None:
    """The week grid places slots by ``slot_times``: the same instants, in the same order
    (group mode reorders, ``limit`` cuts), as the slots built on first use."""
    result = find_slots(**scenario)  # type: ignore[arg-type]
    starts_us, ends_us = slot_times(result.slots)
    assert isinstance(result.slots, LazySlots) or not result.slots
    assert starts_us.tolist() == [to_us(s.start) for s in result.slots]
    assert ends_us.tolist() == [to_us(s.end) for s in result.slots]
    plain = list(result.slots)  # any other sequence of slots is read one by one
    assert slot_times(plain)[0].tolist() == starts_us.tolist()
