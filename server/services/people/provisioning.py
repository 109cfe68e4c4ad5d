"""What administrators do to people: create someone in a program, give and take roles,
deactivate and reactivate accounts. Pages call these; the same rules as the GraphQL
mutations apply (``programs.add_member`` for roles), always as oneself, never while
working on behalf, and every change is audited.

Deactivation is the existing ``User.is_active`` flag: sign-in, sessions and API tokens
already refuse an inactive account; deactivating also ends the sessions and revokes the
tokens at once, so nothing lingers until its next use.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import ProgramMembership, User
from server.models.enums import ProgramRole
from server.services import audit
from server.services.errors import NotFound, PermissionDenied, ValidationFailed
from server.services.people import access, accounts, api_tokens, programs, sessions
from server.services.people.sessions import Viewer, admin_as_self

__all__ = [
    "PersonRow",
    "add_role",
    "create_person",
    "deactivate",
    "parse_role",
    "people_of",
    "reactivate",
    "remove_role",
]


@dataclass(frozen=True, slots=True)
class PersonRow:
    user: User
    roles: tuple[ProgramRole, ...]
    other_programs: int
    """How many other programs the person belongs to (a program admin's deactivation
    would reach them, so only global admins may)."""


def parse_role(raw: str) -> ProgramRole:
    try:
        return ProgramRole(raw)
    except ValueError:
        raise ValidationFailed("Choose a role.", field="role") from None


async def _administered(session: AsyncSession, who: User | Viewer, program_id: uuid.UUID) -> User:
    actor = admin_as_self(who)
    await programs.get_administered_program(session, actor, program_id)
    return actor


async def people_of(session: AsyncSession, actor: User, program_id: uuid.UUID) -> list[PersonRow]:
    """The program's people with their roles, for its admins (three queries)."""
    await programs.get_administered_program(session, actor, program_id)
    grouped: dict[uuid.UUID, list[ProgramRole]] = {}
    users: dict[uuid.UUID, User] = {}
    for user, role in await programs.members(session, program_id):
        users[user.id] = user
        grouped.setdefault(user.id, []).append(role)
    elsewhere = (
        dict(
            (
                await session.exec(
                    select(
                        ProgramMembership.user_id,
                        func.count(func.distinct(ProgramMembership.program_id)),
                    )
                    .where(
                        col(ProgramMembership.user_id).in_(list(users)),
                        ProgramMembership.program_id != program_id,
                    )
                    .group_by(col(ProgramMembership.user_id))
                )
            ).all()
        )
        if users
        else {}
    )
    order = list(ProgramRole)
    return [
        PersonRow(user, tuple(sorted(grouped[uid], key=order.index)), int(elsewhere.get(uid, 0)))
        for uid, user in users.items()
    ]


async def create_person(
    session: AsyncSession,
    who: User | Viewer,
    program_id: uuid.UUID,
    *,
    email: str,
    name: str,
    time_zone: str,
    role: ProgramRole,
) -> User:
    """A new account (no password yet: they choose one through a setup link) with a role in
    the program. A duplicate email or an unknown zone is refused and nothing is created."""
    actor = await _administered(session, who, program_id)
    user = await accounts.create_user(session, email=email, name=name, time_zone=time_zone)
    audit.record(
        session,
        "user.created",
        actor_id=actor.id,
        subject_id=user.id,
        target_type="program",
        target_id=program_id,
    )
    await programs.add_member(session, actor, program_id, user.id, role)
    return user


async def add_role(
    session: AsyncSession,
    who: User | Viewer,
    program_id: uuid.UUID,
    user_id: uuid.UUID,
    role: ProgramRole,
) -> None:
    """One more role for someone already in the program (people join through
    ``create_person`` or ``addProgramMember``); the rules are ``programs.add_member``'s."""
    actor = who.actor if isinstance(who, Viewer) else who
    await programs.get_administered_program(session, actor, program_id)
    if program_id not in await access.member_program_ids(session, user_id):
        raise ValidationFailed("This person is not in the program.", field="userId")
    await programs.add_member(session, who, program_id, user_id, role)


async def remove_role(
    session: AsyncSession,
    who: User | Viewer,
    program_id: uuid.UUID,
    user_id: uuid.UUID,
    role: ProgramRole,
) -> None:
    """Take one role in the program away; the last one takes the person out of it. An
    admin cannot take away their own admin role (another admin must)."""
    actor = await _administered(session, who, program_id)
    membership = (
        await session.exec(
            select(ProgramMembership).where(
                ProgramMembership.program_id == program_id,
                ProgramMembership.user_id == user_id,
                ProgramMembership.role == role,
            )
        )
    ).first()
    if membership is None:
        raise NotFound("person", field="userId")
    if user_id == actor.id and role == ProgramRole.ADMIN:
        raise PermissionDenied("You cannot remove your own admin role; ask another admin.")
    await session.exec(delete(ProgramMembership).where(col(ProgramMembership.id) == membership.id))
    audit.record(
        session,
        "program.member_removed",
        actor_id=actor.id,
        subject_id=user_id,
        target_type="program",
        target_id=program_id,
        role=role.value,
    )


async def _deactivatable(
    session: AsyncSession, who: User | Viewer, program_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[User, User]:
    actor = await _administered(session, who, program_id)
    target = await session.get(User, user_id)
    if target is None or program_id not in await access.member_program_ids(session, user_id):
        raise NotFound("person", field="userId")
    if target.id == actor.id:
        raise PermissionDenied("You cannot deactivate your own account.")
    if target.is_global_admin or target.is_operator:
        raise PermissionDenied("Global administrators and operators cannot be deactivated here.")
    if not actor.is_global_admin:
        theirs = await access.member_program_ids(session, user_id)
        if theirs - await access.admin_program_ids(session, actor):
            raise PermissionDenied(
                "This person also belongs to programs you do not administer; "
                "ask a global administrator."
            )
    return actor, target


async def deactivate(
    session: AsyncSession, who: User | Viewer, program_id: uuid.UUID, user_id: uuid.UUID
) -> User:
    """The person can no longer sign in; their sessions end and API tokens are revoked
    now. Their memberships, pairs and meetings stay, so reactivating restores them."""
    actor, target = await _deactivatable(session, who, program_id, user_id)
    if not target.is_active:
        return target
    target.is_active = False
    session.add(target)
    await sessions.end_all_sessions(session, target.id)
    revoked = await api_tokens.revoke_all(session, target)
    audit.record(
        session,
        "user.deactivated",
        actor_id=actor.id,
        subject_id=target.id,
        target_type="program",
        target_id=program_id,
        tokens_revoked=revoked,
    )
    return target


async def reactivate(
    session: AsyncSession, who: User | Viewer, program_id: uuid.UUID, user_id: uuid.UUID
) -> User:
    actor, target = await _deactivatable(session, who, program_id, user_id)
    if target.is_active:
        return target
    target.is_active = True
    session.add(target)
    audit.record(
        session,
        "user.reactivated",
        actor_id=actor.id,
        subject_id=target.id,
        target_type="program",
        target_id=program_id,
    )
    return target
