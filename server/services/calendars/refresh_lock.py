"""One token refresh per connection at a time across every node (Microsoft).

Microsoft rotates refresh tokens: the one used is refused from then on. Two processes
that refresh the same account with copies of the same stored token cache would leave
the loser with a dead grant. On PostgreSQL every call to a provider with rotating tokens
(busy reads, synced or on demand; meeting writes; change reads and removal rechecks;
push open/renew/close)
therefore first runs ``prepare``: in a short session and transaction of its own it
takes ``pg_advisory_xact_lock`` on the connection, re-reads the newest encrypted token
*after* the lock (another node may just have rotated it), refreshes through the provider
when the access token expires within ``MIN_VALID`` and stores the result; the commit
releases the lock. The provider call itself then runs unlocked with a token that stays
valid for it. When Graph refuses that token anyway (revoked early), the provider calls
the credentials' ``renew`` hook, which goes through the same lock: it adopts a token
another node stored meanwhile, or refreshes and stores one.

The caller's own transaction never holds or waits for the lock, so a meeting write cannot
deadlock with a busy read of the same connection. Callers must not write the connection row in their own transaction before a
provider call (none does: they write it after). As a last guard against one that does,
the locked session's write of the row gives up after ``ROW_WAIT`` and leaves the
refreshed token to the caller's own save (``save_refreshed_credentials``) with a
warning: nothing hangs, but until that caller commits another node may read the older
token and fail its call. SQLite means one process, where the provider's own
per-account lock suffices. Providers stay free of database code: they only see the hook.

Each locked step holds a database connection briefly, so at most ``MAX_LOCKED_CALLS`` run
at once per process (the pool also serves requests).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import CalendarConnection
from server.models.enums import ProviderName
from server.providers.base import AuthExpired, Credentials, TokenRefresher
from server.services.calendars.deps import CalendarDeps, load_credentials, secret_binding

T = TypeVar("T")
log = logging.getLogger("tandem.refresh_lock")

# Providers whose refresh tokens are single-use.
ROTATING = frozenset({ProviderName.MICROSOFT})
MAX_LOCKED_CALLS = 8
# An access token handed to a provider call stays valid at least this long (msal itself
# refreshes within five minutes of expiry, which would happen outside the lock).
MIN_VALID = timedelta(minutes=10)
# How long the locked session waits for the connection row (held by a caller's own
# transaction) before leaving the refreshed token to the caller's save.
ROW_WAIT = "3s"
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _gate() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(MAX_LOCKED_CALLS)
    return gate


def lock_key(connection_id: uuid.UUID) -> int:
    """A signed 64-bit key for ``pg_advisory_xact_lock``; collisions only serialise two
    connections' refreshes, they never mix them."""
    digest = zlib.crc32(b"tandem:token-refresh:" + connection_id.bytes)
    return (0x746E << 32) | digest  # "tn" namespace in the high bits


def needs_lock(db: AsyncSession, provider: ProviderName) -> bool:
    bind = db.bind
    return provider in ROTATING and bind is not None and bind.dialect.name == "postgresql"


async def prepare(
    db: AsyncSession, deps: CalendarDeps, connection_id: uuid.UUID, credentials: Credentials
) -> None:
    """Make ``credentials`` the newest stored ones with an access token valid for at least
    ``MIN_VALID``, refreshed and stored under the connection's lock, and attach the locked
    ``renew`` hook. A no-op where no lock is needed (SQLite, non-rotating providers).
    ``db`` only lends its engine; its transaction is left alone."""
    if not needs_lock(db, credentials.provider):
        return
    bind = db.bind
    refresher = _refresher(deps, credentials.provider)
    async with _gate(), _locked(bind, deps, connection_id) as (locked, user_id, stored):
        _adopt(credentials, stored)
        if refresher is not None:
            await refresher.refresh_tokens(
                credentials, min_valid_seconds=int(MIN_VALID.total_seconds())
            )
        await _store(locked, deps, connection_id, user_id, credentials)

    async def renew(refused: Credentials) -> None:
        await _renew(bind, deps, connection_id, refused)

    credentials.renew = renew


async def call_with_fresh_token(
    db: AsyncSession,
    deps: CalendarDeps,
    connection_id: uuid.UUID,
    credentials: Credentials,
    call: Callable[[Credentials], Awaitable[T]],
) -> T:
    """``prepare`` the credentials, then run ``call`` with them (unlocked)."""
    await prepare(db, deps, connection_id, credentials)
    return await call(credentials)


async def _renew(
    bind: Any, deps: CalendarDeps, connection_id: uuid.UUID, credentials: Credentials
) -> None:
    """The provider's access token was refused: under the lock, take a token another node
    stored since, or refresh and store one."""
    refresher = _refresher(deps, credentials.provider)
    async with _gate(), _locked(bind, deps, connection_id) as (locked, user_id, stored):
        if credentials.changed:
            pass  # ours is newer (refreshed but not stored yet): store it
        elif _cache(stored) != _cache(credentials):
            _adopt(credentials, stored)  # another node rotated it meanwhile
        elif refresher is not None:
            await refresher.refresh_tokens(credentials, force=True)
        await _store(locked, deps, connection_id, user_id, credentials)


def _refresher(deps: CalendarDeps, provider: ProviderName) -> TokenRefresher | None:
    candidate = deps.registry.get(provider)
    return candidate if isinstance(candidate, TokenRefresher) else None


def _cache(credentials: Credentials) -> object:
    return credentials.secret.get("token_cache")


def _adopt(credentials: Credentials, stored: Credentials) -> None:
    credentials.secret = stored.secret
    credentials.changed = False


@asynccontextmanager
async def _locked(
    bind: Any, deps: CalendarDeps, connection_id: uuid.UUID
) -> AsyncIterator[tuple[AsyncSession, uuid.UUID, Credentials]]:
    """A session of its own holding the connection's advisory lock, with the newest
    stored credentials; the commit on the way out releases the lock."""
    async with AsyncSession(bind, expire_on_commit=False) as locked, locked.begin():
        await locked.exec(  # type: ignore[call-overload]
            text("SELECT pg_advisory_xact_lock(:key)"), params={"key": lock_key(connection_id)}
        )
        row = (
            await locked.exec(
                select(CalendarConnection).where(col(CalendarConnection.id) == connection_id)
            )
        ).first()
        if row is None or row.encrypted_secret is None:
            raise AuthExpired("The calendar was disconnected")
        yield locked, row.user_id, load_credentials(deps.secrets, row)


async def _store(
    locked: AsyncSession,
    deps: CalendarDeps,
    connection_id: uuid.UUID,
    user_id: uuid.UUID,
    credentials: Credentials,
) -> None:
    """Write refreshed credentials before the lock is released. If the row is held by a
    transaction that does not finish (the caller's own), leave ``changed`` set so that
    the caller's save stores them instead of waiting forever."""
    if not credentials.changed:
        return
    try:
        async with locked.begin_nested():
            await locked.exec(  # type: ignore[call-overload]
                text(f"SET LOCAL lock_timeout = '{ROW_WAIT}'")
            )
            await locked.exec(
                update(CalendarConnection)
                .where(col(CalendarConnection.id) == connection_id)
                .values(
                    encrypted_secret=deps.secrets.encrypt(
                        credentials.secret, binding=secret_binding(user_id)
                    )
                )
            )
    except DBAPIError:
        # A caller must not write the connection row before a provider call in the same
        # transaction (none does): another node could then spend the old token.
        log.warning("refreshed token of connection %s left to the caller", connection_id)
        return
    credentials.changed = False
