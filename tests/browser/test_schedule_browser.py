"""The pair scheduling page in Chromium: htmx week navigation without a page load, a
free slot reached with the keyboard announces what it books, busy cells say whose time
is busy (seen and heard), and a phone gets a list of days."""

from __future__ import annotations

import re
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import LiveServer, sign_in
from tests.scheduling_data import add_busy, connect_calendar, local, make_pair, next_monday

pytestmark = pytest.mark.browser

PARIS = "Europe/Paris"


def _first_common_slot(monday: date) -> str:
    """The accessible name of the week's first slot in reading order (row by row): the
    earliest half hour inside 08:00-20:00 both in Paris (Ana) and New York (Maya)."""
    new_york = ZoneInfo("America/New_York")
    for minute in range(8 * 60, 20 * 60, 30):
        start = local(monday, minute // 60, minute % 60, PARIS)
        there, end_there = (
            start.astimezone(new_york),
            (start + timedelta(minutes=30)).astimezone(new_york),
        )
        if there.hour >= 8 and (end_there.hour, end_there.minute) <= (20, 0):
            return f"Book Mon {monday.day} {monday:%b} {minute // 60:02d}:{minute % 60:02d}-" + (
                f"{(minute + 30) // 60:02d}:{(minute + 30) % 60:02d}"
            )
    raise AssertionError("no common hour")


async def test_next_week_swaps_in_place_and_slots_are_keyboard_reachable(
    live_server: LiveServer, browser: Browser
) -> None:
    pair = await make_pair(live_server.services)
    await connect_calendar(live_server.services, pair.mentor)
    await connect_calendar(live_server.services, pair.mentee)
    monday = next_monday(PARIS)
    following = monday + timedelta(days=7)
    context = await browser.new_context(timezone_id=PARIS, locale="en-GB")
    page = await context.new_page()
    try:
        await sign_in(page, live_server, "ana@example.org")
        await page.goto(
            live_server.at(f"/connections/{pair.connection}/schedule?week={monday.isoformat()}")
        )
        heading = page.locator("#week-heading")
        await expect(heading).to_have_text(f"Week of Monday {monday.day} {monday:%B %Y}")
        # A marker that a full page load would wipe out.
        await page.evaluate("window.tandemMarker = 'still here'")

        await page.get_by_role("link", name="Next week").click()

        await page.wait_for_url(re.compile(rf"week={following.isoformat()}"))
        await expect(heading).to_have_text(f"Week of Monday {following.day} {following:%B %Y}")
        assert await page.evaluate("window.tandemMarker") == "still here"
        assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1
        assert await page.locator("h1").count() == 1  # the partial replaced only the week

        expected = _first_common_slot(following)
        first_slot = page.locator("a.slot").first
        assert await first_slot.get_attribute("aria-label") == expected
        for _ in range(60):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement.classList.contains('slot')"):
                break
        focused = page.get_by_role("link", name=expected, exact=True)
        await expect(focused).to_be_focused()
        href = await focused.get_attribute("href")
        assert href is not None
        assert href.startswith(f"/connections/{pair.connection}/meetings/new?start=")
        assert href.endswith("&duration=30")

        # The meeting-length form swaps the week in place too, keeping the week shown.
        await page.get_by_label("Meeting length").select_option("60")
        await page.get_by_role("button", name="Show times").click()
        await page.wait_for_url(re.compile(r"duration=60"))
        assert f"week={following.isoformat()}" in page.url
        await expect(page.locator("a.slot").first).to_have_attribute(
            "href", re.compile(r"duration=60$")
        )
        assert await page.evaluate("window.tandemMarker") == "still here"
    finally:
        await context.close()


async def test_busy_cells_say_who_and_phones_get_a_day_list(
    live_server: LiveServer, browser: Browser
) -> None:
    services = live_server.services
    pair = await make_pair(services)
    await connect_calendar(services, pair.mentor)
    await connect_calendar(services, pair.mentee)
    tuesday = next_monday(PARIS) + timedelta(days=1)
    # Ana 16:00-17:00, Maya 16:30-18:00 (Paris): 16:00 me, 16:30 both, 17:00 and 17:30 Maya.
    await add_busy(
        services, pair.mentor, local(tuesday, 16, 0, PARIS), local(tuesday, 17, 0, PARIS)
    )
    await add_busy(
        services, pair.mentee, local(tuesday, 16, 30, PARIS), local(tuesday, 18, 0, PARIS)
    )
    context = await browser.new_context(timezone_id=PARIS, locale="en-GB")
    page = await context.new_page()
    try:
        await sign_in(page, live_server, "ana@example.org")
        await page.goto(
            live_server.at(f"/connections/{pair.connection}/schedule?week={tuesday.isoformat()}")
        )
        table = page.get_by_role("table")
        row = table.get_by_role("row", name=re.compile(r"^16:30 "))
        both = row.get_by_role("cell", name="you and Maya are busy", exact=True)
        await expect(both).to_have_count(1)
        await expect(both.locator("[aria-hidden=true]")).to_have_text("Both busy")  # seen, not read
        mine = table.get_by_role("cell", name="you are busy", exact=True)
        theirs = table.get_by_role("cell", name="Maya is busy", exact=True)
        await expect(mine).to_have_count(1)
        await expect(theirs).to_have_count(2)
        looks = {
            await cell.evaluate(
                "c => getComputedStyle(c).backgroundImage + getComputedStyle(c).backgroundColor"
            )
            for cell in (both, mine.first, theirs.first)
        }
        assert len(looks) == 3  # three different fills, and the legend names each
        for words in ("You're busy", "Maya busy", "Both busy"):
            await expect(page.locator("ul.busy-legend")).to_contain_text(words)
        header = table.get_by_role("columnheader", name="Maya's time (America/New_York)")
        await expect(header).to_be_visible()
        await expect(page.locator("#day-list")).to_be_hidden()

        await page.set_viewport_size({"width": 390, "height": 800})
        await expect(page.locator(".week-scroll")).to_be_hidden()
        day = page.get_by_role("region", name=f"Tue {tuesday.day} {tuesday:%b}")
        await expect(
            day.get_by_role("link", name=re.compile(r"^Book Tue .* 18:00-18:30$"))
        ).to_be_visible()
        wide = await page.evaluate(
            "[...document.querySelectorAll('main *')].filter(e => e.offsetParent !== null"
            " && e.getBoundingClientRect().right > 391).map(e => e.tagName + '.' + e.className)"
        )
        assert wide == []  # nothing of the page's own content runs off a phone's screen
    finally:
        await context.close()
