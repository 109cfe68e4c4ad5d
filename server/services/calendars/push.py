"""Push notifications from providers that have them (``PushProvider``: Google watch
channels, Graph subscriptions).

A notification is only a hint that something changed: it never carries data Tandem
stores, and it can trigger no more than marking one calendar for a resync
(``sync_requested``) and naming it to the caller, which queues its sync at once
(coalesced per calendar: many notifications while one sync waits cause that one sync). Each channel has its own
random secret (Google's channel token, Graph's clientState), stored hashed and compared
in constant time; unknown channels, wrong secrets and mismatched resources are
acknowledged and ignored, so a sender learns nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import CalendarConnection, PushSubscription
from server.models.base import utcnow
from server.models.enums import CalendarStatus, ProviderName
from server.providers.base import (
    AccessDenied,
    AuthExpired,
    Credentials,
    NoticeKind,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
    PushChannel,
    PushNotice,
    PushProvider,
    RateLimited,
)
from server.providers.secrets import SecretError
from server.services.calendars import refresh_lock
from server.services.calendars.deps import (
    CalendarDeps,
    load_credentials,
    save_refreshed_credentials,
)

log = logging.getLogger("tandem.push")

RENEW_BEFORE = timedelta(hours=12)
MAX_VALIDATION_TOKEN = 1024
RENEW_RETRY_BASE = timedelta(minutes=2)
RENEW_RETRY_CAP = timedelta(hours=2)
# Failures a later try of the same call can fix; anything else from a renewal means the
# provider no longer has the channel (Graph's 404), so a new one is opened at once.
_TRANSIENT = (ProviderUnavailable, RateLimited, AccessDenied, AuthExpired, ProviderMisconfigured)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _matches(stored_hash: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(stored_hash, _hash(presented[:256]))


def webhook_url(deps: CalendarDeps, provider: ProviderName) -> str:
    return f"{deps.base_url.rstrip('/')}/webhooks/{provider.value}"


def _push_provider(deps: CalendarDeps, provider_name: ProviderName) -> PushProvider | None:
    provider = deps.registry.get(provider_name)
    return provider if isinstance(provider, PushProvider) else None


def _channel(row: PushSubscription) -> PushChannel:
    return PushChannel(
        channel_id=row.channel_id, resource_id=row.resource_id, expires_at=row.expires_at
    )


async def open_channel(
    db: AsyncSession,
    deps: CalendarDeps,
    user_id: uuid.UUID,
    provider_name: ProviderName,
    credentials: Credentials,
    *,
    connection_id: uuid.UUID | None = None,
) -> PushSubscription | None:
    """Ask the provider to push changes; failures (and providers without push) only mean
    we keep polling. With ``connection_id`` the newest stored token is used, refreshed
    under the connection's lock (several nodes)."""
    provider = _push_provider(deps, provider_name)
    if provider is None:
        return None
    secret = secrets.token_urlsafe(32)
    try:
        if connection_id is not None:
            await refresh_lock.prepare(db, deps, connection_id, credentials)
        channel = await provider.open_push_channel(
            credentials, webhook_url(deps, provider_name), secret
        )
    except ProviderError as exc:
        log.info("push channel not opened for user %s: %s", user_id, type(exc).__name__)
        return None
    row = PushSubscription(
        user_id=user_id,
        provider=provider_name,
        channel_id=channel.channel_id,
        resource_id=channel.resource_id,
        secret_hash=_hash(secret),
        expires_at=channel.expires_at,
    )
    db.add(row)
    return row


async def close_channels(
    db: AsyncSession,
    deps: CalendarDeps,
    user_id: uuid.UUID,
    credentials: Credentials | None,
    *,
    connection_id: uuid.UUID | None = None,
) -> None:
    """Stop the user's channels (best effort) and forget them: later notifications for
    them are ignored. With ``connection_id`` the newest stored token is used, refreshed
    under the connection's lock (several nodes)."""
    rows = (
        await db.exec(select(PushSubscription).where(PushSubscription.user_id == user_id))
    ).all()
    if rows and credentials is not None and connection_id is not None:
        try:
            await refresh_lock.prepare(db, deps, connection_id, credentials)
        except ProviderError as exc:
            log.info("push channels of user %s not closed: %s", user_id, type(exc).__name__)
            credentials = None
    for row in rows:
        if credentials is not None:
            await _stop(deps, row, credentials)
    await db.exec(delete(PushSubscription).where(col(PushSubscription.user_id) == user_id))


async def _stop(deps: CalendarDeps, row: PushSubscription, credentials: Credentials) -> None:
    provider = _push_provider(deps, row.provider)
    if provider is None:
        return
    try:
        await provider.close_push_channel(credentials, _channel(row))
    except ProviderError as exc:
        log.info("push channel %s not closed: %s", row.id, type(exc).__name__)


async def _request_sync(db: AsyncSession, user_id: uuid.UUID) -> bool:
    connection = (
        await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user_id))
    ).first()
    if connection is not None and connection.status == CalendarStatus.CONNECTED:
        connection.sync_requested = True
        db.add(connection)
        return True
    return False


def validation_echo(token: str) -> str | None:
    """Graph's subscription handshake: echo the token (plain text, capped)."""
    if not token or len(token) > MAX_VALIDATION_TOKEN:
        return None
    return token


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """How many notifications were authentic, and whose calendars to sync now (each once,
    after the request was committed)."""

    accepted: int
    to_sync: tuple[uuid.UUID, ...]


async def handle_notifications(
    db: AsyncSession,
    deps: CalendarDeps,
    provider_name: ProviderName,
    headers: Mapping[str, str],
    payload: Any,
) -> PushOutcome:
    """One webhook request from ``provider_name``. Each authentic notification, except a
    channel's hello, marks its calendar for a resync; the caller queues those syncs."""
    provider = _push_provider(deps, provider_name)
    if provider is None:
        return PushOutcome(0, ())
    accepted = 0
    to_sync: dict[uuid.UUID, None] = {}
    for notice in provider.read_notifications(headers, payload):
        user_id = await _accept(db, provider_name, notice)
        if user_id is not None:
            accepted += 1
            if await _request_sync(db, user_id):
                to_sync[user_id] = None
    await db.commit()
    return PushOutcome(accepted, tuple(to_sync))


async def _accept(
    db: AsyncSession, provider_name: ProviderName, notice: PushNotice
) -> uuid.UUID | None:
    """The owner of the notice's channel when the notice is authentic, else None."""
    row = (
        await db.exec(
            select(PushSubscription).where(PushSubscription.channel_id == notice.channel_id)
        )
    ).first()
    if row is None or row.provider != provider_name:
        return None
    if not _matches(row.secret_hash, notice.secret):
        log.warning("%s notification with a wrong secret for channel %s", provider_name, row.id)
        return None
    if row.resource_id and notice.resource_id is not None and notice.resource_id != row.resource_id:
        return None
    if notice.kind == NoticeKind.HELLO:
        return None
    if notice.kind == NoticeKind.REMOVED:
        row.expires_at = utcnow()  # the renewal job opens a new channel, without waiting
        row.renew_retry_at = None
        db.add(row)
    elif notice.kind == NoticeKind.REAUTHORIZE:
        row.expires_at = min(row.expires_at, utcnow() + timedelta(minutes=1))
        db.add(row)
    return row.user_id


async def renew_expiring(db: AsyncSession, deps: CalendarDeps, now: datetime | None = None) -> int:
    """Renew channels that expire soon through the provider (Graph extends a subscription in
    place; Google opens a new channel). A channel the provider dropped is opened anew.

    When renewal fails the row stays and is tried again after a backoff (full jitter,
    doubling from ``RENEW_RETRY_BASE`` to ``RENEW_RETRY_CAP``); meanwhile the calendar is
    polled like any other (``sync``), and its status says live updates are paused
    (``status.push_paused``). One failed renewal never loses push for good."""
    now = now or utcnow()
    rows = (
        await db.exec(
            select(PushSubscription).where(
                col(PushSubscription.expires_at) < now + RENEW_BEFORE,
                or_(
                    col(PushSubscription.renew_retry_at).is_(None),
                    col(PushSubscription.renew_retry_at) <= now,
                ),
            )
        )
    ).all()
    renewed = 0
    for row in rows:
        connection = (
            await db.exec(
                select(CalendarConnection).where(CalendarConnection.user_id == row.user_id)
            )
        ).first()
        provider = _push_provider(deps, row.provider)
        if connection is None or connection.status != CalendarStatus.CONNECTED or not provider:
            await db.delete(row)
            continue
        try:
            credentials = load_credentials(deps.secrets, connection)
        except SecretError:
            continue
        if await _renew(db, deps, provider, row, connection.id, credentials, now):
            renewed += 1
            row.renew_failures = 0
            row.renew_retry_at = None
        else:
            row.renew_failures += 1
            ceiling = min(
                RENEW_RETRY_CAP.total_seconds(),
                RENEW_RETRY_BASE.total_seconds() * 2 ** (row.renew_failures - 1),
            )
            row.renew_retry_at = now + timedelta(seconds=random.uniform(ceiling / 2, ceiling))
        db.add(row)
        save_refreshed_credentials(deps.secrets, connection, credentials)
    await db.commit()
    return renewed


async def _renew(
    db: AsyncSession,
    deps: CalendarDeps,
    provider: PushProvider,
    row: PushSubscription,
    connection_id: uuid.UUID,
    credentials: Credentials,
    now: datetime,
) -> bool:
    """Move ``row`` to its renewed channel; False (row unchanged) when the provider failed."""
    secret = secrets.token_urlsafe(32)
    address = webhook_url(deps, row.provider)
    try:
        # Several nodes: the newest token, refreshed under the connection's lock first.
        await refresh_lock.prepare(db, deps, connection_id, credentials)
        channel: PushChannel | None = None
        if row.expires_at > now:
            try:
                channel = await provider.renew_push_channel(
                    credentials, _channel(row), address, secret
                )
            except _TRANSIENT:
                raise
            except ProviderError as exc:  # the provider no longer has it
                log.info("push channel %s gone at renewal: %s", row.id, type(exc).__name__)
        if channel is None:  # already gone (expired or removed by the provider): open anew
            await _stop(deps, row, credentials)
            channel = await provider.open_push_channel(credentials, address, secret)
    except ProviderError as exc:
        log.info("push channel %s not renewed: %s", row.id, type(exc).__name__)
        return False
    if channel.channel_id != row.channel_id:
        row.channel_id = channel.channel_id
        row.secret_hash = _hash(secret)
    row.resource_id = channel.resource_id
    row.expires_at = channel.expires_at
    return True
