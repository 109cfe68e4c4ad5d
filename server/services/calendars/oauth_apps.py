"""An organization's own OAuth apps ("user-level calendar authorization").

Some organizations require their participants to connect through the organization's own
Google Cloud or Microsoft Entra app rather than Tandem's. A global administrator saves its
client id and secret (and the tenant for Microsoft); participants then connect through it,
while Tandem's app from the environment stays the default where none is saved.

Rules enforced here, whoever calls:
- only global administrators, acting as themselves, see or change the apps;
- the secret is stored encrypted and never shown again: only its last characters;
- saving a different app (or removing one) marks every connection made with another app
  for reconnection, with a message saying why, because those grants belong to the old app.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import CalendarConnection, OrganizationOAuthApp, User
from server.models.base import utcnow
from server.models.enums import CalendarStatus, ProviderName
from server.providers.base import APP_KEY, OAuthApp
from server.providers.secrets import SecretBox, SecretError
from server.services import audit
from server.services.calendars.deps import (
    CalendarDeps,
    load_credentials,
    save_refreshed_credentials,
)
from server.services.errors import PermissionDenied, ValidationFailed
from server.services.people import programs
from server.services.people.sessions import Viewer, admin_as_self
from server.services.validation import clean_line

OAUTH_APP_PROVIDERS = (ProviderName.GOOGLE, ProviderName.MICROSOFT)
PROBLEM_APP_CHANGED = "app_changed"
APP_NAMES = {ProviderName.GOOGLE: "Google", ProviderName.MICROSOFT: "Microsoft"}
# A Microsoft tenant is its directory id (a GUID) or one of its verified domain names.
_TENANT = re.compile(
    r"^(?:[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
    r"|(?=.{1,100}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})$"
)
_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,299}$")
_HINT_LENGTH = 4


@dataclass(frozen=True, slots=True)
class OAuthAppView:
    """What the Integrations page shows of a saved app: never the secret itself."""

    provider: ProviderName
    client_id_hint: str
    secret_hint: str
    tenant: str | None
    updated_at: datetime
    connections: int  # personal connections made through it


@dataclass(frozen=True, slots=True)
class Registration:
    """What an administrator registers in the provider's console for their own app."""

    provider: ProviderName
    redirect_uri: str
    scopes: tuple[str, ...]


def registrations(deps: CalendarDeps) -> list[Registration]:
    """The exact redirect URIs and scopes, from the code that uses them (never retyped)."""
    found = []
    for provider in OAUTH_APP_PROVIDERS:
        oauth = deps.registry.oauth(provider)
        if oauth is not None:
            found.append(Registration(provider, deps.redirect_uri(provider), oauth.consent_scopes))
    return found


def _binding(organization_id: uuid.UUID, provider: ProviderName) -> str:
    return f"oauth-app:{organization_id}:{provider.value}"


def _hint(value: str) -> str:
    return "…" + value[-_HINT_LENGTH:]


def _require_global_admin(who: User | Viewer) -> User:
    actor = admin_as_self(who)
    if not actor.is_global_admin:
        raise PermissionDenied(
            "Only global administrators can manage the organization's own OAuth apps."
        )
    return actor


def _parse_provider(raw: str) -> ProviderName:
    try:
        provider = ProviderName(raw)
    except ValueError:
        provider = None
    if provider not in OAUTH_APP_PROVIDERS:
        raise ValidationFailed(
            "Own OAuth apps exist for Google and Microsoft only.", field="provider"
        )
    assert provider is not None
    return provider


async def list_apps(db: AsyncSession, who: User | Viewer) -> dict[ProviderName, OAuthAppView]:
    _require_global_admin(who)
    org = await programs.organization(db)
    rows = (
        await db.exec(
            select(OrganizationOAuthApp).where(OrganizationOAuthApp.organization_id == org.id)
        )
    ).all()
    views: dict[ProviderName, OAuthAppView] = {}
    for row in rows:
        count = len(
            (
                await db.exec(
                    select(CalendarConnection.id).where(
                        CalendarConnection.oauth_app_id == row.id,
                        CalendarConnection.status != CalendarStatus.DISCONNECTED,
                    )
                )
            ).all()
        )
        views[row.provider] = OAuthAppView(
            provider=row.provider,
            client_id_hint=_hint(row.client_id),
            secret_hint=row.secret_hint,
            tenant=row.tenant,
            updated_at=row.updated_at,
            connections=count,
        )
    return views


async def save_app(
    db: AsyncSession,
    deps: CalendarDeps,
    who: User | Viewer,
    provider_raw: str,
    *,
    client_id: str,
    client_secret: str,
    tenant: str | None = None,
) -> int:
    """Save (or replace) the organization's app for one provider. Returns how many
    existing connections were marked for reconnection."""
    actor = _require_global_admin(who)
    provider = _parse_provider(provider_raw)
    client_id = clean_line(client_id)
    if not _CLIENT_ID.match(client_id):
        raise ValidationFailed(
            "Enter the app's client id exactly as the provider's console shows it.",
            field="client_id",
        )
    secret = client_secret.strip()
    if len(secret) < 8 or len(secret) > 500 or any(ch.isspace() or ord(ch) < 32 for ch in secret):
        raise ValidationFailed(
            "Enter the app's client secret (its value, not its id), exactly as created.",
            field="client_secret",
        )
    clean_tenant: str | None = None
    if provider == ProviderName.MICROSOFT:
        clean_tenant = clean_line(tenant or "")
        if not _TENANT.match(clean_tenant) or clean_tenant.lower() in (
            "common",
            "organizations",
            "consumers",
        ):
            raise ValidationFailed(
                "Enter the app's tenant: its directory (tenant) id or a verified domain name.",
                field="tenant",
            )
    org = await programs.organization(db)
    row = await _row(db, org.id, provider)
    binding = _binding(org.id, provider)
    if row is not None and (row.client_id, row.tenant) == (client_id, clean_tenant):
        if _stored_secret(deps.secrets, row, binding) == secret:
            return 0  # saved again unchanged: nothing to do
        # A rotated secret of the same app: grants belong to the client id, so they stay
        # valid; the copies the connections carry are brought up to date.
        kind = "secret_rotated"
    else:
        kind = "app_replaced" if row is not None else "app_added"
    if row is None:
        row = OrganizationOAuthApp(
            organization_id=org.id,
            provider=provider,
            client_id=client_id,
            encrypted_secret=b"",
            secret_hint="",
        )
        db.add(row)
    row.client_id = client_id
    row.tenant = clean_tenant
    row.encrypted_secret = deps.secrets.encrypt({"client_secret": secret}, binding=binding)
    row.secret_hint = _hint(secret)
    row.updated_by_id = actor.id
    row.updated_at = utcnow()
    await db.flush()
    app = OAuthApp(str(row.id), client_id, secret, clean_tenant)
    if kind == "secret_rotated":
        marked = 0
        await _rewrite_app_copies(db, deps.secrets, app, row.id)
    else:
        # Grants made with Tandem's app or the previous client id are not this app's.
        marked = await _mark_for_reconnection(db, provider, made_with=None)
    audit.record(
        db,
        "integration.oauth_app_saved",
        actor_id=actor.id,
        target_type="organization_oauth_app",
        target_id=row.id,
        provider=provider.value,
        change=kind,
        reconnect=marked,
    )
    await db.commit()
    return marked


async def remove_app(db: AsyncSession, who: User | Viewer, provider_raw: str) -> int:
    """Go back to Tandem's default app; connections made with the removed one must be
    made again. Returns how many were marked."""
    actor = _require_global_admin(who)
    provider = _parse_provider(provider_raw)
    org = await programs.organization(db)
    row = await _row(db, org.id, provider)
    if row is None:
        raise ValidationFailed(f"No own {APP_NAMES[provider]} app is saved.", field="provider")
    marked = await _mark_for_reconnection(db, provider, made_with=row.id)
    await db.delete(row)
    audit.record(
        db,
        "integration.oauth_app_removed",
        actor_id=actor.id,
        target_type="organization_oauth_app",
        target_id=row.id,
        provider=provider.value,
        reconnect=marked,
    )
    await db.commit()
    return marked


async def app_for(db: AsyncSession, secrets: SecretBox, provider: ProviderName) -> OAuthApp | None:
    """The app a new connection to ``provider`` goes through: the organization's own, or
    None for Tandem's default."""
    if provider not in OAUTH_APP_PROVIDERS:
        return None
    org = await programs.organization(db)
    row = await _row(db, org.id, provider)
    if row is None:
        return None
    try:
        stored = secrets.decrypt(row.encrypted_secret, binding=_binding(org.id, provider))
    except SecretError:
        raise ValidationFailed(
            f"Your organization's {APP_NAMES[provider]} app cannot be read; "
            "an administrator must save it again."
        ) from None
    return OAuthApp(
        app_id=str(row.id),
        client_id=row.client_id,
        client_secret=str(stored["client_secret"]),
        tenant=row.tenant,
    )


def reconnect_message(provider: ProviderName) -> str:
    return (
        f"Your organization changed the {APP_NAMES[provider]} app Tandem connects through. "
        "Reconnect your calendar to keep your free/busy times up to date."
    )


async def _row(
    db: AsyncSession, organization_id: uuid.UUID, provider: ProviderName
) -> OrganizationOAuthApp | None:
    return (
        await db.exec(
            select(OrganizationOAuthApp).where(
                OrganizationOAuthApp.organization_id == organization_id,
                OrganizationOAuthApp.provider == provider,
            )
        )
    ).first()


def _stored_secret(secrets: SecretBox, row: OrganizationOAuthApp, binding: str) -> str | None:
    try:
        return str(secrets.decrypt(row.encrypted_secret, binding=binding)["client_secret"])
    except (SecretError, KeyError):
        return None


async def _mark_for_reconnection(
    db: AsyncSession, provider: ProviderName, *, made_with: uuid.UUID | None
) -> int:
    """Connections to ``provider`` (all of them, or those made with app ``made_with``)
    need a new grant: the user is told why on Calendar Settings."""
    query = select(CalendarConnection).where(
        CalendarConnection.provider == provider,
        col(CalendarConnection.status).in_([CalendarStatus.CONNECTED, CalendarStatus.ERROR]),
    )
    if made_with is not None:
        query = query.where(CalendarConnection.oauth_app_id == made_with)
    rows = (await db.exec(query)).all()
    for connection in rows:
        connection.status = CalendarStatus.NEEDS_REAUTH
        connection.error_code = PROBLEM_APP_CHANGED
        connection.last_error = reconnect_message(provider)
    await db.flush()
    return len(rows)


async def _rewrite_app_copies(
    db: AsyncSession, secrets: SecretBox, app: OAuthApp, app_id: uuid.UUID
) -> None:
    """Each grant made with the app carries its own (encrypted) copy of the app, so that
    token refreshes need no lookup; a rotated secret is written into every copy."""
    rows = (
        await db.exec(select(CalendarConnection).where(CalendarConnection.oauth_app_id == app_id))
    ).all()
    for connection in rows:
        try:
            credentials = load_credentials(secrets, connection)
        except SecretError:
            continue
        credentials.replace_secret({**credentials.secret, APP_KEY: app.to_secret()})
        save_refreshed_credentials(secrets, connection, credentials)
    await db.flush()
