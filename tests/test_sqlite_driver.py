"""SQLite reads run on the event loop's thread; writes and long reads on aiosqlite's, so a
writer waiting for the lock never parks the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.db import create_engine
from server.sqlite_driver import LONG_READ


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, list[int]]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    threads: list[int] = []

    def record_thread(dbapi_connection: Any, _record: Any) -> None:
        def tid() -> int:
            threads.append(threading.get_ident())
            return 1

        dbapi_connection.create_function("tid", 0, tid)

    event.listen(engine.sync_engine, "connect", record_thread)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield engine, threads
    await engine.dispose()


async def test_reads_inline_writes_and_long_reads_on_the_thread(
    engine: tuple[AsyncEngine, list[int]],
) -> None:
    db, threads = engine
    loop_thread = threading.get_ident()
    async with db.connect() as conn:
        assert (await conn.execute(text("SELECT tid()"))).scalar_one() == 1
        await conn.execute(text("INSERT INTO t (n) VALUES (tid())"))
        await conn.commit()
        long_read = f"SELECT {LONG_READ} tid() FROM t UNION ALL SELECT tid()"  # noqa: S608
        await conn.execute(text(long_read))
        assert (await conn.execute(text("SELECT tid()"))).scalar_one() == 1
    read, write, *long_reads, read_again = threads
    assert read == read_again == loop_thread
    assert write != loop_thread
    # The first row is computed by execute, the rest while fetching: both on the thread.
    assert len(long_reads) == 2 and loop_thread not in long_reads


async def test_a_writer_waiting_for_the_lock_does_not_park_the_loop(
    engine: tuple[AsyncEngine, list[int]], tmp_path: Path
) -> None:
    db, _ = engine
    holder = sqlite3.connect(tmp_path / "driver.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    holder.execute("INSERT INTO t (n) VALUES (1)")

    async def write() -> None:
        async with db.begin() as conn:
            await conn.execute(text("INSERT INTO t (n) VALUES (2)"))

    writer = asyncio.create_task(write())
    started = time.monotonic()
    for _ in range(20):
        await asyncio.sleep(0.01)
    # The loop kept its pace (a writer parked on it would take the whole busy_timeout,
    # 10 s) while the write still waits for the lock.
    assert time.monotonic() - started < 3
    assert not writer.done()
    async with db.connect() as conn:  # a read meanwhile is answered from the snapshot
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
    holder.execute("COMMIT")
    holder.close()
    await asyncio.wait_for(writer, timeout=10)
    async with db.connect() as conn:
        rows = (await conn.execute(text("SELECT n FROM t ORDER BY n"))).scalars().all()
    assert rows == [1, 2]
