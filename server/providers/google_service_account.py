"""A Google service account's key and the access tokens it earns through google-auth.

What an administrator uploads is the service account's JSON key file; what they paste
into Google Admin console → Security → Access and data control → API controls →
Domain-wide delegation is its **Client ID** (``delegation_client_id``) and
``DELEGATION_SCOPES``. Tandem then asks for tokens acting as a domain user (``sub``).

google-auth signs the JWT assertion (``service_account.Credentials`` with
``with_subject``); no JWT code lives here. Its refresh is synchronous, so it runs in a
worker thread (``asyncio.to_thread``) while its HTTP requests are carried by Tandem's
shared ``httpx.AsyncClient`` back on the event loop (``_LoopTransport``): one client, one
TLS configuration and timeout, the same bounded retries as every provider. google-auth
also offers an aiohttp transport and an async service-account class, but the first would
mean a second HTTP stack and the second is a private module (``_service_account_async``).

The token endpoint is ``settings.google_token_url``, never the key file's ``token_uri``:
an uploaded file must not be able to send Tandem's signed assertions elsewhere.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import httpx
from google.auth import exceptions as google_exceptions
from google.auth import transport as google_transport
from google.oauth2 import service_account

from server.config import Settings
from server.providers.base import (
    AccessDenied,
    InvalidCredentials,
    ProviderError,
    ProviderMisconfigured,
)
from server.providers.google_shapes import safe_code
from server.providers.http_errors import RetryPolicy, Sleep, send_with_retry
from server.providers.org_base import GOOGLE_DELEGATION_SCOPES

DELEGATION_SCOPE_LIST = GOOGLE_DELEGATION_SCOPES
FREEBUSY_SCOPE, EVENTS_SCOPE = DELEGATION_SCOPE_LIST
DELEGATION_SCOPES = ",".join(DELEGATION_SCOPE_LIST)
"""Exactly what an admin pastes into "OAuth scopes (comma-delimited)".

- ``calendar.events.freebusy``: "See the availability on Google calendars you have
  access to" — other people's free/busy, times only. The narrower ``calendar.freebusy``
  is described as the user's *own* calendars (providers.md 1.7; which one Google
  enforces for other users is UNVERIFIED, the emulator takes the stricter reading).
- ``calendar.events``: insert, change and cancel the meetings Tandem books in the acting
  account's calendar, with invitations.
"""

_REQUIRED_FIELDS = ("private_key", "client_email", "client_id")


def load_service_account_key(raw: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """An uploaded key file (its bytes or text, or already a dict) as a validated dict,
    ready to be stored encrypted as ``config["service_account_key"]``."""
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise InvalidCredentials("The key file is not JSON; upload the JSON key.") from None
    validate_service_account_key(raw)
    return dict(raw)  # type: ignore[arg-type]


def validate_service_account_key(key: Any) -> None:
    """Refuse anything but a usable service-account JSON key, with a message an admin can
    act on. Messages name fields, never their values (the private key least of all)."""
    if not isinstance(key, Mapping):
        raise InvalidCredentials("The key file is not a JSON object; upload the JSON key.")
    if key.get("type") != "service_account":
        raise InvalidCredentials(
            'This is not a service account key (its "type" is not "service_account"). In '
            "Google Cloud console open IAM & Admin → Service Accounts → Keys → Add key → "
            "JSON, and upload that file."
        )
    missing = [name for name in _REQUIRED_FIELDS if not isinstance(key.get(name), str)]
    if missing:
        raise InvalidCredentials(
            "The service account key is missing " + ", ".join(missing) + "; download a new one."
        )
    if "@" not in key["client_email"]:
        raise InvalidCredentials("The service account key's client_email is not an address.")
    if not key["client_id"].isdigit():
        raise InvalidCredentials("The service account key's client_id is not a numeric id.")
    _credentials(key, "https://invalid.example/token")  # parses the private key; sends nothing


def delegation_client_id(key: Any) -> str:
    """The numeric Client ID an admin authorizes for domain-wide delegation (validated)."""
    validate_service_account_key(key)
    return str(key["client_id"])


def _credentials(key: Mapping[str, Any], token_url: str) -> service_account.Credentials:
    try:
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            {**key, "token_uri": token_url}, scopes=list(DELEGATION_SCOPE_LIST)
        )
    except (ValueError, TypeError, IndexError):  # google-auth's MalformedError is a ValueError
        raise InvalidCredentials(
            "The service account key's private key cannot be read; download a new JSON key."
        ) from None
    return cast(service_account.Credentials, credentials)


class ServiceAccountTokens:
    """Access tokens acting as domain users, cached per subject until google-auth deems
    them close to expiry (``Credentials.valid``: 3 min 45 s ahead), one refresh at a time
    per subject."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        key: Mapping[str, Any],
        *,
        retry: RetryPolicy,
        sleep: Sleep,
        is_rate_limited: Callable[[httpx.Response], bool],
    ) -> None:
        validate_service_account_key(key)
        self._settings = settings
        self._http = http
        self._retry = retry
        self._sleep = sleep
        self._is_rate_limited = is_rate_limited
        self._base = _credentials(key, settings.google_token_url)
        self.client_email = str(key["client_email"])
        self.client_id = str(key["client_id"])
        self._by_subject: dict[str, service_account.Credentials] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def token(self, subject: str) -> str:
        subject = subject.lower()
        lock = self._locks.setdefault(subject, asyncio.Lock())
        async with lock:
            credentials = self._by_subject.get(subject)
            if credentials is not None and credentials.valid:
                return str(credentials.token)
            credentials = self._base.with_subject(subject)  # type: ignore[no-untyped-call]
            request = _LoopTransport(asyncio.get_running_loop(), self._post_token)
            try:
                await asyncio.to_thread(credentials.refresh, request)
            except google_exceptions.RefreshError as exc:
                raise self._refused(exc) from None
            except google_exceptions.TransportError:
                raise ProviderError("Google's token endpoint could not be reached.") from None
            self._by_subject[subject] = credentials
            return str(credentials.token)

    def forget(self, subject: str) -> None:
        """Drop a cached token Google no longer accepts (a 401 from the API)."""
        self._by_subject.pop(subject.lower(), None)

    def clear(self) -> None:
        self._by_subject.clear()

    async def _post_token(
        self, url: str, method: str, body: bytes | None, headers: Mapping[str, str]
    ) -> httpx.Response:
        if url != self._settings.google_token_url or method != "POST":
            raise ProviderError("google-auth asked for an unexpected request.")
        return await send_with_retry(
            lambda: self._http.request(
                "POST",
                url,
                content=body,
                headers=dict(headers),
                timeout=self._settings.provider_timeout_seconds,
            ),
            service="Google",
            policy=self._retry,
            is_rate_limited=self._is_rate_limited,
            sleep=self._sleep,
        )

    def _refused(self, exc: google_exceptions.RefreshError) -> ProviderError:
        """Google's token-endpoint error as a typed one; its description is not echoed."""
        data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        error = str(data.get("error", ""))
        if error == "unauthorized_client":
            return AccessDenied(
                "Google Workspace has not authorized Tandem's service account for these "
                "scopes. In Google Admin console → Security → Access and data control → API "
                f"controls → Domain-wide delegation, add Client ID {self.client_id} with the "
                f"OAuth scopes {DELEGATION_SCOPES} (changes can take a while to apply)."
            )
        if error == "invalid_grant":
            return InvalidCredentials(
                "Google refused the service account key or the account to act as (the key "
                "may be deleted, the service account disabled, or the user unknown in the "
                "domain)."
            )
        if error in ("invalid_client", "disabled_client"):
            return InvalidCredentials("Google refused the service account (disabled or deleted).")
        if error == "invalid_scope":
            return ProviderMisconfigured("Google refused the scopes Tandem asked for.")
        return ProviderError(f"Google's token endpoint refused the request ({safe_code(error)}).")


class _LoopTransport(google_transport.Request):
    """google-auth's ``Request`` interface, called from the refresh thread, carried out
    by a coroutine on the event loop. Errors Tandem raises there (``RateLimited``,
    ``ProviderUnavailable``) pass through google-auth unchanged."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        send: Callable[[str, str, bytes | None, Mapping[str, str]], Awaitable[httpx.Response]],
    ) -> None:
        self._loop = loop
        self._send = send

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> google_transport.Response:
        future = asyncio.run_coroutine_threadsafe(
            _call(self._send, url, method, body, headers or {}), self._loop
        )
        return _Response(future.result())


async def _call(
    send: Callable[[str, str, bytes | None, Mapping[str, str]], Awaitable[httpx.Response]],
    url: str,
    method: str,
    body: bytes | None,
    headers: Mapping[str, str],
) -> httpx.Response:
    return await send(url, method, body, headers)


class _Response(google_transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content
