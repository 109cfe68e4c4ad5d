"""Onboarding in Chromium: the time zone field starts at the browser's zone; without
JavaScript the account's stored zone stays."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import LiveServer, sign_in
from tests.conftest import create_user

pytestmark = pytest.mark.browser


async def test_time_zone_defaults_to_the_browsers(
    live_server: LiveServer, browser: Browser
) -> None:
    await create_user(
        live_server.services, "new@example.org", time_zone="UTC", profile_completed=False
    )
    context = await browser.new_context(timezone_id="Asia/Kolkata", locale="en-IN")
    page = await context.new_page()
    try:
        await sign_in(page, live_server, "new@example.org")
        await page.goto(live_server.at("/onboarding"))
        field = page.get_by_label("Time zone")
        await expect(field).to_have_value("Asia/Kolkata")
        await expect(page.locator("#tz-browser")).to_contain_text("Filled in from your browser")
        async with page.expect_navigation():
            await page.get_by_role("button", name="Continue").click()
        await expect(page.get_by_role("heading", name="Connect your calendar")).to_be_visible()
        await page.goto(live_server.at("/profile/edit?tab=profile"))
        await expect(page.get_by_label("Time zone")).to_have_value("Asia/Kolkata")
    finally:
        await context.close()


async def test_without_javascript_the_stored_zone_stays(
    live_server: LiveServer, browser: Browser
) -> None:
    await create_user(
        live_server.services, "plain@example.org", time_zone="Europe/Oslo", profile_completed=False
    )
    context = await browser.new_context(timezone_id="Asia/Kolkata", java_script_enabled=False)
    page = await context.new_page()
    try:
        await sign_in(page, live_server, "plain@example.org")
        await page.goto(live_server.at("/onboarding"))
        await expect(page.get_by_label("Time zone")).to_have_value("Europe/Oslo")
    finally:
        await context.close()
