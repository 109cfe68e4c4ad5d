"""GraphiQL in Chromium: served from vendored files under the strict CSP, and a
signed-in person's query runs through the session (cookie + CSRF header), no token."""

from __future__ import annotations

import json

import pytest
from playwright.async_api import Browser, ConsoleMessage, Request, expect

from tests.browser.conftest import LiveServer, sign_in
from tests.conftest import create_user

pytestmark = pytest.mark.browser


async def test_signed_in_query_runs_in_graphiql(live_server: LiveServer, browser: Browser) -> None:
    me = await create_user(live_server.services, "gia@example.org", name="Gia Query")
    context = await browser.new_context()
    page = await context.new_page()
    console: list[str] = []
    outside: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            console.append(message.text)

    def on_request(request: Request) -> None:
        if not request.url.startswith(live_server.url) and not request.url.startswith("data:"):
            outside.append(request.url)

    page.on("console", on_console)
    page.on("request", on_request)
    try:
        await sign_in(page, live_server, "gia@example.org")
        response = await page.goto(live_server.at("/graphql"))
        assert response is not None
        csp = response.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "script-src 'self';" in csp
        await expect(page.locator("#graphiql-note")).to_contain_text(
            "queries here run as you, through your session"
        )
        await expect(page.locator("#graphiql-note")).to_contain_text("API tokens")
        run = page.locator(".graphiql-execute-button")
        await expect(run).to_be_visible(timeout=15_000)
        async with page.expect_response(
            lambda r: (
                r.url.endswith("/graphql")
                and r.request.method == "POST"
                and "me" in (r.request.post_data or "")
                and "__schema" not in (r.request.post_data or "")
            )
        ) as answer:
            await run.click()
        reply = await answer.value
        assert reply.status == 200
        assert json.loads(await reply.text()) == {
            "data": {"me": {"id": str(me), "name": "Gia Query"}}
        }
        await expect(page.locator(".graphiql-response")).to_contain_text(str(me))
        assert not outside, outside
        csp_errors = [line for line in console if "Content Security Policy" in line]
        assert not csp_errors, csp_errors
    finally:
        await context.close()
