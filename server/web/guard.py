"""One ASGI middleware for what every request needs before a handler sees it.

- Who is asking: a server-side session from the cookie, or an API token from
  ``Authorization: Bearer`` (integrators). The result is ``request.state.viewer``.
- CSRF: every state-changing request authenticated by cookie must carry the session's
  token (``X-CSRF-Token`` header, or a ``csrf_token`` form field); anonymous forms use a
  double-submit cookie. Cross-origin ``Origin`` headers are refused. Multipart bodies are
  refused everywhere (nothing here uploads files).
- Response headers: a Content Security Policy without ``unsafe-inline``, no framing, no
  sniffing, no referrer to other sites, no caching of personal pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.config import Settings
from server.services.people import api_tokens, sessions
from server.web.quiet_log import bad_requests, exception_summary, new_request_id
from server.wiring import AppServices

log = logging.getLogger("tandem")

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_FORM_BYTES = 256 * 1024
MAX_BODY_BYTES = 1024 * 1024
MAX_FORM_FIELDS = 200
ANON_CSRF_COOKIE = "tandem_csrf"


def content_security_policy(settings: Settings) -> str:
    """No inline script or style anywhere (GraphiQL included; fonts may be ``data:``
    URLs, as GraphiQL's stylesheet embeds its fonts). Forms may post to Tandem only, and to the
    Google and Microsoft sign-in origins: browsers apply ``form-action`` to the redirect
    that follows a form post, and connecting a calendar is a form post that redirects
    to the provider's consent page."""
    consent_origins = sorted(
        {
            _origin(settings.google_auth_url),
            _origin(settings.microsoft_authority),
            _origin(settings.microsoft_sign_in_origin or ""),
        }
        - {""}
    )
    form_action = " ".join(["'self'", *consent_origins])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; "
        f"form-action {form_action}; frame-ancestors 'none'"
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


@contextlib.asynccontextmanager
async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The database session the guard checked the viewer in, for the paths it hands on
    (``RequestGuard.session_paths``; the guard closes it after the response), else a
    session of the handler's own."""
    shared: AsyncSession | None = getattr(request.state, "db", None)
    if shared is not None:
        yield shared
        return
    services: AppServices = request.app.state.services
    async with services.db.session() as db:
        yield db


def session_cookie_name(secure: bool) -> str:
    return "__Host-tandem_session" if secure else "tandem_session"


class RequestGuard:
    def __init__(
        self, app: ASGIApp, services: AppServices, session_paths: Sequence[str] = ("/graphql",)
    ) -> None:
        """``session_paths`` (route paths, ``{name}`` parameters allowed): their handlers
        go on in the session the guard checked the viewer in, ``state["db"]``; every
        other handler opens its own."""
        self.app = app
        self.services = services
        self.session_paths = [compile_path(path)[0] for path in session_paths]
        self.cookie_name = session_cookie_name(services.settings.secure_cookies)
        self.csp = content_security_policy(services.settings)
        self.body_timeout = services.settings.http_body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every response, error pages included, leaves through ``secured`` and so carries
        the security headers; an unhandled exception becomes a 500 page rendered here,
        without the session's CSRF token, rather than in Starlette's outer handler."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id = new_request_id()
        secure = self.services.settings.secure_cookies
        started = False

        async def secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                out = MutableHeaders(scope=message)
                # GraphiQL too: it is served from static/vendor with no inline script.
                out.setdefault("Content-Security-Policy", self.csp)
                out.setdefault("X-Content-Type-Options", "nosniff")
                out.setdefault("X-Frame-Options", "DENY")
                # "same-origin", not "no-referrer": under no-referrer browsers send
                # `Origin: null` on form posts, which the origin check must refuse.
                out.setdefault("Referrer-Policy", "same-origin")
                if not path.startswith("/static/"):
                    out.setdefault("Cache-Control", "no-store")
                if secure:
                    out.setdefault("Strict-Transport-Security", "max-age=31536000")
                out["X-Request-Id"] = request_id
            await send(message)

        bounded = _bounded(receive, MAX_BODY_BYTES, self.body_timeout)
        try:
            await self._guarded(scope, bounded, secured)
        except ClientDisconnect:
            bad_requests.info("request %s: client went away during %s %s", request_id, method, path)
        except BodyTimeout:
            bad_requests.info("request %s: body of %s %s too slow", request_id, method, path)
            if not started:
                await _refuse(scope, secured, "Request body took too long.", 408)
        except BodyTooLarge:
            if not started:
                await _refuse(scope, secured, "Request body too large.", 413)
        except Exception as exc:
            log.error(
                "request %s: unhandled error on %s %s: %s",
                request_id,
                method,
                path,
                exception_summary(exc),
            )
            if started:
                raise
            await self._error_page(scope, secured)

    async def _error_page(self, scope: Scope, send: Send) -> None:
        html = self.services.templates.get_template("pages/error.html").render(
            {
                "request": Request(scope),
                "viewer": None,
                "csrf_token": "",
                "notice": None,
                "zone": "UTC",
                "heading": "Something went wrong",
                "message": "Tandem hit an unexpected error. Please try again.",
            }
        )
        await HTMLResponse(html, status_code=500)(scope, _replay(b""), send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with contextlib.AsyncExitStack() as stack:
            await self._checked(scope, receive, send, stack)

    async def _checked(
        self, scope: Scope, receive: Receive, send: Send, stack: contextlib.AsyncExitStack
    ) -> None:
        headers = Headers(scope=scope)
        method: str = scope["method"]
        path: str = scope["path"]
        state: dict[str, Any] = scope["state"]
        content_type = headers.get("content-type", "").lower()

        if method in UNSAFE_METHODS and content_type.startswith("multipart/"):
            await _refuse(scope, send, "Multipart requests are not accepted.", 415)
            return
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            await _refuse(scope, send, "Request body too large.", 413)
            return

        form: dict[str, list[str]] | None = None
        if method in UNSAFE_METHODS and content_type.startswith(
            "application/x-www-form-urlencoded"
        ):
            body = await _read_body(receive, MAX_FORM_BYTES)
            if body is None:
                await _refuse(scope, send, "Form too large.", 413)
                return
            if body.count(b"&") >= MAX_FORM_FIELDS:
                await _refuse(
                    scope, send, f"A form may have at most {MAX_FORM_FIELDS} fields.", 413
                )
                return
            try:
                form = parse_qs(body.decode("latin-1"), max_num_fields=MAX_FORM_FIELDS)
            except ValueError:
                await _refuse(scope, send, "The form could not be read.", 400)
                return
            receive = _replay(body)

        bearer = _bearer_token(headers)
        viewer = None
        user_session = None
        db = await stack.enter_async_context(self.services.db.session())
        if bearer is not None:
            user = await api_tokens.user_for_token(db, bearer)
            if user is not None:
                viewer = sessions.Viewer(user=user, actor=user)
        else:
            raw = _cookie(headers, self.cookie_name)
            if raw:
                user_session, viewer = await sessions.signed_in(db, raw)
        if any(pattern.match(path) for pattern in self.session_paths):
            # The handler goes on in this session (one per request, not two), with the
            # viewer detached from it as a session of its own would have left it.
            db.expunge_all()
            state["db"] = db
        else:
            await stack.aclose()  # other handlers open their own sessions
        state["viewer"] = viewer
        state["user_session"] = user_session
        state["bearer"] = bearer is not None

        anon_token = _cookie(headers, ANON_CSRF_COOKIE)
        new_anon_token: str | None = None
        if user_session is not None:
            state["csrf_token"] = user_session.csrf_token
        else:
            if not anon_token or len(anon_token) > 100:
                new_anon_token = anon_token = secrets.token_urlsafe(32)
            state["csrf_token"] = anon_token

        if method in UNSAFE_METHODS and not path.startswith("/webhooks/"):
            if not _same_origin(headers, scope):
                await _refuse(scope, send, "Cross-origin request refused.", 403)
                return
            # An API call with no credentials at all carries nothing to forge; it stays anonymous.
            anonymous_api = path == "/graphql" and user_session is None
            if bearer is None and not anonymous_api:
                provided = headers.get("x-csrf-token")
                if provided is None and form is not None:
                    provided = next(iter(form.get("csrf_token", [])), None)
                expected = state["csrf_token"] if new_anon_token is None else None
                if (
                    not provided
                    or not expected
                    or not hmac.compare_digest(provided.encode(), str(expected).encode())
                ):
                    await _refuse(
                        scope,
                        send,
                        "This form has expired or did not come from Tandem. Reload the page and "
                        "try again.",
                        403,
                    )
                    return

        secure = self.services.settings.secure_cookies

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and new_anon_token is not None:
                out = MutableHeaders(scope=message)
                flags = "HttpOnly; SameSite=Lax; Path=/" + ("; Secure" if secure else "")
                out.append("Set-Cookie", f"{ANON_CSRF_COOKIE}={new_anon_token}; {flags}")
            await send(message)

        await self.app(scope, receive, send_with_cookie)


async def _refuse(scope: Scope, send: Send, message: str, status: int) -> None:
    """A plain-text refusal, logged (rate-limited) with the request id, never the body."""
    state = scope.get("state", {})
    bad_requests.info(
        "request %s: %s %s refused with %d",
        state.get("request_id", "-"),
        scope["method"],
        scope["path"],
        status,
    )
    await PlainTextResponse(message, status)(scope, _replay(b""), send)


class BodyTimeout(Exception):
    """The client sent its body too slowly; answered 408."""


class BodyTooLarge(Exception):
    """A chunked body grew past the cap; the connection is answered 413 by the server."""


def _bounded(receive: Receive, limit: int, timeout: float) -> Receive:
    """Count body bytes as they arrive (a chunked body declares no length up front) and
    bound how long the whole body may take, so a slow client cannot hold a worker. A
    disconnect before the body is complete raises ``ClientDisconnect``."""
    seen = 0
    deadline: float | None = None
    complete = False

    async def wrapped() -> Message:
        nonlocal seen, deadline, complete
        if complete:
            return await receive()
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise BodyTimeout from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge
            complete = not message.get("more_body", False)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect
        return message

    return wrapped


def _bearer_token(headers: Headers) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _cookie(headers: Headers, name: str) -> str | None:
    for chunk in headers.get("cookie", "").split(";"):
        key, _, value = chunk.strip().partition("=")
        if key == name:
            return value
    return None


def _same_origin(headers: Headers, scope: Scope) -> bool:
    origin = headers.get("origin")
    if origin is None:
        return True
    host = headers.get("host", "")
    return urlsplit(origin).netloc == host


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive
