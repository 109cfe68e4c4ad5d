"""Tandem's own meetings as busy time for their attendees.

Kept apart from ``meetings`` so the availability query can use it without importing the
booking rules (which themselves use the availability query).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CompoundSelect, Select, Uuid, bindparam, cast, null, select, union_all
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import Meeting, MeetingAttendee
from server.models.base import UTCDateTime
from server.models.enums import AttendeeResponse, BusyKind, MeetingStatus
from server.providers.base import BusyInterval
from server.services import core_reads

_ATTENDEES = MeetingAttendee.__table__  # type: ignore[attr-defined]
_MEETINGS = Meeting.__table__  # type: ignore[attr-defined]
_ATTENDEE, _MEETING = _ATTENDEES.c, _MEETINGS.c
_BOOKED = (
    select(_ATTENDEE.user_id, _MEETING.start_at, _MEETING.end_at)
    .join_from(_ATTENDEES, _MEETINGS, _MEETING.id == _ATTENDEE.meeting_id)
    .where(
        _ATTENDEE.user_id.in_(bindparam("ids", expanding=True)),
        _ATTENDEE.response != AttendeeResponse.DECLINED,
        _MEETING.status == MeetingStatus.SCHEDULED,
        _MEETING.start_at < bindparam("end", type_=UTCDateTime()),
        _MEETING.end_at > bindparam("start", type_=UTCDateTime()),
    )
)
_BOOKED_BUT_ONE = _BOOKED.where(_MEETING.id != bindparam("ignore"))
"""Built once, of table columns (``core_reads``): every availability question asks."""

_NO_BOOKING = (
    cast(null(), Uuid()).label("booked_user_id"),
    cast(null(), UTCDateTime()).label("booked_start"),
    cast(null(), UTCDateTime()).label("booked_end"),
)
"""The three columns ``after(statement)`` appends to another read's rows, empty there."""


def after(statement: Select[Any]) -> CompoundSelect[Any]:
    """``statement``'s rows, then the same rows ``meeting_busy`` reads (``ids``, ``start``,
    ``end``) with ``statement``'s columns empty before them, in one query: a question
    reads its people and their meetings in one round trip. ``booked_in`` picks them
    out of the result."""
    width = len(statement.selected_columns)
    padded = _BOOKED.with_only_columns(*(null() for _ in range(width)), *_BOOKED.selected_columns)
    return union_all(statement.add_columns(*_NO_BOOKING), padded)


def booked_in(rows: Sequence[Sequence[Any]]) -> dict[uuid.UUID, list[BusyInterval]]:
    """The meetings of rows read by ``after``: those whose last three columns are set."""
    found: dict[uuid.UUID, list[BusyInterval]] = defaultdict(list)
    for row in rows:
        user_id = row[-3]
        if user_id is not None:
            found[user_id].append(BusyInterval(row[-2], row[-1], BusyKind.BUSY))
    return dict(found)


async def meeting_busy(
    db: AsyncSession,
    user_ids: Sequence[uuid.UUID],
    start: datetime,
    end: datetime,
    *,
    ignore_meeting_id: uuid.UUID | None = None,
) -> dict[uuid.UUID, list[BusyInterval]]:
    """Scheduled meetings overlapping ``[start, end)`` per attendee, as ``busy`` intervals.

    A declined meeting does not block its decliner; a cancelled one blocks nobody.
    ``ignore_meeting_id`` leaves out a meeting being moved, so it does not clash with itself.
    """
    if not user_ids:
        return {}
    params: dict[str, Any] = {"ids": list(user_ids), "start": start, "end": end}
    query = _BOOKED
    if ignore_meeting_id is not None:
        query, params["ignore"] = _BOOKED_BUT_ONE, ignore_meeting_id
    found: dict[uuid.UUID, list[BusyInterval]] = defaultdict(list)
    for row in await core_reads.rows(db, query, params):
        user_id, meeting_start, meeting_end = row[0], row[1], row[2]
        if user_id is not None:
            found[user_id].append(BusyInterval(meeting_start, meeting_end, BusyKind.BUSY))
    return dict(found)
