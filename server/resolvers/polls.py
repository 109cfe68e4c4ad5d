"""Poll queries and mutations. The voter and the organizer are always the signed-in user
(``info.context.user``), never an id from the input."""

from __future__ import annotations

import uuid

import strawberry

from server.models.enums import PollAnswerValue as AnswerValue
from server.models.enums import PollStatus as StatusValue
from server.schema.common import parse_id, run_mutation
from server.schema.context import Context
from server.schema.meetings import Meeting
from server.schema.polls import (
    AddPollCommentInput,
    AddPollCommentPayload,
    AnswerPollInput,
    AnswerPollPayload,
    CreatePollInput,
    CreatePollPayload,
    FinalizePollInput,
    FinalizePollPayload,
    Poll,
    PollComment,
    PollStatus,
)
from server.schema.users import User
from server.services.errors import NotFound, ValidationFailed
from server.services.polls import rules as poll_rules

MAX_IDS = poll_rules.MAX_SLOTS


def _cap(items: list[object], field: str) -> None:
    if len(items) > MAX_IDS:
        raise ValidationFailed(f"At most {MAX_IDS} items.", field=field)


async def _poll(info: strawberry.Info[Context, None], poll_id: uuid.UUID) -> Poll:
    ctx = info.context
    details = await poll_rules.poll_details(
        ctx.db, ctx.user, poll_id, calendar=ctx.services.calendar
    )
    return Poll.from_details(details)


async def poll(info: strawberry.Info[Context, None], id: strawberry.ID) -> Poll | None:
    """A poll of a group the caller belongs to; ``null`` otherwise."""
    try:
        return await _poll(info, parse_id(id, "poll"))
    except NotFound:
        return None


async def all_polls(
    info: strawberry.Info[Context, None],
    group_id: strawberry.ID,
    status: PollStatus | None = None,
) -> list[Poll]:
    """The group's polls, newest first; empty for a group the caller is not in."""
    db, user = info.context.db, info.context.user
    try:
        rows = await poll_rules.polls_for_group(
            db,
            user,
            parse_id(group_id, "group"),
            StatusValue(status.value) if status is not None else None,
        )
    except NotFound:
        return []
    return [Poll.from_details(d) for d in await poll_rules.load_details(db, rows)]


async def create_poll(
    info: strawberry.Info[Context, None], input: CreatePollInput
) -> CreatePollPayload:
    ctx = info.context

    async def action() -> Poll:
        _cap(list(input.slots), "slots")
        _cap(list(input.optional_invitee_ids), "optionalInviteeIds")
        row = await poll_rules.create_poll(
            ctx.db,
            ctx.services.polls,
            ctx.user,
            group_id=parse_id(input.group_id, "group", "groupId"),
            title=input.title,
            duration_minutes=input.duration_minutes,
            slot_starts=[slot.start for slot in input.slots],
            deadline=input.deadline,
            actor_id=ctx.viewer.actor.id if ctx.viewer else None,
            optional_invitee_ids=[
                parse_id(i, "user", "optionalInviteeIds") for i in input.optional_invitee_ids
            ],
        )
        return await _poll(info, row.id)

    result, errors = await run_mutation(info, action)
    return CreatePollPayload(poll=result, errors=errors)


async def answer_poll(
    info: strawberry.Info[Context, None], input: AnswerPollInput
) -> AnswerPollPayload:
    ctx = info.context

    async def action() -> Poll:
        _cap(list(input.answers), "answers")
        poll_id = parse_id(input.poll_id, "poll", "pollId")
        await poll_rules.submit_answers(
            ctx.db,
            ctx.services.polls,
            ctx.user,
            poll_id,
            [
                (parse_id(a.slot_id, "slot", "answers"), AnswerValue(a.answer.value))
                for a in input.answers
            ],
            actor_id=ctx.viewer.actor.id if ctx.viewer else None,
        )
        return await _poll(info, poll_id)

    result, errors = await run_mutation(info, action)
    return AnswerPollPayload(poll=result, errors=errors)


async def add_poll_comment(
    info: strawberry.Info[Context, None], input: AddPollCommentInput
) -> AddPollCommentPayload:
    ctx = info.context

    async def action() -> PollComment:
        row = await poll_rules.add_comment(
            ctx.db,
            ctx.user,
            parse_id(input.poll_id, "poll", "pollId"),
            input.body,
            actor_id=ctx.viewer.actor.id if ctx.viewer else None,
        )
        return PollComment(
            id=strawberry.ID(str(row.id)),
            user=User.from_row(ctx.user),
            body=row.body,
            created_at=row.created_at,
        )

    result, errors = await run_mutation(info, action)
    return AddPollCommentPayload(comment=result, errors=errors)


async def finalize_poll(
    info: strawberry.Info[Context, None], input: FinalizePollInput
) -> FinalizePollPayload:
    """The organizer turns one slot into a meeting (invitations go out as for any meeting)."""
    ctx = info.context
    viewer = ctx.viewer
    assert viewer is not None  # IsAuthenticated guarantees it
    poll_id = parse_id(input.poll_id, "poll", "pollId")

    async def action() -> Meeting:
        row = await poll_rules.finalize_poll(
            ctx.db,
            ctx.services.meetings,
            viewer,
            poll_id,
            parse_id(input.slot_id, "slot", "slotId"),
            message=input.message,
        )
        return Meeting.from_row(row)

    meeting, errors = await run_mutation(info, action)
    result = await _poll(info, poll_id) if meeting is not None else None
    return FinalizePollPayload(meeting=meeting, poll=result, errors=errors)
