"""two-way sync of Tandem's meetings: change tokens and the calendar's last-seen answers

Revision ID: 0004_meeting_changes
Revises: 0003_push
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.models.base

revision: str = "0004_meeting_changes"
down_revision: str | None = "0003_push"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calendar_connection", schema=None) as batch_op:
        batch_op.add_column(sa.Column("changes_token", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("changes_until", server.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "changes_read_at", server.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
    with op.batch_alter_table("meeting_attendee", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "calendar_response", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("meeting_attendee", schema=None) as batch_op:
        batch_op.drop_column("calendar_response")
    with op.batch_alter_table("calendar_connection", schema=None) as batch_op:
        batch_op.drop_column("changes_read_at")
        batch_op.drop_column("changes_until")
        batch_op.drop_column("changes_token")
