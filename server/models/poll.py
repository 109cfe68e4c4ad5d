"""Group polls over proposed slots, their invitees, answers and comments."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, created_field, enum_type, id_field
from server.models.enums import PollAnswerValue, PollStatus


class Poll(SQLModel, table=True):
    __tablename__ = "poll"
    __table_args__ = (CheckConstraint("duration_minutes > 0", name="duration"),)

    id: uuid.UUID = id_field()
    connection_id: uuid.UUID = Field(
        foreign_key="mentoring_connection.id", index=True, ondelete="CASCADE"
    )
    organizer_id: uuid.UUID = Field(foreign_key="user_account.id", ondelete="CASCADE")
    title: str = Field(max_length=200)
    duration_minutes: int
    deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: PollStatus = Field(
        default=PollStatus.OPEN, sa_type=enum_type(PollStatus, "poll_status")
    )
    final_slot_id: uuid.UUID | None = None
    meeting_id: uuid.UUID | None = Field(
        default=None, foreign_key="meeting.id", ondelete="SET NULL"
    )
    reminder_sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = created_field()


class PollSlot(SQLModel, table=True):
    __tablename__ = "poll_slot"
    __table_args__ = (
        CheckConstraint("end_at > start_at", name="order"),
        UniqueConstraint("poll_id", "start_at", name="uq_poll_slot_start"),
    )

    id: uuid.UUID = id_field()
    poll_id: uuid.UUID = Field(foreign_key="poll.id", index=True, ondelete="CASCADE")
    start_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    end_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class PollInvitee(SQLModel, table=True):
    __tablename__ = "poll_invitee"
    __table_args__ = (UniqueConstraint("poll_id", "user_id", name="uq_poll_invitee"),)

    id: uuid.UUID = id_field()
    poll_id: uuid.UUID = Field(foreign_key="poll.id", index=True, ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="user_account.id", ondelete="CASCADE")
    optional: bool = False


class PollAnswer(SQLModel, table=True):
    __tablename__ = "poll_answer"
    __table_args__ = (UniqueConstraint("slot_id", "user_id", name="uq_poll_answer"),)

    id: uuid.UUID = id_field()
    poll_id: uuid.UUID = Field(foreign_key="poll.id", index=True, ondelete="CASCADE")
    slot_id: uuid.UUID = Field(foreign_key="poll_slot.id", ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="user_account.id", ondelete="CASCADE")
    answer: PollAnswerValue = Field(sa_type=enum_type(PollAnswerValue, "poll_answer_value"))
    updated_at: datetime = created_field()


class PollComment(SQLModel, table=True):
    __tablename__ = "poll_comment"

    id: uuid.UUID = id_field()
    poll_id: uuid.UUID = Field(foreign_key="poll.id", index=True, ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="user_account.id", ondelete="CASCADE")
    body: str = Field(sa_type=Text)
    created_at: datetime = created_field()
