"""Calendar connections: status for display. Connecting and syncing live in ``connect``
and ``sync``; this module only answers "what is connected" for pages and the API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import CalendarConnection, PushSubscription
from server.models.enums import CalendarStatus, ProviderName
from server.services.calendars.sync import PROBLEM_PROVIDER_CONFIG

# The product's words for each provider (docs/vocabulary.md): the same in buttons,
# headings, messages and emails, matching "Your Google / Office 365 / Outlook.com / iCal
# calendar is connected".
PROVIDER_LABELS = {
    "google": "Google",
    "microsoft": "Office 365 / Outlook.com",
    "icloud": "iCal / CalDAV",
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


async def operator_problems(session: AsyncSession) -> dict[ProviderName, int]:
    """Providers that refuse Tandem's own configuration (an expired client secret), with
    how many connections are held up: shown to global administrators, since no user can
    fix it."""
    rows = await session.exec(
        select(CalendarConnection.provider, func.count())
        .where(
            CalendarConnection.error_code == PROBLEM_PROVIDER_CONFIG,
            CalendarConnection.status != CalendarStatus.DISCONNECTED,
        )
        .group_by(col(CalendarConnection.provider))
    )
    return {ProviderName(provider): int(count) for provider, count in rows.all()}


async def push_paused(session: AsyncSession, user_id: uuid.UUID) -> bool:
    """Whether the user's live updates (push) are failing to renew, so Tandem is polling."""
    rows = await session.exec(
        select(PushSubscription.id).where(
            PushSubscription.user_id == user_id, col(PushSubscription.renew_failures) > 0
        )
    )
    return rows.first() is not None
