"""Each process keeps enough database connections open for its concurrent requests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.pool import StaticPool

from server.config import Settings
from server.db import create_engine
from server.wiring import build_services, close_services


async def test_eight_concurrent_sessions_reuse_kept_connections(settings: Settings) -> None:
    """With SQLAlchemy's default pool of 5, the three sessions beyond it opened a new
    connection every time (a new SQLite thread, a new PostgreSQL session) and closed it
    on return: the p99 of 8 concurrent requests doubled. Now a second burst opens none."""
    services = build_services(settings)
    opened: list[int] = []

    def count(_dbapi: Any, _record: Any) -> None:
        opened.append(1)

    event.listen(services.db.engine.sync_engine, "connect", count)
    try:

        async def one() -> None:
            async with services.db.session() as db:
                await db.exec(text("SELECT 1"))  # type: ignore[call-overload]
                await asyncio.sleep(0.05)  # all eight hold a connection at once

        await asyncio.gather(*(one() for _ in range(8)))
        first = len(opened)
        await asyncio.gather(*(one() for _ in range(8)))
        assert first == 8 and len(opened) == first
        assert services.db.engine.pool.size() == settings.database_pool_size == 10  # type: ignore[attr-defined]
    finally:
        await close_services(services)


async def test_pool_size_comes_from_settings_and_memory_databases_have_none(
    tmp_path: Path,
) -> None:
    """``DATABASE_POOL_SIZE`` sizes the pool; an in-memory database (one connection,
    no pool to size) is still accepted."""
    services = build_services(Settings(data_dir=tmp_path, database_pool_size=3))
    try:
        assert services.db.engine.pool.size() == 3  # type: ignore[attr-defined]
    finally:
        await close_services(services)
    engine = create_engine("sqlite+aiosqlite:///:memory:", pool_size=3)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        assert isinstance(engine.pool, StaticPool)
    finally:
        await engine.dispose()
