"""Who may see whom and what. Every rule about visibility lives here, in one place.

Callers that find "not allowed" raise ``NotFound`` so that "not yours" and "does not
exist" look identical from outside.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import bindparam, distinct, exists, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import ConnectionMember, MentoringConnection, ProgramMembership, User
from server.models.enums import ProgramRole
from server.services import core_reads


async def admin_program_ids(session: AsyncSession, user: User) -> set[uuid.UUID]:
    result = await session.exec(
        select(ProgramMembership.program_id).where(
            ProgramMembership.user_id == user.id, ProgramMembership.role == ProgramRole.ADMIN
        )
    )
    return set(result.all())


async def member_program_ids(session: AsyncSession, user_id: uuid.UUID) -> set[uuid.UUID]:
    result = await session.exec(
        select(ProgramMembership.program_id).where(ProgramMembership.user_id == user_id)
    )
    return set(result.all())


async def is_program_admin(session: AsyncSession, user: User, program_id: uuid.UUID) -> bool:
    if user.is_global_admin:
        return True
    return program_id in await admin_program_ids(session, user)


async def can_see_program(session: AsyncSession, user: User, program_id: uuid.UUID) -> bool:
    if user.is_global_admin:
        return True
    return program_id in await member_program_ids(session, user.id)


_MINE = ConnectionMember.__table__.alias("mine")  # type: ignore[attr-defined]
_THEIRS = ConnectionMember.__table__.alias("theirs")  # type: ignore[attr-defined]
_PARTNERS = (
    sa_select(_THEIRS.c.user_id)
    .join(_MINE, _MINE.c.connection_id == _THEIRS.c.connection_id)
    .where(_MINE.c.user_id == bindparam("user_id"), _THEIRS.c.user_id != bindparam("user_id"))
)
"""Built once, of table columns (``core_reads``): every availability question asks."""


PARTNERS_AMONG = (
    sa_select(func.count(distinct(_THEIRS.c.user_id)))
    .join(_MINE, _MINE.c.connection_id == _THEIRS.c.connection_id)
    .where(
        _MINE.c.user_id == bindparam("user_id"),
        _THEIRS.c.user_id != bindparam("user_id"),
        _THEIRS.c.user_id.in_(bindparam("candidates", expanding=True)),
    )
    .scalar_subquery()
)
"""How many of ``candidates`` share a connection with ``user_id``: a column another read
of the same person can carry (``programs.settings_for_user_seeing``), so the common
question "are these all my partners?" costs no statement of its own."""


async def partner_ids(session: AsyncSession, user_id: uuid.UUID) -> set[uuid.UUID]:
    """Everyone who shares a mentoring connection (pair or group) with the user."""
    return {row[0] for row in await core_reads.rows(session, _PARTNERS, {"user_id": user_id})}


async def visible_user_ids(
    session: AsyncSession, viewer: User, candidates: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    """The subset of ``candidates`` the viewer may see: themselves, partners, and people in
    programs they administer (global admins see everyone)."""
    wanted = set(candidates)
    if viewer.is_global_admin:
        result = await session.exec(select(User.id).where(col(User.id).in_(wanted)))
        return set(result.all())
    visible = {viewer.id} & wanted
    remaining = wanted - visible
    if remaining:
        visible |= await partner_ids(session, viewer.id) & remaining
        remaining -= visible
    if remaining:
        admin_of = await admin_program_ids(session, viewer)
        if admin_of:
            result = await session.exec(
                select(ProgramMembership.user_id).where(
                    col(ProgramMembership.program_id).in_(admin_of),
                    col(ProgramMembership.user_id).in_(remaining),
                )
            )
            visible |= set(result.all())
    return visible


async def can_see_user(session: AsyncSession, viewer: User, target_id: uuid.UUID) -> bool:
    return target_id in await visible_user_ids(session, viewer, [target_id])


async def actable_user_ids(
    session: AsyncSession, admin: User, candidates: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    """Whom an admin may work on behalf of, among ``candidates`` (three queries at most):
    participants of programs they administer (any, for global admins); never a global
    admin, an operator, an inactive account, or anyone who administers a program (acting
    as them would lend their admin rights)."""
    wanted = set(candidates) - {admin.id}
    if not wanted:
        return set()
    result = await session.exec(
        select(User.id).where(
            col(User.id).in_(wanted),
            col(User.is_global_admin).is_(False),
            col(User.is_operator).is_(False),
            col(User.is_active).is_(True),
        )
    )
    eligible = set(result.all())
    admins = await session.exec(
        select(ProgramMembership.user_id).where(
            col(ProgramMembership.user_id).in_(eligible),
            ProgramMembership.role == ProgramRole.ADMIN,
        )
    )
    eligible -= set(admins.all())
    if admin.is_global_admin or not eligible:
        return eligible
    admin_of = await admin_program_ids(session, admin)
    if not admin_of:
        return set()
    members = await session.exec(
        select(ProgramMembership.user_id).where(
            col(ProgramMembership.program_id).in_(admin_of),
            col(ProgramMembership.user_id).in_(eligible),
        )
    )
    return set(members.all())


async def can_act_for(session: AsyncSession, admin: User, target: User) -> bool:
    return target.id in await actable_user_ids(session, admin, [target.id])


async def can_see_connection(
    session: AsyncSession, viewer: User, connection: MentoringConnection
) -> bool:
    """Members of the connection and admins of its program (global admins: any)."""
    if viewer.is_global_admin:
        return True
    result = await session.exec(
        _MEMBER_OR_PROGRAM_ADMIN,
        params={
            "user_id": viewer.id,
            "connection_id": connection.id,
            "program_id": connection.program_id,
        },
    )
    return bool(result.first())


_MEMBER_OR_PROGRAM_ADMIN = select(
    or_(
        exists().where(
            col(ConnectionMember.connection_id) == bindparam("connection_id"),
            col(ConnectionMember.user_id) == bindparam("user_id"),
        ),
        exists().where(
            col(ProgramMembership.program_id) == bindparam("program_id"),
            col(ProgramMembership.user_id) == bindparam("user_id"),
            col(ProgramMembership.role) == ProgramRole.ADMIN,
        ),
    )
)
"""One query for the two ways to see a connection (asked on every schedule page)."""
