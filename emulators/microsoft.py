"""A local stand-in for the Microsoft identity platform and Microsoft Graph calendars.

``create_microsoft_emulator`` builds the Starlette app; ``start_microsoft_emulator``
serves it over HTTPS (msal accepts only https authorities) with a throwaway CA and hands
back the settings that point Tandem at it. With ``browser_over_http`` the sign-in page
(the only part a browser opens) is also served over plain http on loopback, and the
discovery document sends browsers there, so the demo shows no certificate warning while
every call Tandem makes (discovery, token, Graph) keeps TLS. Tests and ``tandem demo`` use it; production
never does.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulators.microsoft_graph import graph_error, graph_routes
from emulators.microsoft_identity import identity_routes
from emulators.microsoft_org import admin_consent_routes, users_routes
from emulators.microsoft_state import CONSUMER_TENANT_ID, MicrosoftState
from emulators.runner import BackgroundServer, make_test_ca

__all__ = [
    "CONSUMER_TENANT_ID",
    "MicrosoftState",
    "RunningMicrosoft",
    "admin_consent",
    "create_microsoft_emulator",
    "start_microsoft_emulator",
]

_DEFAULT_FAULT_CODES = {
    429: ("TooManyRequests", "Application is over its MailboxConcurrency limit."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
    504: ("GatewayTimeout", "The gateway timed out."),
}


class _RecordAndFault:
    """Records every request and answers with an injected fault when one matches.

    Faults come in two kinds: ``fail_next`` refuses a request before anything happens;
    ``fail_after_commit`` lets the request do its work (the event is stored, Graph has
    emailed the attendees) and then answers an error, or nothing in time. The second is
    what makes a blind retry of ``POST /me/events`` dangerous: Graph documents
    ``transactionId`` only as a way "to avoid redundant POST operations in case of client
    retries" (event resource doc) and a retry with a used one is refused with 400
    ``ErrorDuplicateTransactionId`` (see ``microsoft_graph.create_event``).
    """

    def __init__(self, app: ASGIApp, state: MicrosoftState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        query = scope.get("query_string", b"").decode()
        names = tuple(sorted({p.split("=", 1)[0] for p in query.split("&") if p}))
        self.state.record(
            scope["method"], path, tuple(unquote(n) for n in names), headers.get("prefer")
        )
        fault = self.state.take_fault(path, scope["method"])
        if fault is None:
            late = self.state.take_after_commit_fault(scope["method"], path)
            if late is None:
                await self.app(scope, receive, send)
                return

            async def swallow(message: Message) -> None:
                return None  # the work is done; its answer never reaches the client

            await self.app(scope, receive, swallow)
            if late.delay:
                await asyncio.sleep(late.delay)
            code, message = _DEFAULT_FAULT_CODES.get(late.status, ("UnknownError", "Failed."))
            await graph_error(late.status, code, message)(scope, receive, send)
            return
        extra = dict(fault.headers)
        if fault.status == 429:
            extra.setdefault("Retry-After", "1")
        response: Response
        if fault.body is None:
            code, message = _DEFAULT_FAULT_CODES.get(
                fault.status, ("UnknownError", "Injected fault.")
            )
            response = graph_error(fault.status, code, message, headers=extra)
        else:
            raw = fault.body if isinstance(fault.body, str | bytes) else json.dumps(fault.body)
            response = Response(
                raw, status_code=fault.status, headers=extra, media_type="application/json"
            )
        await response(scope, receive, send)


def create_microsoft_emulator(state: MicrosoftState | None = None) -> ASGIApp:
    """The identity endpoints under ``/{tenant}/`` and Graph under ``/v1.0``."""
    state = state or MicrosoftState()
    app = Starlette(
        routes=[
            *graph_routes(state),
            *users_routes(state),
            *admin_consent_routes(state),
            *identity_routes(state),
        ]
    )
    app.state.emulator = state
    return _RecordAndFault(app, state)


@dataclass
class RunningMicrosoft:
    """A started emulator: where it lives, what to trust, and how to configure Tandem."""

    state: MicrosoftState
    server: BackgroundServer
    ca_path: Path
    consent_server: BackgroundServer | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def authority(self) -> str:
        return f"{self.server.url}/{self.state.tenant}"

    @property
    def graph_base(self) -> str:
        return f"{self.server.url}/v1.0"

    def settings_overrides(self) -> dict[str, str]:
        """Environment variables (``TANDEM_`` prefix) that point Tandem at this emulator."""
        values = {
            "TANDEM_MICROSOFT_AUTHORITY": self.authority,
            "TANDEM_MICROSOFT_GRAPH_BASE": self.graph_base,
            "TANDEM_MICROSOFT_CA_BUNDLE": str(self.ca_path),
            "TANDEM_MICROSOFT_CLIENT_ID": self.state.client_id,
            "TANDEM_MICROSOFT_CLIENT_SECRET": self.state.client_secret,
        }
        if self.consent_server is not None:
            values["TANDEM_MICROSOFT_SIGN_IN_ORIGIN"] = self.consent_server.url
        return values

    def stop(self) -> None:
        if self.consent_server is not None:
            self.consent_server.stop()
        self.server.stop()


def start_microsoft_emulator(
    tmpdir: Path, state: MicrosoftState | None = None, *, browser_over_http: bool = False
) -> RunningMicrosoft:
    """Serve the emulator over HTTPS on a free loopback port (host name ``localhost``);
    with ``browser_over_http`` also its sign-in page over plain http (see above)."""
    state = state or MicrosoftState()
    ca_path, tls = make_test_ca(tmpdir)
    server = BackgroundServer(create_microsoft_emulator(state), tls=tls).start()
    consent_server = None
    if browser_over_http:
        consent_server = BackgroundServer(_sign_in_only(state)).start()
        state.browser_origin = consent_server.url
    return RunningMicrosoft(
        state=state, server=server, ca_path=ca_path, consent_server=consent_server
    )


def _sign_in_only(state: MicrosoftState) -> ASGIApp:
    """The authorize page (GET) and its consent form (POST), nothing else: tokens and
    Graph are never offered without TLS."""
    routes = [r for r in identity_routes(state) if r.path.endswith("/oauth2/v2.0/authorize")]
    app = Starlette(routes=routes)
    app.state.emulator = state
    return _RecordAndFault(app, state)


_CONSENT_REQUEST = re.compile(r"name='request' value='([^']+)'")


async def admin_consent(
    http: httpx.AsyncClient, consent_url: str, admin_email: str, *, accept: bool = True
) -> dict[str, str]:
    """Play a tenant's global administrator on the admin-consent page; returns the query
    parameters of the redirect back to the app."""
    page = await http.get(consent_url)
    page.raise_for_status()
    match = _CONSENT_REQUEST.search(page.text)
    if match is None:
        raise ValueError("not an admin-consent page")
    answer = await http.post(
        consent_url.split("?", 1)[0],
        data={
            "request": html.unescape(match.group(1)),
            "account": admin_email,
            "action": "accept" if accept else "cancel",
        },
    )
    if answer.status_code not in (302, 303):
        raise ValueError(f"admin consent refused with HTTP {answer.status_code}")
    return dict(parse_qsl(urlsplit(answer.headers["location"]).query))


async def consent(
    http: httpx.AsyncClient, authorization_url: str, email: str, *, accept: bool = True
) -> dict[str, str]:
    """Play the user on the consent page: pick ``email``, click Accept or Cancel.

    Returns the query parameters of the redirect back to the app.
    """
    page = await http.get(authorization_url)
    page.raise_for_status()
    match = _CONSENT_REQUEST.search(page.text)
    if match is None:
        raise ValueError("not a consent page")
    answer = await http.post(
        authorization_url.split("?", 1)[0],
        data={
            "request": html.unescape(match.group(1)),
            "account": email,
            "action": "accept" if accept else "cancel",
        },
    )
    if answer.status_code not in (302, 303):
        raise ValueError(f"consent refused with HTTP {answer.status_code}")
    return dict(parse_qsl(urlsplit(answer.headers["location"]).query))
