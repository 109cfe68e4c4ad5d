"""People, their server-side sessions, API tokens and login attempts.

Session and API tokens are stored only as SHA-256 hashes: a database dump cannot be
replayed as a login.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, created_field, id_field


class User(SQLModel, table=True):
    __tablename__ = "user_account"
    __table_args__ = (CheckConstraint("email = lower(email)", name="email_lower"),)

    id: uuid.UUID = id_field()
    email: str = Field(max_length=320, unique=True, index=True)
    name: str = Field(max_length=200)
    time_zone: str = Field(default="UTC", max_length=64)
    password_hash: str | None = Field(default=None, max_length=255)
    is_global_admin: bool = False
    is_operator: bool = False
    is_active: bool = True
    profile_completed: bool = False
    created_at: datetime = created_field()


class UserSession(SQLModel, table=True):
    """A login. Deleting the row ends it, whatever cookie the browser still holds."""

    __tablename__ = "user_session"

    id: uuid.UUID = id_field()
    token_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    acting_for_user_id: uuid.UUID | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    acting_reason: str | None = Field(default=None, max_length=500)
    acting_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = created_field()
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=100)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = created_field()
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LoginAttempt(SQLModel, table=True):
    """Failed logins, kept briefly to rate-limit guessing per account and per address."""

    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_key_at", "key", "attempted_at"),)

    id: uuid.UUID = id_field()
    key: str = Field(max_length=400)
    attempted_at: datetime = created_field()
