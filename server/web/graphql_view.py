"""The ``/graphql`` endpoint: strawberry's ASGI view with one database session per request."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from server.schema.context import Context
from server.wiring import AppServices

log = logging.getLogger("tandem.graphql")


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self.services.db.session() as db:
            scope.setdefault("state", {})["db"] = db
            await super().__call__(scope, receive, send)

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
