"""Refreshing cached busy blocks from providers.

Providers are called concurrently without holding a database session; results are then
written in one transaction. One provider's outage never affects another's users: every
connection's failure is recorded on that connection only. Transient failures (rate limits,
outages, timeouts) keep the cached blocks and back off exponentially with full jitter,
honouring ``Retry-After``; a lost grant marks the connection ``needs_reauth``; a calendar
the provider could not read marks it ``error`` and its owner *unknown*, never free.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from sqlalchemy import bindparam, delete
from sqlalchemy import select as sa_select
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import BusyBlock, BusyCoverage, CalendarConnection, User, busy_version
from server.models.base import UTCDateTime, utcnow
from server.models.enums import CalendarStatus
from server.providers.base import (
    AccessDenied,
    AuthExpired,
    BusyFetch,
    Credentials,
    InvalidCredentials,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
)
from server.providers.secrets import SecretError
from server.services.calendars import refresh_lock
from server.services.calendars.coverage import (
    LOOKBEHIND,
    drop_uncovered_blocks,
    replace_blocks,
)
from server.services.calendars.deps import (
    CalendarDeps,
    load_credentials,
    save_refreshed_credentials,
)

log = logging.getLogger("tandem.sync")

BACKOFF_BASE_SECONDS = 30.0
BACKOFF_CAP_SECONDS = 3600.0
# ``CalendarConnection.error_code``: why the last sync failed.
PROBLEM_AUTH_LOST = "auth_lost"  # the grant is gone: only the user reconnecting helps
PROBLEM_ACCESS_POLICY = "access_policy"  # an organization's policy blocks Tandem
PROBLEM_ACCESS_DENIED = "access_denied"  # a 403 naming no policy: often passing
PROBLEM_PROVIDER_CONFIG = "provider_config"  # Tandem's own client credentials: operators
PROBLEM_UNAVAILABLE = "unavailable"
PROBLEM_UNREADABLE = "unreadable"
PROVIDER_LABEL = {"google": "Google", "microsoft": "Microsoft", "icloud": "The CalDAV server"}


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    user_id: uuid.UUID
    ok: bool
    status: CalendarStatus
    detail: str | None = None


def backoff_delay(failures: int, retry_after: float | None = None) -> float:
    """Full jitter, ``random(0, min(cap, base * 2**n))``; a provider's Retry-After wins."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(failures - 1, 0))
    jittered = random.uniform(0, ceiling)
    if retry_after is not None:
        return max(retry_after, 0.0) + random.uniform(0, 1.0)
    return jittered


class SyncState(Protocol):
    """What decides whether a connection is due for a refresh (a ``CalendarConnection``,
    or a row of its columns)."""

    @property
    def integration_id(self) -> uuid.UUID | None: ...
    @property
    def status(self) -> CalendarStatus: ...
    @property
    def last_synced_at(self) -> datetime | None: ...
    @property
    def sync_requested(self) -> bool: ...
    @property
    def retry_after(self) -> datetime | None: ...


def is_stale(connection: SyncState, now: datetime, max_age: timedelta) -> bool:
    """The one rule for "due for a refresh": a personal connection (covered people are
    refreshed in batches by ``services.integrations.sync``) the user need not reconnect,
    never read, older than ``max_age`` or asked for by a push, and not backing off.

    ``stale_user_ids`` narrows with the same rule in SQL (``_STALE_WHERE``) and then
    decides with this; ``availability.busy`` decides with this on the connections it
    has already read."""
    return (
        connection.integration_id is None
        and connection.status not in _NOT_REFRESHED
        and (
            connection.last_synced_at is None
            or connection.last_synced_at < now - max_age
            or connection.sync_requested is True
        )
        and (connection.retry_after is None or connection.retry_after <= now)
    )


_NOT_REFRESHED = (CalendarStatus.NEEDS_REAUTH, CalendarStatus.DISCONNECTED)
_STALE_WHERE = (
    col(CalendarConnection.integration_id).is_(None),
    col(CalendarConnection.status).not_in(_NOT_REFRESHED),
    or_(
        col(CalendarConnection.last_synced_at).is_(None),
        col(CalendarConnection.last_synced_at) < bindparam("cutoff", type_=UTCDateTime()),
        col(CalendarConnection.sync_requested).is_(True),
    ),
    or_(
        col(CalendarConnection.retry_after).is_(None),
        col(CalendarConnection.retry_after) <= bindparam("now", type_=UTCDateTime()),
    ),
)
_STALE_COLUMNS: Any = sa_select(
    col(CalendarConnection.user_id),
    col(CalendarConnection.integration_id),
    col(CalendarConnection.status),
    col(CalendarConnection.last_synced_at),
    col(CalendarConnection.sync_requested),
    col(CalendarConnection.retry_after),
)
# Built once: the request path no longer asks, but the job loop does every minute.
_STALE = _STALE_COLUMNS.where(*_STALE_WHERE)
_STALE_AMONG = _STALE.where(col(CalendarConnection.user_id).in_(bindparam("ids", expanding=True)))


async def stale_user_ids(
    db: AsyncSession, user_ids: Sequence[uuid.UUID] | None, max_age: timedelta
) -> list[uuid.UUID]:
    """Connected users whose cache is older than ``max_age`` and who are not backing off
    (``is_stale``)."""
    now = utcnow()
    params: dict[str, Any] = {"cutoff": now - max_age, "now": now}
    if user_ids is None:
        rows = (await db.exec(_STALE, params=params)).all()
    else:
        if not user_ids:
            return []
        params["ids"] = list(user_ids)
        rows = (await db.exec(_STALE_AMONG, params=params)).all()
    return [row.user_id for row in rows if is_stale(row, now, max_age)]


async def sync_users(
    db: AsyncSession,
    deps: CalendarDeps,
    user_ids: Sequence[uuid.UUID],
    *,
    budget_seconds: float | None = None,
) -> dict[uuid.UUID, SyncOutcome]:
    """Fetch and store busy blocks for these users' connections (skipping users who must
    reconnect). Calls that exceed ``budget_seconds`` are abandoned and count as outages."""
    if not user_ids:
        return {}
    rows = (
        await db.exec(
            select(CalendarConnection, User.time_zone)
            .join(User, col(User.id) == col(CalendarConnection.user_id))
            .where(
                col(CalendarConnection.user_id).in_(list(user_ids)),
                col(CalendarConnection.integration_id).is_(None),
                CalendarConnection.status != CalendarStatus.NEEDS_REAUTH,
                CalendarConnection.status != CalendarStatus.DISCONNECTED,
            )
        )
    ).all()
    now = utcnow()
    start = now - LOOKBEHIND
    end = now + timedelta(days=deps.horizon_days)
    jobs: list[tuple[CalendarConnection, Credentials | None, asyncio.Task[BusyFetch] | None]] = []
    for connection, zone in rows:
        try:
            credentials = load_credentials(deps.secrets, connection)
        except SecretError:
            jobs.append((connection, None, None))
            continue
        provider = deps.registry.get(connection.provider)
        # Several nodes: the newest token, refreshed under the connection's lock first.
        fetch = refresh_lock.call_with_fresh_token(
            db,
            deps,
            connection.id,
            credentials,
            partial(provider.fetch_busy, start=start, end=end, time_zone=zone),
        )
        task = asyncio.ensure_future(
            asyncio.wait_for(fetch, budget_seconds) if budget_seconds else fetch
        )
        jobs.append((connection, credentials, task))
    tasks = [task for _c, _cr, task in jobs if task is not None]
    if tasks:
        await asyncio.wait(tasks)
    outcomes: dict[uuid.UUID, SyncOutcome] = {}
    for job in jobs:
        outcome = await _apply(db, deps, *job, start, end, now)
        outcomes[job[0].user_id] = outcome
    await db.commit()
    return outcomes


async def _apply(
    db: AsyncSession,
    deps: CalendarDeps,
    connection: CalendarConnection,
    credentials: Credentials | None,
    task: asyncio.Task[BusyFetch] | None,
    start: datetime,
    end: datetime,
    now: datetime,
) -> SyncOutcome:
    label = PROVIDER_LABEL.get(connection.provider.value, "The provider")
    if credentials is None or task is None:
        return _fail(
            connection,
            CalendarStatus.ERROR,
            "Tandem could not read the stored credentials. Please reconnect.",
            PROBLEM_UNREADABLE,
        )
    save_refreshed_credentials(deps.secrets, connection, credentials)
    error = task.exception()
    if error is None:
        fetched = task.result()
        if not fetched.readable:
            # Nothing cached can be trusted any more: no blocks, no covered ranges.
            await db.exec(delete(BusyBlock).where(col(BusyBlock.user_id) == connection.user_id))
            busy_version.note_changed(db, [connection.user_id])
            await db.exec(
                delete(BusyCoverage).where(col(BusyCoverage.connection_id) == connection.id)
            )
            return _fail(
                connection,
                CalendarStatus.ERROR,
                f"{label} could not read your calendar, so your availability is unknown.",
                PROBLEM_UNREADABLE,
            )
        # Only the default horizon is replaced: ranges read on demand further out keep
        # their blocks; blocks no range covers any more (the day that slid into the
        # past) go.
        await replace_blocks(db, connection.user_id, (start, end), fetched.intervals)
        connection.status = CalendarStatus.CONNECTED
        connection.last_synced_at = now
        connection.synced_from, connection.synced_until = start, end
        await db.flush()
        await drop_uncovered_blocks(db, connection, deps.horizon_days)
        connection.last_error = None
        connection.error_code = None
        connection.failure_count = 0
        connection.retry_after = None
        connection.sync_requested = False
        db.add(connection)
        return SyncOutcome(connection.user_id, True, CalendarStatus.CONNECTED)
    if isinstance(error, AuthExpired | InvalidCredentials):
        return _fail(
            connection,
            CalendarStatus.NEEDS_REAUTH,
            f"{label} no longer accepts Tandem's access. Reconnect your calendar.",
            PROBLEM_AUTH_LOST,
        )
    if isinstance(error, AccessDenied):
        # The grant is fine; reconnecting would not help. A policy stays until an
        # administrator lifts it (Exchange applies changes within about 30 minutes), a
        # passing 403 goes away: both are retried with backoff, the cache kept meanwhile.
        if error.policy:
            reason = (
                f"{label} says your organization's policy does not let Tandem read this "
                "calendar. Ask your IT administrator to allow Tandem; Tandem keeps trying."
            )
        else:
            reason = f"{label} refused access to your calendar for now; Tandem will retry."
        _defer(
            connection, now, None, PROBLEM_ACCESS_POLICY if error.policy else PROBLEM_ACCESS_DENIED
        )
        connection.status = CalendarStatus.ERROR
        connection.last_error = reason
        db.add(connection)
        log.info("sync of user %s refused: access denied", connection.user_id)
        return SyncOutcome(connection.user_id, False, connection.status, reason)
    if isinstance(error, ProviderMisconfigured):
        # Tandem's own app credentials were refused (an expired client secret): an
        # operator's problem, shown to administrators; the user is not asked to reconnect.
        log.error(
            "sync of user %s: %s refused Tandem's client credentials; operators must update them",
            connection.user_id,
            label,
        )
        _defer(connection, now, None, PROBLEM_PROVIDER_CONFIG)
        connection.last_error = (
            f"Tandem cannot reach {label} right now because of a configuration problem on "
            "Tandem's side. Administrators have been told; nothing to do on yours."
        )
        db.add(connection)
        return SyncOutcome(connection.user_id, False, connection.status, connection.last_error)
    if isinstance(error, RateLimited | ProviderUnavailable | TimeoutError | asyncio.TimeoutError):
        retry = error.retry_after if isinstance(error, RateLimited) else None
        _defer(connection, now, retry, PROBLEM_UNAVAILABLE)
        connection.last_error = f"{label} did not answer; Tandem will retry."
        db.add(connection)
        log.info("sync deferred for user %s: %s", connection.user_id, type(error).__name__)
        return SyncOutcome(connection.user_id, False, connection.status, connection.last_error)
    if isinstance(error, ProviderError):
        return _fail(
            connection,
            CalendarStatus.ERROR,
            f"{label} refused to share your busy times.",
            PROBLEM_UNREADABLE,
        )
    # Anything else (a malformed answer, a parser bug) must not roll back the other
    # connections of this batch: record it on this connection only, without details.
    log.warning("sync of user %s failed: %s", connection.user_id, type(error).__name__)
    return _fail(
        connection,
        CalendarStatus.ERROR,
        f"{label} sent an answer Tandem could not read.",
        PROBLEM_UNREADABLE,
    )


def _defer(
    connection: CalendarConnection, now: datetime, retry_after: float | None, code: str
) -> None:
    """Count a failure a later try can fix and back off before that try."""
    connection.failure_count += 1
    connection.retry_after = now + timedelta(
        seconds=backoff_delay(connection.failure_count, retry_after)
    )
    connection.error_code = code


def _fail(
    connection: CalendarConnection, status: CalendarStatus, reason: str, code: str
) -> SyncOutcome:
    connection.status = status
    connection.last_error = reason
    connection.error_code = code
    connection.failure_count += 1
    log.info("calendar of user %s is now %s", connection.user_id, status.value)
    return SyncOutcome(connection.user_id, False, status, reason)
