"""Who may integrate an organization's calendars, and integrating and disabling.

Rules enforced here, whoever calls (pages or GraphQL):
- "Organization-wide calendar authorization" is an operator's switch; until it is on no
  integration starts, and turning it off disables every integration;
- only a global administrator, working as themselves, integrates and disables;
- online and on-premises Exchange are never enabled together (refused with the reason
  before the database constraint would be reached);
- Microsoft's admin-consent ``state`` is single-use, short-lived and bound to the admin
  and browser session that started it;
- an integration is "on" only after a real call (``verify``) succeeded;
- disabling deletes the integration's busy blocks, connections and configuration (keys,
  tokens) at once, and is audited.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import (
    BusyBlock,
    CalendarConnection,
    IntegrationConsent,
    Organization,
    OrganizationIntegration,
    User,
    busy_version,
)
from server.models.base import utcnow
from server.models.enums import IntegrationKind
from server.models.integration import (
    INTEGRATION_ACTIVE,
    INTEGRATION_ATTENTION,
    INTEGRATION_PENDING,
)
from server.providers.base import (
    AccessDenied,
    AuthorizationDeclined,
    InvalidCredentials,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
)
from server.providers.org_base import GOOGLE_DELEGATION_SCOPES
from server.services import audit
from server.services.calendars.deps import CalendarDeps
from server.services.errors import DomainError, PermissionDenied, ValidationFailed
from server.services.integrations import cover
from server.services.integrations.directory import (
    KIND_LABELS,
    open_directory,
    read_config,
    write_config,
)
from server.services.people import programs
from server.services.people.sessions import Viewer, admin_as_self
from server.services.validation import normalize_email

log = logging.getLogger("tandem.integrations")

CONSENT_LIFETIME = timedelta(minutes=15)
EXCHANGE_SLOT = "exchange"
SWITCH_OFF_MESSAGE = (
    "Organization-wide calendar authorization is off for this Tandem installation. "
    "An operator can turn it on."
)


class IntegrationRefused(DomainError):
    code = "forbidden"


@dataclass(frozen=True, slots=True)
class GoogleDelegation:
    """What the Google Workspace admin pastes into Admin console -> Security -> API
    controls -> Domain-wide delegation."""

    client_id: str
    scopes: str  # comma-separated, as the console asks


def parse_kind(raw: str) -> IntegrationKind:
    aliases = {"microsoft": "exchange_online", "google": "google_workspace"}
    try:
        return IntegrationKind(aliases.get(raw, raw))
    except ValueError:
        raise ValidationFailed(f"Unknown integration '{raw[:20]}'.", field="kind") from None


# -- rules ----------------------------------------------------------------------------------
def may_manage(viewer: Viewer) -> bool:
    """Who sees the integrations at all: a global administrator or an operator, working
    as themselves."""
    actor = viewer.actor
    return (actor.is_global_admin or actor.is_operator) and not viewer.acting_on_behalf


async def switch_is_on(db: AsyncSession) -> bool:
    return (await programs.organization(db)).org_calendars_enabled


async def set_switch(
    db: AsyncSession, deps: CalendarDeps, who: User | Viewer, enabled: bool
) -> Organization:
    """The operator switch. Turning it off disables every integration at once."""
    actor = admin_as_self(who)
    if not actor.is_operator:
        raise PermissionDenied(
            "Only an operator can turn organization-wide calendar authorization on or off."
        )
    organization = await programs.organization(db)
    if organization.org_calendars_enabled != enabled:
        organization.org_calendars_enabled = enabled
        db.add(organization)
        audit.record(
            db,
            "organization.org_calendars_switched",
            actor_id=actor.id,
            target_type="organization",
            target_id=organization.id,
            enabled=enabled,
        )
        if not enabled:
            for integration in await integrations(db):
                await _remove(db, integration, actor, reason="operator switch off")
        await db.commit()
    return organization


async def _integrator(db: AsyncSession, who: User | Viewer) -> tuple[User, Organization]:
    actor = admin_as_self(who)
    if not actor.is_global_admin:
        raise PermissionDenied(
            "Only a global administrator can integrate or disable organization calendars."
        )
    organization = await programs.organization(db)
    if not organization.org_calendars_enabled:
        raise IntegrationRefused(SWITCH_OFF_MESSAGE)
    return actor, organization


async def integrations(db: AsyncSession) -> list[OrganizationIntegration]:
    organization = await programs.organization(db)
    rows = await db.exec(
        select(OrganizationIntegration).where(
            OrganizationIntegration.organization_id == organization.id
        )
    )
    return list(rows.all())


async def get(db: AsyncSession, kind: IntegrationKind) -> OrganizationIntegration | None:
    return next((i for i in await integrations(db) if i.kind == kind), None)


async def _refuse_other_exchange(db: AsyncSession, kind: IntegrationKind) -> None:
    exchange = {IntegrationKind.EXCHANGE_ONLINE, IntegrationKind.EXCHANGE_ONPREM}
    if kind not in exchange:
        return
    for other in await integrations(db):
        if other.kind in exchange and other.kind != kind and other.enabled:
            raise IntegrationRefused(
                f"{KIND_LABELS[other.kind]} is already integrated. Online and on-premises "
                "Exchange cannot be on together: disable it first."
            )


def _domains(raw: str, fallback: str) -> str:
    found: list[str] = []
    for piece in [fallback, *raw.replace(";", ",").split(",")]:
        domain = piece.strip().lower().lstrip("@")
        if not domain:
            continue
        if (
            len(domain) > 253
            or "." not in domain
            or not all(
                part and all(c.isalnum() or c == "-" for c in part) for part in domain.split(".")
            )
        ):
            raise ValidationFailed(f"'{domain[:60]}' is not a domain name.", field="domains")
        if domain not in found:
            found.append(domain)
    return ",".join(found)


async def _row(
    db: AsyncSession, organization: Organization, kind: IntegrationKind
) -> OrganizationIntegration:
    integration = await get(db, kind)
    if integration is None:
        integration = OrganizationIntegration(organization_id=organization.id, kind=kind)
        db.add(integration)
        await db.flush()
    return integration


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


# -- Microsoft Exchange Online ----------------------------------------------------------------
async def start_microsoft(
    db: AsyncSession,
    deps: CalendarDeps,
    viewer: Viewer,
    *,
    service_account: str,
    tenant: str = "",
    extra_domains: str = "",
    redirect_uri: str,
) -> str:
    """Record the service account and domains, and return Microsoft's admin-consent URL
    to send the administrator to."""
    actor, organization = await _integrator(db, viewer)
    await _refuse_other_exchange(db, IntegrationKind.EXCHANGE_ONLINE)
    if deps.admin_consent is None:
        raise IntegrationRefused("Microsoft sign-in is not configured on this installation.")
    address = normalize_email(service_account, field="service_account")
    domains = _domains(extra_domains, address.rsplit("@", 1)[1])
    hint = tenant.strip() or "organizations"
    if len(hint) > 255 or "/" in hint or "?" in hint:
        raise ValidationFailed("Enter the tenant's domain or id.", field="tenant")
    integration = await _row(db, organization, IntegrationKind.EXCHANGE_ONLINE)
    if not integration.enabled:
        integration.status = INTEGRATION_PENDING
    integration.service_account = address
    integration.domains = domains if not integration.enabled else integration.domains
    db.add(integration)
    state = secrets.token_urlsafe(32)
    try:
        url = deps.admin_consent.consent_url(hint, redirect_uri, state)
    except ProviderError as exc:
        raise IntegrationRefused(
            "Microsoft sign-in is not configured on this installation."
        ) from exc
    now = utcnow()
    await db.exec(delete(IntegrationConsent).where(col(IntegrationConsent.expires_at) < now))
    db.add(
        IntegrationConsent(
            state_hash=_state_hash(state),
            integration_id=integration.id,
            user_id=actor.id,
            session_id=viewer.session_id,
            expires_at=now + CONSENT_LIFETIME,
        )
    )
    pending = {"service_account": address, "domains": domains}
    config = read_config(deps, integration)
    write_config(deps, integration, config | {"pending": pending})
    _audit(db, "integration.started", actor, integration)
    await db.commit()
    return url


async def finish_microsoft(
    db: AsyncSession, deps: CalendarDeps, viewer: Viewer, params: dict[str, str]
) -> OrganizationIntegration:
    """Complete admin consent from Microsoft's redirect. The consent row is consumed
    first, so a replayed redirect finds nothing."""
    state = params.get("state", "")
    row = None
    if state:
        row = (
            await db.exec(
                select(IntegrationConsent).where(
                    IntegrationConsent.state_hash == _state_hash(state)
                )
            )
        ).first()
    if row is not None:
        await db.delete(row)
        await db.commit()
    if (
        row is None
        or row.expires_at <= utcnow()
        or row.user_id != viewer.actor.id
        or (row.session_id is not None and row.session_id != viewer.session_id)
    ):
        raise IntegrationRefused(
            "This integration link is invalid or has expired. Start again from "
            "Manage → Integrations."
        )
    actor, _organization = await _integrator(db, viewer)
    integration = await db.get(OrganizationIntegration, row.integration_id)
    if integration is None or integration.kind != IntegrationKind.EXCHANGE_ONLINE:
        raise IntegrationRefused("This integration was removed meanwhile. Start again.")
    await _refuse_other_exchange(db, IntegrationKind.EXCHANGE_ONLINE)
    assert deps.admin_consent is not None
    try:
        tenant = deps.admin_consent.read_consent(params)
    except AuthorizationDeclined as exc:
        raise IntegrationRefused(
            "Microsoft did not grant Tandem access to your organization's calendars, so the "
            "Microsoft Exchange integration is not on."
        ) from exc
    config = read_config(deps, integration)
    pending = config.get("pending") or {}
    service_account = str(pending.get("service_account") or integration.service_account or "")
    integration.tenant = tenant
    integration.service_account = service_account
    integration.domains = str(pending.get("domains") or integration.domains)
    write_config(deps, integration, {"tenant": tenant, "service_account": service_account})
    return await _activate(db, deps, integration, actor)


# -- Google Workspace ---------------------------------------------------------------------
async def start_google(
    db: AsyncSession,
    deps: CalendarDeps,
    viewer: Viewer,
    *,
    key_text: str,
    domain: str,
    act_as: str,
    extra_domains: str = "",
) -> GoogleDelegation:
    """Store the service account's JSON key (encrypted) with the domain and the account to
    act as; returns what to paste into the Google Admin console. Not on until verified."""
    actor, organization = await _integrator(db, viewer)
    if len(key_text) > 20_000:
        raise ValidationFailed("That key file is too large.", field="key")
    try:
        key: Any = json.loads(key_text)
    except ValueError:
        raise ValidationFailed(
            "Paste the service account's JSON key file (it starts with {).", field="key"
        ) from None
    if (
        not isinstance(key, dict)
        or key.get("type") != "service_account"
        or not str(key.get("client_id", "")).isdigit()
        or not key.get("private_key")
        or not key.get("client_email")
    ):
        raise ValidationFailed(
            "That is not a Google service account key (type service_account with a "
            "client_id, client_email and private_key).",
            field="key",
        )
    domains = _domains(extra_domains, domain)
    primary = domains.split(",")[0]
    acting = normalize_email(act_as, field="act_as")
    if acting.rsplit("@", 1)[1] not in domains.split(","):
        raise ValidationFailed(f"The account to act as must be in {primary}.", field="act_as")
    integration = await _row(db, organization, IntegrationKind.GOOGLE_WORKSPACE)
    integration.status = INTEGRATION_PENDING
    integration.enabled = False
    integration.tenant = primary
    integration.domains = domains
    integration.service_account = acting
    write_config(
        deps,
        integration,
        {
            "service_account_key": key,
            "domain": primary,
            "domains": domains.split(","),
            "act_as": acting,
        },
    )
    db.add(integration)
    _audit(db, "integration.started", actor, integration)
    await db.commit()
    return GoogleDelegation(
        client_id=str(key["client_id"]), scopes=",".join(GOOGLE_DELEGATION_SCOPES)
    )


def google_delegation(
    deps: CalendarDeps, integration: OrganizationIntegration
) -> GoogleDelegation | None:
    """The client id and scopes of a stored Google key (never the key itself)."""
    if integration.kind != IntegrationKind.GOOGLE_WORKSPACE or integration.encrypted_config is None:
        return None
    key = read_config(deps, integration).get("service_account_key") or {}
    return GoogleDelegation(str(key.get("client_id", "")), ",".join(GOOGLE_DELEGATION_SCOPES))


async def verify_google(
    db: AsyncSession, deps: CalendarDeps, viewer: Viewer
) -> OrganizationIntegration:
    actor, _organization = await _integrator(db, viewer)
    integration = await get(db, IntegrationKind.GOOGLE_WORKSPACE)
    if integration is None or integration.encrypted_config is None:
        raise ValidationFailed("Upload the service account key first.", field="key")
    return await _activate(db, deps, integration, actor)


# -- both -----------------------------------------------------------------------------------
async def _activate(
    db: AsyncSession, deps: CalendarDeps, integration: OrganizationIntegration, actor: User
) -> OrganizationIntegration:
    """One real call through the directory; only then is the integration on."""
    label = KIND_LABELS[integration.kind]
    try:
        directory = open_directory(deps, integration)
    except ProviderError as exc:
        await _attention(db, integration, f"{label} is not available: {exc}")
        raise IntegrationRefused(f"{label} could not be integrated: {exc}.") from exc
    try:
        acting = await directory.verify()
    except (AccessDenied, InvalidCredentials) as exc:
        reason = (
            f"{label} refused Tandem's access: grant the permissions (or domain-wide "
            "delegation) and try again."
        )
        if integration.kind == IntegrationKind.GOOGLE_WORKSPACE:
            # The directory names what to add (client id, scopes) or what Google refused.
            reason = f"{label} refused Tandem's access. {exc}"
        await _attention(db, integration, reason)
        raise IntegrationRefused(reason) from exc
    except ProviderMisconfigured as exc:
        reason = f"{label} could not be integrated: {exc}."
        await _attention(db, integration, reason)
        raise IntegrationRefused(reason) from exc
    except (ProviderUnavailable, RateLimited) as exc:
        raise IntegrationRefused(f"{label} is not answering right now. Try again soon.") from exc
    except ProviderError as exc:
        await _attention(db, integration, f"{label} refused the check call.")
        raise IntegrationRefused(f"{label} refused the check call.") from exc
    finally:
        await directory.aclose()
    if integration.kind != IntegrationKind.GOOGLE_WORKSPACE:
        # Google's check answers the key's client_email; meetings come from ``act_as``.
        integration.service_account = acting.lower()[:320] or integration.service_account
    return await _enable(db, deps, integration, actor)


async def _enable(
    db: AsyncSession, deps: CalendarDeps, integration: OrganizationIntegration, actor: User
) -> OrganizationIntegration:
    """Turn a verified integration on, audited, and connect the people it covers."""
    integration.enabled = True
    integration.status = INTEGRATION_ACTIVE
    integration.last_error = None
    integration.integrated_by_id = actor.id
    integration.integrated_at = utcnow()
    if integration.kind in (IntegrationKind.EXCHANGE_ONLINE, IntegrationKind.EXCHANGE_ONPREM):
        integration.exchange_slot = EXCHANGE_SLOT
    db.add(integration)
    _audit(db, "integration.enabled", actor, integration, domains=integration.domains)
    await db.commit()
    await cover.reconcile(db, deps, integration)
    await db.refresh(integration)
    return integration


async def _attention(db: AsyncSession, integration: OrganizationIntegration, reason: str) -> None:
    integration.last_error = reason[:500]
    if integration.enabled:
        integration.status = INTEGRATION_ATTENTION
    db.add(integration)
    await db.commit()


async def disable(
    db: AsyncSession, deps: CalendarDeps, viewer: User | Viewer, kind: IntegrationKind
) -> bool:
    """Stop coverage at once. Returns False when nothing was integrated."""
    actor = admin_as_self(viewer)
    operator_may = kind == IntegrationKind.EXCHANGE_ONPREM and actor.is_operator
    if not (actor.is_global_admin or operator_may):
        raise PermissionDenied(
            "Only a global administrator can integrate or disable organization calendars."
        )
    integration = await get(db, kind)
    if integration is None:
        return False
    await _remove(db, integration, actor, reason="disabled")
    await db.commit()
    return True


async def _remove(
    db: AsyncSession, integration: OrganizationIntegration, actor: User, *, reason: str
) -> None:
    """Busy blocks, connections, consent flows and the encrypted configuration go."""
    covered = select(CalendarConnection.user_id).where(
        CalendarConnection.integration_id == integration.id
    )
    user_ids = list((await db.exec(covered)).all())
    if user_ids:
        await db.exec(delete(BusyBlock).where(col(BusyBlock.user_id).in_(user_ids)))
        busy_version.note_changed(db, user_ids)
    await db.exec(
        delete(CalendarConnection).where(col(CalendarConnection.integration_id) == integration.id)
    )
    await db.exec(
        delete(IntegrationConsent).where(col(IntegrationConsent.integration_id) == integration.id)
    )
    _audit(db, "integration.disabled", actor, integration, people=len(user_ids), reason=reason)
    await db.delete(integration)
    await db.flush()


__all__ = [
    "GoogleDelegation",
    "IntegrationRefused",
    "disable",
    "finish_microsoft",
    "get",
    "google_delegation",
    "integrations",
    "parse_kind",
    "set_switch",
    "start_google",
    "start_microsoft",
    "switch_is_on",
    "verify_google",
]


def _audit(
    db: AsyncSession,
    action: str,
    actor: User,
    integration: OrganizationIntegration,
    **details: Any,
) -> None:
    """Record an admin's step on an integration; every such event names its kind."""
    audit.record(
        db,
        action,
        actor_id=actor.id,
        target_type="integration",
        target_id=integration.id,
        kind=integration.kind.value,
        **details,
    )
