"""The home page's dashboard: what waits for my answer, my next meetings, my calendar.

It sits with polls because it reads polls and meetings; the home page and any other
caller get one answer from here, so "needs your answer" means the same everywhere.
Only titles of Tandem's own meetings and polls appear here, never anything read from
a user's calendar.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import (
    Meeting,
    MeetingAttendee,
    MentoringConnection,
    Poll,
    PollAnswer,
    PollInvitee,
    User,
)
from server.models.base import utcnow
from server.models.enums import AttendeeResponse, MeetingStatus, PollStatus
from server.services.calendars import status as calendar_status
from server.services.meetings import booking
from server.services.polls.tally import status_at

__all__ = [
    "Dashboard",
    "Invitation",
    "NextMeeting",
    "Other",
    "PollToAnswer",
    "dashboard_for",
]

NEXT_MEETINGS = 5
MAX_WAITING = 20


@dataclass(frozen=True, slots=True)
class PollToAnswer:
    """An open poll I am invited to and have not answered (I do not organize it)."""

    poll_id: uuid.UUID
    title: str
    group_name: str
    deadline: datetime | None
    optional: bool


@dataclass(frozen=True, slots=True)
class Other:
    """Another attendee of a meeting, with their zone when they have an account."""

    name: str
    time_zone: str | None


@dataclass(frozen=True, slots=True)
class Invitation:
    """A meeting someone else organizes that I have not answered yet."""

    meeting: Meeting
    organizer_name: str


@dataclass(frozen=True, slots=True)
class NextMeeting:
    meeting: Meeting
    others: tuple[Other, ...]
    my_response: AttendeeResponse
    is_owner: bool


@dataclass(frozen=True, slots=True)
class Dashboard:
    polls: tuple[PollToAnswer, ...]
    invitations: tuple[Invitation, ...]
    next_meetings: tuple[NextMeeting, ...]
    calendar_status: str  # connected | needs_reauth | error | not_connected

    @property
    def waiting_count(self) -> int:
        return len(self.polls) + len(self.invitations)


async def dashboard_for(db: AsyncSession, user: User, *, now: datetime | None = None) -> Dashboard:
    now = now or utcnow()
    connection = await calendar_status.connection_for(db, user.id)
    return Dashboard(
        polls=tuple(await _polls_to_answer(db, user, now)),
        invitations=tuple(await _invitations(db, user, now)),
        next_meetings=tuple(await _next_meetings(db, user, now)),
        calendar_status=connection.status.value if connection else "not_connected",
    )


async def _polls_to_answer(db: AsyncSession, user: User, now: datetime) -> list[PollToAnswer]:
    rows = (
        await db.exec(
            select(Poll, PollInvitee.optional, MentoringConnection.name)
            .join(PollInvitee, col(PollInvitee.poll_id) == col(Poll.id))
            .join(MentoringConnection, col(MentoringConnection.id) == col(Poll.connection_id))
            .where(PollInvitee.user_id == user.id)
            .where(Poll.status == PollStatus.OPEN)
            .where(Poll.organizer_id != user.id)
            .order_by(col(Poll.created_at))
            .limit(MAX_WAITING * 2)
        )
    ).all()
    open_polls = [
        (p, optional, name) for p, optional, name in rows if status_at(p, now) == PollStatus.OPEN
    ]
    if not open_polls:
        return []
    answered = set(
        (
            await db.exec(
                select(PollAnswer.poll_id)
                .where(col(PollAnswer.poll_id).in_([p.id for p, _o, _n in open_polls]))
                .where(PollAnswer.user_id == user.id)
            )
        ).all()
    )
    found = [
        PollToAnswer(p.id, p.title, name or "", p.deadline, optional)
        for p, optional, name in open_polls
        if p.id not in answered
    ]
    # Soonest deadline first; polls without one after them.
    found.sort(key=lambda item: (item.deadline is None, item.deadline or now))
    return found[:MAX_WAITING]


async def _invitations(db: AsyncSession, user: User, now: datetime) -> list[Invitation]:
    rows = (
        await db.exec(
            select(Meeting, User.name)
            .join(MeetingAttendee, col(MeetingAttendee.meeting_id) == col(Meeting.id))
            .join(User, col(User.id) == col(Meeting.owner_id))
            .where(MeetingAttendee.user_id == user.id)
            .where(MeetingAttendee.response == AttendeeResponse.NEEDS_ACTION)
            .where(Meeting.owner_id != user.id)
            .where(Meeting.status == MeetingStatus.SCHEDULED)
            .where(col(Meeting.end_at) > now)
            .order_by(col(Meeting.start_at))
            .limit(MAX_WAITING)
        )
    ).all()
    return [Invitation(meeting, name) for meeting, name in rows]


async def _next_meetings(db: AsyncSession, user: User, now: datetime) -> list[NextMeeting]:
    upcoming = await booking.meetings_for(db, user, upcoming=True, now=now, limit=NEXT_MEETINGS * 4)
    upcoming = [m for m in upcoming if m.status == MeetingStatus.SCHEDULED][:NEXT_MEETINGS]
    people = await booking.attendees_with_users(db, [m.id for m in upcoming])
    found: list[NextMeeting] = []
    for meeting in upcoming:
        mine = AttendeeResponse.NEEDS_ACTION
        others: list[Other] = []
        for attendee, account in people[meeting.id]:
            if attendee.user_id == user.id:
                mine = attendee.response
                continue
            others.append(Other(attendee.name, account.time_zone if account else None))
        found.append(NextMeeting(meeting, tuple(others), mine, meeting.owner_id == user.id))
    return found
