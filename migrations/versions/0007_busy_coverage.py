"""busy coverage: the ranges beyond the default horizon whose busy blocks were fetched

Revision ID: 0007_busy_coverage
Revises: 0006_queued_mail
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models.base

revision: str = "0007_busy_coverage"
down_revision: str | None = "0006_queued_mail"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "busy_coverage",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("start_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("fetched_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("end_at > start_at", name=op.f("ck_busy_coverage_order")),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["calendar_connection.id"],
            name=op.f("fk_busy_coverage_connection_id_calendar_connection"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_busy_coverage")),
    )
    with op.batch_alter_table("busy_coverage", schema=None) as batch_op:
        batch_op.create_index(
            "ix_busy_coverage_connection_start", ["connection_id", "start_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("busy_coverage", schema=None) as batch_op:
        batch_op.drop_index("ix_busy_coverage_connection_start")
    op.drop_table("busy_coverage")
