"""busy blocks: one index that holds everything the availability reader selects

The reader asks for each person's blocks overlapping a window and reads start, end and
kind. With the index on (user_id, start_at) alone, SQLite and PostgreSQL look up every
matching row in the table for end_at and kind; with those columns in the index the read
is an index-only scan. The new index starts with the old one's columns, so it serves
every query the old one did.

Revision ID: 0017_busy_block_covering_index
Revises: 0016_optional_attendees
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_busy_block_covering_index"
down_revision: str | None = "0016_optional_attendees"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_busy_block_user_start_end_kind",
        "busy_block",
        ["user_id", "start_at", "end_at", "kind"],
    )
    op.drop_index("ix_busy_block_user_start", table_name="busy_block")


def downgrade() -> None:
    op.create_index("ix_busy_block_user_start", "busy_block", ["user_id", "start_at"])
    op.drop_index("ix_busy_block_user_start_end_kind", table_name="busy_block")
