"""Organization-wide calendar integrations: status and coverage, never keys or tokens."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from server.schema.common import UserError
from server.schema.users import IntegrationKind, User


@strawberry.enum
class IntegrationStatus(Enum):
    PENDING = "pending"
    ACTIVE = "active"
    ATTENTION = "attention"


@strawberry.enum
class UncoveredReason(Enum):
    NO_MAILBOX = "no_mailbox"
    ACCESS_DENIED = "access_denied"
    NOT_IN_DOMAIN = "not_in_domain"
    UNREADABLE = "unreadable"


@strawberry.type(description="A participant the integration could not cover, and why.")
class UncoveredPerson:
    user: User
    reason: UncoveredReason
    explanation: str


@strawberry.type
class Integration:
    id: strawberry.ID
    kind: IntegrationKind
    status: IntegrationStatus
    enabled: bool
    tenant: str | None = strawberry.field(description="Microsoft tenant id or Google domain.")
    service_account: str | None = strawberry.field(
        description="The mailbox (or acting account) meetings are created in."
    )
    service_account_user: User | None = strawberry.field(
        description="Exchange on-premises: the Tandem global administrator who is the "
        "service account."
    )
    domains: list[str]
    covered_count: int
    participant_count: int
    last_synced_at: datetime | None = strawberry.field(description="The last full sync.")
    last_error: str | None
    uncovered: list[UncoveredPerson]


@strawberry.type
class Organization:
    id: strawberry.ID
    name: str
    org_calendars_enabled: bool = strawberry.field(
        description="Organization-wide calendar authorization (an operator's switch)."
    )
    integrations: list[Integration] = strawberry.field(
        description="Global administrators and operators only; empty for anyone else."
    )


@strawberry.type(description="What to paste into Google Admin console → Domain-wide delegation.")
class GoogleDelegation:
    client_id: str
    scopes: str


@strawberry.type
class StartIntegrationPayload:
    authorization_url: str | None = strawberry.field(
        description="Microsoft: send the administrator's browser here to grant admin consent."
    )
    google_delegation: GoogleDelegation | None
    errors: list[UserError]


@strawberry.type
class IntegrationPayload:
    integration: Integration | None
    errors: list[UserError]


@strawberry.type
class DisableIntegrationPayload:
    disabled: bool
    errors: list[UserError]


@strawberry.type
class OrganizationPayload:
    organization: Organization | None
    errors: list[UserError]
