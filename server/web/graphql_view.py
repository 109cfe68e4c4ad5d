"""The ``/graphql`` endpoint: strawberry's ASGI view with one database session per request.

The body is checked before strawberry sees it: at most ``MAX_GRAPHQL_BODY_BYTES``, JSON
nested at most ``MAX_JSON_DEPTH`` levels, and a single JSON object (no batches, no bare
values). Each refusal is a 400/413 with a sentence saying what to send instead.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from server.schema.context import Context
from server.web.bounded_json import MAX_JSON_DEPTH, JSONRefused, loads_bounded
from server.wiring import AppServices

log = logging.getLogger("tandem.graphql")

MAX_GRAPHQL_BODY_BYTES = 256 * 1024


class TandemGraphQL(GraphQL[Context, None]):
    def __init__(self, services: AppServices, **kwargs: Any) -> None:
        from server.schema.schema import schema

        super().__init__(
            schema,
            graphql_ide="graphiql" if services.settings.graphiql_enabled else None,
            allow_queries_via_get=False,
            multipart_uploads_enabled=False,
            subscription_protocols=(),
            **kwargs,
        )
        self.services = services

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from the vendored files under ``static/vendor/graphiql/`` (no CDN, no
        inline script), told the session's CSRF token so a signed-in person's queries
        run as them without pasting an API token."""
        viewer = request.state.viewer
        html = self.services.templates.get_template("pages/graphiql.html").render(
            {"viewer": viewer, "csrf_token": request.state.csrf_token}
        )
        return HTMLResponse(html)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        if "db" in state:  # the request guard's session, open until the answer is sent
            await super().__call__(scope, receive, send)
            return
        async with self.services.db.session() as db:
            state["db"] = db
            await super().__call__(scope, receive, send)

    def encode_json(self, data: object) -> str | bytes:
        """orjson writes a large answer several times faster than ``json.dumps``; the JSON
        is the same but for whitespace and non-ASCII text, which orjson writes as UTF-8
        instead of ``\\u`` escapes. A value orjson refuses (an integer beyond 64 bits in
        a JSON scalar) goes through ``json.dumps``."""
        try:
            return orjson.dumps(data)
        except orjson.JSONEncodeError:
            return json.dumps(data, separators=(",", ":"))

    def decode_json(self, data: str | bytes) -> object:
        """One JSON object per request, bounded in size and nesting."""
        if len(data) > MAX_GRAPHQL_BODY_BYTES:
            raise HTTPException(
                413, f"A GraphQL request may be at most {MAX_GRAPHQL_BODY_BYTES} bytes."
            )
        try:
            value = loads_bounded(data, MAX_JSON_DEPTH)
        except JSONRefused as exc:
            raise HTTPException(400, str(exc)) from exc
        if isinstance(value, list):
            raise HTTPException(
                400, "Batched requests (a JSON array) are not accepted; send one operation."
            )
        if not isinstance(value, dict):
            raise HTTPException(
                400,
                'The body must be a JSON object such as {"query": "...", "variables": {...}}.',
            )
        name = value.get("operationName")
        if name is not None and not isinstance(name, str):
            raise HTTPException(400, "The GraphQL operation's `operationName` must be a string.")
        return value

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        assert isinstance(request, Request)
        return Context.build(
            request,
            response if isinstance(response, Response) else None,
            self.services,
            request.state.db,
        )
