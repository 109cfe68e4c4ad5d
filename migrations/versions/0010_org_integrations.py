"""organization-wide calendar integrations: status, tenant, domains, service account and
last full sync of an integration; covered connections (integration_id) and why someone is
not covered; admin-consent flows; the operator switch on the organization

Revision ID: 0010_org_integrations
Revises: 0009_calendar_write_access
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import server.models.base

revision: str = "0010_org_integrations"
down_revision: str | None = "0009_calendar_write_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "integration_consent",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("state_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", server.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["organization_integration.id"],
            name=op.f("fk_integration_consent_integration_id_organization_integration"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["user_session.id"],
            name=op.f("fk_integration_consent_session_id_user_session"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_integration_consent_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_consent")),
    )
    with op.batch_alter_table("integration_consent", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_integration_consent_integration_id"), ["integration_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_integration_consent_state_hash"), ["state_hash"], unique=True
        )
        batch_op.create_index(
            batch_op.f("ix_integration_consent_user_id"), ["user_id"], unique=False
        )

    with op.batch_alter_table("calendar_connection", schema=None) as batch_op:
        batch_op.add_column(sa.Column("integration_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "uncovered_reason", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "replaced_provider", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True
            )
        )
        batch_op.create_index(
            batch_op.f("ix_calendar_connection_integration_id"), ["integration_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_calendar_connection_integration_id_organization_integration"),
            "organization_integration",
            ["integration_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "org_calendars_enabled", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )

    with op.batch_alter_table("organization_integration", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "status",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="pending",
            )
        )
        batch_op.add_column(
            sa.Column("tenant", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True)
        )
        batch_op.add_column(sa.Column("domains", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column(
                "service_account", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "last_full_sync_at", server.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )
        batch_op.add_column(sa.Column("integrated_by_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("integrated_at", server.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "sync_lease_until", server.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_organization_integration_integrated_by_id_user_account"),
            "user_account",
            ["integrated_by_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_check_constraint(
            "integration_status", "status IN ('pending', 'active', 'attention')"
        )


def downgrade() -> None:
    with op.batch_alter_table("organization_integration", schema=None) as batch_op:
        batch_op.drop_constraint(
            op.f("ck_organization_integration_integration_status"), type_="check"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_organization_integration_integrated_by_id_user_account"),
            type_="foreignkey",
        )
        batch_op.drop_column("sync_lease_until")
        batch_op.drop_column("integrated_at")
        batch_op.drop_column("integrated_by_id")
        batch_op.drop_column("last_error")
        batch_op.drop_column("last_full_sync_at")
        batch_op.drop_column("service_account")
        batch_op.drop_column("domains")
        batch_op.drop_column("tenant")
        batch_op.drop_column("status")

    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.drop_column("org_calendars_enabled")

    with op.batch_alter_table("calendar_connection", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_calendar_connection_integration_id_organization_integration"),
            type_="foreignkey",
        )
        batch_op.drop_index(batch_op.f("ix_calendar_connection_integration_id"))
        batch_op.drop_column("replaced_provider")
        batch_op.drop_column("uncovered_reason")
        batch_op.drop_column("integration_id")

    with op.batch_alter_table("integration_consent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_integration_consent_user_id"))
        batch_op.drop_index(batch_op.f("ix_integration_consent_state_hash"))
        batch_op.drop_index(batch_op.f("ix_integration_consent_integration_id"))

    op.drop_table("integration_consent")
