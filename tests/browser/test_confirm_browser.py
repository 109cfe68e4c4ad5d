"""Cancelling a meeting in Chromium: the first click opens a dialog in place (htmx), the
message typed there is sent with the cancellation, and "Keep the meeting" closes it."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from server.models.enums import MeetingStatus
from server.services.meetings import booking
from tests.browser.conftest import LiveServer, sign_in
from tests.meetings_support import make_world, viewer_of, weekday_slot
from tests.polls_support import user

pytestmark = pytest.mark.browser


async def test_cancel_opens_a_dialog_and_keep_closes_it(
    live_server: LiveServer, browser: Browser
) -> None:
    services = live_server.services
    world = await make_world(services, mentor_email="mona@example.org")
    async with services.db.session() as db:
        meeting = await booking.schedule_meeting(
            db,
            services.meetings,
            await viewer_of(services, world.mentor),
            connection_id=world.connection,
            start=weekday_slot(),
            duration_minutes=30,
            title="Weekly sync",
        )
    page = await browser.new_page()
    try:
        await sign_in(page, live_server, "mona@example.org")
        await page.goto(live_server.at(f"/meetings/{meeting.id}"))
        await page.evaluate("window.tandemMarker = 'still here'")
        await page.get_by_role("link", name="Cancel the meeting").click()

        dialog = page.get_by_role("dialog", name="Cancel this meeting?")
        await expect(dialog).to_be_visible()
        assert await page.evaluate("window.tandemMarker") == "still here"  # no page load
        await expect(dialog).to_contain_text("Manu Mentee get a cancellation email")
        await dialog.get_by_role("button", name="Keep the meeting").click()
        await expect(dialog).to_be_hidden()

        await page.get_by_role("link", name="Cancel the meeting").click()
        dialog = page.get_by_role("dialog", name="Cancel this meeting?")
        await dialog.get_by_label("Message for everyone").fill("Sorry, something came up.")
        await dialog.get_by_role("button", name="Yes, cancel the meeting").click()
        await expect(page.get_by_role("status")).to_contain_text("The meeting is cancelled")
        await expect(page.locator("h1 .tag.cancelled")).to_have_text("Cancelled")
    finally:
        await page.close()
    async with services.db.session() as db:
        row = await booking.get_meeting(db, await user(services, world.mentor), meeting.id)
        assert row.status == MeetingStatus.CANCELLED
