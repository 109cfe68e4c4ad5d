"""Queries and mutations for meetings: thin calls into ``server.services.meetings.booking``."""

from __future__ import annotations

import strawberry

from server.models.enums import AttendeeResponse
from server.schema.common import parse_id, run_mutation
from server.schema.context import Context
from server.schema.meetings import (
    CancelMeetingInput,
    CancelMeetingPayload,
    Meeting,
    RespondToMeetingInput,
    RespondToMeetingPayload,
    ScheduleMeetingInput,
    ScheduleMeetingPayload,
    UpdateMeetingInput,
    UpdateMeetingPayload,
)
from server.services.errors import NotFound, ValidationFailed
from server.services.meetings import booking
from server.services.people.sessions import Viewer

MAX_ATTENDEE_IDS = 50


def _viewer(info: strawberry.Info[Context, None]) -> Viewer:
    viewer = info.context.viewer
    assert viewer is not None  # IsAuthenticated guarantees it
    return viewer


async def meeting(info: strawberry.Info[Context, None], id: strawberry.ID) -> Meeting | None:
    """A meeting the caller attends or organizes, else null (also for unknown ids)."""
    try:
        row = await booking.get_meeting(info.context.db, info.context.user, parse_id(id, "meeting"))
    except NotFound:
        return None
    return Meeting.from_row(row)


async def all_meetings(
    info: strawberry.Info[Context, None],
    upcoming: bool | None = None,
    connection_id: strawberry.ID | None = None,
) -> list[Meeting]:
    """The caller's meetings; ``upcoming`` true: not yet ended (soonest first), false: past
    (latest first). At most 200."""
    try:
        connection = parse_id(connection_id, "connection") if connection_id is not None else None
    except NotFound:
        return []
    rows = await booking.meetings_for(
        info.context.db, info.context.user, upcoming=upcoming, connection_id=connection
    )
    return [Meeting.from_row(row) for row in rows]


async def schedule_meeting(
    info: strawberry.Info[Context, None], input: ScheduleMeetingInput
) -> ScheduleMeetingPayload:
    async def action() -> Meeting:
        if input.attendee_ids is not None and len(input.attendee_ids) > MAX_ATTENDEE_IDS:
            raise ValidationFailed(f"At most {MAX_ATTENDEE_IDS} attendees.", field="attendeeIds")
        row = await booking.schedule_meeting(
            info.context.db,
            info.context.services.meetings,
            _viewer(info),
            connection_id=parse_id(input.connection_id, "connection", "connectionId"),
            start=input.start,
            duration_minutes=input.duration_minutes,
            title=input.title,
            description=input.description,
            location=input.location,
            attendee_ids=(
                [parse_id(a, "user", "attendeeIds") for a in input.attendee_ids]
                if input.attendee_ids is not None
                else None
            ),
        )
        return Meeting.from_row(row)

    result, errors = await run_mutation(info, action)
    return ScheduleMeetingPayload(meeting=result, errors=errors)


async def update_meeting(
    info: strawberry.Info[Context, None], input: UpdateMeetingInput
) -> UpdateMeetingPayload:
    async def action() -> Meeting:
        row = await booking.update_meeting(
            info.context.db,
            info.context.services.meetings,
            _viewer(info),
            parse_id(input.meeting_id, "meeting", "meetingId"),
            start=input.start,
            duration_minutes=input.duration_minutes,
            title=input.title,
            description=input.description,
            location=input.location,
        )
        return Meeting.from_row(row)

    result, errors = await run_mutation(info, action)
    return UpdateMeetingPayload(meeting=result, errors=errors)


async def cancel_meeting(
    info: strawberry.Info[Context, None], input: CancelMeetingInput
) -> CancelMeetingPayload:
    async def action() -> Meeting:
        row = await booking.cancel_meeting(
            info.context.db,
            info.context.services.meetings,
            _viewer(info),
            parse_id(input.meeting_id, "meeting", "meetingId"),
            message=input.message,
        )
        return Meeting.from_row(row)

    result, errors = await run_mutation(info, action)
    return CancelMeetingPayload(meeting=result, errors=errors)


async def respond_to_meeting(
    info: strawberry.Info[Context, None], input: RespondToMeetingInput
) -> RespondToMeetingPayload:
    async def action() -> Meeting:
        meeting_id = parse_id(input.meeting_id, "meeting", "meetingId")
        await booking.answer_meeting(
            info.context.db,
            info.context.services.meetings,
            _viewer(info),
            meeting_id,
            AttendeeResponse(input.response.value),
        )
        return Meeting.from_row(
            await booking.get_meeting(info.context.db, info.context.user, meeting_id)
        )

    result, errors = await run_mutation(info, action)
    return RespondToMeetingPayload(meeting=result, errors=errors)
