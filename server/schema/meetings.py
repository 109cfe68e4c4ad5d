"""Meetings booked through Tandem: their attendees, answers and calendar state."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

import strawberry
from strawberry.dataloader import DataLoader

from server.models import Meeting as MeetingRow
from server.models import MeetingAttendee as AttendeeRow
from server.models import User as UserRow
from server.schema.common import UserError
from server.schema.context import Context
from server.schema.users import User
from server.services.meetings import booking

_AttendeeRows = list[tuple[AttendeeRow, UserRow | None]]


@strawberry.enum
class MeetingStatus(Enum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


@strawberry.enum(
    description="Where an attendee stands: not answered yet, Accepted, Declined or Tentative."
)
class AttendeeResponse(Enum):
    NEEDS_ACTION = "needs_action"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    TENTATIVE = "tentative"


@strawberry.enum(description="An answer an attendee can give: Accept, Decline or Tentative.")
class RsvpResponse(Enum):
    ACCEPTED = "accepted"
    DECLINED = "declined"
    TENTATIVE = "tentative"


@strawberry.enum(description="Where the meeting stands in the organizer's own calendar.")
class CalendarSyncState(Enum):
    NONE = "none"
    PENDING = "pending"
    SYNCED = "synced"
    FAILED = "failed"


@strawberry.type
class MeetingAttendee:
    name: str
    email: str
    response: AttendeeResponse
    responded_at: datetime | None
    is_organizer: bool
    user: User | None
    optional: bool = strawberry.field(
        default=False,
        description="Invited as optional (an optional poll invitee): the meeting does not "
        "depend on them; ROLE=OPT-PARTICIPANT in the invitation.",
    )


@strawberry.type
class Meeting:
    id: strawberry.ID
    title: str
    description: str
    location: str | None
    start: datetime
    end: datetime
    time_zone: str = strawberry.field(description="The organizer's IANA zone when booked.")
    status: MeetingStatus
    sequence: int = strawberry.field(description="iCalendar SEQUENCE; grows with every change.")
    ical_uid: str
    connection_id: strawberry.ID | None
    calendar_sync_state: CalendarSyncState
    owner_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="Everyone invited, the organizer included, with answers.")
    async def attendees(self, info: strawberry.Info[Context, None]) -> list[MeetingAttendee]:
        rows = await attendee_loader(info).load(uuid.UUID(str(self.id)))
        return [
            MeetingAttendee(
                name=attendee.name,
                email=attendee.email,
                response=AttendeeResponse(attendee.response.value),
                responded_at=attendee.responded_at,
                is_organizer=attendee.user_id == self.owner_id,
                user=User.from_row(user) if user is not None else None,
                optional=attendee.optional,
            )
            for attendee, user in rows
        ]

    @strawberry.field
    async def organizer(self, info: strawberry.Info[Context, None]) -> User | None:
        rows = await attendee_loader(info).load(uuid.UUID(str(self.id)))
        return next(
            (User.from_row(user) for _a, user in rows if user and user.id == self.owner_id), None
        )

    @classmethod
    def from_row(cls, row: MeetingRow) -> Meeting:
        return cls(
            id=strawberry.ID(str(row.id)),
            title=row.title,
            description=row.description,
            location=row.location,
            start=row.start_at,
            end=row.end_at,
            time_zone=row.time_zone,
            status=MeetingStatus(row.status.value),
            sequence=row.sequence,
            ical_uid=row.ical_uid,
            connection_id=strawberry.ID(str(row.connection_id)) if row.connection_id else None,
            calendar_sync_state=CalendarSyncState(row.calendar_sync_state),
            owner_id=row.owner_id,
        )


def attendee_loader(info: strawberry.Info[Context, None]) -> DataLoader[uuid.UUID, _AttendeeRows]:
    """One per request, made on first use: every meeting's attendees in one query."""
    loaders = info.context.loaders
    if "meeting_attendees" not in loaders:
        db = info.context.db

        async def load(ids: list[uuid.UUID]) -> list[_AttendeeRows]:
            grouped = await booking.attendees_with_users(db, ids)
            return [grouped.get(i, []) for i in ids]

        loaders["meeting_attendees"] = DataLoader(load_fn=load)
    loader: DataLoader[uuid.UUID, _AttendeeRows] = loaders["meeting_attendees"]
    return loader


@strawberry.input
class ScheduleMeetingInput:
    connection_id: strawberry.ID
    start: datetime = strawberry.field(description="Within two years of today, with an offset.")
    duration_minutes: int
    title: str
    description: str = ""
    location: str | None = None
    attendee_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Defaults to every member of the connection."
    )


@strawberry.input(description="Only the fields given change; an empty location clears it.")
class UpdateMeetingInput:
    meeting_id: strawberry.ID
    start: datetime | None = strawberry.field(
        default=None, description="Within two years of today, with an offset."
    )
    duration_minutes: int | None = None
    title: str | None = None
    description: str | None = None
    location: str | None = None


@strawberry.input
class CancelMeetingInput:
    meeting_id: strawberry.ID
    message: str | None = strawberry.field(
        default=None,
        description="Optional words for the attendees (at most 1000 characters), carried "
        "in the cancellation email only; never stored.",
    )


@strawberry.input
class RespondToMeetingInput:
    meeting_id: strawberry.ID
    response: RsvpResponse


@strawberry.type
class ScheduleMeetingPayload:
    meeting: Meeting | None
    errors: list[UserError]


@strawberry.type
class UpdateMeetingPayload:
    meeting: Meeting | None
    errors: list[UserError]


@strawberry.type
class CancelMeetingPayload:
    meeting: Meeting | None
    errors: list[UserError]


@strawberry.type
class RespondToMeetingPayload:
    meeting: Meeting | None
    errors: list[UserError]
