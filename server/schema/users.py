"""Users and their calendar connection status (status only, never details or secrets)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

import strawberry

from server.models import CalendarConnection as CalendarConnectionRow
from server.models import User as UserRow
from server.schema.context import Context


@strawberry.enum
class CalendarStatus(Enum):
    NOT_CONNECTED = "not_connected"
    CONNECTED = "connected"
    NEEDS_REAUTH = "needs_reauth"
    ERROR = "error"


@strawberry.enum(
    description="GOOGLE: Google. MICROSOFT: Office 365 (work or school) or Outlook.com "
    "(personal). ICLOUD: iCal, that is iCloud or any other CalDAV server."
)
class CalendarProvider(Enum):
    GOOGLE = "google"
    MICROSOFT = "microsoft"
    ICLOUD = "icloud"


@strawberry.enum
class IntegrationKind(Enum):
    EXCHANGE_ONLINE = "exchange_online"
    EXCHANGE_ONPREM = "exchange_onprem"
    GOOGLE_WORKSPACE = "google_workspace"


@strawberry.type
class CalendarConnection:
    provider: CalendarProvider | None
    status: CalendarStatus
    connected_at: datetime | None
    last_synced_at: datetime | None
    managed_by_organization: bool = strawberry.field(
        default=False,
        description="True when the organization's integration connects this calendar "
        "(no personal connection; the person cannot connect or disconnect it).",
    )
    integration_id: strawberry.Private[uuid.UUID | None] = None

    @strawberry.field(
        description="The integration that manages this calendar (exchange_online, "
        "exchange_onprem, google_workspace), or null for a personal connection."
    )
    async def integration_kind(
        self, info: strawberry.Info[Context, None]
    ) -> IntegrationKind | None:
        if self.integration_id is None:
            return None
        kind: str | None = await info.context.loaders["integration_kind"].load(self.integration_id)
        return IntegrationKind(kind) if kind else None

    @classmethod
    def from_row(cls, row: CalendarConnectionRow | None) -> CalendarConnection:
        if row is None:
            return cls(
                provider=None,
                status=CalendarStatus.NOT_CONNECTED,
                connected_at=None,
                last_synced_at=None,
            )
        return cls(
            provider=CalendarProvider(row.provider.value),
            status=CalendarStatus(row.status.value),
            connected_at=row.connected_at,
            last_synced_at=row.last_synced_at,
            managed_by_organization=row.integration_id is not None,
            integration_id=row.integration_id,
        )


@strawberry.type
class User:
    id: strawberry.ID
    name: str
    email: str
    time_zone: str
    is_global_admin: bool

    @strawberry.field(description="Whether this person's calendar is connected (status only).")
    async def calendar(self, info: strawberry.Info[Context, None]) -> CalendarConnection:
        row = await info.context.loaders["calendar_by_user"].load(uuid.UUID(str(self.id)))
        return CalendarConnection.from_row(row)

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            email=row.email,
            time_zone=row.time_zone,
            is_global_admin=row.is_global_admin,
        )
