"""Programs, their settings, members and mentoring connections."""

from __future__ import annotations

import uuid
from enum import Enum

import strawberry

from server.models import MentoringConnection as ConnectionRow
from server.models import Program as ProgramRow
from server.schema.common import UserError
from server.schema.context import Context
from server.schema.users import CalendarProvider, User


@strawberry.enum
class ProgramRole(Enum):
    PARTICIPANT = "participant"
    MENTOR = "mentor"
    MENTEE = "mentee"
    ADMIN = "admin"


@strawberry.enum
class ConnectionKind(Enum):
    PAIR = "pair"
    GROUP = "group"


@strawberry.type
class ProgramSettings:
    allowed_providers: list[CalendarProvider]
    allow_weekends: bool
    earliest_hour: int
    latest_hour: int
    minimum_notice_hours: int
    buffer_minutes: int
    scheduling_assistant_enabled: bool
    group_polls_enabled: bool
    two_way_sync_enabled: bool


@strawberry.type
class ProgramMember:
    user: User
    role: ProgramRole


@strawberry.type
class ConnectionMember:
    user: User
    role: str


@strawberry.type
class MentoringConnection:
    id: strawberry.ID
    kind: ConnectionKind
    name: str
    program_id: strawberry.ID

    @strawberry.field
    async def members(self, info: strawberry.Info[Context, None]) -> list[ConnectionMember]:
        rows = await info.context.loaders["members_by_connection"].load(uuid.UUID(str(self.id)))
        return [ConnectionMember(user=User.from_row(user), role=role) for user, role in rows]

    @classmethod
    def from_row(cls, row: ConnectionRow) -> MentoringConnection:
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=ConnectionKind(row.kind.value),
            name=row.name,
            program_id=strawberry.ID(str(row.program_id)),
        )


@strawberry.type
class Program:
    id: strawberry.ID
    name: str

    @strawberry.field
    async def settings(self, info: strawberry.Info[Context, None]) -> ProgramSettings:
        resolved = await info.context.loaders["program_settings"].load(uuid.UUID(str(self.id)))
        return ProgramSettings(
            allowed_providers=[CalendarProvider(p.value) for p in resolved.allowed_providers],
            allow_weekends=resolved.allow_weekends,
            earliest_hour=resolved.earliest_hour,
            latest_hour=resolved.latest_hour,
            minimum_notice_hours=resolved.minimum_notice_hours,
            buffer_minutes=resolved.buffer_minutes,
            scheduling_assistant_enabled=resolved.scheduling_assistant_enabled,
            group_polls_enabled=resolved.group_polls_enabled,
            two_way_sync_enabled=resolved.two_way_sync_enabled,
        )

    @strawberry.field(description="Members the caller may see (admins see everyone).")
    async def members(self, info: strawberry.Info[Context, None]) -> list[ProgramMember]:
        rows = await info.context.loaders["program_members"].load(uuid.UUID(str(self.id)))
        return [
            ProgramMember(user=User.from_row(user), role=ProgramRole(role.value))
            for user, role in rows
        ]

    @strawberry.field(description="Connections the caller belongs to (admins see all).")
    async def connections(self, info: strawberry.Info[Context, None]) -> list[MentoringConnection]:
        rows = await info.context.loaders["program_connections"].load(uuid.UUID(str(self.id)))
        return [MentoringConnection.from_row(row) for row in rows]

    @classmethod
    def from_row(cls, row: ProgramRow) -> Program:
        return cls(id=strawberry.ID(str(row.id)), name=row.name)


@strawberry.input
class CreateProgramInput:
    name: str


@strawberry.type
class CreateProgramPayload:
    program: Program | None
    errors: list[UserError]


@strawberry.input
class AddProgramMemberInput:
    program_id: strawberry.ID
    user_id: strawberry.ID
    role: ProgramRole


@strawberry.type
class AddProgramMemberPayload:
    member: ProgramMember | None
    errors: list[UserError]


@strawberry.input
class CreateMentoringConnectionInput:
    program_id: strawberry.ID
    member_ids: list[strawberry.ID]
    kind: ConnectionKind
    name: str | None = None
    mentor_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="For a pair: which member mentors (the other is the mentee). Without it "
        "their program roles decide.",
    )


@strawberry.type
class CreateMentoringConnectionPayload:
    connection: MentoringConnection | None
    errors: list[UserError]


@strawberry.input
class UpdateProgramSettingsInput:
    program_id: strawberry.ID
    allow_weekends: bool | None = None
    earliest_hour: int | None = None
    latest_hour: int | None = None
    allowed_providers: list[CalendarProvider] | None = None
    two_way_sync_enabled: bool | None = None
    minimum_notice_hours: int | None = None
    buffer_minutes: int | None = None
    scheduling_assistant_enabled: bool | None = strawberry.field(
        default=None, description="Operators only."
    )
    group_polls_enabled: bool | None = strawberry.field(default=None, description="Operators only.")


@strawberry.type
class UpdateProgramSettingsPayload:
    program: Program | None
    errors: list[UserError]


@strawberry.input
class RemoveProgramMemberInput:
    program_id: strawberry.ID
    user_id: strawberry.ID
    role: ProgramRole = strawberry.field(
        description="The role taken away; the person leaves the program with their last role."
    )


@strawberry.type
class RemoveProgramMemberPayload:
    removed: bool
    errors: list[UserError]


@strawberry.input
class SetUserActiveInput:
    program_id: strawberry.ID = strawberry.field(
        description="A program of the person that the caller administers."
    )
    user_id: strawberry.ID
    active: bool = strawberry.field(
        description="False deactivates: sign-in refused, sessions ended, API tokens revoked."
    )


@strawberry.type
class SetUserActivePayload:
    user: User | None
    active: bool | None
    errors: list[UserError]


@strawberry.input
class ConnectionMemberInput:
    connection_id: strawberry.ID
    user_id: strawberry.ID


@strawberry.type
class ConnectionMemberPayload:
    connection: MentoringConnection | None
    errors: list[UserError]
