"""Meetings Tandem booked and their attendees' responses."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, created_field, enum_type, id_field
from server.models.enums import AttendeeResponse, MeetingStatus


class Meeting(SQLModel, table=True):
    __tablename__ = "meeting"
    __table_args__ = (
        CheckConstraint("end_at > start_at", name="order"),
        CheckConstraint("sequence >= 0", name="sequence"),
        Index("ix_meeting_owner_start", "owner_id", "start_at"),
        Index("ix_meeting_calendar_retry", "calendar_sync_state", "calendar_retry_at"),
    )

    id: uuid.UUID = id_field()
    connection_id: uuid.UUID | None = Field(
        default=None, foreign_key="mentoring_connection.id", index=True, ondelete="SET NULL"
    )
    owner_id: uuid.UUID = Field(foreign_key="user_account.id", ondelete="CASCADE")
    title: str = Field(max_length=200)
    description: str = Field(default="", sa_type=Text)
    location: str | None = Field(default=None, max_length=500)
    start_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    end_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    time_zone: str = Field(max_length=64)
    ical_uid: str = Field(max_length=255, unique=True)
    sequence: int = 0
    status: MeetingStatus = Field(
        default=MeetingStatus.SCHEDULED, sa_type=enum_type(MeetingStatus, "meeting_status")
    )
    provider_event_id: str | None = Field(default=None, max_length=1024)
    calendar_sync_state: str = Field(default="none", max_length=16)  # none|pending|synced|failed
    # Which provider holds ``provider_event_id`` (the owner may switch calendars later).
    calendar_provider: str | None = Field(default=None, max_length=16)
    calendar_attempts: int = 0
    calendar_retry_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    calendar_error: str | None = Field(default=None, max_length=300)
    # Who emails the attendees: "tandem" (iCalendar mail with signed links) or "provider"
    # (Microsoft Graph, which always mails attendees of events it creates). Fixed per meeting
    # once invitations went out, so attendees never receive two versions.
    invitations_by: str = Field(default="tandem", max_length=16)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


class MeetingAttendee(SQLModel, table=True):
    __tablename__ = "meeting_attendee"
    __table_args__ = (
        UniqueConstraint("meeting_id", "email", name="uq_meeting_attendee"),
        Index("ix_meeting_attendee_user", "user_id"),
    )

    id: uuid.UUID = id_field()
    meeting_id: uuid.UUID = Field(foreign_key="meeting.id", index=True, ondelete="CASCADE")
    user_id: uuid.UUID | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    email: str = Field(max_length=320)
    name: str = Field(max_length=200)
    response: AttendeeResponse = Field(
        default=AttendeeResponse.NEEDS_ACTION,
        sa_type=enum_type(AttendeeResponse, "attendee_response"),
    )
    responded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Invited as optional (an optional poll invitee): ROLE=OPT-PARTICIPANT in iCalendar.
    optional: bool = False
    # The answer the owner's calendar last showed for this attendee (two-way sync): only a
    # change there is news, so a stale copy never overrides an answer given in Tandem.
    calendar_response: str | None = Field(default=None, max_length=16)


class UsedRsvpLink(SQLModel, table=True):
    """RSVP links already honoured, by SHA-256 of the token: each link works once."""

    __tablename__ = "used_rsvp_link"

    id: uuid.UUID = id_field()
    token_hash: str = Field(max_length=64, unique=True)
    meeting_id: uuid.UUID = Field(foreign_key="meeting.id", index=True, ondelete="CASCADE")
    used_at: datetime = created_field()
