"""In a real Chromium: Calendar Settings' "Connect Google" button posts, the browser
follows the redirect to the provider's consent page (the CSP must allow that form
redirect), and Allow brings the user back connected. Microsoft's, as the demo serves it,
shows no certificate warning."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from emulators.google import RunningGoogle
from emulators.microsoft import RunningMicrosoft, start_microsoft_emulator
from emulators.runner import BackgroundServer, free_port
from server.app import create_app
from server.wiring import build_services, close_services
from tests.browser.conftest import LiveServer, sign_in
from tests.calendar_fixtures import provider_overrides
from tests.conftest import create_user, make_settings

pytestmark = pytest.mark.browser


@pytest.fixture
async def live_with_google(
    tmp_path: Path, sqlite_url: str, google: RunningGoogle
) -> AsyncIterator[LiveServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    google.state.add_redirect_uri(google.client_id, f"{url}/calendar/callback/google")
    settings = make_settings(tmp_path, sqlite_url, base_url=url, **provider_overrides(google))
    server = BackgroundServer(create_app(settings), port=port).start()
    seed = build_services(settings)
    try:
        yield LiveServer(url, settings, seed)
    finally:
        await close_services(seed)
        server.stop()


async def test_connect_google_through_the_consent_page(
    live_with_google: LiveServer, browser: Browser, google: RunningGoogle
) -> None:
    await create_user(live_with_google.services, "clicker@example.org", name="Cleo")
    google.state.add_account("cleo@gmail.test")
    page = await browser.new_page()
    blocked: list[str] = []
    page.on(
        "console",
        lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    await sign_in(page, live_with_google, "clicker@example.org")
    await page.goto(live_with_google.at("/profile/edit?tab=settings"))
    await page.get_by_role("button", name="Connect Google").click()
    await expect(
        page.get_by_role("heading", name="wants to access your Google Account")
    ).to_be_visible()
    await page.get_by_label("Account").select_option("cleo@gmail.test")
    await page.get_by_role("button", name="Allow").click()
    await expect(page.get_by_text("Your calendar is connected.")).to_be_visible()
    await page.goto(live_with_google.at("/profile/edit?tab=settings"))
    await expect(page.get_by_text("Your Google calendar is connected")).to_be_visible()
    assert blocked == []
    await page.close()


@pytest.fixture
async def live_with_microsoft_over_http(
    tmp_path: Path, sqlite_url: str
) -> AsyncIterator[tuple[LiveServer, RunningMicrosoft]]:
    """As ``tandem demo`` runs it: the sign-in page on plain http, the rest on TLS."""
    microsoft = start_microsoft_emulator(tmp_path / "ms", browser_over_http=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path, sqlite_url, base_url=url, **provider_overrides(microsoft))
    server = BackgroundServer(create_app(settings), port=port).start()
    seed = build_services(settings)
    try:
        yield LiveServer(url, settings, seed), microsoft
    finally:
        await close_services(seed)
        server.stop()
        microsoft.stop()


async def test_connect_microsoft_without_a_certificate_warning(
    live_with_microsoft_over_http: tuple[LiveServer, RunningMicrosoft], browser: Browser
) -> None:
    """The browser trusts no test CA (certificate errors are not ignored), yet the whole
    path works: the consent page is plain http on loopback."""
    live, microsoft = live_with_microsoft_over_http
    await create_user(live.services, "wren@example.org", name="Wren")
    microsoft.state.add_account("wren@contoso.test")
    context = await browser.new_context(ignore_https_errors=False)
    page = await context.new_page()
    try:
        await sign_in(page, live, "wren@example.org")
        await page.goto(live.at("/profile/edit?tab=settings"))
        await page.get_by_role("button", name="Connect Office 365 / Outlook.com").click()
        await expect(page.get_by_role("heading", name="Pick an account")).to_be_visible()
        assert page.url.startswith("http://127.0.0.1:")
        await page.get_by_label("wren@contoso.test", exact=False).check()
        await page.get_by_role("button", name="Accept").click()
        await expect(page.get_by_text("Your calendar is connected.")).to_be_visible()
        await page.goto(live.at("/profile/edit?tab=settings"))
        await expect(page.get_by_text("Your Office 365 calendar is connected")).to_be_visible()
    finally:
        await context.close()
