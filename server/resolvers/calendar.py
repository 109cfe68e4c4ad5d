"""Connecting and disconnecting the caller's own calendar."""

from __future__ import annotations

import strawberry

from server.models.enums import ProviderName
from server.schema.calendar import (
    CalendarConnectionPayload,
    StartCalendarConnectionPayload,
)
from server.schema.common import to_user_error
from server.schema.context import Context
from server.schema.users import CalendarConnection, CalendarProvider
from server.services.calendars import connect
from server.services.errors import DomainError


def _viewer(info: strawberry.Info[Context, None]) -> connect.Viewer:
    assert info.context.viewer is not None
    return info.context.viewer


async def start_calendar_connection(
    info: strawberry.Info[Context, None], provider: CalendarProvider
) -> StartCalendarConnectionPayload:
    """The provider's consent URL for the caller's own calendar (never on behalf of someone)."""
    ctx = info.context
    try:
        url = await connect.start_oauth(
            ctx.db, ctx.services.calendar, _viewer(info), ProviderName(provider.value)
        )
    except DomainError as exc:
        await ctx.db.rollback()
        return StartCalendarConnectionPayload(authorization_url=None, errors=[to_user_error(exc)])
    await ctx.db.commit()
    return StartCalendarConnectionPayload(authorization_url=url, errors=[])


async def connect_caldav_calendar(
    info: strawberry.Info[Context, None],
    username: str,
    app_password: str,
    server_url: str | None = None,
) -> CalendarConnectionPayload:
    """iCloud or another CalDAV server, with an app-specific password (stored encrypted)."""
    ctx = info.context
    try:
        row = await connect.connect_with_password(
            ctx.db,
            ctx.services.calendar,
            _viewer(info),
            username=username[:320],
            password=app_password[:200],
            server_url=(server_url or "")[:500],
        )
    except DomainError as exc:
        await ctx.db.rollback()
        return CalendarConnectionPayload(calendar=None, errors=[to_user_error(exc)])
    return CalendarConnectionPayload(calendar=CalendarConnection.from_row(row), errors=[])


async def disconnect_calendar(info: strawberry.Info[Context, None]) -> CalendarConnectionPayload:
    ctx = info.context
    try:
        await connect.disconnect(ctx.db, ctx.services.calendar, _viewer(info))
    except DomainError as exc:
        await ctx.db.rollback()
        return CalendarConnectionPayload(calendar=None, errors=[to_user_error(exc)])
    return CalendarConnectionPayload(
        calendar=CalendarConnection.from_row(None, user_id=ctx.user.id), errors=[]
    )
