"""Emails that could not be delivered yet, kept (encrypted: they carry RSVP links) for retry."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, LargeBinary
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, created_field, id_field


class QueuedMail(SQLModel, table=True):
    __tablename__ = "queued_mail"
    __table_args__ = (Index("ix_queued_mail_due", "failed", "next_attempt_at"),)

    id: uuid.UUID = id_field()
    encrypted_message: bytes = Field(sa_type=LargeBinary)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    failed: bool = False  # given up (refused for good, or too many attempts): kept for operators
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = created_field()
