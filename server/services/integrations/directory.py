"""Opening an integration's directory, and the words people see about integrations."""

from __future__ import annotations

from typing import Any

from server.models import OrganizationIntegration
from server.models.enums import IntegrationKind, ProviderName
from server.providers.base import ProviderMisconfigured
from server.providers.org_base import OrgDirectory, UncoveredReason
from server.services.calendars.deps import CalendarDeps

KIND_LABELS = {
    IntegrationKind.EXCHANGE_ONLINE: "Microsoft Exchange",
    IntegrationKind.EXCHANGE_ONPREM: "Microsoft Exchange (on-premises)",
    IntegrationKind.GOOGLE_WORKSPACE: "Google Calendar",
}
# What a covered person's calendar is called ("Your Office 365 calendar is connected").
CALENDAR_LABELS = {
    IntegrationKind.EXCHANGE_ONLINE: "Office 365",
    IntegrationKind.EXCHANGE_ONPREM: "Exchange",
    IntegrationKind.GOOGLE_WORKSPACE: "Google",
}
PROVIDER_FOR_KIND = {
    IntegrationKind.EXCHANGE_ONLINE: ProviderName.MICROSOFT,
    IntegrationKind.EXCHANGE_ONPREM: ProviderName.MICROSOFT,
    IntegrationKind.GOOGLE_WORKSPACE: ProviderName.GOOGLE,
}
REASON_TEXT = {
    UncoveredReason.NO_MAILBOX: "no mailbox or calendar for this address",
    UncoveredReason.ACCESS_DENIED: "your IT team has not allowed access to this mailbox",
    UncoveredReason.NOT_IN_DOMAIN: "the address is not in the integration's domains",
    UncoveredReason.UNREADABLE: "the calendar could not be read; Tandem keeps trying",
}


def config_binding(integration: OrganizationIntegration) -> str:
    """Ties the encrypted configuration to its row: copied elsewhere it will not open."""
    return f"integration:{integration.id}"


def read_config(deps: CalendarDeps, integration: OrganizationIntegration) -> dict[str, Any]:
    if integration.encrypted_config is None:
        return {}
    value = deps.secrets.decrypt(integration.encrypted_config, binding=config_binding(integration))
    return dict(value)


def write_config(
    deps: CalendarDeps, integration: OrganizationIntegration, config: dict[str, Any]
) -> None:
    integration.encrypted_config = deps.secrets.encrypt(config, binding=config_binding(integration))


def open_directory(deps: CalendarDeps, integration: OrganizationIntegration) -> OrgDirectory:
    """The integration's directory; the caller closes it (``aclose``)."""
    if deps.directories is None:
        raise ProviderMisconfigured("organization-wide integrations are not configured")
    return deps.directories(integration.kind.value, read_config(deps, integration))
