"""Organization-wide calendar integrations.

Online and on-premises Exchange are never enabled together: both claim the same
``exchange_slot`` value while enabled, and a unique constraint allows one per organization.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import created_field, enum_type, id_field
from server.models.enums import IntegrationKind, ProviderName


class OrganizationIntegration(SQLModel, table=True):
    __tablename__ = "organization_integration"
    __table_args__ = (
        UniqueConstraint("organization_id", "kind", name="uq_integration_kind"),
        UniqueConstraint("organization_id", "exchange_slot", name="uq_integration_exchange"),
        CheckConstraint(
            "(exchange_slot IS NULL) OR (enabled AND kind IN ('exchange_online', 'exchange_onprem'))",
            name="exchange_slot",
        ),
    )

    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(
        foreign_key="organization.id", index=True, ondelete="CASCADE"
    )
    kind: IntegrationKind = Field(sa_type=enum_type(IntegrationKind, "integration_kind"))
    enabled: bool = False
    exchange_slot: str | None = Field(default=None, max_length=16)
    encrypted_config: bytes | None = Field(default=None, sa_type=LargeBinary)
    created_at: datetime = created_field()


class OrganizationOAuthApp(SQLModel, table=True):
    """An organization's own OAuth app for personal connections ("user-level calendar
    authorization"): its participants connect through it instead of Tandem's default app.

    The client secret is kept only as ciphertext; ``client_id_hint`` and ``secret_hint``
    (the last characters) are all that pages show again after saving.
    """

    __tablename__ = "organization_oauth_app"
    __table_args__ = (
        UniqueConstraint("organization_id", "provider", name="uq_oauth_app_provider"),
        CheckConstraint("provider IN ('google', 'microsoft')", name="oauth_provider"),
    )

    id: uuid.UUID = id_field()
    organization_id: uuid.UUID = Field(
        foreign_key="organization.id", index=True, ondelete="CASCADE"
    )
    provider: ProviderName = Field(sa_type=enum_type(ProviderName, "oauth_app_provider"))
    client_id: str = Field(max_length=300)
    tenant: str | None = Field(default=None, max_length=100)
    encrypted_secret: bytes = Field(sa_type=LargeBinary)
    secret_hint: str = Field(max_length=8)
    updated_by_id: uuid.UUID | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    created_at: datetime = created_field()
    updated_at: datetime = created_field()
