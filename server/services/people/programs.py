"""Programs, their members and their settings.

A program's settings fall back to the organization's: ``resolve_settings`` is the only
place that knows how. Operator-only switches (scheduling assistant, group polls) can be
changed by operators alone; everything else by program admins and global admins.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import bindparam, exists
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import Organization, Program, ProgramMembership, User
from server.models.enums import ProgramRole, ProviderName
from server.services import audit, core_reads
from server.services.errors import NotFound, PermissionDenied, ValidationFailed
from server.services.people import access
from server.services.people.sessions import Viewer, admin_as_self
from server.services.validation import clean_name

OPERATOR_ONLY = frozenset({"scheduling_assistant_enabled", "group_polls_enabled"})


@dataclass(frozen=True, slots=True)
class ProgramSettings:
    allowed_providers: tuple[ProviderName, ...]
    allow_weekends: bool
    earliest_hour: int
    latest_hour: int
    minimum_notice_hours: int
    buffer_minutes: int
    scheduling_assistant_enabled: bool
    group_polls_enabled: bool
    two_way_sync_enabled: bool


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """Fields left as None are not changed."""

    allowed_providers: tuple[ProviderName, ...] | None = None
    allow_weekends: bool | None = None
    earliest_hour: int | None = None
    latest_hour: int | None = None
    minimum_notice_hours: int | None = None
    buffer_minutes: int | None = None
    scheduling_assistant_enabled: bool | None = None
    group_polls_enabled: bool | None = None
    two_way_sync_enabled: bool | None = None

    def given(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


def _providers(raw: str) -> tuple[ProviderName, ...]:
    names = {part.strip() for part in raw.split(",") if part.strip()}
    return tuple(p for p in ProviderName if p.value in names)


def resolve_settings(organization: Organization, program: Program | None) -> ProgramSettings:
    def pick(name: str) -> Any:
        value = getattr(program, name) if program is not None else None
        return getattr(organization, name) if value is None else value

    return _settings(pick)


def _settings(pick: Callable[[str], Any]) -> ProgramSettings:
    """The settings with each value from ``pick`` (the program's, else the organization's)."""
    return ProgramSettings(
        allowed_providers=_providers(pick("allowed_providers")),
        **{name: pick(name) for name in SETTING_NAMES if name != "allowed_providers"},
    )


SETTING_NAMES = tuple(f.name for f in fields(ProgramSettings))


async def organization(session: AsyncSession) -> Organization:
    """The installation's organization (created on first use)."""
    result = await session.exec(select(Organization).order_by(col(Organization.created_at)))
    org = result.first()
    if org is None:
        org = Organization(name="Tandem")
        session.add(org)
        await session.flush()
    return org


_ORGANIZATIONS = Organization.__table__  # type: ignore[attr-defined]
_PROGRAMS = Program.__table__  # type: ignore[attr-defined]
_MEMBERSHIPS = ProgramMembership.__table__  # type: ignore[attr-defined]
_FIRST_ORGANIZATION = (
    sa_select(_ORGANIZATIONS).order_by(_ORGANIZATIONS.c.created_at).limit(1).subquery("org")
)
_FIRST_PROGRAM_OF_USER = (
    sa_select(_MEMBERSHIPS.c.program_id)
    .where(_MEMBERSHIPS.c.user_id == bindparam("user_id"))
    .order_by(_MEMBERSHIPS.c.created_at)
    .limit(1)
    .scalar_subquery()
)


def _settings_statement(program_id: Any) -> Any:
    """The organization's settings columns, then one program's (all NULL when there is
    none), in one query of table columns (``core_reads``): settings are asked on every
    availability question."""
    return (
        sa_select(
            *(_FIRST_ORGANIZATION.c[name] for name in SETTING_NAMES),
            *(_PROGRAMS.c[name].label(f"program_{name}") for name in SETTING_NAMES),
        )
        .select_from(_FIRST_ORGANIZATION)
        .outerjoin(_PROGRAMS, _PROGRAMS.c.id == program_id)
    )


_SETTINGS_FOR_PROGRAM = _settings_statement(bindparam("program_id"))
_SETTINGS_FOR_USER = _settings_statement(_FIRST_PROGRAM_OF_USER)


def _from_row(row: Any) -> ProgramSettings:
    """Settings from a ``_settings_statement`` row: the program's value where it has one."""
    width = len(SETTING_NAMES)
    values = {
        name: row[width + i] if row[width + i] is not None else row[i]
        for i, name in enumerate(SETTING_NAMES)
    }
    return _settings(values.__getitem__)


async def _resolved(session: AsyncSession, query: Any, params: dict[str, Any]) -> ProgramSettings:
    return _from_row(await _settings_row(session, query, params))


async def _settings_row(session: AsyncSession, query: Any, params: dict[str, Any]) -> Any:
    """The one row of a ``_settings_statement`` query (with whatever columns it adds)."""
    found = await core_reads.rows(session, query, params)
    if not found:  # no organization yet: create it, then ask again
        await organization(session)
        found = await core_reads.rows(session, query, params)
    return found[0]


async def settings_for(session: AsyncSession, program_id: uuid.UUID | None) -> ProgramSettings:
    """The program's settings over the organization's (the organization's alone when
    ``program_id`` is None or names no program)."""
    return await _resolved(session, _SETTINGS_FOR_PROGRAM, {"program_id": program_id})


_MEMBER_OF_PROGRAM = exists().where(
    _MEMBERSHIPS.c.program_id == bindparam("program_id"),
    _MEMBERSHIPS.c.user_id == bindparam("user_id"),
)
_SETTINGS_IF_MEMBER = _SETTINGS_FOR_PROGRAM.add_columns(_MEMBER_OF_PROGRAM.label("member"))


async def settings_if_visible(
    session: AsyncSession, viewer: User, program_id: uuid.UUID
) -> ProgramSettings | None:
    """``settings_for`` the program, or None when the viewer may not see it (the rule of
    ``access.can_see_program``), in one query instead of two."""
    if viewer.is_global_admin:
        return await settings_for(session, program_id)
    params = {"program_id": program_id, "user_id": viewer.id}
    found = await core_reads.rows(session, _SETTINGS_IF_MEMBER, params)
    if not found:  # no organization row yet
        if not await access.can_see_program(session, viewer, program_id):
            return None
        return await settings_for(session, program_id)
    row = found[0]
    if not row[-1]:  # "member"
        return None
    return _from_row(row)


async def settings_for_user(session: AsyncSession, user_id: uuid.UUID) -> ProgramSettings:
    """The settings of the user's first program (by join date), else the organization's."""
    return await _resolved(session, _SETTINGS_FOR_USER, {"user_id": user_id})


_SETTINGS_FOR_USER_SEEING = _SETTINGS_FOR_USER.add_columns(
    access.PARTNERS_AMONG.label("partners_among")
)


async def settings_for_user_seeing(
    session: AsyncSession, viewer: User, candidates: Collection[uuid.UUID]
) -> tuple[ProgramSettings, bool]:
    """``settings_for_user`` of the viewer, and whether every one of ``candidates`` is
    their partner (``access.partner_ids``), in one query: an availability question asks
    both. False means "not all partners", not "not visible": the caller asks
    ``access.visible_user_ids`` then (program administrators see more)."""
    asked = list(candidates)
    params = {"user_id": viewer.id, "candidates": asked}
    row = await _settings_row(session, _SETTINGS_FOR_USER_SEEING, params)
    return _from_row(row), row[-1] == len(asked)


async def get_visible_program(
    session: AsyncSession, viewer: User, program_id: uuid.UUID
) -> Program:
    program = await session.get(Program, program_id)
    if program is None or not await access.can_see_program(session, viewer, program_id):
        raise NotFound("program")
    return program


async def get_administered_program(
    session: AsyncSession, actor: User, program_id: uuid.UUID
) -> Program:
    """The program, for one of its admins (or a global admin); NotFound for anyone else, so
    a stranger cannot tell a program they may not administer from one that does not exist."""
    program = await session.get(Program, program_id)
    if program is None or not await access.is_program_admin(session, actor, program_id):
        raise NotFound("program")
    return program


async def programs_for(session: AsyncSession, viewer: User) -> list[Program]:
    query = select(Program).order_by(col(Program.name))
    if not viewer.is_global_admin:
        query = query.where(
            col(Program.id).in_(await access.member_program_ids(session, viewer.id))
        )
    return list((await session.exec(query)).all())


async def create_program(session: AsyncSession, who: User | Viewer, name: str) -> Program:
    actor = admin_as_self(who)
    if not actor.is_global_admin:
        raise PermissionDenied("Only global administrators can create programs.")
    org = await organization(session)
    program = Program(organization_id=org.id, name=clean_name(name, what="Program name"))
    existing = await session.exec(
        select(Program.id).where(Program.organization_id == org.id, Program.name == program.name)
    )
    if existing.first() is not None:
        raise ValidationFailed(f"A program named '{program.name}' already exists.", field="name")
    session.add(program)
    await session.flush()
    audit.record(
        session, "program.created", actor_id=actor.id, target_type="program", target_id=program.id
    )
    return program


async def add_member(
    session: AsyncSession,
    who: User | Viewer,
    program_id: uuid.UUID,
    user_id: uuid.UUID,
    role: ProgramRole,
) -> ProgramMembership:
    actor = admin_as_self(who)
    program = await get_visible_program(session, actor, program_id)
    if not await access.is_program_admin(session, actor, program.id):
        raise PermissionDenied("Only this program's administrators can add members.")
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user", field="userId")
    if not actor.is_global_admin:
        # A program admin may onboard people who are in no program yet, or people from
        # their own programs, never pull in members of programs they do not run.
        theirs = await access.member_program_ids(session, user.id)
        if theirs and not theirs & await access.admin_program_ids(session, actor):
            raise NotFound("user", field="userId")
    existing = await session.exec(
        select(ProgramMembership).where(
            ProgramMembership.program_id == program.id,
            ProgramMembership.user_id == user.id,
            ProgramMembership.role == role,
        )
    )
    membership = existing.first()
    if membership is not None:
        return membership
    membership = ProgramMembership(program_id=program.id, user_id=user.id, role=role)
    session.add(membership)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent identical add
        raise ValidationFailed("This person already has that role.", field="role") from exc
    audit.record(
        session,
        "program.member_added",
        actor_id=actor.id,
        subject_id=user.id,
        target_type="program",
        target_id=program.id,
        role=role.value,
    )
    return membership


async def update_settings(
    session: AsyncSession, who: User | Viewer, program_id: uuid.UUID, change: SettingsChange
) -> Program:
    """Change what ``change`` gives, as an admin of the program acting as themselves."""
    actor = admin_as_self(who)
    program = await get_visible_program(session, actor, program_id)
    if not await access.is_program_admin(session, actor, program.id):
        raise PermissionDenied("Only this program's administrators can change its settings.")
    given = change.given()
    forbidden = sorted(OPERATOR_ONLY & given.keys())
    if forbidden and not actor.is_operator:
        raise PermissionDenied(
            "Only operators can switch the scheduling assistant or group polls on or off."
        )
    current = await settings_for(session, program.id)
    earliest = given.get("earliest_hour", current.earliest_hour)
    latest = given.get("latest_hour", current.latest_hour)
    if not 0 <= earliest <= 23:
        raise ValidationFailed("Earliest hour must be between 0 and 23.", field="earliestHour")
    if not 1 <= latest <= 24:
        raise ValidationFailed("Latest hour must be between 1 and 24.", field="latestHour")
    if earliest >= latest:
        raise ValidationFailed(
            "The earliest meeting hour must be before the latest.", field="earliestHour"
        )
    if given.get("minimum_notice_hours", 0) < 0 or given.get("minimum_notice_hours", 0) > 24 * 30:
        raise ValidationFailed(
            "Minimum notice must be between 0 and 720 hours.", field="minimumNoticeHours"
        )
    if not 0 <= given.get("buffer_minutes", 0) <= 240:
        raise ValidationFailed("Buffer must be between 0 and 240 minutes.", field="bufferMinutes")
    if "allowed_providers" in given:
        providers = given["allowed_providers"]
        if not providers:
            raise ValidationFailed(
                "Allow at least one calendar provider.", field="allowedProviders"
            )
        given["allowed_providers"] = ",".join(p.value for p in ProviderName if p in providers)
    before = {name: getattr(program, name) for name in given}
    for name, value in given.items():
        setattr(program, name, value)
    session.add(program)
    audit.record(
        session,
        "program.settings_updated",
        actor_id=actor.id,
        target_type="program",
        target_id=program.id,
        before={k: v for k, v in before.items()},
        after=given,
    )
    return program


async def members(session: AsyncSession, program_id: uuid.UUID) -> list[tuple[User, ProgramRole]]:
    result = await session.exec(
        select(User, ProgramMembership.role)
        .join(ProgramMembership, col(ProgramMembership.user_id) == col(User.id))
        .where(ProgramMembership.program_id == program_id)
        .order_by(col(User.name))
    )
    return [(user, ProgramRole(role)) for user, role in result.all()]


async def settings_for_many(
    session: AsyncSession, program_ids: list[uuid.UUID]
) -> dict[uuid.UUID, ProgramSettings]:
    """Resolved settings of many programs in two queries (the API's ``programs`` list)."""
    org = await organization(session)
    rows = (await session.exec(select(Program).where(col(Program.id).in_(program_ids)))).all()
    return {row.id: resolve_settings(org, row) for row in rows}


async def members_of_many(
    session: AsyncSession, program_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[User, ProgramRole]]]:
    grouped: dict[uuid.UUID, list[tuple[User, ProgramRole]]] = {pid: [] for pid in program_ids}
    result = await session.exec(
        select(ProgramMembership.program_id, User, ProgramMembership.role)
        .join(User, col(User.id) == col(ProgramMembership.user_id))
        .where(col(ProgramMembership.program_id).in_(program_ids))
        .order_by(col(User.name))
    )
    for program_id, user, role in result.all():
        grouped[program_id].append((user, ProgramRole(role)))
    return grouped
