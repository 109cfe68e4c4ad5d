"""Google Calendar: OAuth consent (authlib helpers), free/busy, Tandem's own events.

Everything goes over the shared ``httpx.AsyncClient`` to URLs from settings, so the same
code talks to Google or to ``emulators.google``. Free/busy comes from ``freeBusy.query``,
which returns times only; the only events ever read in full are Tandem's own meetings
(``read_changes`` drops every other event unread).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from server.config import Settings
from server.providers.base import (
    APP_KEY,
    AuthExpired,
    AuthorizationDeclined,
    AuthorizationStart,
    BusyFetch,
    BusyInterval,
    ChangeBatch,
    ConnectedAccount,
    Credentials,
    EventChange,
    ExternalEvent,
    InvalidCredentials,
    NoticeKind,
    OAuthApp,
    ProviderError,
    ProviderName,
    PushChannel,
    PushNotice,
    SyncTokenExpired,
    app_of,
)
from server.providers.google_shapes import MAX_FREEBUSY_SPAN as _MAX_FREEBUSY_SPAN
from server.providers.google_shapes import TO_GOOGLE_RESPONSE as _TO_GOOGLE_RESPONSE
from server.providers.google_shapes import api_reason as _api_reason
from server.providers.google_shapes import event_body as _event_body
from server.providers.google_shapes import is_rate_limited as _is_rate_limited
from server.providers.google_shapes import json_object as _json
from server.providers.google_shapes import listed_event_id as _listed_uid
from server.providers.google_shapes import merge_intervals as _merge
from server.providers.google_shapes import parse_period as _period
from server.providers.google_shapes import require_aware as _require_aware
from server.providers.google_shapes import rfc3339 as _rfc3339
from server.providers.google_shapes import safe_code as _safe
from server.providers.google_shapes import split_spans as _spans
from server.providers.html_text import html_to_text
from server.providers.http_errors import RetryPolicy, Sleep, send_with_retry

FREEBUSY_SCOPE = "https://www.googleapis.com/auth/calendar.freebusy"
EVENTS_SCOPE = "https://www.googleapis.com/auth/calendar.events"
SCOPES = ("openid", "email", FREEBUSY_SCOPE, EVENTS_SCOPE)
"""Why these scopes (providers.md §1.7):

- ``calendar.freebusy`` ("see the availability of your own calendars") is the narrowest
  scope ``freeBusy.query`` accepts for the user's own calendar: times only, no titles.
  ``calendar.events.freebusy`` also covers *other* people's calendars, which Tandem never
  asks for with a user's token.
- ``calendar.events`` lets Tandem insert, patch, delete, list and watch the meetings it
  writes to the owner's calendar (two-way sync). freeBusy does not accept it, hence both.
- ``openid email`` makes the token endpoint return an ``id_token`` carrying the account
  email, which Tandem shows as "connected as ...", without a second request.
"""

_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})
_REFRESH_SKEW_SECONDS = 60
_MAX_PAGES = 200
_EVENT_ID_PREFIX = "tandem"
_REAUTH_REASONS = frozenset({"insufficientPermissions", "authError"})
_FROM_GOOGLE_RESPONSE = {v: k for k, v in _TO_GOOGLE_RESPONSE.items()}


def tandem_event_id(uid: str) -> str:
    """The client-chosen Google event id earlier versions gave a meeting (a function of
    its UID). New meetings are inserted with ``iCalUID`` instead (see ``create_event``);
    events written with these ids are still recognised as Tandem's."""
    digest = hashlib.sha256(uid.encode()).digest()
    return _EVENT_ID_PREFIX + base64.b32hexencode(digest).decode().lower().rstrip("=")


class GoogleProvider:
    """``OAuthProvider`` for Google Calendar (see ``server.providers.base``)."""

    name = ProviderName.GOOGLE
    consent_scopes = SCOPES

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        *,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._http = http
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock

    # --- authorization -------------------------------------------------------------

    def begin_authorization(
        self, redirect_uri: str, app: OAuthApp | None = None
    ) -> AuthorizationStart:
        """Consent URL with a fresh CSPRNG ``state`` and a PKCE S256 challenge.

        ``access_type=offline`` + ``prompt=consent`` make Google return a refresh token
        even when the user had connected before.
        """
        state = generate_token(32)
        verifier = generate_token(64)
        url = prepare_grant_uri(
            self._settings.google_auth_url,
            self._client_id(app),
            "code",
            redirect_uri=redirect_uri,
            scope=" ".join(SCOPES),
            state=state,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
            access_type="offline",
            prompt="consent",
            include_granted_scopes="true",
        )
        flow: dict[str, Any] = {
            "state": state,
            "code_verifier": verifier,
            "redirect_uri": redirect_uri,
        }
        if app is not None:
            flow[APP_KEY] = app.to_secret()
        return AuthorizationStart(url=url, state=state, flow=flow)

    async def finish_authorization(
        self, flow: dict[str, Any], callback_params: Mapping[str, str], redirect_uri: str
    ) -> ConnectedAccount:
        expected, received = str(flow.get("state", "")), callback_params.get("state", "")
        if not expected or not hmac.compare_digest(expected.encode(), received.encode()):
            raise AuthorizationDeclined("The Google callback does not match a sign-in we started.")
        error = callback_params.get("error")
        if error == "access_denied":
            raise AuthorizationDeclined("Access to the Google calendar was declined.")
        if error or not callback_params.get("code"):
            raise AuthorizationDeclined(f"Google sign-in did not complete ({_safe(error)}).")
        app = app_of(flow)
        response = await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": callback_params["code"],
                "redirect_uri": redirect_uri,
                "code_verifier": str(flow.get("code_verifier", "")),
            },
            app,
        )
        if response.status_code in (400, 401):
            self._raise_if_client_refused(response, app)
            raise InvalidCredentials("Google refused the authorization code.")
        tokens = self._token_json(response)
        if not tokens.get("refresh_token"):
            raise InvalidCredentials(
                "Google did not grant offline access (no refresh token); connect again."
            )
        # Granular consent: the user may untick scopes; ``scope`` lists what was granted
        # (absent = as asked, RFC 6749 5.1).
        granted = str(tokens.get("scope") or " ".join(SCOPES)).split()
        if FREEBUSY_SCOPE not in granted:
            raise AuthorizationDeclined(
                "Tandem needs to see when you are busy. Connect again and leave "
                '"See the availability of your calendars" ticked on Google\'s consent screen.'
            )
        email = self._email_from_id_token(tokens.get("id_token"), app)
        secret: dict[str, Any] = {
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "expires_at": int(self._clock()) + int(tokens.get("expires_in", 3600)),
            "scope": " ".join(granted),
        }
        if app is not None:
            secret[APP_KEY] = app.to_secret()
        credentials = Credentials(ProviderName.GOOGLE, secret)
        return ConnectedAccount(
            credentials=credentials,
            account_email=email,
            label="Google",
            can_write_events=EVENTS_SCOPE in granted,
        )

    async def revoke(self, credentials: Credentials) -> None:
        """Revoke the whole grant; an already revoked or unknown token is fine (400)."""
        token = credentials.secret.get("refresh_token") or credentials.secret.get("access_token")
        if not token:
            return
        response = await self._send(
            lambda: self._http.post(
                self._settings.google_revoke_url,
                data={"token": token},
                timeout=self._settings.provider_timeout_seconds,
            )
        )
        if response.status_code not in (200, 400):
            raise ProviderError(f"Google refused to revoke the grant (HTTP {response.status_code})")

    # --- free/busy -----------------------------------------------------------------

    async def fetch_busy(
        self, credentials: Credentials, start: datetime, end: datetime, time_zone: str
    ) -> BusyFetch:
        """Busy time of the primary calendar over ``[start, end)``, in UTC.

        ``time_zone`` is not needed: Google places all-day events on the calendar's own
        days before answering. Long windows are split into several queries.
        """
        _require_aware(start, end)
        intervals: list[BusyInterval] = []
        for low, high in _spans(start, end, _MAX_FREEBUSY_SPAN):
            body = {
                "timeMin": _rfc3339(low),
                "timeMax": _rfc3339(high),
                "timeZone": "UTC",
                "items": [{"id": "primary"}],
            }
            response = await self._api(credentials, "POST", "freeBusy", json=body)
            if response.status_code != 200:
                _raise_for(response)
            calendars = _json(response).get("calendars") or {}
            entry = calendars.get("primary")
            if entry is None and len(calendars) == 1:  # keyed by the account email instead
                entry = next(iter(calendars.values()))
            if not isinstance(entry, dict) or entry.get("errors"):
                return BusyFetch(intervals=[], readable=False)
            for period in entry.get("busy") or []:
                busy_start, busy_end = _period(period)
                busy_start, busy_end = max(busy_start, low), min(busy_end, high)
                if busy_start < busy_end:
                    intervals.append(BusyInterval(busy_start, busy_end))
        return BusyFetch(intervals=_merge(intervals))

    # --- Tandem's own events ---------------------------------------------------------

    async def create_event(
        self, credentials: Credentials, event: ExternalEvent, *, send_invitations: bool
    ) -> str:
        """Insert the meeting with ``iCalUID`` = its UID and no client ``id``.

        Google gives an event inserted with only an ``id`` its own iCalUID, so a Gmail
        guest would hold Google's copy and Tandem's invitation as two events; with the
        meeting's UID both are one event. Google lets only one of the two be supplied
        (events resource), so retries are made idempotent by looking the UID up first
        (``events.list?iCalUID=``): an event an earlier, unanswered try created is
        patched to the current version instead of inserted twice. Returns Google's id.
        """
        found = await self._event_id_for_uid(credentials, event.uid)
        if found is None:
            response = await self._api(
                credentials,
                "POST",
                "calendars/primary/events",
                params={"sendUpdates": _send_updates(send_invitations)},
                json={"iCalUID": event.uid, **_event_body(event)},
            )
            if response.status_code == 200:
                return str(_json(response)["id"])
            if response.status_code != 409:
                _raise_for(response)
            found = await self._event_id_for_uid(credentials, event.uid)
            if found is None:
                raise ProviderError("Google reported the meeting as existing but lists none.")
        await self.update_event(credentials, found, event, send_invitations=send_invitations)
        return found

    async def _event_id_for_uid(self, credentials: Credentials, uid: str) -> str | None:
        """The id of the owner's event with iCalendar UID ``uid`` that Tandem wrote."""
        params = {"iCalUID": uid, "showDeleted": "true", "maxResults": "10"}
        response = await self._api(credentials, "GET", "calendars/primary/events", params=params)
        if response.status_code != 200:
            _raise_for(response)
        return _listed_uid(_json(response), uid)

    async def update_event(
        self,
        credentials: Credentials,
        provider_event_id: str,
        event: ExternalEvent,
        *,
        send_invitations: bool,
    ) -> None:
        response = await self._api(
            credentials,
            "PATCH",
            f"calendars/primary/events/{provider_event_id}",
            params={"sendUpdates": _send_updates(send_invitations)},
            json=_event_body(event),
        )
        if response.status_code != 200:
            _raise_for(response)

    async def delete_event(
        self, credentials: Credentials, provider_event_id: str, *, send_invitations: bool
    ) -> None:
        """Deleting an event that is already gone (404, 410) succeeds."""
        response = await self._api(
            credentials,
            "DELETE",
            f"calendars/primary/events/{provider_event_id}",
            params={"sendUpdates": _send_updates(send_invitations)},
        )
        if response.status_code not in (200, 204, 404, 410):
            _raise_for(response)

    async def read_changes(
        self,
        credentials: Credentials,
        sync_token: str | None,
        start: datetime,
        end: datetime,
    ) -> ChangeBatch:
        """Changes to Tandem's own meetings since ``sync_token`` (or a full listing of
        ``[start, end)`` without one). Other events are skipped without being kept;
        a deleted event is listed by Google with its id only, so deletions are reported
        by id alone and the caller matches them against its own meetings.

        Raises ``SyncTokenExpired`` when Google answers 410: do a full sync.
        """
        params: dict[str, str] = {"maxResults": "250"}
        if sync_token:
            params["syncToken"] = sync_token
        else:
            _require_aware(start, end)
            params.update(timeMin=_rfc3339(start), timeMax=_rfc3339(end))
        changes: list[EventChange] = []
        for _ in range(_MAX_PAGES):
            response = await self._api(
                credentials, "GET", "calendars/primary/events", params=params
            )
            if response.status_code == 410 and sync_token:
                raise SyncTokenExpired("Google needs a full sync of the calendar.")
            if response.status_code != 200:
                _raise_for(response)
            page = _json(response)
            changes.extend(
                change for item in page.get("items") or [] if (change := _own_change(item))
            )
            if page.get("nextPageToken"):
                params["pageToken"] = str(page["nextPageToken"])
                continue
            token = page.get("nextSyncToken")
            return ChangeBatch(changes=changes, sync_token=str(token) if token else None)
        raise ProviderError("Google returned too many pages of changes.")

    # --- push ----------------------------------------------------------------------

    async def open_push_channel(
        self, credentials: Credentials, address: str, secret: str
    ) -> PushChannel:
        """Watch the primary calendar; Google echoes ``secret`` in X-Goog-Channel-Token.
        The channel id is ours to choose (a UUID, as the watch guide suggests)."""
        body = {"id": str(uuid.uuid4()), "type": "web_hook", "address": address, "token": secret}
        response = await self._api(credentials, "POST", "calendars/primary/events/watch", json=body)
        if response.status_code != 200:
            _raise_for(response)
        data = _json(response)
        expiration = int(data["expiration"]) / 1000
        return PushChannel(
            channel_id=str(data["id"]),
            resource_id=data.get("resourceId"),
            expires_at=datetime.fromtimestamp(expiration, UTC),
        )

    async def close_push_channel(self, credentials: Credentials, channel: PushChannel) -> None:
        """Stop a channel; one Google no longer knows (expired, stopped) is fine."""
        body = {"id": channel.channel_id, "resourceId": channel.resource_id}
        response = await self._api(credentials, "POST", "channels/stop", json=body)
        if response.status_code not in (200, 204, 404):
            _raise_for(response)

    async def renew_push_channel(
        self, credentials: Credentials, channel: PushChannel, address: str, secret: str
    ) -> PushChannel:
        """Google has no call that extends a channel: open a new one, then stop the old one
        (overlapping channels only mean a duplicate notification, which is coalesced)."""
        fresh = await self.open_push_channel(credentials, address, secret)
        with contextlib.suppress(ProviderError):  # the old channel expires by itself
            await self.close_push_channel(credentials, channel)
        return fresh

    def read_notifications(self, headers: Mapping[str, str], payload: Any) -> list[PushNotice]:
        """A Google notification is its headers only; the body is empty. The first message
        on a channel has ``X-Goog-Resource-State: sync`` and means nothing changed."""
        channel_id = headers.get("x-goog-channel-id", "")[:200]
        if not channel_id:
            return []
        state = headers.get("x-goog-resource-state")
        return [
            PushNotice(
                channel_id=channel_id,
                secret=headers.get("x-goog-channel-token"),
                resource_id=headers.get("x-goog-resource-id", ""),
                kind=NoticeKind.HELLO if state == "sync" else NoticeKind.CHANGED,
            )
        ]

    # --- plumbing --------------------------------------------------------------------

    async def _api(
        self,
        credentials: Credentials,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One Calendar API call: refresh ahead of expiry, and once more on a 401."""
        expires_at = float(credentials.secret.get("expires_at", 0))
        if expires_at - _REFRESH_SKEW_SECONDS <= self._clock():
            await self._refresh(credentials)
        url = f"{self._settings.google_api_base.rstrip('/')}/{path}"

        def send() -> Awaitable[httpx.Response]:
            token = credentials.secret.get("access_token", "")
            return self._http.request(
                method,
                url,
                params=params,
                json=json,
                headers={"Authorization": f"Bearer {token}"},
                timeout=self._settings.provider_timeout_seconds,
            )

        response = await self._send(send)
        if response.status_code == 401:
            await self._refresh(credentials)
            response = await self._send(send)
            if response.status_code == 401:
                raise AuthExpired("Google no longer accepts Tandem's access; reconnect.")
        return response

    async def _refresh(self, credentials: Credentials) -> None:
        refresh_token = credentials.secret.get("refresh_token")
        if not refresh_token:
            raise AuthExpired("No Google refresh token is stored; reconnect.")
        response = await self._token_request(
            {"grant_type": "refresh_token", "refresh_token": str(refresh_token)},
            app_of(credentials.secret),
        )
        if response.status_code in (400, 401):
            self._raise_if_client_refused(response, app_of(credentials.secret))
            raise AuthExpired("Google has expired or revoked the grant; reconnect.")
        tokens = self._token_json(response)
        secret = dict(credentials.secret)
        secret["access_token"] = tokens["access_token"]
        secret["expires_at"] = int(self._clock()) + int(tokens.get("expires_in", 3600))
        if tokens.get("refresh_token"):
            secret["refresh_token"] = tokens["refresh_token"]
        if tokens.get("scope"):
            secret["scope"] = tokens["scope"]
        credentials.replace_secret(secret)

    async def _token_request(self, form: dict[str, str], app: OAuthApp | None) -> httpx.Response:
        if app is not None:
            client_secret = app.client_secret
        else:
            secret = self._settings.google_client_secret
            client_secret = secret.get_secret_value() if secret else ""
        data = {**form, "client_id": self._client_id(app), "client_secret": client_secret}
        return await self._send(
            lambda: self._http.post(
                self._settings.google_token_url,
                data=data,
                headers={"Accept": "application/json"},
                timeout=self._settings.provider_timeout_seconds,
            )
        )

    def _token_json(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise ProviderError(f"Google's token endpoint failed (HTTP {response.status_code})")
        tokens = _json(response)
        if not tokens.get("access_token"):
            raise ProviderError("Google's token endpoint returned no access token.")
        return tokens

    @staticmethod
    def _raise_if_client_refused(response: httpx.Response, app: OAuthApp | None) -> None:
        if _oauth_error(response) not in ("invalid_client", "unauthorized_client"):
            return
        if app is not None:
            raise ProviderError(
                "Google refused your organization's own OAuth app; an administrator must "
                "check its client id and secret on the Integrations page."
            )
        raise ProviderError("Google refused Tandem's OAuth client; check google_client_id/secret.")

    async def _send(self, send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        return await send_with_retry(
            send,
            service="Google",
            policy=self._retry,
            is_rate_limited=_is_rate_limited,
            sleep=self._sleep,
        )

    def _client_id(self, app: OAuthApp | None) -> str:
        if app is not None:
            return app.client_id
        if not self._settings.google_client_id:
            raise ProviderError("Google is not configured (google_client_id is missing).")
        return self._settings.google_client_id

    def _email_from_id_token(self, id_token: Any, app: OAuthApp | None) -> str:
        """The ``email`` claim of the ID token from the token endpoint.

        The token came straight from Google's token endpoint over TLS, which OpenID
        Connect Core §3.1.3.7 accepts in place of checking its signature; the audience
        and issuer are still checked.
        """
        claims = _jwt_claims(id_token)
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        email = claims.get("email")
        if (
            self._client_id(app) not in audiences
            or claims.get("iss") not in _ISSUERS
            or not isinstance(email, str)
            or claims.get("email_verified") is False
        ):
            raise ProviderError("Google did not return a usable account email.")
        return email.lower()


# --- helpers -------------------------------------------------------------------------


def _own_change(item: Any) -> EventChange | None:
    """An ``EventChange`` for one of Tandem's meetings; ``None`` for anything else.

    A Tandem meeting carries its UID in a private extended property and as its iCalUID
    (events written before the iCalUID design have an id derived from the UID instead).
    A deleted event is listed with its id only, so every deletion is reported by id:
    the caller matches ids against its own meetings and keeps nothing else.
    """
    if not isinstance(item, dict):
        return None
    event_id = str(item.get("id", ""))
    if not event_id:
        return None
    if item.get("status") == "cancelled":
        return EventChange(provider_event_id=event_id, deleted=True)
    uid = ((item.get("extendedProperties") or {}).get("private") or {}).get("tandem_uid")
    if not isinstance(uid, str):
        return None
    if item.get("iCalUID") != uid and tandem_event_id(uid) != event_id:
        return None
    responses = {
        str(a["email"]).lower(): _FROM_GOOGLE_RESPONSE.get(
            str(a.get("responseStatus")), "needs_action"
        )
        for a in item.get("attendees") or []
        if isinstance(a, dict) and a.get("email")
    }
    return EventChange(
        provider_event_id=event_id,
        deleted=False,
        title=str(item.get("summary", "")),
        # Google's editor stores descriptions as HTML; Tandem keeps plain text.
        description=html_to_text(str(item.get("description", ""))),
        start=_event_instant(item.get("start")),
        end=_event_instant(item.get("end")),
        attendee_responses=responses,
    )


def _event_instant(value: Any) -> datetime | None:
    if not isinstance(value, dict):
        return None
    if "dateTime" in value:
        moment = datetime.fromisoformat(str(value["dateTime"]))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(str(value.get("timeZone") or "UTC")))
        return moment.astimezone(UTC)
    if "date" in value:
        return datetime.fromisoformat(str(value["date"])).replace(tzinfo=UTC)
    return None


def _send_updates(send_invitations: bool) -> str:
    return "all" if send_invitations else "none"


def _raise_for(response: httpx.Response) -> None:
    """Map an unexpected Calendar API answer to a typed error (status and reason only)."""
    reason = _api_reason(response)
    if response.status_code == 401 or (response.status_code == 403 and reason in _REAUTH_REASONS):
        raise AuthExpired("Google refused Tandem's access to the calendar; reconnect.")
    raise ProviderError(f"Google rejected the request (HTTP {response.status_code}, {reason}).")


def _oauth_error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))
    except (ValueError, AttributeError):
        return ""


def _jwt_claims(token: Any) -> dict[str, Any]:
    try:
        payload = str(token).split(".")[1]
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (IndexError, ValueError, binascii.Error):
        raise ProviderError("Google did not return a usable ID token.") from None
    if not isinstance(claims, dict):
        raise ProviderError("Google did not return a usable ID token.")
    return claims
