"""calendar connections: the CalDAV change tag (getctag / sync-token of every calendar)
seen by the last cheap check, so a full read happens only when it changed

Revision ID: 0011_caldav_change_tag
Revises: 0010_org_integrations
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_caldav_change_tag"
down_revision: str | None = "0010_org_integrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calendar_connection", schema=None) as batch_op:
        batch_op.add_column(sa.Column("change_tag", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calendar_connection", schema=None) as batch_op:
        batch_op.drop_column("change_tag")
