"""In-memory state of the Microsoft identity + Graph emulator.

Tests and ``tandem demo`` seed accounts and events here and inject faults; the routes in
``microsoft_identity`` and ``microsoft_graph`` read and change it. One re-entrant lock
guards everything because the routes run in uvicorn's thread while a test seeds or
inspects from its own.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from emulators.faults import Fault, FaultInjection

CONSUMER_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
"""The tenant every personal Microsoft account (Outlook.com, Hotmail) signs in from."""

DEFAULT_WORK_TENANT_ID = "5d6f7a1e-2b3c-4d8e-9f10-a1b2c3d4e5f6"

RESPONSES = ("none", "organizer", "tentativelyAccepted", "accepted", "declined", "notResponded")
SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")


def new_id(prefix: str = "AAMk") -> str:
    """An opaque identifier shaped like a real Exchange item id.

    Real Outlook/Exchange ids are standard base64, not URL-safe: they contain ``/`` and
    ``+`` and end in ``=`` (examples in microsoft-graph-docs issues #3598 and #10167:
    ``...BwDa/z/LP4AgT69azDFy64XqAAAAAAEPAADa/z/LP4AgT...AAMj1/AAAA=``). Every id minted
    here has all three, so a client that puts an id into a URL path unencoded fails
    every time, not one time in a few.
    """
    body = base64.b64encode(secrets.token_bytes(45)).decode()
    return f"{prefix}AGI2{body[:20]}/{body[20:40]}+{body[40:]}AAA="


@dataclass
class Event:
    """One event in an account's primary calendar (single instances only)."""

    id: str
    subject: str
    start: datetime  # aware UTC instant
    end: datetime
    time_zone: str = "UTC"  # original zone; all-day events sit at its midnights
    show_as: str = "busy"
    is_all_day: bool = False
    is_cancelled: bool = False
    location: str = ""
    body: str = ""
    attendees: list[dict[str, Any]] = field(default_factory=list)
    organizer: str = ""
    transaction_id: str | None = None
    is_online_meeting: bool = False
    ical_uid: str = field(
        default_factory=lambda: "040000008200E00074C5B7101A82E008" + uuid.uuid4().hex
    )
    change_key: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    seq: int = 0
    deleted: bool = False


@dataclass
class Account:
    email: str
    name: str
    personal: bool
    oid: str
    tenant_id: str
    events: dict[str, Event] = field(default_factory=dict)
    schedule_error: str | None = None
    # The mailbox's SMTP address (Graph ``mail``). For work accounts it often differs
    # from the sign-in name (``userPrincipalName``, the id token's ``preferred_username``);
    # getSchedule resolves only this. Personal accounts have none.
    mail: str | None = None
    # An Exchange application access policy (or another mailbox-level denial) in force:
    # every Graph call on this mailbox answers 403 ErrorAccessDenied with this message.
    access_denied: str | None = None


@dataclass
class Tenant:
    """A Microsoft 365 organization as app-only access sees it.

    ``consented`` is set when a global administrator of the tenant granted Tandem's app
    its application permissions on the admin-consent page. ``policy_denied`` models an
    Exchange Online application access policy
    (https://learn.microsoft.com/en-us/graph/auth-limit-mailbox-access): the app may not
    reach these mailboxes, every other one stays reachable.
    """

    id: str
    domains: list[str]
    consented: bool = False
    admins: set[str] = field(default_factory=set)
    policy_denied: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: tuple[str, ...]  # query parameter names, sorted
    prefer: str | None


@dataclass
class CodeGrant:
    email: str
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    code_challenge_method: str
    nonce: str | None
    scope: str
    tenant_id: str
    expires_at: float


@dataclass
class RefreshGrant:
    email: str
    client_id: str
    scope: str
    nonce: str | None = None


@dataclass
class DeltaCursor:
    email: str
    seq: int
    start: datetime
    end: datetime


def _as_utc(value: datetime | date, zone: str, *, all_day: bool) -> datetime:
    if all_day or not isinstance(value, datetime):
        day = value.date() if isinstance(value, datetime) else value
        return datetime.combine(day, dtime(0), ZoneInfo(zone)).astimezone(UTC)
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.astimezone(UTC)


class MicrosoftState(FaultInjection):
    """Everything the emulator knows; safe to seed and inspect from any thread."""

    def __init__(
        self,
        *,
        client_id: str = "tandem-emulator-client",
        client_secret: str = "tandem-emulator-secret",
        tenant: str = "common",
        work_tenant_id: str = DEFAULT_WORK_TENANT_ID,
        access_token_lifetime: int = 3600,
    ) -> None:
        self.lock = threading.RLock()
        self.client_id = client_id
        self.client_secret = client_secret
        self.tenant = tenant
        self.work_tenant_id = work_tenant_id
        self.access_token_lifetime = access_token_lifetime
        self.accounts: dict[str, Account] = {}
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.pending_consents: dict[str, dict[str, str]] = {}
        self.codes: dict[str, CodeGrant] = {}
        self.redeemed_codes: set[str] = set()
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.access_tokens: dict[str, tuple[str, float]] = {}
        self.delta_tokens: dict[str, DeltaCursor] = {}
        self.delta_pages: dict[str, tuple[list[dict[str, Any]], str]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.after_commit_faults: list[Fault] = []
        self.client_secret_expired = False
        # Where browsers open the sign-in page, when not on the TLS server itself: the
        # demo serves it over plain http on loopback so no certificate warning shows.
        self.browser_origin: str | None = None
        # Graph's validation handshake on subscription create; off by default because
        # most tests hand out notification URLs nothing listens on.
        self.validate_notification_urls = False
        self.validation_verify: Any = True  # CA (path or SSLContext) for https endpoints
        self._seq = 0
        # Organization-wide (app-only) access: tenants, their consent and access policy.
        self.tenants: dict[str, Tenant] = {}
        self.app_tokens: dict[str, tuple[str, float]] = {}
        self.pending_admin_consents: dict[str, dict[str, str]] = {}
        self._by_mail: dict[str, Account] = {}

    # -- seeding ---------------------------------------------------------------------------
    def add_account(
        self,
        email: str,
        *,
        name: str | None = None,
        personal: bool = False,
        mail: str | None = None,
        tenant_id: str | None = None,
    ) -> Account:
        """A work/school account (in ``work_tenant_id``) or a personal Microsoft account.

        ``email`` is the sign-in name (UPN). ``mail`` is the mailbox's SMTP address, by
        default the same for work accounts and none for personal ones.
        """
        with self.lock:
            account = Account(
                email=email,
                name=name or email.split("@")[0].title(),
                personal=personal,
                oid=str(uuid.uuid4()),
                tenant_id=CONSUMER_TENANT_ID
                if personal
                else (tenant_id or self.work_tenant_id).lower(),
                mail=None if personal else (mail or email),
            )
            self.accounts[email.lower()] = account
            if account.mail:
                self._by_mail[account.mail.lower()] = account
            return account

    def mailbox(self, address: str) -> Account | None:
        """The work mailbox whose SMTP address (``mail``) is ``address``, as getSchedule
        resolves it: a UPN that is not also the address finds nothing."""
        with self.lock:
            wanted = address.lower()
            indexed = self._by_mail.get(wanted)
            if indexed is not None and indexed.mail and indexed.mail.lower() == wanted:
                return indexed
            return next(
                (a for a in self.accounts.values() if a.mail and a.mail.lower() == wanted),
                None,
            )

    def account(self, email: str) -> Account:
        with self.lock:
            return self.accounts[email.lower()]

    def next_seq(self) -> int:
        with self.lock:
            self._seq += 1
            return self._seq

    @property
    def current_seq(self) -> int:
        return self._seq

    def add_event(
        self,
        email: str,
        *,
        subject: str,
        start: datetime | date,
        end: datetime | date,
        show_as: str = "busy",
        is_all_day: bool = False,
        time_zone: str = "UTC",
        location: str = "",
        body: str = "",
        is_cancelled: bool = False,
        attendees: list[dict[str, Any]] | None = None,
        transaction_id: str | None = None,
    ) -> str:
        """Seed an event as if the user had made it in Outlook; returns its id.

        All-day events take dates (or midnights) interpreted in ``time_zone``.
        """
        if show_as not in SHOW_AS:
            raise ValueError(f"showAs must be one of {SHOW_AS}")
        with self.lock:
            account = self.account(email)
            event = Event(
                id=new_id(),
                subject=subject,
                start=_as_utc(start, time_zone, all_day=is_all_day),
                end=_as_utc(end, time_zone, all_day=is_all_day),
                time_zone=time_zone,
                show_as=show_as,
                is_all_day=is_all_day,
                is_cancelled=is_cancelled,
                location=location,
                body=body,
                attendees=list(attendees or []),
                organizer=account.email,
                transaction_id=transaction_id,
                seq=self.next_seq(),
            )
            account.events[event.id] = event
            return event.id

    def update_event(self, email: str, event_id: str, **changes: Any) -> None:
        """Change fields of an event (an edit in Outlook); bumps its change key."""
        with self.lock:
            event = self.account(email).events[event_id]
            for name, value in changes.items():
                if not hasattr(event, name):
                    raise AttributeError(name)
                setattr(event, name, value)
            self.touch(event)

    def set_response(self, email: str, event_id: str, attendee: str, response: str) -> None:
        """An attendee answered the invitation (``accepted``, ``declined``, ...)."""
        if response not in RESPONSES:
            raise ValueError(f"response must be one of {RESPONSES}")
        with self.lock:
            event = self.account(email).events[event_id]
            for item in event.attendees:
                if item["emailAddress"]["address"].lower() == attendee.lower():
                    item["status"] = {"response": response, "time": _now_iso()}
                    break
            else:
                raise KeyError(attendee)
            self.touch(event)

    def remove_event(self, email: str, event_id: str) -> None:
        """Delete an event as the user would in Outlook (it leaves a tombstone for delta)."""
        with self.lock:
            event = self.account(email).events[event_id]
            event.deleted = True
            self.touch(event)

    def touch(self, event: Event) -> None:
        with self.lock:
            event.seq = self.next_seq()
            event.change_key = secrets.token_urlsafe(12)
            event.modified = datetime.now(UTC)

    def set_schedule_error(self, email: str, message: str | None) -> None:
        """Make getSchedule answer this account's schedule with an ``error`` object."""
        with self.lock:
            self.account(email).schedule_error = message

    # -- fault injection -------------------------------------------------------------------
    def fail_after_commit(
        self,
        path_substring: str,
        status: int = 503,
        *,
        times: int = 1,
        method: str = "POST",
        delay: float = 0.0,
    ) -> None:
        """The next ``times`` matching requests are carried out (the event or subscription
        exists afterwards, attendees were invited) but answered with ``status`` after
        ``delay`` seconds, as when Graph's front end fails or the client times out after
        the store committed. Use a ``delay`` above the client's timeout to model a timeout.
        """
        with self.lock:
            self.after_commit_faults.append(
                Fault(path_substring, status, None, {}, times, method=method, delay=delay)
            )

    def take_after_commit_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.after_commit_faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.after_commit_faults.remove(fault)
                    return fault
            return None

    def deny_access(self, email: str, message: str | None = "Access to OData is disabled.") -> None:
        """Put (or, with None, lift) an access policy on a mailbox: Graph answers 403
        ``ErrorAccessDenied`` while the grant itself stays valid."""
        with self.lock:
            self.account(email).access_denied = message

    def expire_client_secret(self, expired: bool = True) -> None:
        """The app registration's client secret has expired: the token endpoint answers
        ``invalid_client`` with AADSTS7000222 for every grant."""
        with self.lock:
            self.client_secret_expired = expired

    def fail_renewals(self, times: int) -> None:
        """The next ``times`` subscription renewals (PATCH) answer 503 without renewing."""
        self.fail_next("/v1.0/subscriptions/", 503, times=times, method="PATCH")

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is now expired (Graph answers 401)."""
        with self.lock:
            self.access_tokens = {
                token: (email, 0.0) for token, (email, _) in self.access_tokens.items()
            }

    def revoke_all(self, email: str) -> None:
        """Revoke every token of ``email`` (password reset, admin revocation)."""
        with self.lock:
            key = email.lower()
            self.refresh_tokens = {
                t: g for t, g in self.refresh_tokens.items() if g.email.lower() != key
            }
            self.access_tokens = {
                t: v for t, v in self.access_tokens.items() if v[0].lower() != key
            }

    def invalidate_delta_tokens(self) -> None:
        """Forget every delta token; the next round answers 410 (a full resync is needed)."""
        with self.lock:
            self.delta_tokens.clear()
            self.delta_pages.clear()

    # -- tokens ----------------------------------------------------------------------------
    def issue_access_token(self, email: str) -> str:
        with self.lock:
            token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0." + secrets.token_urlsafe(32)
            self.access_tokens[token] = (email, time.time() + self.access_token_lifetime)
            return token

    def user_for_token(self, token: str) -> Account | None:
        with self.lock:
            entry = self.access_tokens.get(token)
            if entry is None or entry[1] <= time.time():
                return None
            return self.accounts.get(entry[0].lower())

    # -- organization-wide access ---------------------------------------------------------
    def add_tenant(
        self, domains: list[str], *, tenant_id: str | None = None, admin: str | None = None
    ) -> Tenant:
        """A work tenant owning ``domains`` (``work_tenant_id`` by default); ``admin`` is a
        seeded account that may grant admin consent."""
        with self.lock:
            tenant = Tenant(
                id=(tenant_id or self.work_tenant_id).lower(),
                domains=[d.lower() for d in domains],
            )
            if admin:
                tenant.admins.add(admin.lower())
            self.tenants[tenant.id] = tenant
            return tenant

    def tenant_for(self, name: str) -> Tenant | None:
        """A tenant by id or by one of its verified domains (both work in authority URLs)."""
        with self.lock:
            wanted = name.lower()
            if wanted in self.tenants:
                return self.tenants[wanted]
            return next((t for t in self.tenants.values() if wanted in t.domains), None)

    def deny_app_access(self, email: str, denied: bool = True) -> None:
        """Put (or lift) the application access policy on one mailbox of its tenant."""
        with self.lock:
            account = self.account(email)
            tenant = self.tenants[account.tenant_id]
            address = (account.mail or account.email).lower()
            if denied:
                tenant.policy_denied.add(address)
            else:
                tenant.policy_denied.discard(address)

    def issue_app_token(self, tenant_id: str) -> str:
        with self.lock:
            token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.app." + secrets.token_urlsafe(32)
            self.app_tokens[token] = (tenant_id, time.time() + self.access_token_lifetime)
            return token

    def tenant_for_app_token(self, token: str) -> Tenant | None:
        with self.lock:
            entry = self.app_tokens.get(token)
            if entry is None or entry[1] <= time.time():
                return None
            tenant = self.tenants.get(entry[0])
            return tenant if tenant is not None and tenant.consented else None

    def record(self, method: str, path: str, params: tuple[str, ...], prefer: str | None) -> None:
        with self.lock:
            self.requests.append(RecordedRequest(method, path, params, prefer))

    def requests_to(self, path_substring: str, method: str | None = None) -> list[RecordedRequest]:
        with self.lock:
            return [
                r
                for r in self.requests
                if path_substring in r.path and (method is None or r.method == method)
            ]


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
