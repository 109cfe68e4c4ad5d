"""Exchange Online for a whole tenant: Microsoft Graph with application permissions.

The organization's administrator grants Tandem's (multi-tenant) app registration
``Calendars.ReadWrite`` as an *application* permission through the admin-consent endpoint
(https://learn.microsoft.com/en-us/entra/identity-platform/v2-admin-consent). Tandem then
gets app-only tokens with the client-credentials grant through msal
(``ConfidentialClientApplication.acquire_token_for_client``, scope
``https://graph.microsoft.com/.default``:
https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow).

Busy times come from ``POST /users/{service account}/calendar/getSchedule`` with up to
20 SMTP addresses and a window under 62 days per call
(https://learn.microsoft.com/en-us/graph/api/calendar-getschedule). A schedule that comes
back with an ``error`` makes only that person unknown. Subjects, locations and privacy
flags Graph returns are dropped while the JSON is parsed. Meetings are created in the
service account's mailbox with the attendees (Graph emails them), with the personal
provider's ``transactionId`` / unknown-outcome rules.

``config`` (the integration's decrypted configuration): ``tenant`` (the tenant id the
admin-consent redirect named) and ``service_account`` (the mailbox's SMTP address).
"""

from __future__ import annotations

import logging
import secrets
import ssl
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import anyio
import anyio.to_thread
import httpx
import msal
from msal.exceptions import MsalServiceError

from server.config import Settings
from server.providers.base import (
    AccessDenied,
    AuthorizationDeclined,
    BusyInterval,
    ExternalEvent,
    InvalidCredentials,
    OutcomeUnknown,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
)
from server.providers.microsoft import (
    _KIND_BY_STATUS,
    _NOT_BUSY,
    _PREFER_UTC,
    _error_code,
    _event_body,
    _graph_instant,
    _iso_z,
    _MsalHttp,
    _parse,
    _retry_after,
    _utc_dtz,
)
from server.providers.org_base import PersonSchedule, UncoveredReason

log = logging.getLogger("tandem.providers.microsoft_org")

APP_SCOPE = "https://graph.microsoft.com/.default"
MAX_SCHEDULES = 20  # getSchedule: "ErrorMailboxDataArrayTooBig" above 20
MAX_WINDOW_DAYS = 61  # getSchedule refuses windows of 62 days or more
_AVAILABILITY_INTERVAL = 15
# msal's error codes (``error_codes``) that mean Tandem's own secret is wrong or expired
# (the operators' problem), and those that mean the tenant has not consented.
_OUR_SECRET = frozenset({7000215, 7000222, 700027})
_NOT_CONSENTED = frozenset({700016, 7000229, 65001, 500011})
# getSchedule per-schedule ``error.responseCode`` values meaning "no such mailbox".
_NO_MAILBOX = frozenset({"errormailboxnotfound", "errorinvaliduser", "errornonexistentmailbox"})
_DENIED = frozenset({"erroraccessdenied", "errorfreebusyaccessdenied"})


def login_base(settings: Settings) -> str:
    """The identity host without its tenant: ``https://login.microsoftonline.com``."""
    return settings.microsoft_authority.rstrip("/").rsplit("/", 1)[0]


def admin_consent_url(settings: Settings, tenant: str, redirect_uri: str, state: str) -> str:
    """The v2 admin-consent URL. ``tenant`` may be a tenant id, a verified domain or
    ``organizations`` (the admin signs in and the redirect names the tenant)."""
    if not settings.microsoft_client_id:
        raise ProviderMisconfigured("Microsoft sign-in is not configured")
    query = urlencode(
        {
            "client_id": settings.microsoft_client_id,
            "scope": APP_SCOPE,
            "redirect_uri": redirect_uri,
            "state": state,
        }
    )
    return f"{login_base(settings)}/{quote(tenant, safe='')}/v2.0/adminconsent?{query}"


def new_state() -> str:
    return secrets.token_urlsafe(32)


def read_admin_consent(params: Mapping[str, str]) -> str:
    """The tenant id the admin-consent redirect names; ``AuthorizationDeclined`` when the
    admin refused (``error=access_denied``) or the answer is not a consent."""
    if params.get("error"):
        raise AuthorizationDeclined("the administrator did not grant consent")
    if str(params.get("admin_consent", "")).lower() != "true" or not params.get("tenant"):
        raise AuthorizationDeclined("Microsoft did not confirm the administrator's consent")
    tenant = str(params["tenant"]).strip()
    if not tenant or len(tenant) > 255 or "/" in tenant:
        raise AuthorizationDeclined("Microsoft named no valid tenant")
    return tenant


class ExchangeOnlineDirectory:
    """``OrgDirectory`` for one Microsoft 365 tenant."""

    max_people_per_call = MAX_SCHEDULES
    max_window_days = MAX_WINDOW_DAYS

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        config: Mapping[str, Any],
        *,
        max_retry_wait: float = 4.0,
        max_attempts: int = 3,
    ) -> None:
        tenant = str(config.get("tenant") or "")
        service_account = str(config.get("service_account") or "").strip().lower()
        if not tenant or not service_account:
            raise ProviderMisconfigured("the integration names no tenant or service account")
        self._settings = settings
        self._http = http
        self._tenant = tenant
        self.service_account = service_account
        self._graph_base = settings.microsoft_graph_base.rstrip("/")
        self._max_retry_wait = max_retry_wait
        self._max_attempts = max_attempts
        verify: ssl.SSLContext | bool = True
        if settings.microsoft_ca_bundle is not None:
            verify = ssl.create_default_context()
            verify.load_verify_locations(cafile=str(settings.microsoft_ca_bundle))
        self._msal_http = _MsalHttp(verify, settings.provider_timeout_seconds)
        self._app: msal.ConfidentialClientApplication | None = None
        self.calls = 0  # Graph calls made (the benchmark reports it)

    def __repr__(self) -> str:
        return f"ExchangeOnlineDirectory(tenant={self._tenant!r})"

    # -- tokens ------------------------------------------------------------------------
    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            client_id = self._settings.microsoft_client_id
            secret = self._settings.microsoft_client_secret
            if not client_id or secret is None:
                raise ProviderMisconfigured("Microsoft sign-in is not configured")
            try:
                self._app = msal.ConfidentialClientApplication(
                    client_id,
                    client_credential=secret.get_secret_value(),
                    authority=f"{login_base(self._settings)}/{self._tenant}",
                    http_client=self._msal_http,
                    instance_discovery=False,
                )
            except (ValueError, httpx.HTTPError, MsalServiceError):
                raise ProviderUnavailable("Microsoft sign-in is unavailable") from None
        return self._app

    async def _token(self) -> str:
        """An app-only token; msal keeps it in the application's cache until it expires."""

        def acquire() -> dict[str, Any]:
            return dict(self._application().acquire_token_for_client(scopes=[APP_SCOPE]) or {})

        try:
            result = await anyio.to_thread.run_sync(acquire)
        except httpx.HTTPError:
            raise ProviderUnavailable("Microsoft sign-in could not be reached") from None
        token = result.get("access_token")
        if token:
            return str(token)
        codes = {c for c in result.get("error_codes") or [] if isinstance(c, int)}
        if codes & _OUR_SECRET:
            log.error(
                "Microsoft refused Tandem's client credentials for an organization (AADSTS%s)",
                ",".join(str(c) for c in sorted(codes)),
            )
            raise ProviderMisconfigured("Microsoft refused Tandem's app credentials")
        if codes & _NOT_CONSENTED or result.get("error") in ("unauthorized_client",):
            raise AccessDenied(
                "the tenant's administrator has not granted Tandem access (admin consent)",
                policy=True,
            )
        if result.get("error") == "invalid_client":
            raise InvalidCredentials("Microsoft refused the app-only sign-in")
        raise ProviderUnavailable("Microsoft sign-in failed")

    # -- Graph calls -------------------------------------------------------------------
    async def _graph(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """One Graph call. 429/503 are retried within a small budget honouring
        Retry-After, then raised as ``RateLimited`` / ``ProviderUnavailable`` (with the
        hint) so the batched sync backs off; a write is never blindly retried after a
        5xx or a timeout (``OutcomeUnknown``)."""
        token = await self._token()
        waited = 0.0
        attempts = 0
        while True:
            self.calls += 1
            try:
                response = await self._http.request(
                    method,
                    self._graph_base + path,
                    params=params,
                    json=body,
                    headers={**_PREFER_UTC, "Authorization": f"Bearer {token}"},
                    timeout=self._settings.provider_timeout_seconds,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout):
                raise ProviderUnavailable("Microsoft Graph could not be reached") from None
            except httpx.HTTPError:
                if not idempotent:
                    raise OutcomeUnknown("Microsoft Graph did not answer") from None
                raise ProviderUnavailable("Microsoft Graph did not answer") from None
            status = response.status_code
            if status >= 500 and not idempotent:
                raise _FailedAnswer(f"Microsoft Graph failed ({status})")
            if status in (429, 503):
                hinted = _retry_after(response)
                wait = hinted if hinted is not None else 0.25 * 2**attempts
                attempts += 1
                if attempts >= self._max_attempts or waited + wait > self._max_retry_wait:
                    if status == 429:
                        raise RateLimited("Microsoft Graph is throttling requests", wait)
                    raise RateLimited("Microsoft Graph is unavailable for now", hinted)
                await anyio.sleep(wait)
                waited += wait
                continue
            if status in (502, 504) and idempotent and attempts + 1 < self._max_attempts:
                attempts += 1
                await anyio.sleep(0.25 * 2**attempts)
                continue
            return response

    @staticmethod
    def _check(response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        code = _error_code(response)
        message = f"Microsoft Graph refused {what} ({status} {code})".strip()
        if status == 401:
            raise InvalidCredentials(message)
        if status == 403:
            raise AccessDenied(message, policy=True)
        if status == 404:
            raise ProviderMisconfigured(f"{message}: the service account has no mailbox")
        if status >= 500:
            raise ProviderUnavailable(message)
        raise ProviderError(message)

    def _user_path(self, rest: str) -> str:
        return f"/users/{quote(self.service_account, safe='@.')}{rest}"

    # -- OrgDirectory --------------------------------------------------------------------
    async def verify(self) -> str:
        """Reads the service account's own schedule for an hour: proves the consent, the
        token and that the access policy lets Tandem reach the service mailbox."""
        now = datetime.now(UTC).replace(microsecond=0)
        answer = await self.read_schedules(
            [self.service_account], now, now + timedelta(hours=1), "UTC"
        )
        problem = answer[0].problem if answer else UncoveredReason.UNREADABLE
        if problem is not None:
            raise AccessDenied(
                f"Microsoft cannot read the service account's calendar ({problem.value})",
                policy=problem == UncoveredReason.ACCESS_DENIED,
            )
        return self.service_account

    async def read_schedules(
        self, emails: Sequence[str], start: datetime, end: datetime, time_zone: str
    ) -> list[PersonSchedule]:
        asked = [e.strip().lower() for e in emails]
        if not asked:
            return []
        if len(asked) > MAX_SCHEDULES:
            raise ValueError(f"getSchedule takes at most {MAX_SCHEDULES} addresses")
        if (end - start).total_seconds() >= 62 * 86400:
            raise ValueError("getSchedule windows must be shorter than 62 days")
        request = {
            "schedules": asked,
            "startTime": _utc_dtz(start),
            "endTime": _utc_dtz(end),
            "availabilityViewInterval": _AVAILABILITY_INTERVAL,
        }
        response = await self._graph("POST", self._user_path("/calendar/getSchedule"), body=request)
        self._check(response, "the free/busy request")
        payload = _parse(response, private=True)
        by_address: dict[str, Mapping[str, Any]] = {}
        for entry in payload.get("value") or []:
            if isinstance(entry, dict):
                by_address[str(entry.get("scheduleId", "")).lower()] = entry
        return [_person(address, by_address.get(address), start, end) for address in asked]

    async def create_event(self, event: ExternalEvent) -> str:
        """Create the meeting in the service mailbox with every attendee (Graph emails
        them). A retried create with a used ``transactionId`` is refused by Graph, so an
        uncertain first attempt is looked up by it instead of repeated."""
        body = _event_body_for_service(event) | {"transactionId": event.uid}
        try:
            response = await self._graph(
                "POST", self._user_path("/events"), body=body, idempotent=False
            )
        except OutcomeUnknown as failure:
            found = await self._find_created(event)
            if found is not None:
                return found
            if isinstance(failure, _FailedAnswer):
                # Graph answered an error and the mailbox holds no such event: nothing
                # was created and nobody invited (a timeout stays unknown).
                raise ProviderUnavailable(str(failure)) from None
            raise
        if response.status_code in (400, 409) and (
            _error_code(response) == "ErrorDuplicateTransactionId"
        ):
            found = await self._find_created(event)
            if found is None:
                raise ProviderError("The meeting's event is no longer in the service mailbox")
            return found
        self._check(response, "the new event")
        return str(_parse(response, private=True)["id"])

    async def _find_created(self, event: ExternalEvent) -> str | None:
        params = {
            "startDateTime": _iso_z(event.start),
            "endDateTime": _iso_z(event.end),
            "$select": "id,transactionId",
            "$top": "100",
        }
        try:
            response = await self._graph("GET", self._user_path("/calendarView"), params=params)
            self._check(response, "the event lookup")
        except ProviderUnavailable as exc:
            raise OutcomeUnknown("Microsoft Graph could not confirm the new event") from exc
        for item in _parse(response, private=True).get("value") or []:
            if item.get("transactionId") == event.uid and item.get("id"):
                return str(item["id"])
        return None

    async def update_event(self, provider_event_id: str, event: ExternalEvent) -> None:
        response = await self._graph(
            "PATCH", self._event_path(provider_event_id), body=_event_body_for_service(event)
        )
        if response.status_code == 404:
            raise ProviderError("The event no longer exists in the service mailbox")
        self._check(response, "the event update")

    async def delete_event(self, provider_event_id: str) -> None:
        response = await self._graph("DELETE", self._event_path(provider_event_id))
        if response.status_code in (404, 410):
            return
        self._check(response, "the event deletion")

    def _event_path(self, event_id: str) -> str:
        # Exchange ids hold "/", "+" and "="; see microsoft._event_path for "%252F".
        return self._user_path("/events/" + quote(event_id, safe="").replace("%2F", "%252F"))

    async def aclose(self) -> None:
        self._msal_http.close()


class _FailedAnswer(OutcomeUnknown):
    """A write answered with a 5xx: it may have been carried out before the failure."""


def _event_body_for_service(event: ExternalEvent) -> dict[str, Any]:
    """The personal provider's body, with every attendee listed: the organizer here is
    the service mailbox, so the owner is invited like everyone else."""
    body = _event_body(event)
    body["attendees"] = [
        {
            "emailAddress": {"address": a.email, "name": a.name or a.email},
            # https://learn.microsoft.com/en-us/graph/api/resources/attendee (type)
            "type": "optional" if a.optional else "required",
        }
        for a in event.attendees
    ]
    return body


def _person(
    address: str, entry: Mapping[str, Any] | None, start: datetime, end: datetime
) -> PersonSchedule:
    if entry is None:
        return PersonSchedule(address, problem=UncoveredReason.UNREADABLE)
    error = entry.get("error")
    if isinstance(error, dict) and error:
        code = str(error.get("responseCode") or "").lower()
        if code in _DENIED:
            return PersonSchedule(address, problem=UncoveredReason.ACCESS_DENIED)
        if code in _NO_MAILBOX:
            return PersonSchedule(address, problem=UncoveredReason.NO_MAILBOX)
        return PersonSchedule(address, problem=UncoveredReason.UNREADABLE)
    spans: set[BusyInterval] = set()
    for item in entry.get("scheduleItems") or []:
        status = str(item.get("status", "busy"))
        if status == "unknown":
            return PersonSchedule(address, problem=UncoveredReason.UNREADABLE)
        if status in _NOT_BUSY:
            continue
        try:
            lo, hi = _graph_instant(item["start"]), _graph_instant(item["end"])
        except (KeyError, ValueError, TypeError):
            return PersonSchedule(address, problem=UncoveredReason.UNREADABLE)
        lo, hi = max(lo, start), min(hi, end)
        if lo < hi:
            spans.add(BusyInterval(lo, hi, _KIND_BY_STATUS.get(status, _KIND_BY_STATUS["busy"])))
    return PersonSchedule(address, intervals=sorted(spans))


__all__ = [
    "APP_SCOPE",
    "ExchangeOnlineDirectory",
    "admin_consent_url",
    "login_base",
    "new_state",
    "read_admin_consent",
]
