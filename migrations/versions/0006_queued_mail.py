"""queued mail: invitations and notifications kept for retry when SMTP is down

Revision ID: 0006_queued_mail
Revises: 0005_acting_since
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.models.base

revision: str = "0006_queued_mail"
down_revision: str | None = "0005_acting_since"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "queued_mail",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("encrypted_message", sa.LargeBinary(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("failed", sa.Boolean(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("created_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queued_mail")),
    )
    with op.batch_alter_table("queued_mail", schema=None) as batch_op:
        batch_op.create_index("ix_queued_mail_due", ["failed", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("queued_mail", schema=None) as batch_op:
        batch_op.drop_index("ix_queued_mail_due")
    op.drop_table("queued_mail")
