"""Authentication of the EWS emulator: Basic and NTLM, as IIS in front of Exchange does.

Basic carries the logon name and password in every request. NTLM is a three-leg
handshake on one TCP connection (negotiate, challenge, authenticate), after which the
connection itself is authenticated and later requests on it carry no header.
https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/authentication-and-ews-in-exchange
https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-nlmp/

The NTLM side is pyspnego's acceptor, which reads its user store from the file named by
``NTLM_USER_FILE`` (``DOMAIN:user:password`` lines): ``NtlmUsers.install`` writes one.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

import spnego
from starlette.requests import Request
from starlette.responses import Response

from emulators.ews_state import EwsState

_CHALLENGE_TYPE = 1  # NEGOTIATE_MESSAGE carries MessageType 1 at offset 8


def install_ntlm_users(directory: Path, state: EwsState) -> Path:
    """Write the acceptor's user store for ``state``'s service account and point
    ``NTLM_USER_FILE`` at it (the environment variable is process-wide: tests only)."""
    domain, _, user = state.username.rpartition("\\")
    path = directory / "ntlm-users"
    path.write_text(f"{domain}:{user}:{state.password}\n", encoding="utf-8")
    os.environ["NTLM_USER_FILE"] = str(path)
    return path


def _unauthorized(challenge: str | None = None) -> Response:
    response = Response(
        "401 - Unauthorized: Access is denied due to invalid credentials.",
        status_code=401,
        media_type="text/html",
    )
    for offer in [challenge] if challenge else ["NTLM", 'Basic realm="localhost"']:
        response.headers.append("WWW-Authenticate", offer)
    return response


class EwsAuth:
    """Decides per request: None when the caller is authenticated, else the 401 to send."""

    def __init__(self, state: EwsState) -> None:
        self.state = state
        self._handshakes: dict[Any, Any] = {}  # connection -> pyspnego acceptor
        self._connections: set[Any] = set()  # NTLM-authenticated connections

    def check(self, request: Request) -> Response | None:
        connection = request.scope.get("client")
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if not scheme:
            return None if connection in self._connections else _unauthorized()
        if scheme.lower() == "basic":
            return None if self._basic(value) else _unauthorized()
        if scheme.lower() in ("ntlm", "negotiate"):
            return self._ntlm(connection, scheme, value)
        return _unauthorized()

    def _basic(self, value: str) -> bool:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user.lower() == self.state.username.lower() and password == self.state.password

    def _ntlm(self, connection: Any, scheme: str, value: str) -> Response | None:
        try:
            token = base64.b64decode(value, validate=True)
        except binascii.Error:
            return _unauthorized()
        if len(token) >= 12 and token[8] == _CHALLENGE_TYPE:
            acceptor = spnego.server(protocol="ntlm")
            self._handshakes[connection] = acceptor
            challenge = acceptor.step(token)
            return _unauthorized(f"{scheme} {base64.b64encode(challenge or b'').decode()}")
        acceptor = self._handshakes.pop(connection, None)
        if acceptor is None:
            return _unauthorized()
        try:
            acceptor.step(token)
        except spnego.exceptions.SpnegoError:
            return _unauthorized()
        if not acceptor.complete:
            return _unauthorized()
        self._connections.add(connection)
        return None
