"""Cheap change detection for calendars without push (CalDAV: iCloud and others).

Every ``CALDAV_CHECK_SECONDS`` (30 s by default) each *recently active* user's CalDAV
account is asked for its calendars' ``getctag`` / ``sync-token`` (one small Depth-0
PROPFIND per calendar, no event data, ``CALDAV_CHECK_CONCURRENCY`` at once); only when the digest moved is the calendar marked
``sync_requested`` for a full read. So a change shows within a minute while the full read
(``SYNC_MAX_AGE_SECONDS``) stays rare.

*Recently active* means: signed in within ``CALDAV_ACTIVE_DAYS`` (a session created then
and not ended), used an API token within that time, or had a range of their calendar
asked about (``busy_coverage.last_used_at``) within it. Everyone else is refreshed by the
periodic full read and on demand when someone asks about them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta

from sqlmodel import col, exists, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import ApiToken, BusyCoverage, CalendarConnection, UserSession
from server.models.base import utcnow
from server.models.enums import CalendarStatus, ProviderName
from server.providers.base import ChangeTagProvider, ProviderError
from server.providers.secrets import SecretError
from server.services.calendars.deps import CalendarDeps, load_credentials

log = logging.getLogger("tandem.changes")

CHECK_CONCURRENCY = 20


async def active_candidates(
    db: AsyncSession, deps: CalendarDeps, active_days: int, now: datetime
) -> list[CalendarConnection]:
    """Connected accounts of providers with change tags, of recently active users, not
    backing off after a failure."""
    kinds = [name for name in ProviderName if _tagger(deps, name) is not None]
    if not kinds:
        return []
    since = now - timedelta(days=active_days)
    owner = col(CalendarConnection.user_id)
    active = or_(
        exists().where(
            col(UserSession.user_id) == owner,
            col(UserSession.created_at) >= since,
            col(UserSession.expires_at) > now,
        ),
        exists().where(col(ApiToken.user_id) == owner, col(ApiToken.last_used_at) >= since),
        exists().where(
            col(BusyCoverage.connection_id) == col(CalendarConnection.id),
            col(BusyCoverage.last_used_at) >= since,
        ),
    )
    query = select(CalendarConnection).where(
        col(CalendarConnection.provider).in_(kinds),
        CalendarConnection.status == CalendarStatus.CONNECTED,
        or_(
            col(CalendarConnection.retry_after).is_(None),
            col(CalendarConnection.retry_after) <= now,
        ),
        active,
    )
    return list((await db.exec(query)).all())


def _tagger(deps: CalendarDeps, name: ProviderName) -> ChangeTagProvider | None:
    try:
        provider = deps.registry.get(name)
    except KeyError:
        return None
    return provider if isinstance(provider, ChangeTagProvider) else None


async def detect_changes(
    db: AsyncSession,
    deps: CalendarDeps,
    *,
    active_days: int,
    concurrency: int = CHECK_CONCURRENCY,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Check every candidate's change tag (``concurrency`` at once) and mark the changed
    ones for a sync. Returns their users. A first check counts as a change (the tag was
    never stored), so nothing between connecting and the first check is missed."""
    now = now or utcnow()
    connections = await active_candidates(db, deps, active_days, now)
    gate = asyncio.Semaphore(max(concurrency, 1))

    async def tag_of(connection: CalendarConnection) -> str | None:
        provider = _tagger(deps, connection.provider)
        if provider is None:
            return None
        try:
            credentials = load_credentials(deps.secrets, connection)
        except SecretError:
            return None
        async with gate:
            try:
                return await provider.change_tag(credentials)
            except (ProviderError, TimeoutError) as exc:  # the full read reports problems
                log.info(
                    "change check of user %s failed: %s", connection.user_id, type(exc).__name__
                )
                return None

    tags = await asyncio.gather(*(tag_of(c) for c in connections))
    changed: list[uuid.UUID] = []
    for connection, tag in zip(connections, tags, strict=True):
        if tag is None or tag == connection.change_tag:
            continue
        connection.change_tag = tag
        connection.sync_requested = True
        db.add(connection)
        changed.append(connection.user_id)
    await db.commit()
    return changed
