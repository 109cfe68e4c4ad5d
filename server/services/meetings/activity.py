"""How much each mentoring connection meets, for the program's administrators.

Counts and dates only: administrators see that a pair met, never what a meeting was about.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import Meeting, MentoringConnection, Program, User
from server.models.base import utcnow
from server.models.enums import MeetingStatus
from server.services.errors import NotFound
from server.services.people import access, mentoring


@dataclass(frozen=True, slots=True)
class ConnectionActivity:
    """``scheduled`` counts every meeting ever booked (cancelled ones too); ``held`` the
    ones that took place; ``upcoming`` those still ahead; ``last_meeting_at`` the start of
    the latest one held (None if they never met)."""

    connection: MentoringConnection
    member_names: list[str]
    scheduled: int
    held: int
    cancelled: int
    upcoming: int
    last_meeting_at: datetime | None


async def program_activity(
    db: AsyncSession, viewer: User, program_id: uuid.UUID, *, now: datetime | None = None
) -> tuple[Program, list[ConnectionActivity]]:
    """Every connection of the program with its meeting figures, from one grouped query.

    Program administrators (and global administrators) only; others get ``NotFound``.
    """
    now = now or utcnow()
    program = await db.get(Program, program_id)
    if program is None or not await access.is_program_admin(db, viewer, program_id):
        raise NotFound("program")
    connections = await mentoring.connections_in_program(db, program_id)
    members = await mentoring.members_by_connection(db, [c.id for c in connections])
    bucket = case(
        (col(Meeting.status) == MeetingStatus.CANCELLED, "cancelled"),
        (col(Meeting.end_at) <= now, "held"),
        else_="upcoming",
    )
    rows = await db.exec(
        select(
            Meeting.connection_id, bucket, func.count(col(Meeting.id)), func.max(Meeting.start_at)
        )
        .where(col(Meeting.connection_id).in_([c.id for c in connections]))
        .group_by(col(Meeting.connection_id), bucket)
    )
    counts: dict[tuple[uuid.UUID | None, str], int] = {}
    last_held: dict[uuid.UUID | None, datetime] = {}
    for connection_id, kind, count, latest in rows.all():
        counts[(connection_id, kind)] = int(count)
        if kind == "held" and latest is not None:
            last_held[connection_id] = latest
    result = []
    for connection in connections:
        figures = {k: counts.get((connection.id, k), 0) for k in ("held", "cancelled", "upcoming")}
        result.append(
            ConnectionActivity(
                connection=connection,
                member_names=[user.name for user, _role in members[connection.id]],
                scheduled=sum(figures.values()),
                held=figures["held"],
                cancelled=figures["cancelled"],
                upcoming=figures["upcoming"],
                last_meeting_at=last_held.get(connection.id),
            )
        )
    return program, result
