"""Mentoring connections: pairs (one mentor, one mentee) and groups (circles)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Table, bindparam, delete
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import ConnectionMember, MentoringConnection, ProgramMembership, User
from server.models.enums import ConnectionKind, ProgramRole
from server.services import audit, core_reads
from server.services.errors import NotFound, PermissionDenied, ValidationFailed
from server.services.people import access
from server.services.people.sessions import Viewer, admin_as_self
from server.services.validation import clean_name

MAX_GROUP_SIZE = 50
DEACTIVATED_MEMBER = "A deactivated account cannot join a pair or group; reactivate it first."


async def create_connection(
    session: AsyncSession,
    who: User | Viewer,
    *,
    program_id: uuid.UUID,
    member_ids: Sequence[uuid.UUID],
    kind: ConnectionKind,
    name: str | None,
    organizer_id: uuid.UUID | None = None,
    mentor_id: uuid.UUID | None = None,
) -> MentoringConnection:
    """A pair or group of program members. For a pair, ``mentor_id`` says which member
    mentors (the other is the mentee); without it their program roles decide."""
    actor = admin_as_self(who)
    if not await access.can_see_program(session, actor, program_id):
        raise NotFound("program", field="programId")
    if not await access.is_program_admin(session, actor, program_id):
        raise PermissionDenied("Only this program's administrators can create connections.")
    unique_ids = list(dict.fromkeys(member_ids))
    if kind == ConnectionKind.PAIR and len(unique_ids) != 2:
        raise ValidationFailed("A pair has exactly two members.", field="memberIds")
    if kind == ConnectionKind.GROUP and not 2 <= len(unique_ids) <= MAX_GROUP_SIZE:
        raise ValidationFailed(
            f"A group has between 2 and {MAX_GROUP_SIZE} members.", field="memberIds"
        )
    result = await session.exec(
        select(ProgramMembership.user_id, ProgramMembership.role).where(
            ProgramMembership.program_id == program_id,
            col(ProgramMembership.user_id).in_(unique_ids),
        )
    )
    roles: dict[uuid.UUID, set[ProgramRole]] = defaultdict(set)
    for user_id, role in result.all():
        roles[user_id].add(ProgramRole(role))
    outsiders = [uid for uid in unique_ids if uid not in roles]
    if outsiders:
        raise ValidationFailed("Every member must belong to the program first.", field="memberIds")
    if mentor_id is not None and (kind != ConnectionKind.PAIR or mentor_id not in unique_ids):
        raise ValidationFailed("The mentor must be one of the pair.", field="mentorId")
    if organizer_id is not None and organizer_id not in unique_ids:
        raise ValidationFailed("The organizer must be a member of the group.", field="organizerId")
    users = {
        u.id: u
        for u in (await session.exec(select(User).where(col(User.id).in_(unique_ids)))).all()
    }
    if any(not user.is_active for user in users.values()):
        raise ValidationFailed(DEACTIVATED_MEMBER, field="memberIds")
    if kind == ConnectionKind.PAIR:
        first, second = (users[uid] for uid in unique_ids)
        label = name or f"{first.name} & {second.name}"
    else:
        label = name or "Group"
    connection = MentoringConnection(
        program_id=program_id,
        kind=kind,
        name=clean_name(label, what="Connection name"),
        organizer_id=organizer_id or (unique_ids[0] if kind == ConnectionKind.GROUP else None),
    )
    session.add(connection)
    await session.flush()
    for uid in unique_ids:
        member_role = "member"
        if kind == ConnectionKind.PAIR and mentor_id is not None:
            member_role = "mentor" if uid == mentor_id else "mentee"
        elif kind == ConnectionKind.PAIR:
            if ProgramRole.MENTOR in roles[uid]:
                member_role = "mentor"
            elif ProgramRole.MENTEE in roles[uid]:
                member_role = "mentee"
        session.add(ConnectionMember(connection_id=connection.id, user_id=uid, role=member_role))
    audit.record(
        session,
        "connection.created",
        actor_id=actor.id,
        target_type="mentoring_connection",
        target_id=connection.id,
        kind=kind.value,
        members=len(unique_ids),
    )
    await session.flush()
    return connection


async def administered_connection(
    session: AsyncSession, who: User | Viewer, connection_id: uuid.UUID
) -> tuple[User, MentoringConnection]:
    """The connection for an admin of its program, acting as themselves; else NotFound."""
    actor = admin_as_self(who)
    connection = await session.get(MentoringConnection, connection_id)
    if connection is None or not await access.is_program_admin(
        session, actor, connection.program_id
    ):
        raise NotFound("connection")
    return actor, connection


async def _member_ids(session: AsyncSession, connection_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.exec(
        select(ConnectionMember.user_id).where(ConnectionMember.connection_id == connection_id)
    )
    return list(rows.all())


async def add_connection_member(
    session: AsyncSession, who: User | Viewer, connection_id: uuid.UUID, user_id: uuid.UUID
) -> MentoringConnection:
    """Add a program member to a group (pairs always have their two)."""
    actor, connection = await administered_connection(session, who, connection_id)
    if connection.kind == ConnectionKind.PAIR:
        raise ValidationFailed(
            "A pair always has two members; create another pair instead.", field="userId"
        )
    in_program = await session.exec(
        select(ProgramMembership.id).where(
            ProgramMembership.program_id == connection.program_id,
            ProgramMembership.user_id == user_id,
        )
    )
    if in_program.first() is None:
        raise ValidationFailed("This person is not in the program.", field="userId")
    person = await session.get(User, user_id)
    if person is None or not person.is_active:
        raise ValidationFailed(DEACTIVATED_MEMBER, field="userId")
    current = await _member_ids(session, connection.id)
    if user_id in current:
        raise ValidationFailed("This person is already in the group.", field="userId")
    if len(current) >= MAX_GROUP_SIZE:
        raise ValidationFailed(f"A group has at most {MAX_GROUP_SIZE} members.", field="userId")
    member = ConnectionMember(connection_id=connection.id, user_id=user_id, role="member")
    session.add(member)
    await session.flush()
    audit.record(
        session,
        "connection.member_added",
        actor_id=actor.id,
        subject_id=user_id,
        target_type="mentoring_connection",
        target_id=connection.id,
    )
    return connection


async def remove_connection_member(
    session: AsyncSession, who: User | Viewer, connection_id: uuid.UUID, user_id: uuid.UUID
) -> MentoringConnection:
    """Take someone out of a group; a group keeps at least two members and its organizer
    (choose the group's organizer again before removing them)."""
    actor, connection = await administered_connection(session, who, connection_id)
    if connection.kind == ConnectionKind.PAIR:
        raise ValidationFailed(
            "A pair always has two members; create another pair instead.", field="userId"
        )
    current = await _member_ids(session, connection.id)
    if user_id not in current:
        raise NotFound("member", field="userId")
    if len(current) <= 2:
        raise ValidationFailed("A group keeps at least two members.", field="userId")
    if connection.organizer_id == user_id:
        raise ValidationFailed(
            "This person organizes the group's polls and cannot be removed.", field="userId"
        )
    await session.exec(
        delete(ConnectionMember).where(
            col(ConnectionMember.connection_id) == connection.id,
            col(ConnectionMember.user_id) == user_id,
        )
    )
    audit.record(
        session,
        "connection.member_removed",
        actor_id=actor.id,
        subject_id=user_id,
        target_type="mentoring_connection",
        target_id=connection.id,
    )
    return connection


async def get_visible_connection(
    session: AsyncSession, viewer: User, connection_id: uuid.UUID
) -> MentoringConnection:
    connection = await session.get(MentoringConnection, connection_id)
    if connection is None or not await access.can_see_connection(session, viewer, connection):
        raise NotFound("connection")
    return connection


async def visible_connection_with_members(
    session: AsyncSession, viewer: User, connection_id: uuid.UUID
) -> tuple[MentoringConnection, list[tuple[User, str]]]:
    """``get_visible_connection`` and its ``members_by_connection`` entry in one query
    (pages that show a pair ask for both), read as table rows: the objects are detached,
    to be read, not changed. A member sees it by being in the list; anyone else is asked
    ``access.can_see_connection`` (program administrators)."""
    rows = await core_reads.rows(
        session, _CONNECTION_WITH_MEMBERS, {"connection_id": connection_id}
    )
    if not rows:
        raise NotFound("connection")
    connection = core_reads.detached_at(MentoringConnection, rows[0])
    split = core_reads.width(MentoringConnection)
    members = [
        (core_reads.detached_at(User, row, split), row[-1])
        for row in rows
        if row[split] is not None
    ]
    member = any(user.id == viewer.id for user, _ in members)
    if not member and not await access.can_see_connection(session, viewer, connection):
        raise NotFound("connection")
    return connection, members


_CONNECTIONS: Table = MentoringConnection.__table__  # type: ignore[attr-defined]
_MEMBERS: Table = ConnectionMember.__table__  # type: ignore[attr-defined]
_USERS: Table = User.__table__  # type: ignore[attr-defined]
_CONNECTION_WITH_MEMBERS = (
    sa_select(*_CONNECTIONS.c, *_USERS.c, _MEMBERS.c.role)
    .select_from(
        _CONNECTIONS.outerjoin(_MEMBERS, _MEMBERS.c.connection_id == _CONNECTIONS.c.id).outerjoin(
            _USERS, _USERS.c.id == _MEMBERS.c.user_id
        )
    )
    .where(_CONNECTIONS.c.id == bindparam("connection_id"))
    .order_by(_USERS.c.name)
)
"""Built once, of table columns: the schedule page asks it on every request."""


async def connections_for(session: AsyncSession, user: User) -> list[MentoringConnection]:
    result = await session.exec(
        select(MentoringConnection)
        .join(ConnectionMember, col(ConnectionMember.connection_id) == col(MentoringConnection.id))
        .where(ConnectionMember.user_id == user.id)
        .order_by(col(MentoringConnection.kind), col(MentoringConnection.name))
    )
    return list(result.all())


async def members_by_connection(
    session: AsyncSession, connection_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[User, str]]]:
    """Members of many connections in one query (no N+1)."""
    grouped: dict[uuid.UUID, list[tuple[User, str]]] = {cid: [] for cid in connection_ids}
    if not connection_ids:
        return grouped
    result = await session.exec(
        select(ConnectionMember.connection_id, User, ConnectionMember.role)
        .join(User, col(User.id) == col(ConnectionMember.user_id))
        .where(col(ConnectionMember.connection_id).in_(connection_ids))
        .order_by(col(User.name))
    )
    for connection_id, user, role in result.all():
        grouped[connection_id].append((user, role))
    return grouped


async def connections_in_program(
    session: AsyncSession, program_id: uuid.UUID
) -> list[MentoringConnection]:
    result = await session.exec(
        select(MentoringConnection)
        .where(MentoringConnection.program_id == program_id)
        .order_by(col(MentoringConnection.kind), col(MentoringConnection.name))
    )
    return list(result.all())


async def connections_visible_in_programs(
    session: AsyncSession, viewer: User, program_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[MentoringConnection]]:
    """Per program: every connection for its admins, else only the viewer's own (one
    query for admin programs, one for the viewer's connections)."""
    grouped: dict[uuid.UUID, list[MentoringConnection]] = {pid: [] for pid in program_ids}
    wanted = set(program_ids)
    administered = (
        wanted
        if viewer.is_global_admin
        else wanted & await access.admin_program_ids(session, viewer)
    )
    if administered:
        rows = await session.exec(
            select(MentoringConnection)
            .where(col(MentoringConnection.program_id).in_(administered))
            .order_by(col(MentoringConnection.kind), col(MentoringConnection.name))
        )
        for row in rows.all():
            grouped[row.program_id].append(row)
    for row in await connections_for(session, viewer):
        if row.program_id in wanted - administered:
            grouped[row.program_id].append(row)
    return grouped
