"""Packed busy intervals: the same answers as plain ones, without datetimes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from server.providers.base import BusyInterval, BusyKind
from server.services.availability import Mode, PackedBusy, Participant, Rules, find_slots
from server.services.availability.grid import to_us


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


INTERVALS = [
    BusyInterval(utc(2026, 3, 2, 9), utc(2026, 3, 2, 10), BusyKind.TENTATIVE),
    BusyInterval(utc(2026, 3, 2, 11, 15), utc(2026, 3, 2, 11, 45)),
]


def test_packing_keeps_times_and_kinds() -> None:
    packed = PackedBusy.from_intervals(INTERVALS)
    assert len(packed) == 2
    assert list(packed) == INTERVALS
    assert packed[1:][0] == INTERVALS[1]
    assert packed.starts_us[0] == 1_772_442_000_000_000
    assert repr(packed) == "PackedBusy(2 intervals)"  # times never shown


def test_packed_arrays_are_read_only() -> None:
    packed = PackedBusy([0], [60_000_000])
    with pytest.raises(ValueError, match="read-only"):
        packed.starts_us[0] = 5
    assert packed[0].kind is BusyKind.BUSY


def test_invalid_packs_raise() -> None:
    with pytest.raises(ValueError, match="same length"):
        PackedBusy([0, 1], [2])
    with pytest.raises(ValueError, match="one entry per interval"):
        PackedBusy([0], [1], [])
    with pytest.raises(ValueError, match="aware"):
        PackedBusy.from_intervals([BusyInterval(datetime(2026, 3, 2), datetime(2026, 3, 3))])


def test_packed_and_plain_busy_give_the_same_slots() -> None:
    def run(busy: list[BusyInterval] | PackedBusy) -> list[tuple[datetime, int, int]]:
        people = [
            Participant(uuid.UUID(int=1), "Ana", "Europe/London", busy),
            Participant(uuid.UUID(int=2), "Ben", "America/New_York", INTERVALS, optional=True),
        ]
        result = find_slots(
            people,
            Rules(buffer_minutes=15),
            start=utc(2026, 3, 2),
            end=utc(2026, 3, 3),
            duration=timedelta(minutes=30),
            step=timedelta(minutes=15),
            now=utc(2026, 3, 1),
            mode=Mode.GROUP,
        )
        return [(slot.start, len(slot.free), len(slot.busy)) for slot in result.slots]

    plain = run(INTERVALS)
    assert plain
    assert run(PackedBusy.from_intervals(INTERVALS)) == plain


def test_packed_from_codes_keeps_kinds_and_slices() -> None:
    import numpy as np

    from server.services.availability.packed import KIND_CODES

    codes = np.array([KIND_CODES.index(BusyKind.TENTATIVE), 0], dtype=np.int8)
    packed = PackedBusy.from_codes(
        PackedBusy.from_intervals(INTERVALS).starts_us,
        PackedBusy.from_intervals(INTERVALS).ends_us,
        codes,
    )
    assert list(packed) == INTERVALS
    assert list(packed[1:]) == INTERVALS[1:]
    assert packed.kind_codes.tolist() == codes.tolist()
    assert PackedBusy.from_intervals(INTERVALS).kind_codes.tolist() == codes.tolist()
    with pytest.raises(ValueError, match="one entry per interval"):
        PackedBusy.from_codes(packed.starts_us, packed.ends_us, codes[:1])


def test_packed_equals_plain_and_packed_intervals() -> None:
    packed = PackedBusy.from_intervals(INTERVALS)
    assert packed == INTERVALS
    assert packed == PackedBusy.from_intervals(INTERVALS)
    assert packed != INTERVALS[:1]
    assert packed != PackedBusy.from_intervals(
        [INTERVALS[0], BusyInterval(INTERVALS[1].start, INTERVALS[1].end, BusyKind.ALL_DAY)]
    )


def test_iso_text_of_micros_is_what_isoformat_writes() -> None:
    """``grid.iso_utc`` writes epoch microseconds as ``isoformat`` does: fractions only
    when there are microseconds, the offset always, from year 1 to 9999."""
    import random

    import numpy as np

    from server.services.availability.grid import from_us, iso_utc, to_us

    rng = random.Random(5)
    first = to_us(datetime(1, 1, 1, tzinfo=UTC))
    last = to_us(datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))
    whole = [rng.randrange(0, 4_000_000_000) * 1_000_000 for _ in range(2_000)]
    odd = [rng.randrange(-(10**16), 10**17) for _ in range(2_000)]
    for values in (whole, whole + odd, [first, 0, -1, 1, last], [last, first]):
        micros = np.array(values, dtype=np.int64)
        assert iso_utc(micros) == [from_us(v).isoformat() for v in values]
        assert iso_utc(micros) == [from_us(v).isoformat() for v in values]  # remembered
    assert iso_utc(np.zeros(0, dtype=np.int64)) == []
    assert iso_utc(np.array([1_800_000_000_000_000], dtype=np.int64)) == [
        "2027-01-15T08:00:00+00:00"
    ]


def test_iso_texts_are_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The remembered texts never grow past their bound, and a text is right whether it
    was remembered, written afresh, or written after the memory was cleared."""
    import numpy as np

    from server.services.availability import grid

    monkeypatch.setattr(grid, "_ISO_TEXTS", {})
    monkeypatch.setattr(grid, "_ISO_TEXTS_MAX", 50)
    base = grid.to_us(datetime(2027, 3, 28, 0, 0, tzinfo=UTC))
    for round_ in range(6):
        values = [base + (round_ * 17 + k) * 300_000_000 + (k % 3) for k in range(30)]
        expected = [grid.from_us(v).isoformat() for v in values]
        assert grid.iso_utc(np.array(values, dtype=np.int64)) == expected
        assert len(grid._ISO_TEXTS) <= 50
        assert grid.iso_utc(np.array(values[::-1], dtype=np.int64)) == expected[::-1]


def test_busy_columns_are_the_same_from_packed_arrays_and_from_items() -> None:
    """``clipped_busy`` reads a ``BusyInWindow`` without datetimes and a hand-made list
    of ``UserBusy`` item by item; both give the same columns and per-person arrays."""
    import numpy as np

    from server.services.availability.query import BusyInWindow, clipped_busy

    ana, ben = uuid.uuid4(), uuid.uuid4()
    window = BusyInWindow(utc(2026, 3, 2, 9, 30), utc(2026, 3, 2, 12))
    window.add(ana, PackedBusy.from_intervals(INTERVALS))
    window.add(ben, PackedBusy.from_intervals(INTERVALS[1:]))
    window.add(ana, PackedBusy.from_intervals([BusyInterval(utc(2026, 3, 2, 8), utc(2026, 3, 3))]))
    packed, items = clipped_busy(window), clipped_busy(list(window))
    assert packed.people == items.people == [ana, ben, ana]
    assert packed.counts == items.counts == [2, 1, 1]
    for a, b in zip(packed[2:], items[2:], strict=True):
        assert np.array_equal(a, b)
    assert packed.starts_us[0] == to_us(utc(2026, 3, 2, 9, 30))  # clipped to the window
    by_user = packed.by_user()
    assert list(by_user) == [ana, ben] and len(by_user[ana][0]) == 3
    assert np.array_equal(by_user[ana][1], items.by_user()[ana][1])
