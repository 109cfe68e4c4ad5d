"""Calendar connections, pending OAuth flows and cached busy blocks.

Nothing here holds an event's title, description, location or attendees: a busy block is
a user, two instants and a kind. Secrets are stored only as ciphertext.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

from server.models.base import UTCDateTime, created_field, enum_type, id_field
from server.models.enums import BusyKind, CalendarStatus, ProviderName


class CalendarConnection(SQLModel, table=True):
    """At most one per user (the unique user_id says so)."""

    __tablename__ = "calendar_connection"

    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(
        foreign_key="user_account.id", unique=True, index=True, ondelete="CASCADE"
    )
    provider: ProviderName = Field(sa_type=enum_type(ProviderName, "calendar_provider"))
    status: CalendarStatus = Field(sa_type=enum_type(CalendarStatus, "calendar_status"))
    label: str = Field(max_length=40)
    account_email: str = Field(max_length=320)
    encrypted_secret: bytes | None = Field(default=None, sa_type=LargeBinary)
    connected_at: datetime = created_field()
    last_synced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    synced_from: datetime | None = Field(default=None, sa_type=UTCDateTime)
    synced_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    # Why the last sync failed, for code and admins (``services.calendars.sync``
    # ``PROBLEM_*``): a lost grant, an access policy, Tandem's own provider configuration...
    error_code: str | None = Field(default=None, max_length=40)
    failure_count: int = 0
    retry_after: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set by a push notification: the next job tick resyncs, however fresh the cache.
    sync_requested: bool = False
    # Two-way sync of Tandem's own meetings (``services.meeting_sync``): the provider's
    # change token, the end of the window its last full listing covered (Graph's delta
    # only follows that window, so it is renewed before running short) and the last read.
    changes_token: str | None = Field(default=None, sa_type=Text)
    changes_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    changes_read_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Reads with ``changes_token`` that failed in a row; after a few the token is dropped
    # and the calendar listed again (servers answer a bad token with undocumented codes).
    changes_failures: int = 0
    # CalDAV: a digest of every calendar's getctag / sync-token at the last cheap check
    # (``services.calendars.changes``); a full read happens only when it changes.
    change_tag: str | None = Field(default=None, max_length=64)
    # False when the user connected without granting meeting writes (Google's granular
    # consent): busy times are read, meetings reach them by email only.
    can_write_events: bool = True
    # The organization's own OAuth app the grant was made with (None: Tandem's default
    # app). When an administrator replaces or removes that app, connections made with any
    # other one are marked for reconnection (``services.calendars.oauth_apps``).
    oauth_app_id: uuid.UUID | None = Field(
        default=None, foreign_key="organization_oauth_app.id", ondelete="SET NULL"
    )
    # Set when an organization's integration (``organization_integration``) covers this
    # person: the row then holds no personal secret and the integration keeps it fresh.
    integration_id: uuid.UUID | None = Field(
        default=None, foreign_key="organization_integration.id", index=True, ondelete="CASCADE"
    )
    # Why the integration cannot read this person's calendar (``org_base.UncoveredReason``).
    uncovered_reason: str | None = Field(default=None, max_length=24)
    # The personal calendar the integration replaced ("google", "microsoft", "icloud"),
    # so Calendar Settings can tell the person it was disconnected and why.
    replaced_provider: str | None = Field(default=None, max_length=16)


class OAuthFlow(SQLModel, table=True):
    """A started OAuth flow: single use, short-lived, bound to the user who started it."""

    __tablename__ = "oauth_flow"

    id: uuid.UUID = id_field()
    state_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    # The browser session that started the flow; None when an integrator started it through
    # the API, in which case the callback must come from a browser signed in as the same user.
    session_id: uuid.UUID | None = Field(
        default=None, foreign_key="user_session.id", ondelete="CASCADE"
    )
    redirect_uri: str = Field(max_length=500)
    provider: ProviderName = Field(sa_type=enum_type(ProviderName, "oauth_provider"))
    encrypted_flow: bytes = Field(sa_type=LargeBinary)
    created_at: datetime = created_field()
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class BusyBlock(SQLModel, table=True):
    __tablename__ = "busy_block"
    __table_args__ = (
        CheckConstraint("end_at > start_at", name="order"),
        Index("ix_busy_block_user_start_end_kind", "user_id", "start_at", "end_at", "kind"),
    )

    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(foreign_key="user_account.id", ondelete="CASCADE")
    start_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    end_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    kind: BusyKind = Field(sa_type=enum_type(BusyKind, "busy_kind"))


class BusyVersion(SQLModel, table=True):
    """How many times a person's cached busy blocks have changed: every transaction that
    writes ``busy_block`` rows of a person raises it (``models.busy_version``).

    A process may keep a person's blocks in memory for as long as this number is what it
    was when they were read; living in the database, it tells every node.
    """

    __tablename__ = "busy_version"

    user_id: uuid.UUID = Field(foreign_key="user_account.id", primary_key=True, ondelete="CASCADE")
    version: int = Field(default=0, sa_type=BigInteger, nullable=False)


class BusyCoverage(SQLModel, table=True):
    """A time range ``[start_at, end_at)`` beyond the default horizon whose busy blocks a
    connection has fetched (windows asked about months ahead, not contiguous with it).

    The default horizon itself is the connection's ``synced_from``/``synced_until``.
    Outside the union of both Tandem has not looked, so nobody is free there: readers
    fetch on demand or mark the person unknown (``services.calendars.coverage``).
    ``last_used_at`` says when a reader last needed the range; ranges nobody used for a
    while are dropped with their blocks, so caches do not grow without bound.
    """

    __tablename__ = "busy_coverage"
    __table_args__ = (
        CheckConstraint("end_at > start_at", name="order"),
        Index("ix_busy_coverage_connection_start", "connection_id", "start_at"),
    )

    id: uuid.UUID = id_field()
    connection_id: uuid.UUID = Field(foreign_key="calendar_connection.id", ondelete="CASCADE")
    start_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    end_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    fetched_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    last_used_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class PushSubscription(SQLModel, table=True):
    """A provider push channel (Google watch channel, Graph subscription) for one user.

    Notifications carry no data: they only mark the calendar for a resync. The secret the
    provider echoes back (Google's channel token, Graph's clientState) is kept as a hash.
    """

    __tablename__ = "push_subscription"

    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    provider: ProviderName = Field(sa_type=enum_type(ProviderName, "push_provider"))
    channel_id: str = Field(max_length=200, unique=True, index=True)
    resource_id: str | None = Field(default=None, max_length=500)
    secret_hash: str = Field(max_length=64)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    created_at: datetime = created_field()
    # Failed renewals in a row and when to try again (backoff); while failing, the
    # calendar is polled and its status says live updates are paused.
    renew_failures: int = 0
    renew_retry_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
