"""The one interface every calendar provider implements, and the values it speaks.

Provider code knows nothing of users, programs or the database: a service hands it
credentials and a window, it returns busy intervals (times and a kind, never titles,
descriptions, locations or attendees of the user's own events) or raises one of the
typed errors below. Every URL a provider calls comes from settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class ProviderName(StrEnum):
    GOOGLE = "google"
    MICROSOFT = "microsoft"
    ICLOUD = "icloud"  # iCloud and any other CalDAV server


class BusyKind(StrEnum):
    BUSY = "busy"
    TENTATIVE = "tentative"
    OUT_OF_OFFICE = "out_of_office"
    ALL_DAY = "all_day"


@dataclass(frozen=True, slots=True, order=True)
class BusyInterval:
    """A half-open interval ``[start, end)`` in UTC (aware datetimes) when someone is busy."""

    start: datetime
    end: datetime
    kind: BusyKind = BusyKind.BUSY


@dataclass(slots=True)
class Credentials:
    """What a provider needs to act for one account.

    ``secret`` is opaque to everyone but the provider (tokens, msal's serialized cache,
    user name and app password, server URL); services store it encrypted as a whole.
    A provider that refreshes tokens mutates ``secret`` and sets ``changed`` so the caller
    knows to persist it. ``repr`` never shows the secret.
    """

    provider: ProviderName
    secret: dict[str, Any]
    changed: bool = False
    # Set by the caller that owns the storage when refreshes must be serialised across
    # processes (rotating refresh tokens): a provider whose access token was refused
    # awaits it instead of refreshing on its own; it leaves ``secret`` holding a token
    # the provider can use (another process's newer one, or a refresh made under the
    # caller's lock) and already stored.
    renew: Callable[[Credentials], Awaitable[None]] | None = field(
        default=None, repr=False, compare=False
    )

    def __repr__(self) -> str:
        return f"Credentials(provider={self.provider.value!r}, secret=<hidden>)"

    def replace_secret(self, secret: dict[str, Any]) -> None:
        self.secret = secret
        self.changed = True


@dataclass(frozen=True, slots=True)
class OAuthApp:
    """An organization's own OAuth app registration (Google Cloud or Microsoft Entra), used
    instead of Tandem's default for that organization's participants.

    It travels inside the pending flow and the stored credentials (both encrypted, under
    ``APP_KEY``) so that every token refresh uses the app the grant was made with, and
    ``app_id`` tells which saved app that was. ``repr`` never shows the secret.
    """

    app_id: str
    client_id: str
    client_secret: str = field(repr=False)
    tenant: str | None = None  # Microsoft only: the directory (tenant) the app lives in

    def to_secret(self) -> dict[str, str]:
        value = {
            "app_id": self.app_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        if self.tenant:
            value["tenant"] = self.tenant
        return value

    @classmethod
    def from_secret(cls, value: Any) -> OAuthApp | None:
        """The app stored under ``APP_KEY``, or None for Tandem's default app."""
        if not isinstance(value, Mapping):
            return None
        app_id, client_id = value.get("app_id"), value.get("client_id")
        secret, tenant = value.get("client_secret"), value.get("tenant")
        if not (isinstance(app_id, str) and isinstance(client_id, str) and isinstance(secret, str)):
            return None
        return cls(app_id, client_id, secret, tenant if isinstance(tenant, str) else None)


APP_KEY = "oauth_app"
"""Where flows and credentials made through an organization's own app keep it."""


def app_of(secret: Mapping[str, Any]) -> OAuthApp | None:
    """The organization app a flow or a stored grant was made with (None: Tandem's own)."""
    return OAuthApp.from_secret(secret.get(APP_KEY))


@dataclass(frozen=True, slots=True)
class AuthorizationStart:
    """The first leg of an OAuth authorization-code flow.

    ``url`` goes to the browser. ``flow`` must be kept server-side (never in the URL or a
    readable cookie) keyed by ``state``, and handed back to ``finish_authorization``.
    """

    url: str
    state: str
    flow: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ConnectedAccount:
    """The result of a successful connect: credentials to store and what to show the user."""

    credentials: Credentials
    account_email: str
    label: str  # "Google", "Office 365", "Outlook.com", "iCal"
    # False when the user granted reading busy times but not writing events (Google's
    # granular consent): the connection is read-only and meetings go out by email.
    can_write_events: bool = True


@dataclass(frozen=True, slots=True)
class BusyFetch:
    """Busy intervals for one account over a window.

    ``readable`` is False when the provider answered but could not read the calendar
    (a per-calendar error in Google's freeBusy, Graph's ``unknown``): the person is then
    *unknown* for that window, never free.
    """

    intervals: list[BusyInterval]
    readable: bool = True


@dataclass(frozen=True, slots=True)
class EventAttendee:
    email: str
    name: str | None = None
    response: str = "needs_action"  # needs_action | accepted | declined | tentative
    optional: bool = False  # Google ``optional``, Graph ``type: optional``, iCal OPT-PARTICIPANT


@dataclass(frozen=True, slots=True)
class ExternalEvent:
    """A meeting Tandem created, as written to the owner's calendar.

    Only Tandem's own meetings are ever expressed this way; a user's other events are
    read as ``BusyInterval`` only.
    """

    uid: str
    title: str
    description: str
    location: str | None
    start: datetime
    end: datetime
    time_zone: str
    organizer_email: str
    attendees: list[EventAttendee] = field(default_factory=list)
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class EventChange:
    """A change to one of Tandem's own events seen in the owner's calendar."""

    provider_event_id: str
    deleted: bool
    title: str | None = None
    description: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    attendee_responses: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    changes: list[EventChange]
    sync_token: str | None


@dataclass(frozen=True, slots=True)
class PushChannel:
    channel_id: str
    resource_id: str | None
    expires_at: datetime


class NoticeKind(StrEnum):
    """What one push notification means to Tandem, whatever provider sent it."""

    CHANGED = "changed"  # something in the calendar changed: resync this connection
    HELLO = "hello"  # the channel's first message: nothing changed
    REMOVED = "removed"  # the provider dropped the channel: open a new one
    REAUTHORIZE = "reauthorize"  # the provider wants the channel renewed soon


@dataclass(frozen=True, slots=True)
class PushNotice:
    """One notification as read off the wire, not yet authenticated: the service checks
    ``secret`` against the channel's stored hash before acting on it. ``resource_id`` is
    None where the provider does not name the watched resource in a comparable way."""

    channel_id: str
    secret: str | None
    resource_id: str | None
    kind: NoticeKind


class ProviderError(Exception):
    """Base of the failures a provider may raise. Messages never carry secrets."""


class AuthExpired(ProviderError):
    """The grant is gone (``invalid_grant``, revoked, expired): the user must reconnect."""


class InvalidCredentials(ProviderError):
    """The user name, password, or authorization code was refused."""


class AuthorizationDeclined(ProviderError):
    """The user declined consent, or the callback did not match a flow we started."""


class RateLimited(ProviderError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """The provider failed or timed out; retry later with backoff."""


class OutcomeUnknown(ProviderUnavailable):
    """A write may or may not have taken effect (a timeout or a 5xx after the request was
    sent) and the provider could not tell which. Retry later; meanwhile act as if it
    happened where acting otherwise could double an effect (invitations, events)."""


class AccessDenied(ProviderError):
    """The grant is valid but the provider refused this account for now: an
    administrator's access policy, a mailbox-level block or a transient 403. Reconnecting
    does not help; retry with backoff. ``policy`` is True when the provider named an
    access policy."""

    def __init__(self, message: str, *, policy: bool = False) -> None:
        super().__init__(message)
        self.policy = policy


class ProviderMisconfigured(ProviderError):
    """The provider refused Tandem itself (an expired or wrong client secret,
    ``invalid_client``): an operator must fix the configuration; no user action helps."""


class SyncTokenExpired(ProviderError):
    """An incremental sync token is no longer valid; a full resync is needed."""


@runtime_checkable
class CalendarProvider(Protocol):
    """What Tandem needs from a calendar service."""

    name: ProviderName

    async def fetch_busy(
        self, credentials: Credentials, start: datetime, end: datetime, time_zone: str
    ) -> BusyFetch:
        """Busy intervals overlapping ``[start, end)``; ``time_zone`` places all-day and
        floating events on the user's own days."""
        ...

    async def revoke(self, credentials: Credentials) -> None:
        """Revoke the grant where the provider allows it; never raises for an already
        revoked grant."""
        ...

    async def create_event(
        self, credentials: Credentials, event: ExternalEvent, *, send_invitations: bool
    ) -> str:
        """Create a Tandem meeting in the owner's calendar; returns the provider's event id."""
        ...

    async def update_event(
        self,
        credentials: Credentials,
        provider_event_id: str,
        event: ExternalEvent,
        *,
        send_invitations: bool,
    ) -> None: ...

    async def delete_event(
        self, credentials: Credentials, provider_event_id: str, *, send_invitations: bool
    ) -> None: ...

    async def read_changes(
        self, credentials: Credentials, sync_token: str | None, start: datetime, end: datetime
    ) -> ChangeBatch:
        """Changes to Tandem's own events since ``sync_token`` (all of them in the window when
        None). Raises ``SyncTokenExpired`` when the token is no longer valid."""
        ...


@runtime_checkable
class OAuthProvider(CalendarProvider, Protocol):
    """Providers connected through an OAuth authorization-code flow (Google, Microsoft)."""

    # What Tandem asks consent for: an organization registering its own app grants these.
    consent_scopes: tuple[str, ...]

    def begin_authorization(
        self, redirect_uri: str, app: OAuthApp | None = None
    ) -> AuthorizationStart:
        """Start consent with Tandem's app, or with ``app`` (an organization's own), which
        the returned ``flow`` keeps so that ``finish_authorization`` and every later
        refresh use the same one."""
        ...

    async def finish_authorization(
        self, flow: dict[str, Any], callback_params: Mapping[str, str], redirect_uri: str
    ) -> ConnectedAccount:
        """Exchange the code. Raises ``AuthorizationDeclined`` for a declined consent or a
        state that does not match ``flow``, ``InvalidCredentials`` for a refused code."""
        ...


@runtime_checkable
class RemovalRechecking(Protocol):
    """Providers whose change feed reports an event that merely moved out of the feed's
    window as removed (Graph's calendarView delta): a reported removal of a known event is
    looked up before anything is cancelled."""

    async def recheck_removed(
        self, credentials: Credentials, provider_event_id: str
    ) -> EventChange:
        """The event as it is now: a deletion only when it is really gone or cancelled."""
        ...


@runtime_checkable
class ChangeTagProvider(Protocol):
    """Providers that can say cheaply whether a calendar changed (CalDAV's ``getctag`` or
    ``sync-token``, one small PROPFIND per calendar) without reading any event."""

    async def change_tag(self, credentials: Credentials) -> str | None:
        """A digest that changes whenever any of the account's calendars does; None when
        the server offers no such property (then only the periodic full read helps)."""
        ...


@runtime_checkable
class TokenRefresher(Protocol):
    """Providers whose refresh tokens are single-use (Microsoft): callers serialise
    refreshes per account across processes and refresh ahead of a call through this."""

    async def refresh_tokens(
        self, credentials: Credentials, *, min_valid_seconds: int = 0, force: bool = False
    ) -> None:
        """Refresh when forced or when the access token is valid for less than
        ``min_valid_seconds``; a refresh updates ``credentials`` (``changed`` set)."""
        ...


@runtime_checkable
class PushProvider(Protocol):
    """Providers that push change notifications to a webhook (Google watch channels,
    Graph subscriptions). CalDAV has no push for third-party clients: polling covers it."""

    async def open_push_channel(
        self, credentials: Credentials, address: str, secret: str
    ) -> PushChannel:
        """Ask for notifications to ``address``; each carries ``secret`` back."""
        ...

    async def renew_push_channel(
        self, credentials: Credentials, channel: PushChannel, address: str, secret: str
    ) -> PushChannel:
        """Keep notifications coming past ``channel.expires_at``. A provider that can extend
        a channel returns the same ``channel_id`` (and the old secret stays valid); one that
        cannot opens a new channel with ``secret`` and stops the old one."""
        ...

    async def close_push_channel(self, credentials: Credentials, channel: PushChannel) -> None:
        """Stop a channel; one the provider no longer knows is fine."""
        ...

    def read_notifications(self, headers: Mapping[str, str], payload: Any) -> list[PushNotice]:
        """The notifications in one webhook request (``payload`` is its parsed JSON body, or
        None when it had none). Never raises for malformed input: it yields nothing."""
        ...


@runtime_checkable
class PasswordProvider(CalendarProvider, Protocol):
    """Providers connected with a user name and an app-specific password (CalDAV)."""

    async def connect_with_password(
        self, username: str, password: str, server_url: str
    ) -> ConnectedAccount: ...
