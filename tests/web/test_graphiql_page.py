"""GET /graphql (GraphiQL): vendored scripts only, the strict CSP, and the session's CSRF
token on the page so the signed-in person's queries pass the request guard."""

from __future__ import annotations

import re

import httpx

from tests.conftest import create_user, login


async def test_graphiql_page_uses_vendored_files_and_the_strict_csp(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources, "the page links its scripts"
    assert all(s.startswith("/") for s in sources), sources  # nothing from a CDN
    assert "<script>" not in page.text  # no inline bootstrap
    for path in (s for s in sources if s.startswith("/static/")):
        assert (await client.get(path)).status_code == 200, path
    assert 'name="csrf-token" content=""' in page.text  # anonymous: nothing to send
    assert "Not signed in" in page.text


async def test_signed_in_graphiql_page_carries_the_session_csrf_token(
    client: httpx.AsyncClient, services
) -> None:
    await create_user(services, "quin@example.org", name="Quin")
    csrf = await login(client, "quin@example.org")
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert f'name="csrf-token" content="{csrf}"' in page.text
    assert "API tokens" in page.text and "integrators" in page.text
    # What the page's fetcher sends: the cookie plus that header.
    answer = await client.post(
        "/graphql", json={"query": "{ me { name } }"}, headers={"X-CSRF-Token": csrf}
    )
    assert answer.json() == {"data": {"me": {"name": "Quin"}}}
    refused = await client.post("/graphql", json={"query": "{ me { name } }"})
    assert refused.status_code == 403
