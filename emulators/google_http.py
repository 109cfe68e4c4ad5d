"""Google's error shapes and the middleware that records calls and injects faults."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulators.google_state import GoogleState, RecordedRequest

_DEFAULT_REASONS = {
    400: ("global", "badRequest", "Bad Request"),
    401: ("global", "authError", "Invalid Credentials"),
    403: ("usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
    404: ("global", "notFound", "Not Found"),
    409: ("global", "duplicate", "The requested identifier already exists."),
    410: ("global", "deleted", "Resource has been deleted"),
    429: ("usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
    500: ("global", "backendError", "Backend Error"),
    503: ("global", "backendError", "Backend Error"),
}


def api_error(
    status: int,
    reason: str | None = None,
    message: str | None = None,
    *,
    domain: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error in the Calendar API's JSON shape (``{"error": {"errors": [...], ...}}``)."""
    default_domain, default_reason, default_message = _DEFAULT_REASONS.get(
        status, ("global", "backendError", "Error")
    )
    item = {
        "domain": domain or default_domain,
        "reason": reason or default_reason,
        "message": message or default_message,
    }
    body = {"error": {"errors": [item], "code": status, "message": item["message"]}}
    return JSONResponse(body, status_code=status, headers=headers)


def unauthorized() -> JSONResponse:
    return api_error(
        401,
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
    )


def oauth_error(status: int, error: str, description: str | None = None) -> JSONResponse:
    """An OAuth endpoint error: flat ``{"error": ..., "error_description": ...}``."""
    body = {"error": error}
    if description:
        body["error_description"] = description
    return JSONResponse(body, status_code=status)


class RecordAndFaultMiddleware:
    """Records every call (names of parameters only) and answers injected faults first."""

    def __init__(self, app: ASGIApp, state: GoogleState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        query = dict(parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True))
        names = set(query) | _body_names(scope, body)
        self.state.record(
            RecordedRequest(
                scope["method"], scope["path"], frozenset(names), query.get("sendUpdates")
            )
        )
        fault = self.state.take_fault(scope["path"])
        if fault is not None:
            response = _fault_response(fault.status, fault.body, fault.headers)
            await response(scope, receive, send)
            return
        await self.app(scope, _replay(body), send)


def _fault_response(status: int, body: Any, headers: dict[str, str]) -> Response:
    if body is None:
        return api_error(status, headers=headers)
    if isinstance(body, str | bytes):
        return Response(body, status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _body_names(scope: Scope, body: bytes) -> set[str]:
    headers = dict(scope.get("headers", []))
    content_type = headers.get(b"content-type", b"").decode()
    if not body:
        return set()
    if content_type.startswith("application/x-www-form-urlencoded"):
        return {name for name, _ in parse_qsl(body.decode(), keep_blank_values=True)}
    if content_type.startswith("application/json"):
        try:
            parsed = json.loads(body)
        except ValueError:
            return set()
        return set(parsed) if isinstance(parsed, dict) else set()
    return set()
