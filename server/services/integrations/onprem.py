"""Exchange on-premises (EWS): configured by an operator, verified before it is on.

The admin guide tells customers "to configure Microsoft Exchange On-premise, please
contact the support team", so here an *operator* (the vendor's staff) enters the EWS URL,
the service account's user name, password and authentication type, its mailbox and the
covered domains. Rules, whoever calls (page or GraphQL):
- never while Exchange Online is on (the framework refuses the other way round);
- the service account must be a Tandem global administrator (the admin guide requires
  it); Tandem offers nothing automatic, it only says so;
- the candidate configuration is checked with one real call before anything is stored:
  a refusal leaves the previous state (and password) exactly as it was;
- the password is stored only inside the encrypted configuration; leaving it blank when
  reconfiguring keeps the stored one, entering one replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import OrganizationIntegration, User
from server.models.enums import IntegrationKind
from server.models.integration import INTEGRATION_PENDING
from server.providers.base import (
    AccessDenied,
    InvalidCredentials,
    OutcomeUnknown,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
)
from server.providers.org_base import OrgDirectory
from server.services.calendars.deps import CalendarDeps
from server.services.errors import DomainError, PermissionDenied, ValidationFailed
from server.services.integrations import setup
from server.services.integrations.directory import read_config, write_config
from server.services.people import accounts, programs
from server.services.people.sessions import Viewer, admin_as_self

KIND = IntegrationKind.EXCHANGE_ONPREM
CONTACT_SUPPORT = "To configure Exchange on-premises, contact the support team."
AUTH_CHOICES = ("ntlm", "basic", "digest")
CREDENTIALS_REFUSED = "Exchange refused the service account's user name or password."
LIMITS = {
    "ews_url": 2000,
    "username": 256,
    "password": 256,
    "auth_type": 16,
    "service_account_email": 320,
}
FIELD_WORDS = {
    "ews url": "ews_url",
    "ews_url": "ews_url",
    "username": "username",
    "password": "password",
    "authentication type": "auth_type",
    "auth type": "auth_type",
    "service account": "service_account_email",
}


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """Which Tandem account the service account is, for the Integrations page."""

    name: str
    email: str
    is_global_admin: bool


def _field_of(message: str) -> str:
    lowered = message.lower()
    return next((f for words, f in FIELD_WORDS.items() if words in lowered), "ews_url")


def _candidate(
    stored: dict[str, Any],
    *,
    ews_url: str,
    username: str,
    password: str,
    auth_type: str,
    service_account_email: str,
) -> dict[str, str]:
    """The configuration as entered, checked; a blank password keeps the stored one."""
    entered = {
        "ews_url": ews_url.strip(),
        "username": username.strip(),
        "password": password or str(stored.get("password") or ""),
        "auth_type": auth_type.strip().lower(),
        "service_account_email": service_account_email.strip().lower(),
    }
    for name, limit in LIMITS.items():
        if len(entered[name]) > limit:
            raise ValidationFailed(f"That {name.replace('_', ' ')} is too long.", field=name)
    if entered["auth_type"] not in AUTH_CHOICES:
        raise ValidationFailed(
            "Choose the authentication type: NTLM, basic or digest.", field="auth_type"
        )
    if not entered["password"]:
        raise ValidationFailed("Enter the service account's password.", field="password")
    return entered


def _plain_failure(exc: ProviderError) -> str:
    """What the operator reads when the check call fails (never the password)."""
    if isinstance(exc, InvalidCredentials):
        return CREDENTIALS_REFUSED
    if isinstance(exc, AccessDenied):
        return (
            "Exchange denied the service account access to free/busy information. Ask the "
            "customer's IT to grant it free/busy read permission and try again."
        )
    if isinstance(exc, RateLimited):
        return "Exchange is busy and asked Tandem to back off. Try again in a few minutes."
    if isinstance(exc, ProviderMisconfigured):
        text = str(exc)
        if "certificate" in text.lower():
            return (
                "Tandem does not trust the Exchange server's TLS certificate. Add the "
                "server's CA to the EWS CA bundle (EWS_CA_BUNDLE) and try again."
            )
        return f"{text}."
    if isinstance(exc, ProviderUnavailable | OutcomeUnknown):
        if "could not be reached" in str(exc):
            return (
                "Tandem could not reach the Exchange server at that EWS URL. Check the "
                "address and that the server accepts connections from Tandem."
            )
        return "Exchange did not answer in time. Try again soon."
    return "Exchange refused the check call."


def _open(deps: CalendarDeps, config: dict[str, str]) -> OrgDirectory:
    """The directory for the candidate configuration; building it checks the values
    (``ProviderMisconfigured`` names what is wrong and never echoes the password)."""
    if deps.directories is None:
        raise setup.IntegrationRefused(
            "Organization-wide integrations are not configured on this installation."
        )
    try:
        return deps.directories(KIND.value, config)
    except ProviderMisconfigured as exc:
        raise ValidationFailed(f"{exc}.", field=_field_of(str(exc))) from None


async def _verify(directory: OrgDirectory) -> str:
    """The check call. The refusal is raised outside the ``except`` block so that it
    does not keep the provider's exception (and the sockets its traceback holds) alive."""
    failure = "Exchange refused the check call."
    refused_password = False
    try:
        return await directory.verify()
    except ProviderError as exc:
        failure = _plain_failure(exc)
        refused_password = isinstance(exc, InvalidCredentials)
    finally:
        await directory.aclose()
    if refused_password:  # the operator's input is wrong: say which field
        raise ValidationFailed(failure, field="password")
    raise setup.IntegrationRefused(failure)


async def _service_user(db: AsyncSession, email: str) -> User:
    user = await accounts.get_by_email(db, email)
    if user is None or not user.is_active:
        raise setup.IntegrationRefused(
            f"No Tandem account has the address {email}. The service account must also be "
            "a Tandem global administrator: create that account and make it a global "
            "administrator, then try again."
        )
    if not user.is_global_admin:
        raise setup.IntegrationRefused(
            f"The Tandem account {email} is not a global administrator. The service account "
            "must be one: make it a global administrator, then try again."
        )
    return user


async def configure(
    db: AsyncSession,
    deps: CalendarDeps,
    who: User | Viewer,
    *,
    ews_url: str,
    username: str,
    password: str,
    auth_type: str,
    service_account_email: str,
    domains: str = "",
) -> OrganizationIntegration:
    """Check, verify with a real call, store encrypted, and turn on (operators only)."""
    actor = admin_as_self(who)
    if not actor.is_operator:
        raise PermissionDenied(
            f"Only an operator can configure Exchange on-premises. {CONTACT_SUPPORT}"
        )
    organization = await programs.organization(db)
    if not organization.org_calendars_enabled:
        raise setup.IntegrationRefused(setup.SWITCH_OFF_MESSAGE)
    await setup._refuse_other_exchange(db, KIND)
    existing = await setup.get(db, KIND)
    stored = read_config(deps, existing) if existing is not None else {}
    config = _candidate(
        stored,
        ews_url=ews_url,
        username=username,
        password=password,
        auth_type=auth_type,
        service_account_email=service_account_email,
    )
    email = config["service_account_email"]
    directory = _open(deps, config)  # checks the values first
    try:
        covered = setup._domains(domains[:2000], email.rsplit("@", 1)[1])
        service_user = await _service_user(db, email)
    except DomainError:
        await directory.aclose()
        raise
    acting = await _verify(directory)
    integration = await setup._row(db, organization, KIND)
    moved = (
        stored.get("ews_url") != config["ews_url"]
        or stored.get("service_account_email") != config["service_account_email"]
    )
    if moved:
        integration.changes_sync_state = None
    if not integration.enabled:
        integration.status = INTEGRATION_PENDING
    integration.tenant = httpx.URL(config["ews_url"]).host[:255]
    integration.domains = covered
    integration.service_account = acting.lower()[:320] or email
    integration.service_user_id = service_user.id
    write_config(deps, integration, config)
    db.add(integration)
    setup._audit(db, "integration.configured", actor, integration, password_replaced=bool(password))
    return await setup._enable(db, deps, integration, actor)


async def service_user(
    db: AsyncSession, integration: OrganizationIntegration | None
) -> User | None:
    if integration is None or integration.service_user_id is None:
        return None
    return await db.get(User, integration.service_user_id)


async def service_account(
    db: AsyncSession, integration: OrganizationIntegration | None
) -> ServiceAccount | None:
    """The Tandem account that is the service account (name and address only)."""
    user = await service_user(db, integration)
    if user is None:
        return None
    return ServiceAccount(name=user.name, email=user.email, is_global_admin=user.is_global_admin)


def stored_form(deps: CalendarDeps, integration: OrganizationIntegration | None) -> dict[str, Any]:
    """What the operator's form shows again: everything but the password, and whether
    one is stored."""
    if integration is None or integration.encrypted_config is None:
        return {"password_stored": False}
    config = read_config(deps, integration)
    shown = {k: str(config.get(k, "")) for k in LIMITS if k != "password"}
    return {**shown, "password_stored": bool(config.get("password"))}


__all__ = [
    "CONTACT_SUPPORT",
    "ServiceAccount",
    "configure",
    "service_account",
    "service_user",
    "stored_form",
]
