"""Group polls: proposed slots, who is busy in each, answers, tallies and comments."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.dataloader import DataLoader

from server.models import User as UserRow
from server.schema.common import UserError
from server.schema.context import Context
from server.schema.meetings import Meeting
from server.schema.users import User
from server.services.polls import rules as poll_rules
from server.services.polls.rules import PollDetails, SlotTally


@strawberry.enum
class PollStatus(Enum):
    OPEN = "open"
    CLOSED = "closed"
    FINALIZED = "finalized"


@strawberry.enum(description="An invitee's answer for one slot: Yes, If need be or No.")
class PollAnswerValue(Enum):
    YES = "yes"
    IF_NEED_BE = "if_need_be"
    NO = "no"


@strawberry.type
class PollAnswer:
    user: User
    answer: PollAnswerValue


@strawberry.type(description="A proposed slot with its tally; times in UTC.")
class PollSlot:
    id: strawberry.ID
    start: datetime
    end: datetime
    unavailable_user_ids: list[strawberry.ID] = strawberry.field(
        description="Invitees whose connected calendar shows them busy (never why)."
    )
    yes_count: int
    if_need_be_count: int
    no_count: int
    answers: list[PollAnswer]
    unknown_user_ids: list[strawberry.ID] = strawberry.field(
        description=(
            "Invitees whose connected calendar Tandem could not read for this slot: "
            "unknown, not free."
        )
    )

    @classmethod
    def from_tally(cls, slot: SlotTally, users: dict[uuid.UUID, UserRow]) -> PollSlot:
        return cls(
            id=strawberry.ID(str(slot.id)),
            start=slot.start,
            end=slot.end,
            unavailable_user_ids=[strawberry.ID(str(u)) for u in slot.unavailable],
            yes_count=slot.yes,
            if_need_be_count=slot.if_need_be,
            no_count=slot.no,
            answers=[
                PollAnswer(user=User.from_row(users[uid]), answer=PollAnswerValue(value.value))
                for uid, value in slot.answers
            ],
            unknown_user_ids=[strawberry.ID(str(u)) for u in slot.unknown],
        )


@strawberry.type
class PollInvitee:
    user: User
    optional: bool
    answered: bool


@strawberry.type
class PollComment:
    id: strawberry.ID
    user: User
    body: str
    created_at: datetime


def _comment_loader(
    info: strawberry.Info[Context, None],
) -> DataLoader[uuid.UUID, list[PollComment]]:
    """Comments of many polls in one query per request (no N+1 in ``polls``)."""
    loaders = info.context.loaders
    if "poll_comments" not in loaders:
        db = info.context.db

        async def load(ids: list[uuid.UUID]) -> list[list[PollComment]]:
            grouped = await poll_rules.comments_by_poll(db, ids)
            return [
                [
                    PollComment(
                        id=strawberry.ID(str(row.id)),
                        user=User.from_row(author),
                        body=row.body,
                        created_at=row.created_at,
                    )
                    for row, author in grouped.get(i, [])
                ]
                for i in ids
            ]

        loaders["poll_comments"] = DataLoader(load_fn=load)
    loader: DataLoader[uuid.UUID, list[PollComment]] = loaders["poll_comments"]
    return loader


@strawberry.type
class Poll:
    id: strawberry.ID
    title: str
    status: PollStatus
    group_id: strawberry.ID
    organizer: User | None
    duration_minutes: int
    deadline: datetime | None
    invitee_count: int
    connected_invitee_count: int
    best_slot_id: strawberry.ID | None = strawberry.field(
        description="Judged on required invitees first (yes or if need be), then optional ones."
    )
    final_slot_id: strawberry.ID | None
    meeting_id: strawberry.ID | None
    invitees: list[PollInvitee]
    slots: list[PollSlot]

    @strawberry.field
    async def comments(self, info: strawberry.Info[Context, None]) -> list[PollComment]:
        return await _comment_loader(info).load(uuid.UUID(str(self.id)))

    @classmethod
    def from_details(cls, details: PollDetails) -> Poll:
        poll = details.poll
        users = {i.user.id: i.user for i in details.invitees}
        organizer = users.get(poll.organizer_id)

        def opt_id(value: Any) -> strawberry.ID | None:
            return strawberry.ID(str(value)) if value is not None else None

        return cls(
            id=strawberry.ID(str(poll.id)),
            title=poll.title,
            status=PollStatus(details.status.value),
            group_id=strawberry.ID(str(poll.connection_id)),
            organizer=User.from_row(organizer) if organizer else None,
            duration_minutes=poll.duration_minutes,
            deadline=poll.deadline,
            invitee_count=details.invitee_count,
            connected_invitee_count=details.connected_count,
            best_slot_id=opt_id(details.best_slot_id),
            final_slot_id=opt_id(poll.final_slot_id),
            meeting_id=opt_id(poll.meeting_id),
            invitees=[
                PollInvitee(
                    user=User.from_row(i.user),
                    optional=i.optional,
                    answered=i.user.id in details.answered_ids,
                )
                for i in details.invitees
            ],
            slots=[PollSlot.from_tally(s, users) for s in details.slots],
        )


@strawberry.input
class PollSlotInput:
    start: datetime = strawberry.field(description="Within two years of today, with an offset.")


@strawberry.input
class CreatePollInput:
    group_id: strawberry.ID
    title: str
    duration_minutes: int
    slots: list[PollSlotInput] = strawberry.field(description="At most 50.")
    deadline: datetime | None = strawberry.field(
        default=None, description="Within two years of today, with an offset."
    )
    optional_invitee_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list, description="Group members whose answers only break ties."
    )


@strawberry.type
class CreatePollPayload:
    poll: Poll | None
    errors: list[UserError]


@strawberry.input
class PollAnswerInput:
    slot_id: strawberry.ID
    answer: PollAnswerValue


@strawberry.input(description="Answers of the signed-in user; every slot of the poll, once.")
class AnswerPollInput:
    poll_id: strawberry.ID
    answers: list[PollAnswerInput]


@strawberry.type
class AnswerPollPayload:
    poll: Poll | None
    errors: list[UserError]


@strawberry.input
class AddPollCommentInput:
    poll_id: strawberry.ID
    body: str


@strawberry.type
class AddPollCommentPayload:
    comment: PollComment | None
    errors: list[UserError]


@strawberry.input
class FinalizePollInput:
    poll_id: strawberry.ID
    slot_id: strawberry.ID
    message: str | None = strawberry.field(
        default=None,
        description="Optional words for the invitees (at most 1000 characters), carried "
        "in the invitation email only; never stored.",
    )


@strawberry.type
class FinalizePollPayload:
    meeting: Meeting | None
    poll: Poll | None
    errors: list[UserError]
