"""Organization-wide calendar integrations.

Online and on-premises Exchange are never enabled together: both claim the same
``exchange_slot`` value while enabled, and a unique constraint allows one per organization.

A covered person's calendar is an ordinary ``calendar_connection`` row whose
``integration_id`` points here and which holds no personal secret: every busy reader keeps
working unchanged, and deleting the integration deletes its connections (and, through
them, their busy ranges) at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, created_field, enum_type, id_field
from server.models.enums import IntegrationKind, ProviderName

# ``OrganizationIntegration.status``
INTEGRATION_PENDING = "pending"  # started (consent or key asked), not verified yet
INTEGRATION_ACTIVE = "active"  # verified; covering people
INTEGRATION_ATTENTION = "attention"  # was active, the provider now refuses the credential
INTEGRATION_STATUSES = (INTEGRATION_PENDING, INTEGRATION_ACTIVE, INTEGRATION_ATTENTION)


class OrganizationIntegration(SQLModel, table=True):
    __tablename__ = "organization_integration"
    __table_args__ = (
        UniqueConstraint("organization_id", "kind", name="uq_integration_kind"),
        UniqueConstraint("organization_id", "exchange_slot", name="uq_integration_exchange"),
        CheckConstraint(
            "(exchange_slot IS NULL) OR (enabled AND kind IN ('exchange_online', 'exchange_onprem'))",
            name="exchange_slot",
        ),
        CheckConstraint("status IN ('pending', 'active', 'attention')", name="integration_status"),
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
    status: str = Field(default=INTEGRATION_PENDING, max_length=16)
    # The Microsoft tenant id, or the Google Workspace primary domain.
    tenant: str | None = Field(default=None, max_length=255)
    # Covered e-mail domains, lower-case, comma-separated.
    domains: str = Field(default="", sa_type=Text)
    # The mailbox (Microsoft, EWS) or acting account (Google) meetings are created in.
    service_account: str | None = Field(default=None, max_length=320)
    last_full_sync_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    integrated_by_id: uuid.UUID | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    integrated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # A worker running the batched sync holds this lease (a conditional UPDATE claims
    # it), so several workers never sync one integration at once.
    sync_lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Exchange on-premises: the Tandem global administrator who is the service account
    # (the admin guide requires the mailbox's owner to be one).
    service_user_id: uuid.UUID | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    # Where reading the service mailbox's changes (responses, edits) got to (EWS
    # SyncFolderItems state); None reads from the beginning.
    changes_sync_state: str | None = Field(default=None, sa_type=Text)

    @property
    def domain_list(self) -> list[str]:
        return [d for d in self.domains.split(",") if d]


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


class IntegrationConsent(SQLModel, table=True):
    """A started admin-consent flow: single use, short-lived, bound to the admin and the
    browser session that started it (like ``oauth_flow`` for personal connections)."""

    __tablename__ = "integration_consent"

    id: uuid.UUID = id_field()
    state_hash: str = Field(max_length=64, unique=True, index=True)
    integration_id: uuid.UUID = Field(
        foreign_key="organization_integration.id", index=True, ondelete="CASCADE"
    )
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    session_id: uuid.UUID | None = Field(
        default=None, foreign_key="user_session.id", ondelete="CASCADE"
    )
    created_at: datetime = created_field()
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
