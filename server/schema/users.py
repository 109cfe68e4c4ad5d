"""Users and their calendar connection status (status only, never details or secrets)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

import strawberry

from server.models import CalendarConnection as CalendarConnectionRow
from server.models import User as UserRow
from server.schema.context import Context
from server.services.calendars import health


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


@strawberry.enum(description="A calendar's health as a whole.")
class CalendarHealthState(Enum):
    CONNECTED = "connected"
    NOT_CONNECTED = "not_connected"
    NEEDS_ATTENTION = "needs_attention"


@strawberry.enum(description="What fixes a calendar health reason.")
class CalendarHealthAction(Enum):
    CONNECT = "connect"
    RECONNECT = "reconnect"
    ASK_IT = "ask_it"
    CHECK_ALL_DAY_EVENTS = "check_all_day_events"
    CHECK_CALENDAR = "check_calendar"
    WAIT = "wait"
    NONE = "none"


@strawberry.type(description="One finding about a calendar, from its status and busy kinds only.")
class CalendarHealthReason:
    code: str = strawberry.field(
        description="Stable code: not_connected, auth_lost, access_policy, access_denied, "
        "provider_config, unavailable, unreadable, not_synced_yet, sync_stale, horizon_short, "
        "all_day_blocking, out_of_office, no_busy_time."
    )
    message: str = strawberry.field(description="The finding in plain words.")
    action: CalendarHealthAction
    action_text: str = strawberry.field(description="What fixes it, in plain words.")
    needs_attention: bool = strawberry.field(
        description="False for facts that are fine as they are (out of office)."
    )


@strawberry.type(
    description="The troubleshooting view of a calendar: never any event's details. Visible "
    "to the person and to administrators of their programs; null for anyone else."
)
class CalendarHealth:
    state: CalendarHealthState
    through: str | None = strawberry.field(
        description='What the calendar is connected through: "Google", "Office 365", '
        '"Outlook.com", "iCal".'
    )
    reasons: list[CalendarHealthReason]
    last_synced_at: datetime | None = strawberry.field(description="The last successful sync.")
    synced_until: datetime | None = strawberry.field(description="Busy times are known up to here.")
    horizon_covered: bool = strawberry.field(
        description="Whether busy times are known as far ahead as Tandem reads calendars."
    )

    @classmethod
    def from_health(cls, item: health.Health) -> CalendarHealth:
        return cls(
            state=CalendarHealthState(item.state.value),
            through=item.through,
            reasons=[
                CalendarHealthReason(
                    code=r.code,
                    message=r.message,
                    action=CalendarHealthAction(r.action.value),
                    action_text=r.action_text,
                    needs_attention=r.attention,
                )
                for r in item.reasons
            ],
            last_synced_at=item.last_synced_at,
            synced_until=item.synced_until,
            horizon_covered=item.horizon_covered,
        )


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

    user_id: strawberry.Private[uuid.UUID | None] = None

    @strawberry.field(
        description="Connected or not and through what, the last sync, and what to check. "
        "Null unless the caller is this person or administers one of their programs."
    )
    async def health(self, info: strawberry.Info[Context, None]) -> CalendarHealth | None:
        if self.user_id is None:
            return None
        item = await info.context.loaders["calendar_health_by_user"].load(self.user_id)
        return CalendarHealth.from_health(item) if item is not None else None

    @classmethod
    def from_row(
        cls, row: CalendarConnectionRow | None, *, user_id: uuid.UUID | None = None
    ) -> CalendarConnection:
        if row is None:
            return cls(
                provider=None,
                status=CalendarStatus.NOT_CONNECTED,
                connected_at=None,
                last_synced_at=None,
                user_id=user_id,
            )
        return cls(
            provider=CalendarProvider(row.provider.value),
            status=CalendarStatus(row.status.value),
            connected_at=row.connected_at,
            last_synced_at=row.last_synced_at,
            managed_by_organization=row.integration_id is not None,
            integration_id=row.integration_id,
            user_id=row.user_id,
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
        user_id = uuid.UUID(str(self.id))
        row = await info.context.loaders["calendar_by_user"].load(user_id)
        return CalendarConnection.from_row(row, user_id=user_id)

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            email=row.email,
            time_zone=row.time_zone,
            is_global_admin=row.is_global_admin,
        )
