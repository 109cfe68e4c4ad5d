"""busy version: a number per person raised by every write of their busy blocks

Readers keep a person's blocks in memory while the number stays what it was when they
read them (``services.availability.busy_cache``); stored in the database, a write on one
node reaches every node's memory.

Revision ID: 0018_busy_version
Revises: 0017_busy_block_covering_index
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_busy_version"
down_revision: str | None = "0017_busy_block_covering_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "busy_version",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_busy_version_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_busy_version")),
    )


def downgrade() -> None:
    op.drop_table("busy_version")
