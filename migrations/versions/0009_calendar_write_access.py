"""calendar connections: whether meetings may be written (Google granular consent), and
failed reads of the change token in a row (a token kept failing is dropped)

Revision ID: 0009_calendar_write_access
Revises: 0008_provider_problems
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_calendar_write_access"
down_revision: str | None = "0008_provider_problems"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calendar_connection", schema=None) as batch_op:
        # Existing connections were made with every scope Tandem asks for.
        batch_op.add_column(
            sa.Column("can_write_events", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(
            sa.Column("changes_failures", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("calendar_connection", schema=None) as batch_op:
        batch_op.drop_column("changes_failures")
        batch_op.drop_column("can_write_events")
