"""The words people see about integrations, and an integration's encrypted configuration
(opening its directory lives in ``calendars.org_reads``, re-exported here)."""

from __future__ import annotations

from typing import Any

from server.models import OrganizationIntegration
from server.models.enums import IntegrationKind, ProviderName
from server.providers.org_base import UncoveredReason
from server.services.calendars.deps import CalendarDeps
from server.services.calendars.org_reads import config_binding, open_directory, read_config

__all__ = [
    "CALENDAR_LABELS",
    "KIND_LABELS",
    "PROVIDER_FOR_KIND",
    "REASON_TEXT",
    "config_binding",
    "open_directory",
    "read_config",
    "write_config",
]

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


def write_config(
    deps: CalendarDeps, integration: OrganizationIntegration, config: dict[str, Any]
) -> None:
    integration.encrypted_config = deps.secrets.encrypt(config, binding=config_binding(integration))
