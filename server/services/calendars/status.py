"""Calendar connections: status for display. Connecting and syncing live in ``connect``
and ``sync``; this module only answers "what is connected" for pages and the API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import CalendarConnection
from server.models.enums import CalendarStatus

PROVIDER_LABELS = {
    "google": "Google",
    "microsoft": "Microsoft 365 / Outlook.com",
    "icloud": "iCloud / CalDAV",
}


async def connection_for(session: AsyncSession, user_id: uuid.UUID) -> CalendarConnection | None:
    result = await session.exec(
        select(CalendarConnection).where(CalendarConnection.user_id == user_id)
    )
    connection = result.first()
    if connection is not None and connection.status == CalendarStatus.DISCONNECTED:
        return None
    return connection


async def statuses(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, CalendarConnection]:
    """Connections of many users in one query (no N+1); missing users have none."""
    if not user_ids:
        return {}
    result = await session.exec(
        select(CalendarConnection).where(
            col(CalendarConnection.user_id).in_(list(user_ids)),
            CalendarConnection.status != CalendarStatus.DISCONNECTED,
        )
    )
    return {row.user_id: row for row in result.all()}
