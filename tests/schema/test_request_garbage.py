"""A finished GraphQL request is freed by reference counting, not left to the collector.

graphql-core's execution context held its own bound methods (its resolver helpers), a
reference cycle that kept each request's context (session, loaders, request, viewer)
alive until the garbage collector's next pass; under load that promoted every request's
objects into the older generations and made the PostgreSQL answers' p99 half again
their p50 (docs/performance.md, seventh round).
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import httpx
import pytest

from bench.api_load import AVAILABILITY, _variables
from bench.seed import seed_pair
from server.schema.context import Context
from server.web.graphql_view import TandemGraphQL
from server.wiring import AppServices
from tests.conftest import create_user, gql
from tests.schema.test_graphql_programs import ME, token_for


async def test_a_finished_graphql_request_leaves_no_cycle(
    client: httpx.AsyncClient, services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts: list[weakref.ref[Context]] = []
    build = TandemGraphQL.get_context

    async def recorded(self: TandemGraphQL, request: Any, response: Any) -> Context:
        context = await build(self, request, response)
        contexts.append(weakref.ref(context))
        return context

    monkeypatch.setattr(TandemGraphQL, "get_context", recorded)
    user = await create_user(services, "gc@example.org", name="Gus")
    token = await token_for(services, user)
    async with services.db.session() as db:
        pair = await seed_pair(db, days=3, blocks=40)
    question = {"query": AVAILABILITY, "variables": _variables(pair)}
    asks = [(ME, None, token), (question["query"], question["variables"], pair.token)]
    for query, variables, bearer in asks:  # warm: first-use caches are not garbage
        await gql(client, query, variables, token=bearer)
    contexts.clear()
    gc.collect()
    gc.disable()
    try:
        me = await gql(client, ME, token=token)
        assert me["data"]["me"]["name"] == "Gus"
        answer = await gql(client, question["query"], question["variables"], token=pair.token)
        assert answer["data"]["availability"]["busy"], "the pair's busy blocks are answered"
        assert len(contexts) == 2
        assert [context() for context in contexts] == [None, None], (
            "a request's context outlived its answer"
        )
    finally:
        gc.enable()
