"""meetings: owner-calendar retry state, who sends invitations, single-use RSVP links

Revision ID: 0002_meetings
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.models.base

revision: str = "0002_meetings"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("meeting", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "calendar_provider", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("calendar_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column(
                "calendar_retry_at", server.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("calendar_error", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "invitations_by",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="tandem",
            )
        )
        batch_op.create_index(
            "ix_meeting_calendar_retry", ["calendar_sync_state", "calendar_retry_at"], unique=False
        )
    # The defaults only filled existing rows; the application always writes both columns.
    with op.batch_alter_table("meeting", schema=None) as batch_op:
        batch_op.alter_column("calendar_attempts", server_default=None)
        batch_op.alter_column("invitations_by", server_default=None)

    with op.batch_alter_table("meeting_attendee", schema=None) as batch_op:
        batch_op.create_index("ix_meeting_attendee_user", ["user_id"], unique=False)

    op.create_table(
        "used_rsvp_link",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("meeting_id", sa.Uuid(), nullable=False),
        sa.Column("used_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["meeting_id"],
            ["meeting.id"],
            name=op.f("fk_used_rsvp_link_meeting_id_meeting"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_used_rsvp_link")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_used_rsvp_link_token_hash")),
    )
    with op.batch_alter_table("used_rsvp_link", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_used_rsvp_link_meeting_id"), ["meeting_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("used_rsvp_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_used_rsvp_link_meeting_id"))
    op.drop_table("used_rsvp_link")
    with op.batch_alter_table("meeting_attendee", schema=None) as batch_op:
        batch_op.drop_index("ix_meeting_attendee_user")
    with op.batch_alter_table("meeting", schema=None) as batch_op:
        batch_op.drop_index("ix_meeting_calendar_retry")
        batch_op.drop_column("invitations_by")
        batch_op.drop_column("calendar_error")
        batch_op.drop_column("calendar_retry_at")
        batch_op.drop_column("calendar_attempts")
        batch_op.drop_column("calendar_provider")
