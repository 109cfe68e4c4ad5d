"""Microsoft 365 (work/school) and Outlook.com (personal) calendars.

Sign-in uses msal's authorization-code flow with PKCE for the delegated
``Calendars.ReadWrite`` scope (msal adds ``openid``/``profile``/``offline_access``
itself). msal is synchronous, so every msal call runs in a worker thread. What Tandem
stores per user is msal's serialized token cache plus the account's id; refreshed caches
are handed back through ``Credentials.replace_secret``.

Free/busy comes from Graph ``getSchedule`` for work/school accounts, asked for the
mailbox's SMTP address (``mail`` from ``GET /me``, read at connect time: getSchedule's
``schedules`` are "SMTP addresses", and a work account's sign-in name often is not one).
When getSchedule cannot answer for that address, the user's own calendar is read through
``calendarView`` instead. Personal accounts cannot use getSchedule, so they always read
``calendarView`` restricted to times and show-as. Both paths drop subjects, locations
and bodies at JSON-parse time: they never reach an object Tandem keeps. ``showAs`` /
status ``workingElsewhere`` is *free* (the person is working, only not at the office), as
Google's working-location events and Tandem's CalDAV reading treat it.

Writes are not blindly retried: a create (event or subscription) that timed out or got a
5xx may have been carried out. After such a failure on an event create, the event the
first attempt made is looked up by its ``transactionId`` (the Tandem UID) and kept; a
retried create with a used ``transactionId`` is refused by Graph
(``ErrorDuplicateTransactionId``) and resolved the same way.

Event ids go into URL paths with ``/`` encoded as ``%252F`` (see ``_event_path``).

Every URL comes from settings (``microsoft_authority``, ``microsoft_graph_base``) so the
same code talks to Microsoft or to ``emulators.microsoft``. The ``httpx.AsyncClient``
handed in is used for Graph; it must trust ``settings.microsoft_ca_bundle`` when the
emulator is used (msal's own HTTP client is built here and trusts it already).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import ssl
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio.to_thread
import httpx
import msal
from msal.exceptions import MsalServiceError

from server.config import Settings
from server.providers.base import (
    APP_KEY,
    AccessDenied,
    AuthExpired,
    AuthorizationDeclined,
    AuthorizationStart,
    BusyFetch,
    BusyInterval,
    BusyKind,
    ChangeBatch,
    ConnectedAccount,
    Credentials,
    EventChange,
    ExternalEvent,
    InvalidCredentials,
    NoticeKind,
    OAuthApp,
    OutcomeUnknown,
    ProviderError,
    ProviderMisconfigured,
    ProviderName,
    ProviderUnavailable,
    PushChannel,
    PushNotice,
    RateLimited,
    SyncTokenExpired,
    app_of,
)

log = logging.getLogger("tandem.providers.microsoft")

GRAPH_SCOPES = ("https://graph.microsoft.com/Calendars.ReadWrite",)
CONSUMER_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
"""The tenant of every personal Microsoft account: tells Outlook.com from Office 365."""

SCHEDULE_CHUNK = timedelta(days=61)  # getSchedule refuses windows of 62 days or more
SUBSCRIPTION_LIFETIME = timedelta(minutes=4200)  # event subscriptions live < 4230 min
_AVAILABILITY_INTERVAL = 15
_PAGE_LIMIT = 500  # pages followed per call: a guard against a server that loops
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_POLICY_DENIALS = ("access to odata is disabled", "access policy")
_SYNC_GONE_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
_PREFER_UTC = {"Prefer": 'outlook.timezone="UTC"'}
_PRIVATE_KEYS = frozenset({"subject", "location", "locations", "body", "bodyPreview", "attendees"})
_KIND_BY_STATUS = {
    "busy": BusyKind.BUSY,
    "tentative": BusyKind.TENTATIVE,
    "oof": BusyKind.OUT_OF_OFFICE,
}
_NOT_BUSY = frozenset({"free", "workingElsewhere"})
_RSVP = {
    "none": "needs_action",
    "notResponded": "needs_action",
    "organizer": "accepted",
    "accepted": "accepted",
    "tentativelyAccepted": "tentative",
    "declined": "declined",
}


class _MsalHttp:
    """The HTTP client msal uses: sync httpx trusting the optional extra CA.

    msal builds its authority (an OIDC discovery GET) every time an application object
    is made, and Tandem makes one per call because each user has their own token cache;
    the discovery documents are therefore cached here, shared across threads.
    """

    def __init__(self, verify: ssl.SSLContext | bool, timeout: float) -> None:
        self._client = httpx.Client(verify=verify, timeout=timeout)
        self._discovery: dict[str, httpx.Response] = {}
        self._lock = threading.Lock()

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> httpx.Response:
        cacheable = url.endswith("/.well-known/openid-configuration") and not params
        if cacheable:
            with self._lock:
                cached = self._discovery.get(url)
            if cached is not None:
                return cached
        response = self._client.get(url, params=_clean(params), headers=_clean(headers))
        if cacheable and response.status_code == 200:
            with self._lock:
                self._discovery[url] = response
        return response

    def post(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> httpx.Response:
        form = _clean(data) if isinstance(data, Mapping) else data
        return self._client.post(url, params=_clean(params), data=form, headers=_clean(headers))

    def close(self) -> None:
        self._client.close()


def _clean(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: v for k, v in values.items() if v is not None}


class MicrosoftProvider:
    """``OAuthProvider`` for Microsoft accounts (Office 365 and Outlook.com).

    ``owns_uid`` tells Tandem's meeting UIDs from other clients' ``transactionId``
    values when reading changes; by default any non-empty ``transactionId`` counts, so
    the lead should pass a predicate matching the meetings service's UID format.
    """

    name = ProviderName.MICROSOFT
    # msal adds the OpenID Connect scopes to every sign-in; an app registration needs them.
    consent_scopes = (*GRAPH_SCOPES, "offline_access", "openid", "profile")

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        *,
        owns_uid: Callable[[str], bool] | None = None,
        max_retry_wait: float = 4.0,
        max_attempts: int = 3,
    ) -> None:
        self._settings = settings
        self._http = http
        self._graph_base = settings.microsoft_graph_base.rstrip("/")
        self._owns_uid: Callable[[str], bool] = owns_uid or bool
        self._max_retry_wait = max_retry_wait
        self._max_attempts = max_attempts
        verify: ssl.SSLContext | bool = True
        if settings.microsoft_ca_bundle is not None:
            verify = ssl.create_default_context()
            verify.load_verify_locations(cafile=str(settings.microsoft_ca_bundle))
        self._msal_http = _MsalHttp(verify, settings.provider_timeout_seconds)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # The newest token cache per account seen by this process: when two calls race
        # with copies of the same stored credentials, the loser's refresh token has
        # already been rotated away, and it recovers from here instead of failing.
        self._fresh: OrderedDict[str, str] = OrderedDict()

    def __repr__(self) -> str:
        return f"MicrosoftProvider(graph_base={self._graph_base!r})"

    def close(self) -> None:
        """Close msal's HTTP client (the Graph client belongs to the caller)."""
        self._msal_http.close()

    # -- authorization -----------------------------------------------------------------
    def _app(
        self, cache: msal.TokenCache | None, app: OAuthApp | None = None
    ) -> msal.ConfidentialClientApplication:
        """msal's client for Tandem's app, or for an organization's own app in its tenant."""
        if app is not None:
            client_id, credential = app.client_id, app.client_secret
            authority = _tenant_authority(self._settings.microsoft_authority, app.tenant)
        else:
            secret = self._settings.microsoft_client_secret
            if not self._settings.microsoft_client_id or secret is None:
                raise ProviderUnavailable("Microsoft sign-in is not configured")
            client_id, credential = self._settings.microsoft_client_id, secret.get_secret_value()
            authority = self._settings.microsoft_authority
        try:
            return msal.ConfidentialClientApplication(
                client_id,
                client_credential=credential,
                authority=authority,
                token_cache=cache,
                http_client=self._msal_http,
                # Microsoft's own hosts skip instance discovery anyway; any other host
                # (the emulator, a sovereign proxy) must not be checked against them.
                instance_discovery=False,
            )
        except (ValueError, httpx.HTTPError, MsalServiceError):
            raise ProviderUnavailable("Microsoft sign-in is unavailable") from None

    def begin_authorization(
        self, redirect_uri: str, app: OAuthApp | None = None
    ) -> AuthorizationStart:
        """Start msal's auth-code flow. The first call blocks for OIDC discovery."""
        with warnings.catch_warnings():
            # msal recommends response_mode=form_post; Tandem's callback is a GET on purpose:
            # a cross-site POST would not carry the SameSite=Lax session cookie that binds the
            # callback to the browser session that started the flow.
            warnings.filterwarnings("ignore", message=".*response_mode='form_post'.*")
            flow = self._app(None, app).initiate_auth_code_flow(
                list(GRAPH_SCOPES), redirect_uri=redirect_uri
            )
        if app is not None:
            flow[APP_KEY] = app.to_secret()
        return AuthorizationStart(url=str(flow["auth_uri"]), state=str(flow["state"]), flow=flow)

    async def finish_authorization(
        self, flow: dict[str, Any], callback_params: Mapping[str, str], redirect_uri: str
    ) -> ConnectedAccount:
        response = dict(callback_params)
        if response.get("error") == "access_denied":
            raise AuthorizationDeclined("Access to the Microsoft calendar was declined")
        if flow.get("redirect_uri") != redirect_uri:
            raise AuthorizationDeclined("The Microsoft sign-in did not match this connection")
        cache = msal.SerializableTokenCache()
        org_app = app_of(flow)
        msal_flow = {key: value for key, value in flow.items() if key != APP_KEY}
        app = await anyio.to_thread.run_sync(self._app, cache, org_app)

        def exchange() -> dict[str, Any]:
            result: dict[str, Any] = app.acquire_token_by_auth_code_flow(msal_flow, response)
            return result

        try:
            result = await anyio.to_thread.run_sync(exchange)
        except (ValueError, RuntimeError):  # state or nonce mismatch
            raise AuthorizationDeclined(
                "The Microsoft sign-in did not match this connection"
            ) from None
        except (httpx.HTTPError, MsalServiceError):
            raise ProviderUnavailable("Microsoft sign-in is unavailable") from None
        if "error" in result:
            if result["error"] == "access_denied":
                raise AuthorizationDeclined("Access to the Microsoft calendar was declined")
            if result["error"] == "invalid_client":
                raise _misconfigured(result)
            raise InvalidCredentials(f"Microsoft refused the sign-in ({_safe(result['error'])})")
        claims: dict[str, Any] = result.get("id_token_claims") or {}
        email = str(claims.get("preferred_username") or claims.get("email") or "")
        personal = claims.get("tid") == CONSUMER_TENANT_ID
        accounts = app.get_accounts()
        match = next(
            (a for a in accounts if str(a.get("username", "")).lower() == email.lower()),
            accounts[0] if accounts else None,
        )
        if match is None or not email:
            raise InvalidCredentials("Microsoft did not identify the signed-in account")
        home = str(match["home_account_id"])
        serialized = cache.serialize()
        self._remember(home, serialized)
        secret: dict[str, Any] = {
            "token_cache": serialized,
            "home_account_id": home,
            "personal": personal,
            "email": email,
        }
        if org_app is not None:
            secret[APP_KEY] = org_app.to_secret()
        credentials = Credentials(provider=ProviderName.MICROSOFT, secret=secret)
        mailbox = email
        if not personal:
            # The address getSchedule is asked for, and the one shown and written as the
            # organizer: the mailbox's ``mail``, which for work accounts is often not the
            # sign-in name. Without it (Graph unreachable right now) the first busy fetch
            # reads it instead.
            try:
                mailbox = await self._mailbox(credentials) or email
            except ProviderError:
                mailbox = email
            else:
                secret["mailbox"] = mailbox
            credentials.changed = False
        return ConnectedAccount(
            credentials=credentials,
            account_email=mailbox,
            label="Outlook.com" if personal else "Office 365",
        )

    async def revoke(self, credentials: Credentials) -> None:
        """Nothing to call: Microsoft offers no per-client token revocation.

        Users remove an app's consent at myapps.microsoft.com / account.live.com;
        deleting push subscriptions is the caller's job (``close_push_channel``) and
        dropping the stored token cache ends Tandem's access from its side.
        """
        return None

    # -- tokens --------------------------------------------------------------------------
    def _remember(self, home: str, serialized: str) -> None:
        self._fresh[home] = serialized
        self._fresh.move_to_end(home)
        while len(self._fresh) > 1024:
            self._fresh.popitem(last=False)

    def _silent(
        self, serialized: str, home: str, force_refresh: bool, org_app: OAuthApp | None = None
    ) -> tuple[str, str | None]:
        """Runs in a thread: an access token, and the cache if msal changed it."""
        cache = msal.SerializableTokenCache()
        if serialized:
            cache.deserialize(serialized)
        app = self._app(cache, org_app)
        account = next((a for a in app.get_accounts() if a.get("home_account_id") == home), None)
        if account is None:
            raise AuthExpired("The Microsoft sign-in is missing; reconnect the calendar")
        try:
            result = app.acquire_token_silent_with_error(
                list(GRAPH_SCOPES), account, force_refresh=force_refresh
            )
        except (httpx.HTTPError, MsalServiceError):
            raise ProviderUnavailable("Microsoft sign-in is unavailable") from None
        if not result:
            raise AuthExpired("The Microsoft sign-in expired; reconnect the calendar")
        if "error" in result:
            if result["error"] in ("invalid_grant", "interaction_required"):
                raise AuthExpired("The Microsoft sign-in expired; reconnect the calendar")
            if result["error"] == "invalid_client":
                raise _misconfigured(result)
            raise ProviderUnavailable(f"Microsoft sign-in failed ({_safe(result['error'])})")
        return str(result["access_token"]), cache.serialize() if cache.has_state_changed else None

    async def _token(self, credentials: Credentials, *, force_refresh: bool = False) -> str:
        home = str(credentials.secret.get("home_account_id", ""))
        lock = self._locks.get(home)
        if lock is None:
            lock = self._locks[home] = asyncio.Lock()
        org_app = app_of(credentials.secret)
        async with lock:
            serialized = str(credentials.secret.get("token_cache", ""))
            try:
                token, changed = await anyio.to_thread.run_sync(
                    self._silent, serialized, home, force_refresh, org_app
                )
            except AuthExpired:
                fresh = self._fresh.get(home)
                if fresh is None or fresh == serialized:
                    raise
                token, changed = await anyio.to_thread.run_sync(
                    self._silent, fresh, home, force_refresh, org_app
                )
                changed = changed or fresh
            if changed is not None:
                credentials.replace_secret({**credentials.secret, "token_cache": changed})
                self._remember(home, changed)
            return token

    async def refresh_tokens(
        self, credentials: Credentials, *, min_valid_seconds: int = 0, force: bool = False
    ) -> None:
        """Refresh now when forced or when the cached access token expires within
        ``min_valid_seconds`` (callers holding a cross-process lock do this so the call
        that follows does not need to refresh on its own)."""
        if not force and min_valid_seconds > 0:
            force = _expires_within(credentials, min_valid_seconds)
        await self._token(credentials, force_refresh=force)

    # -- Graph ---------------------------------------------------------------------------
    def _url(self, path_or_link: str) -> str:
        if path_or_link.startswith(("https://", "http://")):
            # Links come from Graph (nextLink, deltaLink, stored sync tokens); a token is
            # only ever sent back to the configured Graph host.
            if not path_or_link.startswith(self._graph_base + "/"):
                raise ProviderUnavailable("Microsoft Graph returned a link to another host")
            return path_or_link
        return self._graph_base + path_or_link

    async def _graph(
        self,
        credentials: Credentials,
        method: str,
        path_or_link: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """One Graph call: refresh once on 401, retry 429/5xx within a small time budget.

        A call that is not ``idempotent`` (a create) is retried only after a 429, which
        Graph answers before doing anything; after a timeout or a 5xx it may have been
        carried out, so it raises ``OutcomeUnknown`` and the caller finds out. A
        connection that never opened raises plain ``ProviderUnavailable`` (nothing sent).
        """
        url = self._url(path_or_link)
        token = await self._token(credentials)
        refreshed = False
        waited = 0.0
        attempts = 0
        while True:
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=params,
                    json=body,
                    headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                    timeout=self._settings.provider_timeout_seconds,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout):
                raise ProviderUnavailable("Microsoft Graph could not be reached") from None
            except httpx.TimeoutException:
                if not idempotent:
                    raise OutcomeUnknown("Microsoft Graph timed out") from None
                raise ProviderUnavailable("Microsoft Graph timed out") from None
            except httpx.HTTPError:
                if not idempotent:
                    raise OutcomeUnknown("Microsoft Graph did not answer") from None
                raise ProviderUnavailable("Microsoft Graph could not be reached") from None
            if response.status_code == 401:
                if refreshed:
                    raise AuthExpired("Microsoft Graph refused the sign-in; reconnect the calendar")
                if credentials.renew is not None:
                    # The caller serialises refreshes across processes: its renewal
                    # hands back the newest token (or one refreshed under its lock).
                    await credentials.renew(credentials)
                    token = await self._token(credentials)
                else:
                    token = await self._token(credentials, force_refresh=True)
                refreshed = True
                continue
            if response.status_code >= 500 and not idempotent:
                raise _FailedAnswer(f"Microsoft Graph failed ({response.status_code})")
            if response.status_code in _RETRY_STATUSES:
                hinted = _retry_after(response)
                wait = hinted if hinted is not None else 0.25 * 2**attempts
                attempts += 1
                if attempts >= self._max_attempts or waited + wait > self._max_retry_wait:
                    if response.status_code == 429:
                        raise RateLimited("Microsoft Graph is throttling requests", wait)
                    raise ProviderUnavailable(
                        f"Microsoft Graph is unavailable ({response.status_code})"
                    )
                await anyio.sleep(wait)
                waited += wait
                continue
            return response

    @staticmethod
    def _check(response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        code = _error_code(response)
        message = f"Microsoft Graph refused {what} ({status} {code})".strip()
        if status == 403:
            # 403 is not a lost grant (that is invalid_grant on refresh, or a 401 after a
            # refresh): an access policy ("ErrorAccessDenied", "Access to OData is
            # disabled.", auth-limit-mailbox-access doc), a missing permission, or a
            # passing refusal. Reconnecting would not change it.
            raise AccessDenied(message, policy=_names_policy(response))
        if status >= 500:
            raise ProviderUnavailable(message)
        raise ProviderError(message)

    async def _pages(
        self,
        credentials: Credentials,
        path: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        what: str,
        *,
        private: bool,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield each page of a paged Graph collection (``@odata.nextLink``)."""
        link: str | None = path
        for _ in range(_PAGE_LIMIT):
            if link is None:
                return
            response = await self._graph(credentials, "GET", link, params=params, headers=headers)
            if response.status_code == 410 or _error_code(response).lower() in _SYNC_GONE_CODES:
                raise SyncTokenExpired("The Microsoft change token expired; resync needed")
            self._check(response, what)
            page = _parse(response, private=private)
            yield page
            link, params = page.get("@odata.nextLink"), None
        raise ProviderUnavailable(f"Microsoft Graph returned too many pages for {what}")

    # -- free/busy -----------------------------------------------------------------------
    async def fetch_busy(
        self, credentials: Credentials, start: datetime, end: datetime, time_zone: str
    ) -> BusyFetch:
        """Busy intervals in ``[start, end)``, UTC, clipped and sorted.

        Work/school: getSchedule for the account's own address (all-day events come back
        as real instants, counted as busy). Personal: calendarView, where all-day events
        are placed on the user's own days in ``time_zone`` (kind ``ALL_DAY``).
        """
        if start >= end:
            return BusyFetch([])
        if credentials.secret.get("personal"):
            spans, readable = await self._busy_from_view(credentials, start, end, time_zone)
        else:
            spans, readable = await self._busy_from_schedule(credentials, start, end, time_zone)
        return BusyFetch(_clip_sorted(spans, start, end), readable=readable)

    async def _mailbox(self, credentials: Credentials) -> str | None:
        """The signed-in mailbox's SMTP address (``mail``; null for mailbox-less or
        personal accounts)."""
        response = await self._graph(
            credentials, "GET", "/me", params={"$select": "mail,userPrincipalName"}
        )
        self._check(response, "the account details")
        mail = str(_parse(response, private=True).get("mail") or "").strip()
        return mail or None

    async def _schedule_address(self, credentials: Credentials, *, reread: bool) -> str:
        """The address to ask getSchedule for; read from ``/me`` (and kept in the secret,
        so the caller persists it) when unknown or when ``reread``."""
        known = credentials.secret.get("mailbox")
        if known and not reread:
            return str(known)
        fallback = str(credentials.secret.get("email", ""))
        mailbox = await self._mailbox(credentials) or fallback
        if mailbox != known:
            credentials.replace_secret({**credentials.secret, "mailbox": mailbox})
        return mailbox

    async def _busy_from_schedule(
        self, credentials: Credentials, start: datetime, end: datetime, time_zone: str
    ) -> tuple[set[tuple[datetime, datetime, BusyKind]], bool]:
        address = await self._schedule_address(credentials, reread=False)
        reread = False
        spans: set[tuple[datetime, datetime, BusyKind]] = set()
        readable = True
        chunk_start = start
        while chunk_start < end:
            chunk_end = min(end, chunk_start + SCHEDULE_CHUNK)
            request = {
                "schedules": [address],
                "startTime": _utc_dtz(chunk_start),
                "endTime": _utc_dtz(chunk_end),
                "availabilityViewInterval": _AVAILABILITY_INTERVAL,
            }
            response = await self._graph(
                credentials, "POST", "/me/calendar/getSchedule", body=request, headers=_PREFER_UTC
            )
            self._check(response, "the free/busy request")
            chunk = _schedule_spans(_parse(response, private=True), address)
            if chunk is None and not reread:
                # The address may be stale (the mailbox was renamed, or it was stored
                # before Tandem read ``mail``): read it again once and retry this chunk.
                reread = True
                fresh = await self._schedule_address(credentials, reread=True)
                if fresh.lower() != address.lower():
                    address = fresh
                    continue
            if chunk is None:
                # getSchedule cannot answer for this mailbox; the user's own calendar can
                # still be read directly, so nobody stays "unknown" over an address.
                view, view_readable = await self._busy_from_view(
                    credentials, chunk_start, chunk_end, time_zone
                )
                spans |= view
                readable = readable and view_readable
            else:
                chunk_spans, chunk_readable = chunk
                spans |= chunk_spans
                readable = readable and chunk_readable
            chunk_start = chunk_end
        return spans, readable

    async def _busy_from_view(
        self, credentials: Credentials, start: datetime, end: datetime, time_zone: str
    ) -> tuple[set[tuple[datetime, datetime, BusyKind]], bool]:
        try:
            zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")
        params = {
            "startDateTime": _iso_z(start),
            "endDateTime": _iso_z(end),
            "$select": "start,end,showAs,isAllDay,isCancelled",
            "$top": "200",
        }
        spans: set[tuple[datetime, datetime, BusyKind]] = set()
        async for page in self._pages(
            credentials, "/me/calendarView", params, _PREFER_UTC, "the calendar view", private=True
        ):
            for item in page.get("value") or []:
                span = _view_span(item, zone)
                if span is not None:
                    spans.add(span)
        return spans, True

    # -- events --------------------------------------------------------------------------
    async def create_event(
        self, credentials: Credentials, event: ExternalEvent, *, send_invitations: bool
    ) -> str:
        """Create the meeting in the owner's calendar; returns Graph's event id.

        Graph always emails the attendees of a meeting created on the organizer's
        calendar (``send_invitations`` cannot turn that off), so the meetings service
        must not send its own invitations for Microsoft owners.

        ``transactionId`` is the Tandem UID. Graph refuses a second create with it
        (400 ``ErrorDuplicateTransactionId``) instead of returning the first event, and a
        create that timed out or got a 5xx may have been stored (and the attendees
        emailed). Either way the event is looked up by its ``transactionId`` in its own
        time window and its id returned. A 5xx after which no such event exists raises
        ``ProviderUnavailable`` (nothing happened). ``OutcomeUnknown`` means the first
        attempt's fate cannot be told yet (a timeout, or the lookup failed): the caller
        retries later, never creating a second event and never inviting by itself
        meanwhile.
        """
        body = _event_body(event) | {"transactionId": event.uid}
        try:
            response = await self._graph(
                credentials, "POST", "/me/events", body=body, idempotent=False
            )
        except OutcomeUnknown as failure:
            found = await self._find_created(credentials, event)
            if found is not None:
                return found
            if isinstance(failure, _FailedAnswer):
                # Graph answered an error and its store holds no such event: nothing was
                # created and nobody was invited. (A timed-out request may still be in
                # flight, so that case stays unknown.)
                raise ProviderUnavailable(str(failure)) from None
            raise
        duplicate = _error_code(response) == "ErrorDuplicateTransactionId"
        if response.status_code in (400, 409) and duplicate:  # 400 mostly; some report 409
            found = await self._find_created(credentials, event)
            if found is None:
                raise ProviderError(
                    "The meeting's event was created before and is no longer in the "
                    "owner's Microsoft calendar"
                )
            return found
        self._check(response, "the new event")
        return str(_parse(response, private=True)["id"])

    async def _find_created(self, credentials: Credentials, event: ExternalEvent) -> str | None:
        """The id of the event an earlier create of ``event`` made, if it exists.

        Read through ``calendarView`` over the event's own window selecting only ``id``
        and ``transactionId`` (documented on every event an app gave one), rather than
        ``$filter=transactionId eq ...``, which Graph does not document; ``iCalUId`` is
        filterable but Graph assigns it, so Tandem cannot know it before the create
        answered. Raises ``OutcomeUnknown`` when Graph cannot be asked now.
        """
        params = {
            "startDateTime": _iso_z(event.start),
            "endDateTime": _iso_z(event.end),
            "$select": "id,transactionId",
            "$top": "100",
        }
        try:
            async for page in self._pages(
                credentials, "/me/calendarView", params, _PREFER_UTC, "the event", private=True
            ):
                for item in page.get("value") or []:
                    if item.get("transactionId") == event.uid and item.get("id"):
                        return str(item["id"])
        except ProviderUnavailable as exc:
            raise OutcomeUnknown("Microsoft Graph could not confirm the new event") from exc
        return None

    async def update_event(
        self,
        credentials: Credentials,
        provider_event_id: str,
        event: ExternalEvent,
        *,
        send_invitations: bool,
    ) -> None:
        """Patch the meeting; Graph emails attendees about the update itself."""
        response = await self._graph(
            credentials, "PATCH", _event_path(provider_event_id), body=_event_body(event)
        )
        if response.status_code == 404:
            raise ProviderError("The event no longer exists in the owner's Microsoft calendar")
        self._check(response, "the event update")

    async def delete_event(
        self, credentials: Credentials, provider_event_id: str, *, send_invitations: bool
    ) -> None:
        """Delete the meeting; Graph sends attendees the cancellation. Gone is fine."""
        response = await self._graph(credentials, "DELETE", _event_path(provider_event_id))
        if response.status_code in (404, 410):
            return
        self._check(response, "the event deletion")

    # -- changes and push ----------------------------------------------------------------
    async def read_changes(
        self, credentials: Credentials, sync_token: str | None, start: datetime, end: datetime
    ) -> ChangeBatch:
        """Changes to Tandem's own events via calendarView delta.

        ``sync_token`` is the whole ``@odata.deltaLink`` (``start``/``end`` only matter
        for the first round). Delta returns every property of every event, so only events
        whose ``transactionId`` is a Tandem UID are turned into ``EventChange`` values;
        ``@removed`` entries carry an id only and are all reported (the caller ignores ids
        it does not know). Raises ``SyncTokenExpired`` when Graph forgot the token.
        """
        if sync_token:
            path, params = sync_token, None
        else:
            path = "/me/calendarView/delta"
            params = {"startDateTime": _iso_z(start), "endDateTime": _iso_z(end)}
        headers = {
            "Prefer": 'outlook.timezone="UTC", outlook.body-content-type="text", '
            "odata.maxpagesize=50"
        }
        changes: list[EventChange] = []
        delta_link: str | None = None
        async for page in self._pages(
            credentials, path, params, headers, "the change feed", private=False
        ):
            for item in page.get("value") or []:
                change = self._change(item)
                if change is not None:
                    changes.append(change)
            delta_link = page.get("@odata.deltaLink") or delta_link
        return ChangeBatch(changes=changes, sync_token=delta_link)

    async def recheck_removed(
        self, credentials: Credentials, provider_event_id: str
    ) -> EventChange:
        """The delta feed reports an event moved out of its window exactly like a deleted
        one; ask for the event itself before anyone cancels a meeting over it. Only the
        fields of Tandem's own events are read (first just the transactionId)."""
        event_id = provider_event_id
        path = _event_path(event_id)
        probe = await self._graph(
            credentials,
            "GET",
            path,
            params={"$select": "id,transactionId,isCancelled"},
        )
        if probe.status_code == 404:
            return EventChange(provider_event_id=event_id, deleted=True)
        self._check(probe, "the event")
        head = _parse(probe, private=True)
        if head.get("isCancelled") or not self._owns_uid(str(head.get("transactionId") or "")):
            return EventChange(provider_event_id=event_id, deleted=True)
        full = await self._graph(
            credentials,
            "GET",
            path,
            params={"$select": "id,transactionId,isCancelled,subject,body,start,end,attendees"},
            headers={"Prefer": 'outlook.timezone="UTC", outlook.body-content-type="text"'},
        )
        self._check(full, "the event")
        change = self._change(_parse(full, private=False))
        return change or EventChange(provider_event_id=event_id, deleted=True)

    def _change(self, item: Mapping[str, Any]) -> EventChange | None:
        event_id = str(item.get("id", ""))
        if "@removed" in item:
            return EventChange(provider_event_id=event_id, deleted=True)
        transaction_id = item.get("transactionId")
        if not transaction_id or not self._owns_uid(str(transaction_id)):
            return None  # someone else's event: nothing of it is kept
        if item.get("isCancelled"):
            return EventChange(provider_event_id=event_id, deleted=True)
        responses = {}
        for attendee in item.get("attendees") or []:
            address = str((attendee.get("emailAddress") or {}).get("address", "")).lower()
            status = str((attendee.get("status") or {}).get("response", "none"))
            if address:
                responses[address] = _RSVP.get(status, "needs_action")
        body = item.get("body") or {}
        description = str(body.get("content") or "")
        if str(body.get("contentType", "")).lower() == "html":
            description = _html_to_text(description)
        return EventChange(
            provider_event_id=event_id,
            deleted=False,
            title=str(item.get("subject") or ""),
            description=description.strip(),
            start=_graph_instant(item["start"]) if item.get("start") else None,
            end=_graph_instant(item["end"]) if item.get("end") else None,
            attendee_responses=responses,
        )

    async def open_push_channel(
        self, credentials: Credentials, address: str, secret: str
    ) -> PushChannel:
        """Subscribe to changes of the owner's events; ``secret`` is the ``clientState``
        (<= 128 chars) and ``address`` also takes the lifecycle notifications.

        Graph validates ``address`` before answering, so the route must already echo
        ``validationToken``. The channel must be renewed before ``expires_at``.
        """
        body: dict[str, Any] = {
            "changeType": "created,updated,deleted",
            "notificationUrl": address,
            "lifecycleNotificationUrl": address,
            "resource": "/me/events",
            "expirationDateTime": _iso_z(datetime.now(UTC) + SUBSCRIPTION_LIFETIME),
            "clientState": secret,
        }
        # Not retried after a timeout or 5xx: a subscription made by a lost attempt only
        # runs until it expires, and its notifications carry a clientState Tandem never
        # stored, so they are ignored.
        response = await self._graph(
            credentials, "POST", "/subscriptions", body=body, idempotent=False
        )
        self._check(response, "the subscription")
        return _channel(_parse(response, private=True))

    async def renew_push_channel(
        self, credentials: Credentials, channel: PushChannel, address: str, secret: str
    ) -> PushChannel:
        """Extend the subscription in place (``PATCH /subscriptions/{id}`` with a new
        ``expirationDateTime``, webhooks doc); its id and clientState stay, so ``address``
        and ``secret`` are not needed here. Raises ``ProviderError`` when Graph no longer
        knows it (it must be created anew), ``ProviderUnavailable`` to retry later."""
        body = {"expirationDateTime": _iso_z(datetime.now(UTC) + SUBSCRIPTION_LIFETIME)}
        response = await self._graph(
            credentials, "PATCH", f"/subscriptions/{channel.channel_id}", body=body
        )
        if response.status_code == 404:
            raise ProviderError("The Microsoft subscription no longer exists")
        self._check(response, "the subscription renewal")
        return _channel(_parse(response, private=True))

    async def close_push_channel(self, credentials: Credentials, channel: PushChannel) -> None:
        response = await self._graph(credentials, "DELETE", f"/subscriptions/{channel.channel_id}")
        if response.status_code == 404:
            return
        self._check(response, "the subscription removal")

    def read_notifications(self, headers: Mapping[str, str], payload: Any) -> list[PushNotice]:
        """Graph posts ``{"value": [...]}``: change notifications, or lifecycle ones with
        ``lifecycleEvent`` (``subscriptionRemoved``, ``reauthorizationRequired``,
        ``missed``). A notification's ``resource`` is not comparable to anything stored."""
        items = payload.get("value") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            return []
        notices: list[PushNotice] = []
        for item in items[:100]:
            if not isinstance(item, dict):
                continue
            client_state = item.get("clientState")
            lifecycle = item.get("lifecycleEvent")
            notices.append(
                PushNotice(
                    channel_id=str(item.get("subscriptionId", ""))[:200],
                    secret=client_state if isinstance(client_state, str) else None,
                    resource_id=None,
                    kind=_LIFECYCLE.get(str(lifecycle), NoticeKind.CHANGED),
                )
            )
        return notices


# -- helpers -------------------------------------------------------------------------------
class _FailedAnswer(OutcomeUnknown):
    """A write answered with a 5xx: it may have been carried out before the failure."""


_LIFECYCLE = {
    "subscriptionRemoved": NoticeKind.REMOVED,
    "reauthorizationRequired": NoticeKind.REAUTHORIZE,
    "missed": NoticeKind.CHANGED,  # changes were dropped: a full resync finds them
}


def _tenant_authority(authority: str, tenant: str | None) -> str:
    """The configured authority (``.../common``) moved to an organization app's tenant:
    a single-tenant Entra app must sign in through its own directory."""
    if not tenant:
        return authority
    base, _, _ = authority.rstrip("/").rpartition("/")
    return f"{base}/{tenant}"


def _event_path(event_id: str) -> str:
    """``/me/events/{id}`` with the id made safe for Graph's path parsing.

    Exchange ids contain ``/``, ``+`` and ``=``. A raw ``/`` splits the path (400,
    microsoft-graph-docs #3598) and Graph decodes ``%2F`` before routing, answering 400
    ``RequestBroker--ParseUri`` (#10167, -contrib #2674); double-encoding the slash
    (``%252F``) is what those reports found to work, and no current Microsoft guidance
    says otherwise (checked against the stored docs; not re-verified live). ``+`` and
    ``=`` are percent-encoded once, as RFC 3986 requires for a literal in a segment.
    """
    return "/me/events/" + quote(event_id, safe="").replace("%2F", "%252F")


def _names_policy(response: httpx.Response) -> bool:
    try:
        error = response.json().get("error") or {}
        message = str(error.get("message", "")).lower()
    except (ValueError, AttributeError):
        return False
    return any(marker in message for marker in _POLICY_DENIALS)


def _misconfigured(result: Mapping[str, Any]) -> ProviderMisconfigured:
    """The token endpoint refused Tandem's own client credentials. Logged for operators
    with the AADSTS codes only (the description names the app; no secret is in it, but
    nothing from it is needed)."""
    codes = [c for c in result.get("error_codes") or [] if isinstance(c, int)]
    expired = 7000222 in codes
    log.error(
        "Microsoft refused Tandem's client credentials (invalid_client, AADSTS%s): %s",
        ",".join(str(c) for c in codes) or "?",
        "the client secret has expired"
        if expired
        else "check TANDEM_MICROSOFT_CLIENT_ID and TANDEM_MICROSOFT_CLIENT_SECRET",
    )
    return ProviderMisconfigured(
        "Microsoft refused Tandem's app credentials (the client secret "
        + ("has expired)" if expired else "is not accepted)")
    )


def _safe(code: Any) -> str:
    """An error code fit for a message: letters, digits and a few marks only."""
    text = str(code)
    return text if re.fullmatch(r"[A-Za-z0-9_.\-]{1,80}", text) else "error"


def _error_code(response: httpx.Response) -> str:
    if response.status_code < 400:
        return ""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    code = error.get("code") if isinstance(error, dict) else error
    return _safe(code) if code else ""


def _drop_private(obj: dict[str, Any]) -> dict[str, Any]:
    for key in _PRIVATE_KEYS & obj.keys():
        del obj[key]
    return obj


def _parse(response: httpx.Response, *, private: bool) -> dict[str, Any]:
    """The JSON body; with ``private`` the event details never make it into memory."""
    try:
        value = json.loads(response.content, object_hook=_drop_private if private else None)
    except ValueError:
        raise ProviderUnavailable("Microsoft Graph sent an unreadable answer") from None
    if not isinstance(value, dict):
        raise ProviderUnavailable("Microsoft Graph sent an unexpected answer")
    return value


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _iso_z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_dtz(value: datetime) -> dict[str, str]:
    return {"dateTime": value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def _graph_instant(value: Mapping[str, Any]) -> datetime:
    """A dateTimeTimeZone from Graph as an aware UTC datetime."""
    parsed = datetime.fromisoformat(str(value["dateTime"]))
    if parsed.tzinfo is None:
        zone_name = str(value.get("timeZone") or "UTC")
        try:
            zone: Any = UTC if zone_name.upper() == "UTC" else ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            zone = UTC  # we always ask for UTC; a Windows zone name here is unexpected
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def _schedule_spans(
    payload: Mapping[str, Any], address: str
) -> tuple[set[tuple[datetime, datetime, BusyKind]], bool] | None:
    """One getSchedule answer's busy items and whether all were readable; None when the
    schedule came back with an ``error`` (unknown address, mailbox not reachable)."""
    entries = payload.get("value") or []
    entry = next(
        (e for e in entries if str(e.get("scheduleId", "")).lower() == address.lower()),
        entries[0] if entries else None,
    )
    if entry is None or entry.get("error"):
        return None
    spans: set[tuple[datetime, datetime, BusyKind]] = set()
    readable = True
    for item in entry.get("scheduleItems") or []:
        status = str(item.get("status", "busy"))
        if status == "unknown":
            readable = False
            continue
        if status in _NOT_BUSY:
            continue
        kind = _KIND_BY_STATUS.get(status, BusyKind.BUSY)
        spans.add((_graph_instant(item["start"]), _graph_instant(item["end"]), kind))
    return spans, readable


def _view_span(
    item: Mapping[str, Any], zone: ZoneInfo
) -> tuple[datetime, datetime, BusyKind] | None:
    if item.get("isCancelled"):
        return None
    status = str(item.get("showAs", "busy"))
    if status in _NOT_BUSY:
        return None
    if item.get("isAllDay"):
        # Graph keeps all-day events at midnight of their own date whatever zone was
        # asked for, so only the dates are meaningful: place them on the user's days.
        first = date.fromisoformat(str(item["start"]["dateTime"])[:10])
        last = date.fromisoformat(str(item["end"]["dateTime"])[:10])
        return (
            datetime.combine(first, time(0), zone).astimezone(UTC),
            datetime.combine(last, time(0), zone).astimezone(UTC),
            BusyKind.ALL_DAY,
        )
    kind = _KIND_BY_STATUS.get(status, BusyKind.BUSY)
    return _graph_instant(item["start"]), _graph_instant(item["end"]), kind


def _clip_sorted(
    spans: set[tuple[datetime, datetime, BusyKind]], start: datetime, end: datetime
) -> list[BusyInterval]:
    clipped = {
        BusyInterval(max(s, start.astimezone(UTC)), min(e, end.astimezone(UTC)), kind)
        for s, e, kind in spans
        if s < end and e > start
    }
    return sorted(i for i in clipped if i.start < i.end)


def _event_body(event: ExternalEvent) -> dict[str, Any]:
    organizer = event.organizer_email.lower()
    return {
        "subject": event.title,
        "body": {"contentType": "text", "content": event.description},
        # UTC is accepted by every Graph tenant; Outlook shows it in each reader's zone.
        "start": _utc_dtz(event.start),
        "end": _utc_dtz(event.end),
        "location": {"displayName": event.location or ""},
        "attendees": [
            {
                "emailAddress": {"address": a.email, "name": a.name or a.email},
                # https://learn.microsoft.com/graph/api/resources/attendee (type)
                "type": "optional" if a.optional else "required",
            }
            for a in event.attendees
            if a.email.lower() != organizer
        ],
        "isOnlineMeeting": False,
        "responseRequested": True,
    }


def _html_to_text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def _channel(data: Mapping[str, Any]) -> PushChannel:
    return PushChannel(
        channel_id=str(data["id"]),
        resource_id=str(data.get("resource") or "") or None,
        expires_at=datetime.fromisoformat(str(data["expirationDateTime"])).astimezone(UTC),
    )


def _expires_within(credentials: Credentials, seconds: int) -> bool:
    """Whether the account's cached access tokens all expire within ``seconds``."""
    cache = msal.SerializableTokenCache()
    serialized = str(credentials.secret.get("token_cache", ""))
    if serialized:
        cache.deserialize(serialized)
    home = str(credentials.secret.get("home_account_id", ""))
    entries = cache.search(
        msal.TokenCache.CredentialType.ACCESS_TOKEN, query={"home_account_id": home}
    )
    latest = max((int(entry.get("expires_on", 0)) for entry in entries), default=0)
    return latest - datetime.now(UTC).timestamp() < seconds
