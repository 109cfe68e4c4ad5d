"""Push notifications from Google (watch channels) and Microsoft (Graph subscriptions).

A notification is only a hint that something changed: it never carries data Tandem
stores, and it can trigger no more than marking one calendar for a resync (coalesced:
many notifications before the next job tick cause one sync). Each channel has its own
random secret (Google's channel token, Graph's clientState), stored hashed and compared
in constant time; unknown channels, wrong secrets and mismatched resources are
acknowledged and ignored, so a sender learns nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import CalendarConnection, PushSubscription
from server.models.base import utcnow
from server.models.enums import CalendarStatus, ProviderName
from server.providers.base import Credentials, ProviderError, PushChannel
from server.providers.google import GoogleProvider
from server.providers.microsoft import MicrosoftProvider
from server.providers.secrets import SecretError
from server.services.calendars.deps import (
    CalendarDeps,
    load_credentials,
    save_refreshed_credentials,
)

log = logging.getLogger("tandem.push")

RENEW_BEFORE = timedelta(hours=12)
MAX_VALIDATION_TOKEN = 1024


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _matches(stored_hash: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(stored_hash, _hash(presented[:256]))


def webhook_url(deps: CalendarDeps, provider: ProviderName) -> str:
    return f"{deps.base_url.rstrip('/')}/webhooks/{provider.value}"


async def open_channel(
    db: AsyncSession,
    deps: CalendarDeps,
    user_id: uuid.UUID,
    provider_name: ProviderName,
    credentials: Credentials,
) -> PushSubscription | None:
    """Ask the provider to push changes; failures only mean we keep polling."""
    provider = deps.registry.get(provider_name)
    secret = secrets.token_urlsafe(32)
    try:
        if isinstance(provider, GoogleProvider):
            channel = await provider.open_push_channel(
                credentials, webhook_url(deps, provider_name), secret, str(uuid.uuid4())
            )
        elif isinstance(provider, MicrosoftProvider):
            channel = await provider.open_push_channel(
                credentials,
                webhook_url(deps, provider_name),
                secret,
                lifecycle_url=webhook_url(deps, provider_name),
            )
        else:
            return None  # CalDAV has no push for third-party clients: polling covers it
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
    db: AsyncSession, deps: CalendarDeps, user_id: uuid.UUID, credentials: Credentials | None
) -> None:
    """Stop the user's channels (best effort) and forget them: later notifications for
    them are ignored."""
    rows = (
        await db.exec(select(PushSubscription).where(PushSubscription.user_id == user_id))
    ).all()
    for row in rows:
        if credentials is not None:
            await _stop(deps, row, credentials)
    await db.exec(delete(PushSubscription).where(col(PushSubscription.user_id) == user_id))


async def _stop(deps: CalendarDeps, row: PushSubscription, credentials: Credentials) -> None:
    provider = deps.registry.get(row.provider)
    channel = PushChannel(
        channel_id=row.channel_id, resource_id=row.resource_id, expires_at=row.expires_at
    )
    try:
        if isinstance(provider, GoogleProvider | MicrosoftProvider):
            await provider.close_push_channel(credentials, channel)
    except ProviderError as exc:
        log.info("push channel %s not closed: %s", row.id, type(exc).__name__)


async def _request_sync(db: AsyncSession, user_id: uuid.UUID) -> None:
    connection = (
        await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user_id))
    ).first()
    if connection is not None and connection.status == CalendarStatus.CONNECTED:
        connection.sync_requested = True
        db.add(connection)


async def handle_google(db: AsyncSession, headers: Mapping[str, str]) -> bool:
    """One Google notification. True when it was authentic and marked a resync."""
    channel_id = headers.get("x-goog-channel-id", "")[:200]
    row = (
        await db.exec(select(PushSubscription).where(PushSubscription.channel_id == channel_id))
    ).first()
    if row is None or row.provider != ProviderName.GOOGLE:
        return False
    if not _matches(row.secret_hash, headers.get("x-goog-channel-token")):
        log.warning("google notification with a wrong token for channel %s", row.id)
        return False
    if row.resource_id and headers.get("x-goog-resource-id") != row.resource_id:
        return False
    if headers.get("x-goog-resource-state") == "sync":  # the channel's hello: nothing changed
        return False
    await _request_sync(db, row.user_id)
    await db.commit()
    return True


def validation_echo(token: str) -> str | None:
    """Graph's subscription handshake: echo the token (plain text, capped)."""
    if not token or len(token) > MAX_VALIDATION_TOKEN:
        return None
    return token


async def handle_microsoft(db: AsyncSession, deps: CalendarDeps, payload: Any) -> int:
    """Graph change and lifecycle notifications. Returns how many were authentic."""
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        return 0
    accepted = 0
    for item in items[:100]:
        if not isinstance(item, dict):
            continue
        subscription_id = str(item.get("subscriptionId", ""))[:200]
        row = (
            await db.exec(
                select(PushSubscription).where(PushSubscription.channel_id == subscription_id)
            )
        ).first()
        if row is None or row.provider != ProviderName.MICROSOFT:
            continue
        client_state = item.get("clientState")
        if not _matches(row.secret_hash, client_state if isinstance(client_state, str) else None):
            log.warning("microsoft notification with a wrong clientState for %s", row.id)
            continue
        accepted += 1
        lifecycle = item.get("lifecycleEvent")
        if lifecycle == "subscriptionRemoved":
            row.expires_at = utcnow()  # the renewal job recreates it
        elif lifecycle == "reauthorizationRequired":
            row.expires_at = min(row.expires_at, utcnow() + timedelta(minutes=1))
        await _request_sync(db, row.user_id)
    await db.commit()
    return accepted


async def renew_expiring(db: AsyncSession, deps: CalendarDeps, now: datetime | None = None) -> int:
    """Replace channels that expire soon (Google has no renewal call: open anew, stop old)."""
    now = now or utcnow()
    rows = (
        await db.exec(
            select(PushSubscription).where(col(PushSubscription.expires_at) < now + RENEW_BEFORE)
        )
    ).all()
    renewed = 0
    for row in rows:
        connection = (
            await db.exec(
                select(CalendarConnection).where(CalendarConnection.user_id == row.user_id)
            )
        ).first()
        if connection is None or connection.status != CalendarStatus.CONNECTED:
            await db.delete(row)
            continue
        try:
            credentials = load_credentials(deps.secrets, connection)
        except SecretError:
            continue
        await _stop(deps, row, credentials)
        await db.delete(row)
        if await open_channel(db, deps, row.user_id, row.provider, credentials) is not None:
            renewed += 1
        save_refreshed_credentials(deps.secrets, connection, credentials)
    await db.commit()
    return renewed
