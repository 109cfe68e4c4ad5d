"""Changing the password always signs out every other session; ticking "sign out everywhere
and revoke API tokens" also makes every API token stop working."""

from __future__ import annotations

import httpx
from sqlmodel import select

from server.models import AuditEvent
from server.wiring import AppServices
from tests.conftest import TEST_PASSWORD, create_user, csrf_from, login, new_client
from tests.schema.test_graphql_programs import token_for

ME = "query { me { id } }"
NEW_PASSWORD = "a much longer secret"


async def _api_works(client: httpx.AsyncClient, token: str) -> bool:
    response = await client.post(
        "/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {token}"}
    )
    body = response.json()
    return response.status_code == 200 and bool((body.get("data") or {}).get("me"))


async def _signed_in(client: httpx.AsyncClient) -> bool:
    return (await client.get("/profile/edit")).status_code == 200


async def _change(client: httpx.AsyncClient, *, everywhere: bool) -> httpx.Response:
    csrf = csrf_from((await client.get("/profile/edit?tab=security")).text)
    data = {"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD, "csrf_token": csrf}
    if everywhere:
        data["revoke_everything"] = "on"
    return await client.post("/profile/password", data=data)


async def test_the_security_tab_offers_the_choice(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await create_user(services, "choice@example.org")
    await login(client, "choice@example.org")
    page = await client.get("/profile/edit?tab=security")
    assert 'name="revoke_everything" type="checkbox"' in page.text
    assert "Sign out everywhere and revoke my API tokens" in page.text


async def test_sign_out_everywhere_ends_other_sessions_and_revokes_tokens(
    client: httpx.AsyncClient, app: object, services: AppServices
) -> None:
    me = await create_user(services, "everywhere@example.org")
    tokens = [await token_for(services, me), await token_for(services, me)]
    other = await new_client(app)
    async with other:
        await login(other, "everywhere@example.org")
        await login(client, "everywhere@example.org")
        assert await _signed_in(other) and all([await _api_works(client, t) for t in tokens])

        changed = await _change(client, everywhere=True)

        assert changed.status_code == 303
        assert changed.headers["location"].endswith("notice=password_changed_everywhere")
        assert not await _signed_in(other)
        for token in tokens:
            assert not await _api_works(client, token)
        # This browser carries on with a fresh session; the new password works elsewhere.
        page = await client.get(changed.headers["location"])
        assert page.status_code == 200 and "every API token is revoked" in page.text
        await login(other, "everywhere@example.org", NEW_PASSWORD)
    async with services.db.session() as db:
        events = (
            await db.exec(select(AuditEvent).where(AuditEvent.action == "api_token.revoked_all"))
        ).all()
    assert [(e.actor_id, e.details["count"]) for e in events] == [(me, 2)]


async def test_without_the_box_tokens_keep_working_and_other_sessions_still_end(
    client: httpx.AsyncClient, app: object, services: AppServices
) -> None:
    me = await create_user(services, "onlyhere@example.org")
    token = await token_for(services, me)
    other = await new_client(app)
    async with other:
        await login(other, "onlyhere@example.org")
        await login(client, "onlyhere@example.org")

        changed = await _change(client, everywhere=False)

        assert changed.status_code == 303
        assert not await _signed_in(other)
        assert await _signed_in(client)
        assert await _api_works(client, token)
