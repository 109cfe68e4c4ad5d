"""The interface of organization-wide calendar access: one credential, many people.

An organization's administrator integrates its Microsoft 365 tenant (Graph application
permissions), its Google Workspace domain (a service account with domain-wide
delegation) or its own Exchange server (EWS through a service account). Tandem then
reads the busy times of everyone covered in batches, and creates covered owners'
meetings in the organization's service (or acting) account with the attendees.

Like ``base``, nothing here knows users or the database: a service hands a directory the
integration's decrypted configuration, a batch of addresses and a window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from server.providers.base import BusyInterval, ChangeBatch, ExternalEvent


class UncoveredReason(StrEnum):
    """Why an integration cannot read one person's calendar (shown to admins in plain words)."""

    NO_MAILBOX = "no_mailbox"  # the address has no mailbox or calendar there
    ACCESS_DENIED = "access_denied"  # the organization's access policy denies this mailbox
    NOT_IN_DOMAIN = "not_in_domain"  # the address is outside the integration's domains
    UNREADABLE = "unreadable"  # any other per-person error: unknown for this window only


@dataclass(frozen=True, slots=True)
class PersonSchedule:
    """One person's answer within a batch. With ``problem`` set the person is *unknown*
    over the whole window (never free) and ``intervals`` is empty."""

    email: str  # the address as asked, lower-cased
    intervals: list[BusyInterval] = field(default_factory=list)
    problem: UncoveredReason | None = None


@runtime_checkable
class OrgDirectory(Protocol):
    """What Tandem needs from an organization-wide integration.

    Implementations: ``microsoft_org.ExchangeOnlineDirectory``,
    ``google_workspace.GoogleWorkspaceDirectory``, ``exchange_onprem.ExchangeOnPremDirectory``.
    Each is built from ``(settings, http, config)`` where ``config`` is the integration's
    decrypted configuration dict. Errors are the typed ``base.ProviderError`` subclasses:
    ``InvalidCredentials`` (a refused key or password), ``AccessDenied`` (consent or
    delegation not granted), ``ProviderMisconfigured``, ``RateLimited`` (with
    ``retry_after``) and ``ProviderUnavailable`` for the whole call.
    """

    max_people_per_call: int  # Graph getSchedule 20, Google freeBusy 50, EWS 100
    max_window_days: int  # the longest window one call may ask for

    async def verify(self) -> str:
        """One real call proving the credential works; returns the account Tandem acts as
        (the service account's address) for the Integrations page."""
        ...

    async def read_schedules(
        self, emails: Sequence[str], start: datetime, end: datetime, time_zone: str
    ) -> list[PersonSchedule]:
        """Busy times of up to ``max_people_per_call`` people over ``[start, end)`` (at most
        ``max_window_days`` long) in one provider call, one entry per address asked.
        Per-person errors become ``problem``; only whole-call failures raise."""
        ...

    async def create_event(self, event: ExternalEvent) -> str:
        """Create a Tandem meeting in the service (acting) account's calendar with the
        attendees, sending invitations; returns the provider's event id."""
        ...

    async def update_event(self, provider_event_id: str, event: ExternalEvent) -> None: ...

    async def delete_event(self, provider_event_id: str) -> None:
        """Cancel the meeting (attendees get the cancellation); an event already gone is fine."""
        ...

    async def aclose(self) -> None:
        """Release what the directory holds (token caches, sessions)."""
        ...


@runtime_checkable
class MailboxChanges(Protocol):
    """A directory whose service mailbox reports changes to the meetings created in it
    (Exchange on-premises: SyncFolderItems), so attendees' answers, edits and
    cancellations there flow back like the personal two-way sync."""

    async def read_changes(self, sync_state: str | None) -> ChangeBatch:
        """Tandem's events changed since ``sync_state`` (None: from the beginning) and the
        state reached; ``SyncTokenExpired`` when the server no longer knows the state."""
        ...


class AdminConsent(Protocol):
    """A provider's admin-consent redirect (Microsoft): the URL the organization's
    administrator is sent to, and the tenant its answer names."""

    def consent_url(self, tenant: str, redirect_uri: str, state: str) -> str: ...

    def read_consent(self, params: Mapping[str, str]) -> str:
        """The tenant id; ``AuthorizationDeclined`` when the administrator refused."""
        ...


# Builds a directory from an integration kind (``IntegrationKind`` value) and its decrypted
# configuration; the composition root provides it, so services never name a concrete class.
DirectoryFactory = Callable[[str, Mapping[str, Any]], OrgDirectory]

# What the Google Workspace administrator grants Tandem's service account under
# Admin console -> Security -> API controls -> Domain-wide delegation.
# ``calendar.events.freebusy`` reaches other people's free/busy; ``calendar.freebusy`` is
# documented for the caller's own calendars only (docs/providers.md, Google Workspace).
GOOGLE_DELEGATION_SCOPES = (
    "https://www.googleapis.com/auth/calendar.events.freebusy",
    "https://www.googleapis.com/auth/calendar.events",
)
