"""Connecting, replacing and disconnecting a user's one calendar.

Rules enforced here, whoever calls (pages or GraphQL):
- only the user connects or disconnects their own calendar, never an admin working on
  behalf of them (checked when a flow starts *and* when it completes);
- only providers the user's program allows;
- an OAuth ``state`` is single-use, short-lived, bound to the user (and browser session)
  that started it and to one provider (mix-up defence); the PKCE verifier stays server-side;
- connecting again replaces the old connection: its grant is revoked and its busy blocks
  and secrets deleted; disconnecting does the same.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import timedelta
from typing import Any

import anyio.to_thread
from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import BusyBlock, CalendarConnection, OAuthFlow, User, busy_version
from server.models.base import utcnow
from server.models.enums import CalendarStatus, ProviderName
from server.providers.base import (
    AuthorizationDeclined,
    ConnectedAccount,
    Credentials,
    InvalidCredentials,
    OAuthApp,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    app_of,
)
from server.providers.secrets import SecretError
from server.services import audit
from server.services.calendars import oauth_apps, push, sync
from server.services.calendars import status as calendar_status
from server.services.calendars.deps import CalendarDeps, load_credentials, secret_binding
from server.services.errors import DomainError, ValidationFailed
from server.services.people import programs
from server.services.people.sessions import Viewer

log = logging.getLogger("tandem.calendar")

FLOW_LIFETIME = timedelta(minutes=10)
INITIAL_SYNC_BUDGET_SECONDS = 20.0
# The names people see on buttons are the names errors use.
PROVIDER_NAMES = {
    provider: calendar_status.PROVIDER_LABELS[provider.value] for provider in ProviderName
}


class ConnectRefused(DomainError):
    code = "forbidden"


def _flow_binding(user_id: uuid.UUID) -> str:
    return f"oauth-flow:{user_id}"


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def parse_provider(raw: str) -> ProviderName:
    try:
        return ProviderName(raw)
    except ValueError:
        raise ValidationFailed(
            f"Unknown calendar provider '{raw[:20]}'.", field="provider"
        ) from None


def _refuse_on_behalf(viewer: Viewer) -> None:
    if viewer.acting_on_behalf:
        raise ConnectRefused(
            f"You are working on behalf of {viewer.user.name}. Only they can connect or "
            "disconnect their own calendar."
        )


MANAGED_MESSAGE = (
    "Your calendar is connected through your organization's integration and managed by "
    "your organization's administrators, so it cannot be connected or disconnected here."
)


async def _refuse_managed(db: AsyncSession, user_id: uuid.UUID) -> None:
    """A covered person keeps exactly one calendar: the organization's."""
    current = (
        await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user_id))
    ).first()
    if current is not None and current.integration_id is not None:
        raise ConnectRefused(MANAGED_MESSAGE)


async def release_personal(
    db: AsyncSession, deps: CalendarDeps, user_id: uuid.UUID
) -> ProviderName | None:
    """Revoke and remove a user's personal connection and its busy blocks (an
    organization's integration now covers them). Returns the provider that was connected;
    does not commit. Callers enforce who may do this."""
    connection = (
        await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user_id))
    ).first()
    if connection is None or connection.integration_id is not None:
        return None
    await push.close_channels(
        db, deps, user_id, _credentials_or_none(deps, connection), connection_id=connection.id
    )
    await _revoke_quietly(deps, connection, user_id)
    await db.exec(delete(BusyBlock).where(col(BusyBlock.user_id) == user_id))
    busy_version.note_changed(db, [user_id])
    await db.delete(connection)
    await db.flush()
    return connection.provider


async def require_allowed(db: AsyncSession, user: User, provider: ProviderName) -> None:
    allowed = (await programs.settings_for_user(db, user.id)).allowed_providers
    if provider not in allowed:
        raise ConnectRefused(
            f"Your program does not allow {PROVIDER_NAMES[provider]} calendars. "
            f"Allowed: {', '.join(PROVIDER_NAMES[p] for p in allowed) or 'none'}."
        )


async def start_oauth(
    db: AsyncSession, deps: CalendarDeps, viewer: Viewer, provider_name: ProviderName
) -> str:
    """Begin consent; returns the provider's authorization URL to send the browser to."""
    _refuse_on_behalf(viewer)
    await _refuse_managed(db, viewer.user.id)
    await require_allowed(db, viewer.user, provider_name)
    provider = deps.registry.oauth(provider_name)
    if provider is None:
        raise ValidationFailed(
            f"{PROVIDER_NAMES[provider_name]} connects with a password form, not a redirect.",
            field="provider",
        )
    redirect_uri = deps.redirect_uri(provider_name)
    app = await oauth_apps.app_for(db, deps.secrets, provider_name)
    try:
        start = await anyio.to_thread.run_sync(provider.begin_authorization, redirect_uri, app)
    except ProviderError as exc:
        raise ValidationFailed(
            f"{PROVIDER_NAMES[provider_name]} sign-in is unavailable: {exc}"
        ) from exc
    now = utcnow()
    await db.exec(delete(OAuthFlow).where(col(OAuthFlow.expires_at) < now))
    db.add(
        OAuthFlow(
            state_hash=_state_hash(start.state),
            user_id=viewer.user.id,
            session_id=viewer.session_id,
            provider=provider_name,
            redirect_uri=redirect_uri,
            encrypted_flow=deps.secrets.encrypt(start.flow, binding=_flow_binding(viewer.user.id)),
            expires_at=now + FLOW_LIFETIME,
        )
    )
    audit.record(
        db,
        "calendar.connect_started",
        actor_id=viewer.actor.id,
        subject_id=viewer.user.id,
        provider=provider_name.value,
    )
    return start.url


async def finish_oauth(
    db: AsyncSession,
    deps: CalendarDeps,
    viewer: Viewer,
    provider_name: ProviderName,
    params: dict[str, str],
) -> CalendarConnection:
    """Complete consent from the provider's redirect. The flow row is consumed first, so a
    replayed callback finds nothing."""
    state = params.get("state", "")
    row = None
    if state:
        result = await db.exec(select(OAuthFlow).where(OAuthFlow.state_hash == _state_hash(state)))
        row = result.first()
    if row is not None:
        await db.delete(row)
        await db.commit()
    if (
        row is None
        or row.expires_at <= utcnow()
        or row.user_id != viewer.user.id
        or (row.session_id is not None and row.session_id != viewer.session_id)
        or row.provider != provider_name
    ):
        raise ConnectRefused(
            "This calendar connection link is invalid or has expired. Start again from Calendar Settings."
        )
    _refuse_on_behalf(viewer)
    await _refuse_managed(db, viewer.user.id)
    provider = deps.registry.oauth(provider_name)
    assert provider is not None
    try:
        flow: dict[str, Any] = deps.secrets.decrypt(
            row.encrypted_flow, binding=_flow_binding(viewer.user.id)
        )
    except SecretError as exc:
        raise ConnectRefused("This calendar connection link is invalid. Start again.") from exc
    if params.get("error"):
        raise ConnectRefused(
            f"You did not give Tandem access to your {PROVIDER_NAMES[provider_name]} calendar, "
            "so it is not connected."
        )
    current_app = await oauth_apps.app_for(db, deps.secrets, provider_name)
    if _app_identity(app_of(flow)) != _app_identity(current_app):
        raise ConnectRefused(
            f"Your organization changed the {PROVIDER_NAMES[provider_name]} app Tandem connects "
            "through while you were signing in. Start again from Calendar Settings."
        )
    try:
        account = await provider.finish_authorization(flow, params, row.redirect_uri)
    except AuthorizationDeclined as exc:
        raise ConnectRefused(f"{PROVIDER_NAMES[provider_name]} did not connect: {exc}") from exc
    except InvalidCredentials as exc:
        raise ValidationFailed(
            f"{PROVIDER_NAMES[provider_name]} refused the sign-in: {exc}"
        ) from exc
    except (ProviderUnavailable, RateLimited) as exc:
        raise ValidationFailed(
            f"{PROVIDER_NAMES[provider_name]} is not answering right now. Try again in a few minutes."
        ) from exc
    return await _store(db, deps, viewer, provider_name, account)


async def connect_with_password(
    db: AsyncSession,
    deps: CalendarDeps,
    viewer: Viewer,
    *,
    username: str,
    password: str,
    server_url: str | None,
) -> CalendarConnection:
    """iCloud or any CalDAV server: Apple offers no token flow, so the app-specific password
    is stored, encrypted."""
    _refuse_on_behalf(viewer)
    await _refuse_managed(db, viewer.user.id)
    await require_allowed(db, viewer.user, ProviderName.ICLOUD)
    provider = deps.registry.password(ProviderName.ICLOUD)
    assert provider is not None
    username = username.strip()
    if not username or not password:
        raise ValidationFailed(
            "Enter your Apple ID (or user name) and an app-specific password.", field="username"
        )
    try:
        account = await provider.connect_with_password(
            username, password, (server_url or "").strip()
        )
    except InvalidCredentials as exc:
        raise ValidationFailed(str(exc), field="app_password") from exc
    except (ProviderUnavailable, RateLimited) as exc:
        raise ValidationFailed(
            f"The calendar server did not answer: {exc}", field="server_url"
        ) from exc
    except ProviderError as exc:
        raise ValidationFailed(
            f"The calendar server refused the connection: {exc}", field="server_url"
        ) from exc
    return await _store(db, deps, viewer, ProviderName.ICLOUD, account)


async def _store(
    db: AsyncSession,
    deps: CalendarDeps,
    viewer: Viewer,
    provider_name: ProviderName,
    account: ConnectedAccount,
) -> CalendarConnection:
    user = viewer.user
    old = (
        await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user.id))
    ).first()
    if old is not None:
        await push.close_channels(
            db, deps, user.id, _credentials_or_none(deps, old), connection_id=old.id
        )
        await _revoke_quietly(deps, old, user.id)
        await db.delete(old)
        await db.flush()
    await db.exec(delete(BusyBlock).where(col(BusyBlock.user_id) == user.id))
    busy_version.note_changed(db, [user.id])
    connection = CalendarConnection(
        user_id=user.id,
        provider=provider_name,
        status=CalendarStatus.CONNECTED,
        label=account.label,
        account_email=account.account_email[:320],
        can_write_events=account.can_write_events,
        oauth_app_id=_app_row_id(account.credentials),
        encrypted_secret=deps.secrets.encrypt(
            account.credentials.secret, binding=secret_binding(user.id)
        ),
    )
    db.add(connection)
    audit.record(
        db,
        "calendar.connected",
        actor_id=viewer.actor.id,
        subject_id=user.id,
        provider=provider_name.value,
        replaced=old.provider.value if old is not None else None,
    )
    await db.commit()
    await sync.sync_users(db, deps, [user.id], budget_seconds=INITIAL_SYNC_BUDGET_SECONDS)
    # A read-only grant (Google's granular consent without calendar.events) cannot watch
    # events: asking would only be refused, so such a calendar is polled.
    if deps.push_enabled and account.can_write_events:
        await push.open_channel(
            db, deps, user.id, provider_name, account.credentials, connection_id=connection.id
        )
        await db.commit()
    await db.refresh(connection)
    return connection


async def disconnect(db: AsyncSession, deps: CalendarDeps, viewer: Viewer) -> ProviderName | None:
    """Revoke where the provider allows it, delete secrets and busy blocks. Returns the
    provider that was connected (None when nothing was)."""
    _refuse_on_behalf(viewer)
    await _refuse_managed(db, viewer.user.id)
    user = viewer.user
    connection = (
        await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user.id))
    ).first()
    await db.exec(delete(BusyBlock).where(col(BusyBlock.user_id) == user.id))
    busy_version.note_changed(db, [user.id])
    if connection is None:
        await db.commit()
        return None
    await push.close_channels(
        db, deps, user.id, _credentials_or_none(deps, connection), connection_id=connection.id
    )
    await _revoke_quietly(deps, connection, user.id)
    await db.delete(connection)
    audit.record(
        db,
        "calendar.disconnected",
        actor_id=viewer.actor.id,
        subject_id=user.id,
        provider=connection.provider.value,
    )
    await db.commit()
    return connection.provider


def _app_identity(app: OAuthApp | None) -> tuple[str, str, str | None] | None:
    return None if app is None else (app.app_id, app.client_id, app.tenant)


def _app_row_id(credentials: Credentials) -> uuid.UUID | None:
    app = app_of(credentials.secret)
    return uuid.UUID(app.app_id) if app is not None else None


def _credentials_or_none(deps: CalendarDeps, connection: CalendarConnection) -> Credentials | None:
    try:
        return load_credentials(deps.secrets, connection)
    except SecretError:
        return None


async def _revoke_quietly(
    deps: CalendarDeps, connection: CalendarConnection, user_id: uuid.UUID
) -> None:
    """Best effort: a provider that is down must not keep a user from disconnecting."""
    try:
        credentials = load_credentials(deps.secrets, connection)
        await deps.registry.get(connection.provider).revoke(credentials)
    except (ProviderError, SecretError) as exc:
        log.warning(
            "could not revoke %s grant for user %s: %s",
            connection.provider.value,
            user_id,
            type(exc).__name__,
        )


def require_self(viewer: Viewer) -> None:
    """Exposed for pages that render connect forms."""
    _refuse_on_behalf(viewer)


__all__ = [
    "CalendarDeps",
    "ConnectRefused",
    "Viewer",
    "connect_with_password",
    "disconnect",
    "finish_oauth",
    "load_credentials",
    "parse_provider",
    "release_personal",
    "require_self",
    "start_oauth",
]
