"""Migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from server.db import create_engine, tandem_owns
from server.models import metadata


def _diff(sync_connection: Any) -> list[Any]:
    context = MigrationContext.configure(
        sync_connection, opts={"compare_type": True, "include_name": tandem_owns}
    )
    return list(compare_metadata(context, metadata))


async def test_models_and_migrations_agree(database_url: str) -> None:
    """The equivalent of ``alembic check``: autogenerate finds nothing left to migrate."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_diff)
    finally:
        await engine.dispose()
    assert differences == []


async def test_database_refuses_what_the_rules_forbid(database_url: str) -> None:
    """Constraints live in the database too: an inverted busy block or a second calendar
    connection for one user is refused even if code forgot to check."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from server.models import BusyBlock, CalendarConnection, User

    engine = create_engine(database_url)
    user_id = uuid.uuid4()
    now = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(User).values(
                    id=user_id,
                    email=f"c{user_id.hex[:6]}@example.org",
                    name="C",
                    time_zone="UTC",
                    is_global_admin=False,
                    is_operator=False,
                    is_active=True,
                    profile_completed=True,
                    created_at=now,
                )
            )
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(
                    insert(BusyBlock).values(
                        id=uuid.uuid4(),
                        user_id=user_id,
                        start_at=now,
                        end_at=now - timedelta(hours=1),
                        kind="busy",
                    )
                )
        row = {
            "user_id": user_id,
            "provider": "google",
            "status": "connected",
            "label": "Google",
            "account_email": "a@b.c",
            "connected_at": now,
            "failure_count": 0,
        }
        async with engine.begin() as conn:
            await conn.execute(insert(CalendarConnection).values(id=uuid.uuid4(), **row))
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(insert(CalendarConnection).values(id=uuid.uuid4(), **row))
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(
                    insert(User).values(
                        id=uuid.uuid4(),
                        email="UPPER@example.org",
                        name="U",
                        time_zone="UTC",
                        is_global_admin=False,
                        is_operator=False,
                        is_active=True,
                        profile_completed=True,
                        created_at=now,
                    )
                )
    finally:
        await engine.dispose()
