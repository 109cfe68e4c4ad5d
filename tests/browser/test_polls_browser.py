"""Poll pages in Chromium: the tally updates live while the page is open, and the
suggestions refresh in place when the meeting length changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.async_api import Browser, expect

from server.models.enums import PollAnswerValue
from server.services.polls import rules as poll_rules
from tests.browser.conftest import LiveServer, sign_in
from tests.polls_support import make_circle, make_poll, next_monday, user

pytestmark = pytest.mark.browser


async def test_the_tally_updates_while_the_page_is_open(
    live_server: LiveServer, browser: Browser
) -> None:
    services = live_server.services
    circle = await make_circle(services, size=3)
    poll = await make_poll(services, circle, slots=2, title="Live tally")
    context = await browser.new_context(timezone_id="UTC", locale="en-GB")
    page = await context.new_page()
    try:
        await sign_in(page, live_server, circle.emails[circle.organizer])
        await page.goto(live_server.at(f"/polls/{poll.id}"))
        await page.evaluate("window.tandemMarker = 'still here'")
        first_row = page.locator("#tally tbody tr").first
        await expect(first_row).not_to_contain_text("Best slot")

        ana = await user(services, circle.members[1])
        async with services.db.session() as db:
            details = await poll_rules.poll_details(db, ana, poll.id)
            answers = [(s.id, PollAnswerValue.YES) for s in details.slots]
            await poll_rules.answer_poll(db, ana, poll.id, answers)
            await db.commit()

        await expect(first_row).to_contain_text("Best slot", timeout=12_000)
        await expect(first_row).to_contain_text("Ana")
        await expect(page.locator("#tally")).to_contain_text("1 of 3 invitees have answered.")
        assert await page.evaluate("window.tandemMarker") == "still here"  # no reload
    finally:
        await context.close()


async def test_suggestions_refresh_in_place(live_server: LiveServer, browser: Browser) -> None:
    services = live_server.services
    circle = await make_circle(services, size=2)
    day = next_monday(weeks=2).date()
    context = await browser.new_context(timezone_id="UTC", locale="en-GB")
    page = await context.new_page()
    try:
        await sign_in(page, live_server, circle.emails[circle.organizer])
        await page.goto(
            live_server.at(
                f"/groups/{circle.group}/polls/new?from={day.isoformat()}&to={day.isoformat()}&duration=60"
            )
        )
        await page.get_by_label("Title").fill("Kept while suggestions change")
        await page.evaluate("window.tandemMarker = 'still here'")
        suggestions = page.locator("#suggestions")
        await expect(suggestions).to_contain_text("08:00\u201309:00")
        await page.get_by_label("Length").select_option("30")
        await expect(suggestions.locator('input[name="duration"]')).to_have_value("30")
        await expect(suggestions).to_contain_text("08:00\u201308:30")
        await expect(suggestions).not_to_contain_text("08:00\u201309:00")
        assert await page.evaluate("window.tandemMarker") == "still here"
        assert await page.get_by_label("Title").input_value() == "Kept while suggestions change"
    finally:
        await context.close()


async def test_ticked_slots_stay_ticked_when_the_range_or_length_changes(
    live_server: LiveServer, browser: Browser
) -> None:
    services = live_server.services
    circle = await make_circle(services, size=2)
    day = next_monday(weeks=2).date()
    context = await browser.new_context(timezone_id="UTC", locale="en-GB")
    page = await context.new_page()
    try:
        await sign_in(page, live_server, circle.emails[circle.organizer])
        await page.goto(
            live_server.at(
                f"/groups/{circle.group}/polls/new?from={day.isoformat()}&to={day.isoformat()}&duration=60"
            )
        )
        suggestions = page.locator("#suggestions")
        await page.get_by_label("09:00\u201310:00", exact=False).first.check()
        await page.get_by_label("Length").select_option("30")
        await expect(suggestions.locator('input[name="duration"]')).to_have_value("30")
        # 09:00 is still suggested as a 30-minute slot, and still ticked.
        await expect(page.get_by_label("09:00\u201309:30", exact=False).first).to_be_checked()
        # Moving the range to a later week lists the tick as kept from before.
        later = (day + timedelta(days=7)).isoformat()
        await page.get_by_label("To").fill(later)
        await page.get_by_label("From").fill(later)
        kept = suggestions.get_by_role("group", name="Still ticked from before")
        await expect(kept).to_be_visible()
        await expect(kept.get_by_role("checkbox")).to_be_checked()
    finally:
        await context.close()
