"""In a real Chromium: sign in through the form, then read Calendar Settings; and the
first-time onboarding path. Also proves the CSP lets the page work (no blocked inline
script is needed) and that a same-origin form post is accepted by the Origin check."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import LiveServer, sign_in
from tests.conftest import create_user

pytestmark = pytest.mark.browser


async def test_sign_in_and_read_calendar_settings(
    live_server: LiveServer, browser: Browser
) -> None:
    await create_user(live_server.services, "reader@example.org", name="Rita Reader")
    page = await browser.new_page()
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    await sign_in(page, live_server, "reader@example.org")
    await expect(page.get_by_role("heading", name="Welcome, Rita Reader")).to_be_visible()
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    await expect(page.get_by_role("heading", name="Calendar Settings")).to_be_visible()
    section = page.locator("#calendar-settings")
    await expect(section).to_contain_text("Your calendar is not connected")
    for name in ("Connect Google", "Connect Office 365 / Outlook.com"):
        await expect(page.get_by_role("button", name=name)).to_be_visible()  # POST: starts a flow
    await expect(page.get_by_role("link", name="Connect iCal / CalDAV")).to_be_visible()
    assert page.url.endswith("/profile/edit?tab=settings")
    assert [e for e in console_errors if "Content Security Policy" in e] == []
    await page.close()


async def test_first_sign_in_goes_through_profile_completion(
    live_server: LiveServer, browser: Browser
) -> None:
    await create_user(
        live_server.services, "newbie@example.org", name="New", profile_completed=False
    )
    page = await browser.new_page()
    await sign_in(page, live_server, "newbie@example.org")
    await expect(page.get_by_role("heading", name="Complete your profile")).to_be_visible()
    await page.get_by_label("Name").fill("Nora Newbie")
    await page.get_by_label("Time zone").fill("Asia/Tokyo")
    await page.get_by_role("button", name="Continue").click()
    await expect(page.get_by_role("heading", name="Connect your calendar")).to_be_visible()
    await page.get_by_role("link", name="Skip for now").click()
    await expect(page.get_by_role("heading", name="Welcome, Nora Newbie")).to_be_visible()
    await expect(page.get_by_text("Asia/Tokyo")).to_be_visible()
    await page.close()
