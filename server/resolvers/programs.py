"""Queries and provisioning mutations for programs and mentoring connections."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry

from server.models.enums import ConnectionKind, ProgramRole, ProviderName
from server.schema.common import parse_id, run_mutation
from server.schema.context import Context
from server.schema.programs import (
    AddProgramMemberInput,
    AddProgramMemberPayload,
    ConnectionMemberInput,
    ConnectionMemberPayload,
    CreateMentoringConnectionInput,
    CreateMentoringConnectionPayload,
    CreateProgramInput,
    CreateProgramPayload,
    MentoringConnection,
    Program,
    ProgramMember,
    RemoveProgramMemberInput,
    RemoveProgramMemberPayload,
    SetUserActiveInput,
    SetUserActivePayload,
    UpdateProgramSettingsInput,
    UpdateProgramSettingsPayload,
)
from server.schema.programs import ProgramRole as ProgramRoleEnum
from server.schema.users import User
from server.services.errors import NotFound, ValidationFailed
from server.services.people import accounts, mentoring, programs, provisioning
from server.services.people.sessions import Viewer

MAX_MEMBER_IDS = 50


def _viewer(info: strawberry.Info[Context, None]) -> Viewer:
    """Who asks, with the acting admin: the services refuse admin changes on behalf."""
    assert info.context.viewer is not None  # IsAuthenticated guarantees it
    return info.context.viewer


async def program(info: strawberry.Info[Context, None], id: strawberry.ID) -> Program | None:
    try:
        row = await programs.get_visible_program(
            info.context.db, info.context.user, parse_id(id, "program")
        )
    except NotFound:
        return None
    return Program.from_row(row)


async def all_programs(info: strawberry.Info[Context, None]) -> list[Program]:
    rows = await programs.programs_for(info.context.db, info.context.user)
    return [Program.from_row(row) for row in rows]


async def create_program(
    info: strawberry.Info[Context, None], input: CreateProgramInput
) -> CreateProgramPayload:
    async def action() -> Program:
        row = await programs.create_program(info.context.db, _viewer(info), input.name)
        return Program.from_row(row)

    result, errors = await run_mutation(info, action)
    return CreateProgramPayload(program=result, errors=errors)


async def add_program_member(
    info: strawberry.Info[Context, None], input: AddProgramMemberInput
) -> AddProgramMemberPayload:
    db = info.context.db

    async def action() -> ProgramMember:
        membership = await programs.add_member(
            db,
            _viewer(info),
            parse_id(input.program_id, "program", "programId"),
            parse_id(input.user_id, "user", "userId"),
            ProgramRole(input.role.value),
        )
        member = await accounts.get_user(db, membership.user_id)
        return ProgramMember(
            user=User.from_row(member), role=ProgramRoleEnum(membership.role.value)
        )

    result, errors = await run_mutation(info, action)
    return AddProgramMemberPayload(member=result, errors=errors)


async def create_mentoring_connection(
    info: strawberry.Info[Context, None], input: CreateMentoringConnectionInput
) -> CreateMentoringConnectionPayload:
    async def action() -> MentoringConnection:
        if len(input.member_ids) > MAX_MEMBER_IDS:
            raise ValidationFailed(f"At most {MAX_MEMBER_IDS} members.", field="memberIds")
        row = await mentoring.create_connection(
            info.context.db,
            _viewer(info),
            program_id=parse_id(input.program_id, "program", "programId"),
            member_ids=[parse_id(m, "user", "memberIds") for m in input.member_ids],
            kind=ConnectionKind(input.kind.value),
            name=input.name,
            mentor_id=parse_id(input.mentor_id, "user", "mentorId") if input.mentor_id else None,
        )
        return MentoringConnection.from_row(row)

    result, errors = await run_mutation(info, action)
    return CreateMentoringConnectionPayload(connection=result, errors=errors)


async def update_program_settings(
    info: strawberry.Info[Context, None], input: UpdateProgramSettingsInput
) -> UpdateProgramSettingsPayload:
    async def action() -> Program:
        change = programs.SettingsChange(
            allowed_providers=(
                tuple(ProviderName(p.value) for p in input.allowed_providers)
                if input.allowed_providers is not None
                else None
            ),
            allow_weekends=input.allow_weekends,
            earliest_hour=input.earliest_hour,
            latest_hour=input.latest_hour,
            minimum_notice_hours=input.minimum_notice_hours,
            buffer_minutes=input.buffer_minutes,
            scheduling_assistant_enabled=input.scheduling_assistant_enabled,
            group_polls_enabled=input.group_polls_enabled,
            two_way_sync_enabled=input.two_way_sync_enabled,
        )
        row = await programs.update_settings(
            info.context.db,
            _viewer(info),
            parse_id(input.program_id, "program", "programId"),
            change,
        )
        return Program.from_row(row)

    result, errors = await run_mutation(info, action)
    return UpdateProgramSettingsPayload(program=result, errors=errors)


async def remove_program_member(
    info: strawberry.Info[Context, None], input: RemoveProgramMemberInput
) -> RemoveProgramMemberPayload:
    async def action() -> bool:
        await provisioning.remove_role(
            info.context.db,
            _viewer(info),
            parse_id(input.program_id, "program", "programId"),
            parse_id(input.user_id, "user", "userId"),
            ProgramRole(input.role.value),
        )
        return True

    result, errors = await run_mutation(info, action)
    return RemoveProgramMemberPayload(removed=bool(result), errors=errors)


async def set_user_active(
    info: strawberry.Info[Context, None], input: SetUserActiveInput
) -> SetUserActivePayload:
    change = provisioning.reactivate if input.active else provisioning.deactivate

    async def action() -> User:
        row = await change(
            info.context.db,
            _viewer(info),
            parse_id(input.program_id, "program", "programId"),
            parse_id(input.user_id, "user", "userId"),
        )
        return User.from_row(row)

    result, errors = await run_mutation(info, action)
    return SetUserActivePayload(user=result, active=input.active if result else None, errors=errors)


async def add_connection_member(
    info: strawberry.Info[Context, None], input: ConnectionMemberInput
) -> ConnectionMemberPayload:
    return await _change_members(info, input, mentoring.add_connection_member)


async def remove_connection_member(
    info: strawberry.Info[Context, None], input: ConnectionMemberInput
) -> ConnectionMemberPayload:
    return await _change_members(info, input, mentoring.remove_connection_member)


async def _change_members(
    info: strawberry.Info[Context, None],
    input: ConnectionMemberInput,
    change: Callable[[Any, Viewer, uuid.UUID, uuid.UUID], Awaitable[Any]],
) -> ConnectionMemberPayload:
    """Adding and removing a member differ only in the service rule they call."""

    async def action() -> MentoringConnection:
        row = await change(
            info.context.db,
            _viewer(info),
            parse_id(input.connection_id, "connection", "connectionId"),
            parse_id(input.user_id, "user", "userId"),
        )
        return MentoringConnection.from_row(row)

    result, errors = await run_mutation(info, action)
    return ConnectionMemberPayload(connection=result, errors=errors)
