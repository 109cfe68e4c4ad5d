"""One token refresh per connection at a time across every node (Microsoft).

Microsoft rotates refresh tokens: the one used is refused from then on. Two processes
that refresh the same account with copies of the same stored token cache would leave
the loser with a dead grant. On PostgreSQL a call to a provider with rotating tokens
therefore runs inside a transaction holding ``pg_advisory_xact_lock`` on the connection,
re-reads the newest encrypted token *after* taking the lock (another node may just have
rotated it), and writes a refreshed one before the commit releases the lock. SQLite
means one process, where the provider's own per-account lock suffices.

Providers stay free of database code: this module takes the lock around their call.
``sync.sync_users`` (every busy-time read, background or on demand) uses it. Meeting
writes, change reads and push renewals do not yet: they run inside transactions that may
already have written the connection row, where a second session's update would wait on
the first forever; there, the provider's per-process lock and newest-cache recovery
remain the protection.

Each locked call holds a database connection while it waits and runs, so at most
``MAX_LOCKED_CALLS`` run at once per process (the pool also serves requests); a big
on-demand read of many Microsoft calendars waits its turn within its time budget.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
import zlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import text, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import CalendarConnection
from server.models.enums import ProviderName
from server.providers.base import AuthExpired, Credentials
from server.services.calendars.deps import CalendarDeps, load_credentials, secret_binding

T = TypeVar("T")

# Providers whose refresh tokens are single-use.
ROTATING = frozenset({ProviderName.MICROSOFT})
MAX_LOCKED_CALLS = 8
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


async def call_with_newest_token(
    db: AsyncSession,
    deps: CalendarDeps,
    connection_id: uuid.UUID,
    call: Callable[[Credentials], Awaitable[T]],
) -> T:
    """Run ``call`` with the newest stored credentials under the connection's refresh
    lock, in a session of its own, and store what the provider refreshed before the
    lock is released. ``db`` only lends its engine."""
    async with _gate():
        return await _locked_call(db, deps, connection_id, call)


async def _locked_call(
    db: AsyncSession,
    deps: CalendarDeps,
    connection_id: uuid.UUID,
    call: Callable[[Credentials], Awaitable[T]],
) -> T:
    async with AsyncSession(db.bind, expire_on_commit=False) as locked, locked.begin():
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
        user_id = row.user_id
        credentials = load_credentials(deps.secrets, row)
        try:
            return await call(credentials)
        finally:
            if credentials.changed:
                await locked.exec(
                    update(CalendarConnection)
                    .where(col(CalendarConnection.id) == connection_id)
                    .values(
                        encrypted_secret=deps.secrets.encrypt(
                            credentials.secret, binding=secret_binding(user_id)
                        )
                    )
                )
                credentials.changed = False
