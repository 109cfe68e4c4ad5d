"""The packed busy reader (integers computed by the database) returns exactly what reading
``BusyBlock`` rows as datetimes returned, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlmodel import col, select

from server.models import BusyBlock, Meeting
from server.models.base import epoch_micros
from server.models.enums import BusyKind
from server.providers.base import BusyInterval
from server.services.availability.booked import meeting_busy
from server.services.availability.busy import read_busy
from server.services.availability.grid import to_us
from server.services.availability.packed import PackedBusy
from server.wiring import AppServices
from tests.conftest import create_user
from tests.scheduling_data import book_meeting, connect_calendar


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


WINDOW = (utc(2027, 3, 8), utc(2027, 4, 5))  # crosses the US (14 Mar) and EU (28 Mar) DST days
BLOCKS = [
    # crossing the window's start and its end
    (utc(2027, 3, 7, 22), utc(2027, 3, 8, 1, 30), BusyKind.BUSY),
    (utc(2027, 4, 4, 23), utc(2027, 4, 5, 2), BusyKind.TENTATIVE),
    # on the US DST day (02:00 local does not exist in New York) and the EU one
    (utc(2027, 3, 14, 6, 30), utc(2027, 3, 14, 8), BusyKind.OUT_OF_OFFICE),
    (utc(2027, 3, 28, 0, 30), utc(2027, 3, 28, 1, 30), BusyKind.BUSY),
    (utc(2027, 3, 28), utc(2027, 3, 29), BusyKind.ALL_DAY),
    # microseconds survive, and two blocks start at the same instant
    (utc(2027, 3, 10, 9, 0, 0, 123456), utc(2027, 3, 10, 9, 45, 59, 999999), BusyKind.BUSY),
    (utc(2027, 3, 10, 9), utc(2027, 3, 10, 9, 30), BusyKind.TENTATIVE),
    # wholly outside the window (widened by the margin below it still is)
    (utc(2027, 3, 1, 9), utc(2027, 3, 1, 10), BusyKind.BUSY),
    (utc(2027, 4, 9, 9), utc(2027, 4, 9, 10), BusyKind.BUSY),
]


async def _datetime_reader(
    services: AppServices,
    ids: list[uuid.UUID],
    windows: list[tuple[datetime, datetime]],
    ignore_meeting_id: uuid.UUID | None = None,
) -> dict[uuid.UUID, list[BusyInterval]]:
    """What ``read_busy`` did before it read integers: ORM rows, one datetime each."""
    lo, hi = min(w[0] for w in windows), max(w[1] for w in windows)
    async with services.db.session() as db:
        rows = (
            await db.exec(
                select(BusyBlock)
                .where(
                    col(BusyBlock.user_id).in_(ids),
                    col(BusyBlock.start_at) < hi,
                    col(BusyBlock.end_at) > lo,
                )
                .order_by(col(BusyBlock.start_at))
            )
        ).all()
        moving = await db.get(Meeting, ignore_meeting_id) if ignore_meeting_id else None
        found: dict[uuid.UUID, list[BusyInterval]] = {user_id: [] for user_id in ids}
        for row in rows:
            if moving is not None and (row.start_at, row.end_at) == (
                moving.start_at,
                moving.end_at,
            ):
                continue
            if any(row.start_at < w_hi and row.end_at > w_lo for w_lo, w_hi in windows):
                found[row.user_id].append(BusyInterval(row.start_at, row.end_at, row.kind))
        booked = await meeting_busy(db, ids, lo, hi, ignore_meeting_id=ignore_meeting_id)
        for user_id, extra in booked.items():
            found[user_id] = sorted([*found[user_id], *extra])
    return found


async def _people(services: AppServices) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    ana = await create_user(services, "ana@example.org", name="Ana")
    ben = await create_user(services, "ben@example.org", name="Ben", time_zone="America/New_York")
    cy = await create_user(services, "cy@example.org", name="Cy")  # no blocks at all
    for person in (ana, ben, cy):
        await connect_calendar(services, person)
    async with services.db.session() as db:
        for index, (start, end, kind) in enumerate(BLOCKS):
            owner = ana if index % 2 == 0 else ben
            db.add(BusyBlock(user_id=owner, start_at=start, end_at=end, kind=kind))
            other = ana if owner == ben else ben
            db.add(BusyBlock(user_id=other, start_at=start, end_at=end, kind=BusyKind.BUSY))
        await db.commit()
    return ana, ben, cy


async def test_packed_reader_matches_the_datetime_reader(services: AppServices) -> None:
    ana, ben, cy = await _people(services)
    # A Tandem meeting at the same instant as a calendar block sorts like BusyInterval does.
    await book_meeting(services, [ana, ben], utc(2027, 3, 10, 9), utc(2027, 3, 10, 9, 30))
    ids = [ben, cy, ana]
    margin = timedelta(minutes=10)
    wide = [(WINDOW[0] - margin, WINDOW[1] + margin)]
    expected = await _datetime_reader(services, ids, wide)
    async with services.db.session() as db:
        picture = await read_busy(db, None, ids, [WINDOW], fetch=False, margin=margin)
    for user_id in ids:
        intervals = picture.people[user_id].intervals
        assert isinstance(intervals, PackedBusy)
        assert list(intervals) == expected[user_id]
        assert [intervals[i] for i in range(len(intervals))] == expected[user_id]
    assert len(picture.people[ana].intervals) == 8  # 7 of the 9 blocks are near the window
    assert list(picture.people[cy].intervals) == []
    first = picture.people[ana].intervals[0]
    assert first.start == utc(2027, 3, 7, 22) and first.start.tzinfo is UTC


async def test_packed_reader_with_several_windows_and_a_meeting_being_moved(
    services: AppServices,
) -> None:
    ana, ben, _cy = await _people(services)
    moving = await book_meeting(services, [ana, ben], utc(2027, 3, 14, 6, 30), utc(2027, 3, 14, 8))
    windows = [(utc(2027, 3, 10, 9, 15), utc(2027, 3, 10, 9, 20)), (utc(2027, 3, 14), WINDOW[1])]
    expected = await _datetime_reader(services, [ana, ben], windows, moving)
    async with services.db.session() as db:
        picture = await read_busy(
            db, None, [ana, ben], windows, fetch=False, ignore_meeting_id=moving
        )
    for user_id in (ana, ben):
        assert list(picture.people[user_id].intervals) == expected[user_id]
    # the blocks at the moving meeting's old time are left out, the one at 9:00 is not
    starts = [i.start for i in picture.people[ana].intervals]
    assert utc(2027, 3, 14, 6, 30) not in starts
    assert utc(2027, 3, 10, 9) in starts


async def test_epoch_micros_is_exact_on_the_database(services: AppServices) -> None:
    user = await create_user(services, "kim@example.org", name="Kim")
    moments = [
        utc(1969, 12, 31, 23, 59, 59, 500000),
        utc(2027, 3, 28, 1, 0, 0, 1),
        utc(2099, 12, 31, 23, 59, 59, 999999),
    ]
    async with services.db.session() as db:
        for moment in moments:
            end = moment + timedelta(hours=1)
            db.add(BusyBlock(user_id=user, start_at=moment, end_at=end, kind=BusyKind.BUSY))
        await db.commit()
        rows = (
            await db.exec(
                select(epoch_micros(BusyBlock.start_at)).order_by(col(BusyBlock.start_at))
            )
        ).all()
    assert list(rows) == [to_us(moment) for moment in moments]
    assert np.array(rows, dtype=np.int64)[0] == -500000
