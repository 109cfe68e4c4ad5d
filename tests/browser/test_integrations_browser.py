"""In a real Chromium: a global administrator integrates Google Workspace from Manage →
Integrations. The JSON key file chosen in the file input fills the form
(``static/js/key-file.js``; the server takes url-encoded text only), the page shows the
delegation to paste, Verify turns it on against the Google emulator, and at a phone's
width (390 px) nothing overflows sideways."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from emulators.google import RunningGoogle, seed_workspace
from emulators.runner import BackgroundServer, free_port
from server.app import create_app
from server.providers.google_service_account import DELEGATION_SCOPE_LIST, DELEGATION_SCOPES
from server.services.integrations import setup
from server.services.people import accounts
from server.wiring import build_services, close_services
from tests.browser.conftest import LiveServer, sign_in
from tests.calendar_fixtures import provider_overrides
from tests.conftest import create_user, make_settings

pytestmark = pytest.mark.browser


@pytest.fixture
async def google_server(
    tmp_path: Path, sqlite_url: str, google: RunningGoogle
) -> AsyncIterator[LiveServer]:
    """``live_server`` pointed at the Google emulator."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path, sqlite_url, base_url=url, **provider_overrides(google))
    server = BackgroundServer(create_app(settings), port=port).start()
    seed = build_services(settings)
    try:
        yield LiveServer(url, settings, seed)
    finally:
        await close_services(seed)
        server.stop()


async def _no_sideways_overflow(page: Page) -> None:
    overflow = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the 390px viewport"


async def test_key_file_fills_the_form_and_google_integrates(
    google_server: LiveServer, browser: Browser, google: RunningGoogle, tmp_path: Path
) -> None:
    domain = "chromium-gw.example"
    account = seed_workspace(google.state, domain, ["pat"])
    key_file = tmp_path / "tandem-key.json"
    key_file.write_text(json.dumps(account.key_json(), indent=2))
    services = google_server.services
    await create_user(services, "root@vendor.example", global_admin=True)
    operator_id = await create_user(services, "op@vendor.example", operator=True)
    async with services.db.session() as db:
        operator = await accounts.get_user(db, operator_id)
        await setup.set_switch(db, services.calendar, operator, True)

    page = await browser.new_page(viewport={"width": 390, "height": 844})
    await sign_in(page, google_server, "root@vendor.example")
    await page.goto(google_server.at("/admin/integrations"))
    await expect(page.get_by_role("heading", name="Google Calendar")).to_be_visible()
    await _no_sideways_overflow(page)

    await page.set_input_files("#google-key-file", str(key_file))
    textarea = page.locator("#google-key")
    await expect(textarea).to_have_value(key_file.read_text())
    await page.get_by_label("Google Workspace domain").fill(domain)
    await page.get_by_label("Account to act as (creates the meetings)").fill(f"tandem@{domain}")
    await (
        page.locator("#integration-google_workspace")
        .get_by_role("button", name="Integrate")
        .click()
    )
    delegation = page.locator("#google-delegation")
    await expect(delegation).to_contain_text(f"Client ID: {account.client_id}")
    await expect(delegation).to_contain_text(DELEGATION_SCOPES)
    await _no_sideways_overflow(page)  # the long scope list wraps

    await page.get_by_role("button", name="Verify and integrate").click()
    await expect(page.locator("#integrations-error")).to_contain_text("Domain-wide delegation")
    await _no_sideways_overflow(page)

    google.state.grant_delegation(domain, account.client_id, DELEGATION_SCOPE_LIST)
    await page.get_by_role("button", name="Verify and integrate").click()
    await expect(page.get_by_role("status").first).to_contain_text(
        "The Google Calendar integration is on."
    )
    await expect(page.locator("#integration-google_workspace")).to_contain_text(
        f"meetings are created by tandem@{domain}"
    )
    await _no_sideways_overflow(page)
    await page.close()
