"""The joined busy reader (one string per person, parsed by numpy) returns exactly what
reading ``BusyBlock`` rows as datetimes returns, on both databases, and falls back to one
row per block when a stored value is not the text it expects."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from sqlmodel import col, select

from server.models import BusyBlock
from server.models.enums import BusyKind
from server.providers.base import BusyInterval
from server.services.availability import blocks
from server.services.availability.busy import read_busy
from server.services.availability.grid import to_us
from server.wiring import AppServices, build_services, close_services
from tests.conftest import create_user, make_settings
from tests.scheduling_data import connect_calendar


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# Crosses the US (14 Mar) and EU (28 Mar) DST days.
WINDOW = (utc(2027, 3, 8), utc(2027, 4, 5))
KINDS = list(BusyKind)


async def _crowd(services: AppServices, people: int = 4) -> list[uuid.UUID]:
    """People with connected calendars and blocks that start together, end together,
    straddle the window's edges and the DST days, inserted out of order."""
    rng = random.Random(14)
    ids = []
    zones = ["Europe/Paris", "America/New_York", "Asia/Kolkata", "Pacific/Auckland"]
    for n in range(people):
        person = await create_user(
            services, f"p{n}@example.org", name=f"P{n}", time_zone=zones[n % len(zones)]
        )
        await connect_calendar(services, person)
        ids.append(person)
    async with services.db.session() as db:
        for person in ids[:-1]:  # the last person has no blocks at all
            rows = [
                # same start, the longer one inserted first: not in index order by end
                (utc(2027, 3, 10, 9), utc(2027, 3, 10, 11), BusyKind.BUSY),
                (utc(2027, 3, 10, 9), utc(2027, 3, 10, 10), BusyKind.TENTATIVE),
                # same start and end, kinds inserted against their text order
                (utc(2027, 3, 12, 9), utc(2027, 3, 12, 10), BusyKind.TENTATIVE),
                (utc(2027, 3, 12, 9), utc(2027, 3, 12, 10), BusyKind.ALL_DAY),
                # the window's edges: ending at its start, starting at its end, crossing
                (utc(2027, 3, 7, 23), WINDOW[0], BusyKind.BUSY),
                (WINDOW[1], utc(2027, 4, 5, 1), BusyKind.BUSY),
                (utc(2027, 3, 7, 23), utc(2027, 3, 8, 0, 0, 0, 1), BusyKind.OUT_OF_OFFICE),
                (utc(2027, 4, 4, 23, 59, 59, 999999), utc(2027, 4, 6), BusyKind.ALL_DAY),
                # the DST nights, in UTC
                (utc(2027, 3, 14, 6, 30), utc(2027, 3, 14, 7, 30), BusyKind.BUSY),
                (utc(2027, 3, 28, 0, 59, 59, 500000), utc(2027, 3, 28, 1, 0, 0, 1), BusyKind.BUSY),
            ]
            for _ in range(40):
                start = WINDOW[0] + timedelta(minutes=5 * rng.randrange(28 * 24 * 12))
                length = timedelta(minutes=15 * rng.randint(1, 12), microseconds=rng.randrange(3))
                rows.append((start, start + length, rng.choice(KINDS)))
            rng.shuffle(rows)
            for start, end, kind in rows:
                db.add(BusyBlock(user_id=person, start_at=start, end_at=end, kind=kind))
        await db.commit()
    return ids


async def _oracle(
    services: AppServices, ids: list[uuid.UUID], lo: datetime, hi: datetime
) -> dict[uuid.UUID, list[BusyInterval]]:
    """ORM rows, one datetime each, sorted as ``BusyInterval`` sorts."""
    async with services.db.session() as db:
        rows = (
            await db.exec(
                select(BusyBlock).where(
                    col(BusyBlock.user_id).in_(ids),
                    col(BusyBlock.start_at) < hi,
                    col(BusyBlock.end_at) > lo,
                )
            )
        ).all()
    found: dict[uuid.UUID, list[BusyInterval]] = {user_id: [] for user_id in ids}
    for row in rows:
        found[row.user_id].append(BusyInterval(row.start_at, row.end_at, row.kind))
    return {user_id: sorted(intervals) for user_id, intervals in found.items()}


async def test_joined_reader_matches_the_datetime_reader(services: AppServices) -> None:
    ids = await _crowd(services)
    asked = [ids[2], ids[3], ids[0], ids[1]]  # not in the order the database groups them
    expected = await _oracle(services, asked, *WINDOW)
    async with services.db.session() as db:
        picture = await read_busy(db, None, asked, [WINDOW], fetch=False)
        table = await blocks.read_block_table(db, asked, *WINDOW)
    for user_id in asked:
        assert list(picture.people[user_id].intervals) == expected[user_id]
    assert len(expected[ids[0]]) == 48  # 50 blocks, of which 2 only touch the window
    assert expected[ids[3]] == []
    # the table holds every person's blocks in the order asked, in BusyInterval order
    assert table[:, 0].tolist() == sorted(table[:, 0].tolist())
    assert len(table) == 3 * 48
    first = picture.people[ids[0]].intervals
    ties = [i for i in first if i.start == utc(2027, 3, 12, 9)]
    assert [i.kind for i in ties] == [BusyKind.ALL_DAY, BusyKind.TENTATIVE]
    edge = [i for i in first if i.end == utc(2027, 3, 8, 0, 0, 0, 1)]
    assert edge == [BusyInterval(utc(2027, 3, 7, 23), edge[0].end, BusyKind.OUT_OF_OFFICE)]


async def test_the_fallback_reader_gives_the_same_table(services: AppServices) -> None:
    ids = await _crowd(services, people=3)
    async with services.db.session() as db:
        joined = await blocks.read_block_table(db, ids, *WINDOW)
        per_row = await blocks.read_block_table(db, ids, *WINDOW, joined=False)
    assert len(joined) == 2 * 48
    assert np.array_equal(joined, per_row)


@pytest.fixture
async def sqlite_services(tmp_path: Path, sqlite_url: str) -> AsyncIterator[AppServices]:
    """SQLite only: PostgreSQL stores timestamps natively, never as text of another shape."""
    svc = build_services(make_settings(tmp_path, sqlite_url))
    yield svc
    await close_services(svc)


async def test_a_value_of_another_shape_falls_back_to_one_row_per_block(
    sqlite_services: AppServices,
) -> None:
    """SQLite text without the fraction (as a hand-written row would have it) is still read
    exactly: the lengths do not add up, so the reader reads row by row."""
    services = sqlite_services
    person = await create_user(services, "kim@example.org", name="Kim")
    await connect_calendar(services, person)
    async with services.db.session() as db:
        db.add(
            BusyBlock(
                user_id=person,
                start_at=utc(2027, 3, 9, 8, 0, 0, 250000),
                end_at=utc(2027, 3, 9, 9),
                kind=BusyKind.TENTATIVE,
            )
        )
        await db.commit()
        await db.exec(
            text(  # type: ignore[call-overload]
                "INSERT INTO busy_block (id, user_id, start_at, end_at, kind) "
                "VALUES (:id, :user, '2027-03-09 10:00:00', '2027-03-09 11:30:00', 'busy')"
            ),
            params={"id": uuid.uuid4().hex, "user": person.hex},
        )
        await db.commit()
        rows = (await db.exec(blocks._joined_statement(), params=_params([person]))).all()
        assert blocks._parse_joined(rows, [person]) is None
        table = await blocks.read_block_table(db, [person], *WINDOW)
    assert table.tolist() == [
        [0, to_us(utc(2027, 3, 9, 8, 0, 0, 250000)), to_us(utc(2027, 3, 9, 9)), 1],
        [0, to_us(utc(2027, 3, 9, 10)), to_us(utc(2027, 3, 9, 11, 30)), 0],
    ]


def _params(ids: list[uuid.UUID]) -> dict[str, object]:
    return {"ids": ids, "lo": WINDOW[0], "hi": WINDOW[1]}


def test_an_unknown_kind_digit_or_bad_text_is_refused_by_the_parser() -> None:
    person = uuid.uuid4()
    good = "2027-03-09 10:00:00.0000002027-03-09 11:00:00.000000"
    assert blocks._parse_joined([(person, 1, good + "0")], [person]) is not None
    assert blocks._parse_joined([(person, 1, good + "9")], [person]) is None
    bad = good.replace("10:00", "1x:00")
    assert blocks._parse_joined([(person, 1, bad + "0")], [person]) is None
    assert blocks._parse_joined([(person, 2, good + "0")], [person]) is None


def test_blocks_out_of_order_are_sorted_and_sorted_ones_kept() -> None:
    # person, start, end, kind code (busy 0, tentative 1, out_of_office 2, all_day 3)
    rows = [[0, 5, 9, 0], [0, 5, 7, 1], [0, 5, 7, 3], [1, 1, 2, 0], [0, 2, 3, 2]]
    table = np.array(rows, dtype=np.int64)
    assert blocks._sorted(table).tolist() == [
        [0, 2, 3, 2],
        [0, 5, 7, 3],  # all_day sorts before tentative as text
        [0, 5, 7, 1],
        [0, 5, 9, 0],
        [1, 1, 2, 0],
    ]
    in_order = blocks._sorted(table)
    assert blocks._sorted(in_order) is in_order
