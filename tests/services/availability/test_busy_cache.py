"""Busy blocks kept in memory are used only while the person's busy version vouches for
them: every way blocks are written raises it, on both databases, and a second reader (a
second ``Database``, as another node would have) sees every change at once."""

from __future__ import annotations

import ast
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import event, insert
from sqlmodel import col, select

from server.db import Database
from server.models import BusyBlock, BusyVersion, busy_version
from server.models.base import new_id
from server.models.enums import BusyKind
from server.providers.base import BusyInterval
from server.services.availability import busy_cache
from server.services.availability.busy import read_busy
from server.services.availability.packed import PackedBusy
from server.services.calendars.coverage import replace_blocks
from server.wiring import AppServices
from tests.conftest import create_user
from tests.scheduling_data import connect_calendar

WINDOW = (datetime(2027, 5, 3, tzinfo=UTC), datetime(2027, 5, 17, tzinfo=UTC))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 5, day, hour, minute, tzinfo=UTC)


@contextmanager
def block_reads(database: Database) -> Iterator[list[str]]:
    """The statements that read ``busy_block`` while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM busy_block" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)


async def _busy(database: Database, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[BusyInterval]]:
    async with database.session() as db:
        picture = await read_busy(db, None, ids, [WINDOW], fetch=False, include_meetings=False)
    return {user_id: list(picture.people[user_id].intervals) for user_id in ids}


async def _pair(services: AppServices) -> tuple[uuid.UUID, uuid.UUID]:
    ana = await create_user(services, "ana@example.org", name="Ana")
    ben = await create_user(services, "ben@example.org", name="Ben")
    for person in (ana, ben):
        await connect_calendar(services, person)
    async with services.db.session() as db:
        db.add(BusyBlock(user_id=ana, start_at=at(4, 9), end_at=at(4, 10), kind=BusyKind.BUSY))
        db.add(BusyBlock(user_id=ben, start_at=at(5, 9), end_at=at(5, 11), kind=BusyKind.TENTATIVE))
        await db.commit()
    return ana, ben


async def _version(services: AppServices, user_id: uuid.UUID) -> int:
    async with services.db.session() as db:
        row = await db.get(BusyVersion, user_id)
        return row.version if row is not None else 0


async def test_a_second_question_reads_no_blocks_and_gets_the_same_answer(
    services: AppServices,
) -> None:
    ana, ben = await _pair(services)
    with block_reads(services.db) as reads:
        first = await _busy(services.db, [ana, ben])
        second = await _busy(services.db, [ben, ana])
    assert len(reads) == 1
    assert first == second
    assert first[ana] == [BusyInterval(at(4, 9), at(4, 10), BusyKind.BUSY)]
    assert first[ben] == [BusyInterval(at(5, 9), at(5, 11), BusyKind.TENTATIVE)]


async def test_every_kind_of_write_raises_the_version_and_is_seen_by_another_node(
    services: AppServices,
) -> None:
    ana, ben = await _pair(services)
    other = Database.from_url(services.settings.resolved_database_url)  # another node
    try:
        assert (await _busy(other, [ana, ben]))[ana] == [
            BusyInterval(at(4, 9), at(4, 10), BusyKind.BUSY)
        ]
        before = await _version(services, ana)

        # A sync's replace: a bulk delete and new blocks, written on this node.
        async with services.db.session() as db:
            await replace_blocks(
                db, ana, WINDOW, [BusyInterval(at(6, 14), at(6, 15), BusyKind.OUT_OF_OFFICE)]
            )
            await db.commit()
        assert await _version(services, ana) == before + 1
        seen = await _busy(other, [ana, ben])
        assert seen[ana] == [BusyInterval(at(6, 14), at(6, 15), BusyKind.OUT_OF_OFFICE)]
        assert seen[ben] == [BusyInterval(at(5, 9), at(5, 11), BusyKind.TENTATIVE)]

        # One block added as an ORM object, as tests and small writers do.
        async with services.db.session() as db:
            db.add(BusyBlock(user_id=ben, start_at=at(7, 8), end_at=at(7, 9), kind=BusyKind.BUSY))
            await db.commit()
        assert len((await _busy(other, [ana, ben]))[ben]) == 2

        # A bulk insert that names its people, as the organization sync writes.
        async with services.db.session() as db:
            await db.exec(
                insert(BusyBlock),
                params=[
                    {
                        "id": new_id(),
                        "user_id": ana,
                        "start_at": at(8, 8),
                        "end_at": at(8, 9),
                        "kind": BusyKind.BUSY,
                    }
                ],
            )
            busy_version.note_changed(db, [ana])
            await db.commit()
        assert [i.start for i in (await _busy(other, [ana]))[ana]] == [at(6, 14), at(8, 8)]

        # An ORM delete.
        async with services.db.session() as db:
            doomed = (await db.exec(select(BusyBlock).where(col(BusyBlock.user_id) == ben))).all()
            for block in doomed:
                await db.delete(block)
            await db.commit()
        assert (await _busy(other, [ben]))[ben] == []
    finally:
        await other.dispose()


async def test_a_rolled_back_write_changes_neither_version_nor_answer(
    services: AppServices,
) -> None:
    ana, _ben = await _pair(services)
    first = await _busy(services.db, [ana])
    before = await _version(services, ana)
    async with services.db.session() as db:
        await replace_blocks(db, ana, WINDOW, [])
        await db.rollback()
    assert await _version(services, ana) == before
    with block_reads(services.db) as reads:
        assert await _busy(services.db, [ana]) == first
    assert reads == []  # still vouched for


async def test_a_session_reads_what_it_wrote_itself_not_what_memory_holds(
    services: AppServices,
) -> None:
    ana, ben = await _pair(services)
    await _busy(services.db, [ana, ben])  # held in memory now
    async with services.db.session() as db:
        await replace_blocks(db, ana, WINDOW, [])  # not committed yet
        picture = await read_busy(db, None, [ana, ben], [WINDOW], fetch=False)
        assert list(picture.people[ana].intervals) == []
        assert len(picture.people[ben].intervals) == 1
        assert busy_version.changed_in(db) == {ana}
        await db.rollback()


def test_memory_is_bounded_and_forgets_the_least_recently_used_first() -> None:
    cache = busy_cache.BusyCache(max_blocks=5)

    def blocks(n: int) -> PackedBusy:
        starts = np.arange(n, dtype=np.int64) * 10
        return PackedBusy.from_codes(starts, starts + 5, np.zeros(n, dtype=np.int8))

    a, b, c, huge = (uuid.uuid4() for _ in range(4))
    cache.put(a, 1, blocks(2))
    cache.put(b, 1, blocks(2))
    assert cache.get(a, 1) is not None  # a is now the most recently used
    assert cache.get(a, 2) is None  # another version vouches for nothing
    cache.put(c, 3, blocks(2))
    assert cache.get(b, 1) is None and cache.get(a, 1) is not None
    assert cache.blocks_held == 4 and len(cache) == 2
    cache.put(huge, 1, blocks(6))  # larger than the whole cache: not kept
    assert cache.get(huge, 1) is None and cache.blocks_held == 4


def test_every_bulk_write_of_busy_blocks_names_its_people() -> None:
    """ORM objects are noticed at flush; a bulk statement on ``BusyBlock`` is not, so the
    function that runs one must call ``busy_version.note_changed`` too."""
    root = Path(__file__).resolve().parents[3] / "server"
    unnamed: list[str] = []
    found: set[str] = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            calls = [node for node in ast.walk(function) if isinstance(node, ast.Call)]
            bulk = any(
                isinstance(call.func, ast.Name)
                and call.func.id in {"insert", "delete", "update"}
                and any(isinstance(arg, ast.Name) and arg.id == "BusyBlock" for arg in call.args)
                for call in calls
            )
            noted = any(
                isinstance(call.func, ast.Attribute) and call.func.attr == "note_changed"
                for call in calls
            )
            if bulk:
                found.add(function.name)
            if bulk and not noted:
                unnamed.append(f"{path.relative_to(root.parent)}:{function.name}")
    # The scan sees the writers it guards (a scan that found none would pass vacuously).
    assert {"replace_blocks", "drop_uncovered_blocks", "_write_batch", "disconnect"} <= found
    assert unnamed == []


async def test_versions_start_at_nothing_and_count_each_transaction_once(
    services: AppServices,
) -> None:
    kim = await create_user(services, "kim@example.org", name="Kim")
    assert await _version(services, kim) == 0
    async with services.db.session() as db:
        for hour in range(3):
            start = at(10, 9 + hour)
            db.add(
                BusyBlock(
                    user_id=kim,
                    start_at=start,
                    end_at=start + timedelta(minutes=30),
                    kind=BusyKind.BUSY,
                )
            )
            await db.flush()
        await db.commit()
    assert await _version(services, kim) == 1
