"""A local stand-in for Google's OAuth endpoints and Calendar API v3.

Request and response shapes follow Google's documented ones, so the provider code runs
unchanged against the real service when only the base URLs differ. Paths mirror
Google's: ``/o/oauth2/v2/auth``, ``/token``, ``/revoke`` and ``/calendar/v3/...``.

The account email is delivered in an ``id_token`` (see ``google_oauth``). Seed accounts,
events and OAuth clients, and inject faults, through ``GoogleState``.

Google Workspace: Workspace customers with their domains, service accounts with real RSA
keys, domain-wide delegation an admin grants or revokes (``google_workspace``) and the
JWT bearer grant that impersonates a domain user (``google_jwt_grant``);
``seed_workspace`` sets one up in a call.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import parse_qsl, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware

from emulators.google_calendar import calendar_routes
from emulators.google_http import RecordAndFaultMiddleware
from emulators.google_oauth import oauth_routes
from emulators.google_state import GoogleState, RecordedRequest
from emulators.google_workspace import ServiceAccount
from emulators.runner import BackgroundServer

__all__ = [
    "EMULATOR_CLIENT_ID",
    "EMULATOR_CLIENT_SECRET",
    "GoogleState",
    "RecordedRequest",
    "RunningGoogle",
    "consent",
    "create_google_emulator",
    "seed_workspace",
    "send_push_notifications",
    "start_google_emulator",
]

EMULATOR_CLIENT_ID = "tandem-emulator.apps.googleusercontent.com"
EMULATOR_CLIENT_SECRET = "emulator-client-secret"


def create_google_emulator(state: GoogleState | None = None) -> Starlette:
    """The emulator as an ASGI app; pass a ``state`` to seed and inspect it."""
    state = state or GoogleState()
    return Starlette(
        routes=[*oauth_routes(state), *calendar_routes(state)],
        middleware=[Middleware(RecordAndFaultMiddleware, state=state)],
    )


@dataclass
class RunningGoogle:
    """An emulator served on a loopback port, with the settings that point Tandem at it."""

    state: GoogleState
    server: BackgroundServer
    client_id: str = EMULATOR_CLIENT_ID
    client_secret: str = EMULATOR_CLIENT_SECRET

    @property
    def base_url(self) -> str:
        return self.server.url

    def settings_overrides(self) -> dict[str, str]:
        """``TANDEM_*`` environment names and values for ``server.config.Settings``."""
        base = self.base_url
        return {
            "TANDEM_GOOGLE_CLIENT_ID": self.client_id,
            "TANDEM_GOOGLE_CLIENT_SECRET": self.client_secret,
            "TANDEM_GOOGLE_AUTH_URL": f"{base}/o/oauth2/v2/auth",
            "TANDEM_GOOGLE_TOKEN_URL": f"{base}/token",
            "TANDEM_GOOGLE_REVOKE_URL": f"{base}/revoke",
            "TANDEM_GOOGLE_API_BASE": f"{base}/calendar/v3",
        }

    def stop(self) -> None:
        self.server.stop()


def start_google_emulator(
    state: GoogleState | None = None,
    *,
    redirect_uris: Iterable[str] = (),
    port: int | None = None,
) -> RunningGoogle:
    """Serve the emulator in a background thread with Tandem's OAuth client registered.

    Add redirect URIs later with ``state.add_redirect_uri(EMULATOR_CLIENT_ID, uri)``.
    """
    state = state or GoogleState()
    if EMULATOR_CLIENT_ID not in state.clients:
        state.register_client(EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, redirect_uris)
    else:
        for uri in redirect_uris:
            state.add_redirect_uri(EMULATOR_CLIENT_ID, uri)
    server = BackgroundServer(create_google_emulator(state), port=port).start()
    return RunningGoogle(state, server)


def seed_workspace(
    state: GoogleState,
    domain: str,
    users: Iterable[str],
    *,
    act_as: str = "tandem",
    delegated_scopes: Iterable[str] | None = None,
) -> ServiceAccount:
    """A Workspace for ``domain`` with ``users`` (local parts) and ``act_as``, and a
    service account; with ``delegated_scopes`` its admin has already authorized them for
    the account's client id (None: delegation still to be granted, as for a new admin).
    Hand ``account.key_json()`` to Tandem as the uploaded key."""
    state.add_workspace(domain, users=[act_as, *users])
    account = state.create_service_account()
    if delegated_scopes is not None:
        state.grant_delegation(domain, account.client_id, delegated_scopes)
    return account


_HIDDEN = re.compile(r'name="consent_id" value="([^"]*)"')
_ACTION = re.compile(r'<form method="post" action="([^"]*)"')
_CHECKBOX = re.compile(r'<input type="checkbox" name="granted" value="([^"]*)"')


async def consent(
    http: httpx.AsyncClient,
    authorization_url: str,
    email: str,
    *,
    allow: bool = True,
    untick: Iterable[str] = (),
) -> dict[str, str]:
    """Play the user on the consent page: open it, pick ``email``, untick the scopes in
    ``untick`` (granular consent), click Allow or Deny.

    Returns the query parameters of the redirect back to the app (``code``/``state`` or
    ``error``/``state``).
    """
    page = await http.get(authorization_url, follow_redirects=False)
    if page.status_code == 302:
        return dict(parse_qsl(urlsplit(page.headers["location"]).query))
    page.raise_for_status()
    consent_id, action = _HIDDEN.search(page.text), _ACTION.search(page.text)
    if consent_id is None or action is None:
        raise ValueError("not a consent page")
    unticked = set(untick)
    ticked = [
        scope
        for scope in map(html.unescape, _CHECKBOX.findall(page.text))
        if scope not in unticked and scope.rsplit("/", 1)[-1] not in unticked
    ]
    answer = await http.post(
        html.unescape(action.group(1)),
        data={
            "consent_id": html.unescape(consent_id.group(1)),
            "email": email,
            "decision": "allow" if allow else "deny",
            "granted": ticked,
        },
        follow_redirects=False,
    )
    if answer.status_code != 302:
        raise ValueError(f"consent refused with HTTP {answer.status_code}")
    return dict(parse_qsl(urlsplit(answer.headers["location"]).query))


async def send_push_notifications(
    state: GoogleState,
    http: httpx.AsyncClient,
    email: str,
    resource_state: str = "exists",
) -> list[int]:
    """Notify every channel watching ``email``'s calendar, as Google does after a change.

    The emulator does not push on its own: tests and the demo call this after changing
    events. Returns the HTTP status each receiver answered. Like Google's, a message
    carries no body, only ``X-Goog-*`` headers.
    """
    with state.lock:
        channels = [c for c in state.channels.values() if c.email == email.lower()]
        for channel in channels:
            channel.messages_sent += 1
        messages = [(c, c.messages_sent) for c in channels]
    statuses = []
    for channel, number in messages:
        headers = {
            "X-Goog-Channel-ID": channel.channel_id,
            "X-Goog-Message-Number": str(number),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-State": resource_state,
            "X-Goog-Resource-URI": channel.resource_uri,
            "X-Goog-Channel-Expiration": formatdate(channel.expiration_ms / 1000, usegmt=True),
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        response = await http.post(channel.address, headers=headers, content=b"")
        statuses.append(response.status_code)
    return statuses
