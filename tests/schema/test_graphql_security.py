"""GraphQL hardening: authentication, introspection, limits, masking, CSRF, GET."""

from __future__ import annotations

import httpx

from server.wiring import AppServices
from tests.conftest import create_user, gql, login
from tests.schema.test_graphql_programs import ME, token_for

INTROSPECTION = "{ __schema { types { name } } }"


async def test_anonymous_callers_get_nothing(client: httpx.AsyncClient) -> None:
    body = await gql(client, ME, allow_errors=True)
    assert body["data"] is None
    assert body["errors"][0]["message"].startswith("Sign in or send an API token")


async def test_anonymous_introspection_is_refused(client: httpx.AsyncClient) -> None:
    body = await gql(client, INTROSPECTION, allow_errors=True)
    assert "data" not in body or body["data"] is None
    assert "introspection" in body["errors"][0]["message"].lower()


async def test_signed_in_integrators_may_introspect(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await create_user(services, "int@example.org")
    body = await gql(client, INTROSPECTION, token=await token_for(services, user))
    assert any(t["name"] == "Program" for t in body["data"]["__schema"]["types"])


async def test_wrong_or_revoked_token_is_anonymous(client: httpx.AsyncClient) -> None:
    body = await gql(client, ME, token="tdm_" + "x" * 43, allow_errors=True)
    assert body["data"] is None


async def test_no_field_suggestions(client: httpx.AsyncClient, services: AppServices) -> None:
    user = await create_user(services, "sug@example.org")
    body = await gql(
        client, "{ me { nme } }", token=await token_for(services, user), allow_errors=True
    )
    assert "Did you mean" not in str(body)


async def test_depth_and_alias_limits(client: httpx.AsyncClient, services: AppServices) -> None:
    user = await create_user(services, "deep@example.org")
    token = await token_for(services, user)
    deep = "{ programs { connections { members { user { calendar { status } } } } } }"
    nested = "query { " + "a: me { id } " + " ".join(f"a{i}: me {{ id }}" for i in range(40)) + " }"
    aliases = await gql(client, nested, token=token, allow_errors=True)
    assert "aliases" in aliases["errors"][0]["message"].lower()
    fragments = "query { ...F } fragment F on Query { ...G } fragment G on Query { ...F }"
    circular = await gql(client, fragments, token=token, allow_errors=True)
    assert circular["errors"]
    ok = await gql(client, deep, token=token)
    assert ok["data"] == {"programs": []}
    too_deep = "{ __schema { types { " + "fields { type { " * 6 + "name" + " } }" * 6 + " } } }"
    refused = await gql(client, too_deep, token=token, allow_errors=True)
    assert "introspection depth" in refused["errors"][0]["message"].lower()


async def test_token_limit(client: httpx.AsyncClient, services: AppServices) -> None:
    user = await create_user(services, "tok@example.org")
    huge = "{ me { " + " ".join(["id"] * 5000) + " } }"
    body = await gql(client, huge, token=await token_for(services, user), allow_errors=True)
    assert "token" in body["errors"][0]["message"].lower()


async def test_cookie_session_needs_csrf_header(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await create_user(services, "kay@example.org", name="Kay")
    csrf = await login(client, "kay@example.org")
    without = await client.post("/graphql", json={"query": ME})
    assert without.status_code == 403
    with_token = await gql(client, ME, csrf=csrf)
    assert with_token["data"]["me"]["name"] == "Kay"


async def test_no_queries_or_mutations_over_get(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await create_user(services, "get@example.org")
    token = await token_for(services, user)
    response = await client.get(
        "/graphql",
        params={"query": 'mutation { createProgram(input: {name: "x"}) { errors { code } } }'},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    assert response.status_code in (400, 405)
    query = await client.get(
        "/graphql",
        params={"query": ME},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    assert query.status_code in (400, 405)


async def test_text_plain_cross_site_post_is_refused(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await create_user(services, "tp@example.org")
    await login(client, "tp@example.org")
    response = await client.post(
        "/graphql", content='{"query": "{ me { id } }"}', headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 403


async def test_an_api_call_takes_one_connection_from_the_pool(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    """The guard's session (the token check) is the resolvers' session: one connection
    per request from the pool, not two."""
    from sqlalchemy import event

    user = await create_user(services, "one@example.org", name="One")
    token = await token_for(services, user)
    await gql(client, ME, token=token)  # warm: the token's last use is written once
    checkouts: list[int] = []

    def count(*_args: object) -> None:
        checkouts.append(1)

    event.listen(services.db.engine.sync_engine, "checkout", count)
    try:
        body = await gql(client, ME, token=token)
    finally:
        event.remove(services.db.engine.sync_engine, "checkout", count)
    assert body["data"]["me"]["email"] == "one@example.org"
    assert len(checkouts) == 1


async def test_a_token_signs_in_its_active_owner_and_is_marked_used_once_a_minute(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    """The token check reads table rows (no ORM loading): the owner it makes answers as
    themselves, a revoked token or a deactivated owner is anonymous, and ``lastUsedAt``
    is written on first use and again only once it is over a minute old."""
    from datetime import datetime, timedelta

    from sqlmodel import select

    from server.models import ApiToken, User
    from server.models.base import utcnow

    user_id = await create_user(services, "used@example.org", name="Uma")
    token = await token_for(services, user_id)

    async def last_used() -> datetime | None:
        async with services.db.session() as db:
            row = (await db.exec(select(ApiToken).where(ApiToken.user_id == user_id))).one()
            return row.last_used_at

    assert await last_used() is None
    body = await gql(client, ME, token=token)
    assert body["data"]["me"]["name"] == "Uma"
    first = await last_used()
    assert first is not None
    await gql(client, ME, token=token)
    assert await last_used() == first  # within the minute: not written again
    async with services.db.session() as db:
        row = (await db.exec(select(ApiToken).where(ApiToken.user_id == user_id))).one()
        row.last_used_at = utcnow() - timedelta(minutes=5)
        await db.commit()
    await gql(client, ME, token=token)
    again = await last_used()
    assert again is not None and again > first

    async with services.db.session() as db:
        owner = await db.get(User, user_id)
        assert owner is not None
        owner.is_active = False
        await db.commit()
    assert (await gql(client, ME, token=token, allow_errors=True))["data"] is None
    async with services.db.session() as db:
        owner = await db.get(User, user_id)
        assert owner is not None
        owner.is_active = True
        row = (await db.exec(select(ApiToken).where(ApiToken.user_id == user_id))).one()
        row.revoked_at = utcnow()
        await db.commit()
    assert (await gql(client, ME, token=token, allow_errors=True))["data"] is None
