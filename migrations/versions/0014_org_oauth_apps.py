"""organizations' own OAuth apps for personal connections, and which app each grant used

Revision ID: 0014_org_oauth_apps
Revises: 0011_caldav_change_tag
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.models.base

revision: str = "0014_org_oauth_apps"
down_revision: str | None = "0011_caldav_change_tag"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "organization_oauth_app",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column(
            "provider",
            sa.Enum(
                "google",
                "microsoft",
                "icloud",
                name="oauth_app_provider",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("tenant", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("encrypted_secret", sa.LargeBinary(), nullable=False),
        sa.Column("secret_hint", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("updated_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "provider IN ('google', 'microsoft')",
            name=op.f("ck_organization_oauth_app_oauth_provider"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_organization_oauth_app_organization_id_organization"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_organization_oauth_app_updated_by_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization_oauth_app")),
        sa.UniqueConstraint(
            "organization_id", "provider", name="uq_oauth_app_provider"
        ),
    )
    with op.batch_alter_table("organization_oauth_app", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_organization_oauth_app_organization_id"), ["organization_id"], unique=False
        )
    with op.batch_alter_table("calendar_connection", schema=None) as batch_op:
        batch_op.add_column(sa.Column("oauth_app_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_calendar_connection_oauth_app_id_organization_oauth_app"),
            "organization_oauth_app",
            ["oauth_app_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("calendar_connection", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_calendar_connection_oauth_app_id_organization_oauth_app"),
            type_="foreignkey",
        )
        batch_op.drop_column("oauth_app_id")
    with op.batch_alter_table("organization_oauth_app", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organization_oauth_app_organization_id"))
    op.drop_table("organization_oauth_app")
