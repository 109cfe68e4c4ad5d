"""Exchange on-premises: the Tandem account that is the service account, and the service
mailbox's change-sync state

Revision ID: 0015_onprem_service_user
Revises: 0014_org_oauth_apps
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_onprem_service_user"
down_revision: str | None = "0014_org_oauth_apps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("organization_integration", schema=None) as batch_op:
        batch_op.add_column(sa.Column("service_user_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("changes_sync_state", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_organization_integration_service_user_id_user_account"),
            "user_account",
            ["service_user_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("organization_integration", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_organization_integration_service_user_id_user_account"),
            type_="foreignkey",
        )
        batch_op.drop_column("changes_sync_state")
        batch_op.drop_column("service_user_id")
