"""In-memory state of the Google emulator: accounts, calendars, OAuth grants, faults.

Tests and ``tandem demo`` seed it directly (accounts, events, OAuth clients) and inject
faults; the HTTP routes in ``google_oauth`` and ``google_calendar`` read and change it.
One lock guards every change because the routes run in uvicorn's thread while a test
seeds or inspects from its own.
"""

from __future__ import annotations

import base64
import copy
import html
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emulators.faults import Fault, FaultInjection
from emulators.google_workspace import ServiceAccount, Workspace, WorkspaceDirectory

GOOGLE_SCOPE_PREFIX = "https://www.googleapis.com/auth/"
SHORT_SCOPES = {
    "email": "https://www.googleapis.com/auth/userinfo.email",
    "profile": "https://www.googleapis.com/auth/userinfo.profile",
}
KNOWN_SCOPES = frozenset(
    {"openid", *SHORT_SCOPES.values()}
    | {
        GOOGLE_SCOPE_PREFIX + name
        for name in (
            "calendar",
            "calendar.readonly",
            "calendar.events",
            "calendar.events.readonly",
            "calendar.events.owned",
            "calendar.events.owned.readonly",
            "calendar.events.freebusy",
            "calendar.freebusy",
        )
    }
)


def new_event_id() -> str:
    """A server-chosen event id in Google's alphabet (base32hex, lower case)."""
    return base64.b32hexencode(secrets.token_bytes(15)).decode().lower()


def normalize_scopes(raw: str) -> list[str]:
    """Expand Google's short scope names the way its token endpoint reports them."""
    return [SHORT_SCOPES.get(item, item) for item in raw.split()]


@dataclass
class OAuthClient:
    client_id: str
    client_secret: str
    redirect_uris: set[str]


@dataclass
class Account:
    email: str
    time_zone: str = "UTC"
    unreadable: bool = False
    subject: str = field(default_factory=lambda: str(secrets.randbelow(10**20)))


@dataclass
class StoredEvent:
    data: dict[str, Any]
    seq: int


@dataclass
class PendingConsent:
    """An authorization request waiting for the user's Allow/Deny."""

    client_id: str
    redirect_uri: str
    scopes: list[str]
    state: str | None
    code_challenge: str | None
    code_challenge_method: str
    offline: bool
    force_consent: bool
    include_granted_scopes: bool


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    email: str
    scopes: list[str]
    code_challenge: str | None
    code_challenge_method: str
    issue_refresh_token: bool
    expires_at: float


@dataclass
class Grant:
    """One user's consent to one client; revoking any of its tokens revokes all of them."""

    grant_id: str
    client_id: str
    email: str
    scopes: list[str]


@dataclass
class AccessToken:
    grant_id: str
    expires_at: float


@dataclass
class Channel:
    channel_id: str
    resource_id: str
    email: str
    resource_uri: str
    address: str
    token: str | None
    expiration_ms: int
    messages_sent: int = 0


@dataclass(frozen=True)
class RecordedRequest:
    """What tests may assert on: never parameter *values*, except ``sendUpdates``."""

    method: str
    path: str
    param_names: frozenset[str]
    send_updates: str | None


@dataclass
class PageCursor:
    key: tuple[Any, ...]
    offset: int
    snapshot: int


class GoogleState(FaultInjection):
    """Everything the emulator knows; mutate it from tests to seed data and faults."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.access_token_ttl = 3600
        self.freebusy_max_days = 90  # empirical; Google does not document the limit
        self.clients: dict[str, OAuthClient] = {}
        self.accounts: dict[str, Account] = {}
        self.events: dict[str, dict[str, StoredEvent]] = {}
        self.pending: dict[str, PendingConsent] = {}
        self.codes: dict[str, AuthCode] = {}
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, str] = {}  # token -> grant id
        self.consented: set[tuple[str, str]] = set()  # (email, client_id)
        self.sync_tokens: dict[str, tuple[str, int]] = {}  # token -> (email, seq)
        self.page_cursors: dict[str, PageCursor] = {}
        self.channels: dict[str, Channel] = {}
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.workspace = WorkspaceDirectory()
        self._seq = 0

    # --- seeding -------------------------------------------------------------------

    def register_client(
        self, client_id: str, client_secret: str, redirect_uris: Iterable[str] = ()
    ) -> None:
        with self.lock:
            self.clients[client_id] = OAuthClient(client_id, client_secret, set(redirect_uris))

    def add_redirect_uri(self, client_id: str, redirect_uri: str) -> None:
        with self.lock:
            self.clients[client_id].redirect_uris.add(redirect_uri)

    def add_account(self, email: str, *, time_zone: str = "UTC") -> None:
        """A Google account with an (empty) primary calendar in ``time_zone``."""
        with self.lock:
            key = email.lower()
            if key not in self.accounts:
                self.accounts[key] = Account(key, time_zone)
                self.events[key] = {}

    def add_event(self, email: str, event: Mapping[str, Any]) -> str:
        """Store Google event JSON in the account's primary calendar; returns its id."""
        with self.lock:
            self.add_account(email)
            data = copy.deepcopy(dict(event))
            event_id = str(data.get("id") or new_event_id())
            data["id"] = event_id
            self.put_event(email, self.complete_event(email, data))
            return event_id

    # --- Google Workspace (service accounts, domain-wide delegation) ------------------

    def create_service_account(
        self, name: str = "tandem-calendar", project_id: str = "tandem-org-1234"
    ) -> ServiceAccount:
        """A service account with one key; ``.key_json()`` is its downloadable key file."""
        with self.lock:
            account = self.workspace.create_service_account(name, project_id)
            self.add_account(account.client_email)  # service accounts have a calendar too
            return account

    def add_workspace(
        self, domain: str, *more_domains: str, users: Iterable[str] = ()
    ) -> Workspace:
        """A Workspace customer owning ``domain`` (and ``more_domains``), with ``users``
        (local parts or full addresses) as accounts."""
        with self.lock:
            workspace = self.workspace.add_workspace(domain, *more_domains)
            for user in users:
                self.add_account(user if "@" in user else f"{user}@{domain}")
            return workspace

    def grant_delegation(self, domain: str, client_id: str, scopes: Iterable[str]) -> None:
        """The domain's super admin authorizes ``client_id`` for ``scopes`` (Admin console
        → Security → API controls → Domain-wide delegation → Add new)."""
        with self.lock:
            workspace = self.workspace.workspace_of(f"x@{domain}")
            if workspace is None:
                raise KeyError(f"no Workspace owns {domain}")
            workspace.delegations[client_id] = set(normalize_scopes(" ".join(scopes)))

    def revoke_delegation(self, domain: str, client_id: str) -> None:
        with self.lock:
            workspace = self.workspace.workspace_of(f"x@{domain}")
            if workspace is not None:
                workspace.delegations.pop(client_id, None)

    def deny_free_busy(self, email: str, reason: str = "forbidden") -> None:
        """freeBusy answers ``email``'s calendar with a per-calendar error ``reason``
        (an admin's sharing policy hiding it; which reason Google gives is UNVERIFIED)."""
        with self.lock:
            self.workspace.denied_free_busy[email.lower()] = reason

    # --- faults --------------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        with self.lock:
            for token in self.access_tokens.values():
                token.expires_at = self.clock() - 1

    def revoke_all(self, email: str) -> None:
        """The user removed the app's access in their Google account settings."""
        with self.lock:
            for grant in [g for g in self.grants.values() if g.email == email.lower()]:
                self.revoke_grant(grant.grant_id)

    def set_unreadable(self, email: str, unreadable: bool = True) -> None:
        with self.lock:
            self.accounts[email.lower()].unreadable = unreadable

    def edit_in_google_ui(
        self,
        email: str,
        event_id: str,
        *,
        summary: str | None = None,
        description: str | None = None,
        description_html: str | None = None,
    ) -> dict[str, Any]:
        """The account's owner edits the event in Google Calendar's own editor.

        The events resource documents ``description`` as "Can contain HTML"; Google's web
        editor saves what the owner sees as markup, so any save (even one that changes only
        the title) writes the description back as HTML. The exact markup is not
        documented; this writes what the editor is seen to produce: entities escaped,
        line breaks as ``<br>``, web addresses as ``<a href>`` links. ``description`` is
        the new text as typed; ``description_html`` is stored verbatim (bold, lists...).
        Bumps the event's etag/updated so sync tokens report it.
        """
        with self.lock:
            data = copy.deepcopy(self.events[email.lower()][event_id].data)
            if summary is not None:
                data["summary"] = summary
            if description_html is not None:
                data["description"] = description_html
            else:
                text = description if description is not None else data.get("description", "")
                data["description"] = editor_html(str(text or ""))
            return self.put_event(email, data)

    def invalidate_sync_tokens(self) -> None:
        """Every outstanding sync token now answers 410 Gone (Google may do this any time)."""
        with self.lock:
            self.sync_tokens.clear()

    # --- grants and tokens -----------------------------------------------------------

    def issue_tokens(self, grant_id: str, *, with_refresh: bool) -> tuple[str, str | None]:
        with self.lock:
            access = "ya29." + secrets.token_urlsafe(32)
            self.access_tokens[access] = AccessToken(grant_id, self.clock() + self.access_token_ttl)
            refresh = None
            if with_refresh:
                refresh = "1//" + secrets.token_urlsafe(32)
                self.refresh_tokens[refresh] = grant_id
            return access, refresh

    def grant_access(self, email: str, client_id: str, scopes: Iterable[str]) -> tuple[str, str]:
        """Record a consent without the browser dance; returns (access, refresh) tokens.

        For tests and the demo, to start with users whose calendar is already connected.
        """
        with self.lock:
            self.add_account(email)
            key = email.lower()
            grant_id = f"{key} {client_id}"
            self.grants[grant_id] = Grant(
                grant_id, client_id, key, normalize_scopes(" ".join(scopes))
            )
            self.consented.add((key, client_id))
            access, refresh = self.issue_tokens(grant_id, with_refresh=True)
            assert refresh is not None
            return access, refresh

    def revoke_grant(self, grant_id: str) -> None:
        with self.lock:
            grant = self.grants.pop(grant_id, None)
            if grant is not None:
                self.consented.discard((grant.email, grant.client_id))
            for table in (self.access_tokens, self.refresh_tokens):
                for token in [t for t, v in table.items() if _grant_of(v) == grant_id]:
                    del table[token]

    def grant_for_access_token(self, token: str) -> Grant | None:
        with self.lock:
            entry = self.access_tokens.get(token)
            if entry is None or entry.expires_at <= self.clock():
                return None
            return self.grants.get(entry.grant_id)

    # --- calendars -------------------------------------------------------------------

    def next_seq(self) -> int:
        with self.lock:
            self._seq += 1
            return self._seq

    @property
    def current_seq(self) -> int:
        return self._seq

    def complete_event(self, email: str, data: dict[str, Any]) -> dict[str, Any]:
        """Fill in the fields Google adds to every stored event."""
        data.setdefault("kind", "calendar#event")
        data.setdefault("status", "confirmed")
        data.setdefault("iCalUID", f"{data['id']}@google.com")
        data.setdefault("sequence", 0)
        data.setdefault("organizer", {"email": email.lower(), "self": True})
        data.setdefault("creator", {"email": email.lower(), "self": True})
        data.setdefault("eventType", "default")
        for attendee in data.get("attendees", []):
            attendee.setdefault("responseStatus", "needsAction")
            if str(attendee.get("email", "")).lower() == email.lower():
                attendee["self"] = True
        return data

    def put_event(self, email: str, data: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            seq = self.next_seq()
            data["etag"] = f'"{seq}"'
            data["updated"] = _rfc3339_now(self.clock())
            data.setdefault("created", data["updated"])
            self.events[email.lower()][data["id"]] = StoredEvent(data, seq)
            return copy.deepcopy(data)

    def new_sync_token(self, email: str, seq: int) -> str:
        with self.lock:
            token = secrets.token_urlsafe(18)
            self.sync_tokens[token] = (email, seq)
            return token

    def guest_copies(self, email: str) -> list[dict[str, Any]]:
        """The events Google puts on ``email``'s calendar because another account's event
        lists them as an attendee: one per event, carrying the organizer's ``iCalUID``
        (RFC 5545 UID, "used to uniquely identify events across calendaring systems",
        events resource). Google adds invitations to guests' calendars whatever
        ``sendUpdates`` says (that only controls email); this is widely observed and the
        calendar-sharing help describes it, the API reference does not. Each copy has
        the organizer, times and iCalUID only, and is not counted in ``freeBusy`` here.
        """
        key = email.lower()
        with self.lock:
            copies = []
            for owner, events in self.events.items():
                if owner == key:
                    continue
                for stored in events.values():
                    data = stored.data
                    guests = {str(a.get("email", "")).lower() for a in data.get("attendees", [])}
                    if key in guests and data.get("status") != "cancelled":
                        copies.append(
                            {
                                "iCalUID": data["iCalUID"],
                                "organizer": owner,
                                "start": copy.deepcopy(data.get("start")),
                                "end": copy.deepcopy(data.get("end")),
                            }
                        )
            return copies

    def record(self, entry: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(entry)

    def requests_to(self, path_substring: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded calls whose path contains ``path_substring`` (and method, if given)."""
        with self.lock:
            return [
                r
                for r in self.requests
                if path_substring in r.path and (method is None or r.method == method)
            ]


_URL = re.compile(r"https?://[^\s<>\"]+")


def editor_html(text: str) -> str:
    """Plain text as Google Calendar's editor stores it (see ``edit_in_google_ui``)."""
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        parts, last = [], 0
        for match in _URL.finditer(line):
            parts.append(html.escape(line[last : match.start()], quote=False))
            url = html.escape(match.group(0))
            parts.append(f'<a href="{url}">{url}</a>')
            last = match.end()
        parts.append(html.escape(line[last:], quote=False))
        lines.append("".join(parts))
    return "<br>".join(lines)


def _grant_of(value: AccessToken | str) -> str:
    return value.grant_id if isinstance(value, AccessToken) else value


def _rfc3339_now(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))
