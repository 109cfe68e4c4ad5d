"""Organization, programs and who belongs to them.

A program's settings columns are nullable: ``None`` means "use the organization's value",
so changing an organization default reaches every program that did not override it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import created_field, enum_type, id_field
from server.models.enums import ProgramRole

ALL_PROVIDERS = "google,microsoft,icloud"


class Organization(SQLModel, table=True):
    __tablename__ = "organization"
    __table_args__ = (
        CheckConstraint("earliest_hour >= 0 AND earliest_hour <= 23", name="earliest"),
        CheckConstraint("latest_hour >= 1 AND latest_hour <= 24", name="latest"),
        CheckConstraint("earliest_hour < latest_hour", name="hours_order"),
        CheckConstraint("minimum_notice_hours >= 0", name="notice"),
        CheckConstraint("buffer_minutes >= 0", name="buffer"),
    )

    id: uuid.UUID = id_field()
    name: str = Field(max_length=200)
    allowed_providers: str = Field(default=ALL_PROVIDERS, max_length=64)
    allow_weekends: bool = False
    earliest_hour: int = 8
    latest_hour: int = 20
    minimum_notice_hours: int = 0
    buffer_minutes: int = 0
    scheduling_assistant_enabled: bool = True
    group_polls_enabled: bool = False
    two_way_sync_enabled: bool = False
    # "Organization-wide calendar authorization": only an operator turns it on; until
    # then no integration can be started.
    org_calendars_enabled: bool = False
    created_at: datetime = created_field()


class Program(SQLModel, table=True):
    __tablename__ = "program"
    __table_args__ = (
        UniqueConstraint("organization_id", "name", name="uq_program_name"),
        CheckConstraint(
            "earliest_hour IS NULL OR (earliest_hour >= 0 AND earliest_hour <= 23)",
            name="earliest",
        ),
        CheckConstraint(
            "latest_hour IS NULL OR (latest_hour >= 1 AND latest_hour <= 24)",
            name="latest",
        ),
        CheckConstraint("minimum_notice_hours IS NULL OR minimum_notice_hours >= 0", name="notice"),
        CheckConstraint("buffer_minutes IS NULL OR buffer_minutes >= 0", name="buffer"),
    )

    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(
        foreign_key="organization.id", index=True, ondelete="CASCADE"
    )
    name: str = Field(max_length=200)
    allowed_providers: str | None = Field(default=None, max_length=64)
    allow_weekends: bool | None = None
    earliest_hour: int | None = None
    latest_hour: int | None = None
    minimum_notice_hours: int | None = None
    buffer_minutes: int | None = None
    scheduling_assistant_enabled: bool | None = None
    group_polls_enabled: bool | None = None
    two_way_sync_enabled: bool | None = None
    created_at: datetime = created_field()


class ProgramMembership(SQLModel, table=True):
    __tablename__ = "program_membership"
    __table_args__ = (UniqueConstraint("program_id", "user_id", "role", name="uq_membership_role"),)

    id: uuid.UUID = id_field()
    program_id: uuid.UUID = Field(foreign_key="program.id", index=True, ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    role: ProgramRole = Field(sa_type=enum_type(ProgramRole, "program_role"))
    created_at: datetime = created_field()
