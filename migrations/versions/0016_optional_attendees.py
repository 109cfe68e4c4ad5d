"""meeting attendees: optional ones (an optional poll invitee stays optional in the
meeting the poll becomes: ROLE=OPT-PARTICIPANT in iCalendar, optional in Google and Graph)

Revision ID: 0016_optional_attendees
Revises: 0015_onprem_service_user
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_optional_attendees"
down_revision: str | None = "0015_onprem_service_user"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("meeting_attendee", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("optional", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("meeting_attendee", schema=None) as batch_op:
        batch_op.drop_column("optional")
