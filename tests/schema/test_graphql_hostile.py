"""Hostile GraphQL documents are refused cheaply, before graphql-core's validation can spend
seconds on them, while ``/healthz`` and ordinary queries stay fast.

Time bounds are generous (the machine is shared, so they allow for a heavily loaded CPU); the documents below cost seconds to
minutes without the measurement in ``server/schema/limits.py``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query

from server.schema.limits import DOCUMENTS, MAX_SELECTIONS
from server.wiring import AppServices
from tests.conftest import create_user
from tests.schema.test_graphql_programs import ME, token_for

BOUND_SECONDS = 2.5  # shared machine; unloaded, each refusal takes well under 0.1 s


@pytest.fixture(autouse=True)
def cold_cache() -> None:
    """Every test measures documents the server has not seen yet."""
    DOCUMENTS.clear()


@pytest.fixture
async def token(services: AppServices) -> str:
    return await token_for(services, await create_user(services, "hostile@example.org"))


def fan_out(levels: int) -> str:
    """Each fragment spreads the previous one twice: 2**levels fields once expanded."""
    fragments = ["fragment F0 on Query { me { id } }"]
    fragments += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels)]
    return f"query {{ ...F{levels - 1} }} " + " ".join(fragments)


HOSTILE: dict[str, tuple[str, str]] = {
    "fan-out fragments, 30 levels": (fan_out(30), "QUERY_TOO_COMPLEX"),
    "fan-out fragments, 12 levels": (fan_out(12), "QUERY_TOO_COMPLEX"),
    "fragment cycle": (
        "query { ...A } fragment A on Query { me { id ...B } } "
        "fragment B on Query { ...C } fragment C on Query { ...A }",
        "FRAGMENT_CYCLE",
    ),
    "alias bomb": (
        "query { " + " ".join(f"a{i}: me {{ id }}" for i in range(300)) + " }",
        "TOO_MANY_ALIASES",
    ),
    "overlap bomb, 300 repeats": (
        "query { me { " + " ".join(["calendar { status connectedAt }"] * 300) + " } }",
        "QUERY_TOO_COMPLEX",
    ),
    "overlap bomb through fragments": (
        "query { me { ...U ...U ...U } } fragment U on User { "
        + " ".join(["calendar { status }"] * 40)
        + " }",
        "QUERY_TOO_COMPLEX",
    ),
    "token bomb": ("{ me { " + " ".join(["id"] * 5000) + " } }", "QUERY_TOO_LARGE"),
    "depth bomb": ("{ me { " + "a { " * 14 + "b" + " }" * 14 + " } }", "QUERY_TOO_DEEP"),
    "deep list literal": (
        "{ user(id: " + "[" * 40 + '"x"' + "]" * 40 + ") { id } }",
        "INPUT_TOO_DEEP",
    ),
    "deep object literal": (
        'mutation { createProgram(input: {name: "x", extra: '
        + "{a: " * 30
        + "1"
        + "}" * 30
        + "}) { errors { code } } }",
        "INPUT_TOO_DEEP",
    ),
}


async def post(client: httpx.AsyncClient, body: Any, token: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return await client.post("/graphql", content=content, headers=headers)


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("signed_in", [False, True])
async def test_hostile_documents_are_refused_quickly(
    client: httpx.AsyncClient, token: str, name: str, signed_in: bool
) -> None:
    document, code = HOSTILE[name]
    started = time.perf_counter()
    response = await post(client, {"query": document}, token if signed_in else None)
    elapsed = time.perf_counter() - started
    assert elapsed < BOUND_SECONDS, f"{name} took {elapsed:.2f}s"
    assert response.status_code == 200
    body = response.json()
    assert body.get("data") is None
    assert body["errors"][0]["extensions"]["code"] == code, body["errors"][0]
    ordinary = await post(client, {"query": ME}, token)
    assert ordinary.json()["data"]["me"]["id"]


async def test_refusal_messages_say_what_to_change(client: httpx.AsyncClient, token: str) -> None:
    body = (await post(client, {"query": fan_out(30)}, token)).json()
    assert str(MAX_SELECTIONS) in body["errors"][0]["message"]
    cycle = (await post(client, {"query": HOSTILE["fragment cycle"][0]}, token)).json()
    assert "spreads itself" in cycle["errors"][0]["message"]


async def test_ordinary_fragments_and_repeats_still_work(
    client: httpx.AsyncClient, token: str
) -> None:
    query = """
      query Mine { me { id ...Who calendar { status } } programs { id name } }
      fragment Who on User { id name calendar { status provider } }
    """
    body = (await post(client, {"query": query, "operationName": "Mine"}, token)).json()
    assert "errors" not in body, body
    assert body["data"]["me"]["calendar"]["status"] == "NOT_CONNECTED"


async def test_full_introspection_query_still_works(client: httpx.AsyncClient, token: str) -> None:
    """The query GraphiQL and code generators send: deep ``ofType`` nesting, many spreads."""
    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    body = (await post(client, {"query": query}, token)).json()
    assert "errors" not in body, body.get("errors")
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_healthz_and_ordinary_queries_stay_fast_during_an_attack(
    client: httpx.AsyncClient, token: str
) -> None:
    # Four in parallel of each of the heaviest documents (the issue: four overlap bombs in
    # parallel stalled /healthz for 18 s).
    heaviest = (
        "fan-out fragments, 30 levels",
        "alias bomb",
        "overlap bomb, 300 repeats",
        "overlap bomb through fragments",
    )
    attacks = [HOSTILE[name][0] for name in heaviest]
    latencies: list[float] = []

    async def probe() -> None:
        for _ in range(5):
            started = time.perf_counter()
            assert (await client.get("/healthz")).status_code == 200
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)

    async def attack(document: str, n: int) -> None:
        # Slightly different text each time, so the cache does not answer for the measurement.
        await post(client, {"query": f"{document} # {n}"})

    started = time.perf_counter()
    await asyncio.gather(probe(), *(attack(doc, n) for n in range(4) for doc in attacks), probe())
    total = time.perf_counter() - started
    assert max(latencies) < 2 * BOUND_SECONDS, latencies
    assert total < 10 * BOUND_SECONDS, total
    ordinary = await post(client, {"query": ME}, token)
    assert ordinary.json()["data"]["me"]["id"]


BAD_BODIES: dict[str, tuple[bytes, int]] = {
    "bare number": (b"42", 400),
    "bare string": (b'"x"', 400),
    "null": (b"null", 400),
    "batch": (json.dumps([{"query": ME}] * 50).encode(), 400),
    "deeply nested body": (
        b'{"query": "{ me { id } }", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        400,
    ),
    "deeply nested variables": (
        json.dumps({"query": ME}).encode()[:-1]
        + b', "variables": {"v": '
        + b'{"a": ' * 5_000
        + b"1"
        + b"}" * 5_000
        + b"}}",
        400,
    ),
    "unbalanced brackets": (b"[" * 200_000, 400),
    "operationName not a string": (json.dumps({"query": ME, "operationName": 3}).encode(), 400),
    "query not a string": (json.dumps({"query": ["{ me { id } }"]}).encode(), 400),
    "huge variables": (
        json.dumps({"query": ME, "variables": {"v": "x" * 600_000}}).encode(),
        413,
    ),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
async def test_malformed_bodies_get_a_clear_4xx(
    client: httpx.AsyncClient, token: str, name: str
) -> None:
    content, status = BAD_BODIES[name]
    started = time.perf_counter()
    response = await post(client, content, token)
    assert time.perf_counter() - started < BOUND_SECONDS
    assert response.status_code == status, response.text
    assert response.text and "Traceback" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_large_variables_within_the_limits_are_accepted(
    client: httpx.AsyncClient, token: str
) -> None:
    body = {"query": "query Q($id: ID!) { user(id: $id) { id } }", "variables": {"id": "1" * 100}}
    response = await post(client, body, token)
    assert response.status_code == 200
    assert response.json()["data"] == {"user": None}


async def test_documents_are_cached_and_permissions_still_run(
    client: httpx.AsyncClient, token: str
) -> None:
    first = await post(client, {"query": ME}, token)
    assert first.json()["data"]["me"]["id"]
    cached = len(DOCUMENTS)
    assert cached == 1
    again = await post(client, {"query": ME}, token)
    assert again.json() == first.json()
    assert len(DOCUMENTS) == cached
    # The same text from an anonymous caller: parsed and validated from the cache, still
    # refused at execution.
    anonymous = (await post(client, {"query": ME})).json()
    assert anonymous["data"] is None
    assert anonymous["errors"][0]["message"].startswith("Sign in or send an API token")


async def test_cached_introspection_is_still_refused_to_anonymous_callers(
    client: httpx.AsyncClient, token: str
) -> None:
    introspection = "{ __schema { types { name } } }"
    allowed = (await post(client, {"query": introspection}, token)).json()
    assert allowed["data"]["__schema"]["types"]
    refused = (await post(client, {"query": introspection})).json()
    assert refused.get("data") is None
    assert "introspection" in refused["errors"][0]["message"].lower()
