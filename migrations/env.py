"""Alembic environment: runs on a connection handed over by Tandem, or on the configured URL."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context

import server.models  # noqa: F401 - registers every table on the metadata
from server.db import tandem_owns
from server.models import metadata

config = context.config


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=tandem_owns,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_with_url() -> None:
    from server.db import create_engine

    async def go() -> None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        async with engine.begin() as connection:
            await connection.run_sync(_run)
        await engine.dispose()

    asyncio.run(go())


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    _run_with_url()
