"""why a calendar sync failed (error_code) and push renewal backoff

Revision ID: 0008_provider_problems
Revises: 0007_busy_coverage
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.models.base

revision: str = "0008_provider_problems"
down_revision: str | None = "0007_busy_coverage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calendar_connection", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("error_code", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True)
        )
    with op.batch_alter_table("push_subscription", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("renew_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column(
                "renew_retry_at", server.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("push_subscription", schema=None) as batch_op:
        batch_op.drop_column("renew_retry_at")
        batch_op.drop_column("renew_failures")
    with op.batch_alter_table("calendar_connection", schema=None) as batch_op:
        batch_op.drop_column("error_code")
