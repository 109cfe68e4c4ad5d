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
from server.models.enums import IntegrationKind


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
