"""Mentoring connections: a mentor/mentee pair or a group (circle) inside a program."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import created_field, enum_type, id_field
from server.models.enums import ConnectionKind


class MentoringConnection(SQLModel, table=True):
    __tablename__ = "mentoring_connection"

    id: uuid.UUID = id_field()
    program_id: uuid.UUID = Field(foreign_key="program.id", index=True, ondelete="CASCADE")
    kind: ConnectionKind = Field(sa_type=enum_type(ConnectionKind, "connection_kind"))
    name: str = Field(max_length=200)
    organizer_id: uuid.UUID | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    created_at: datetime = created_field()


class ConnectionMember(SQLModel, table=True):
    __tablename__ = "connection_member"
    __table_args__ = (UniqueConstraint("connection_id", "user_id", name="uq_connection_member"),)

    id: uuid.UUID = id_field()
    connection_id: uuid.UUID = Field(
        foreign_key="mentoring_connection.id", index=True, ondelete="CASCADE"
    )
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    role: str = Field(default="member", max_length=20)  # mentor | mentee | member
