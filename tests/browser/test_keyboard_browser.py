"""Keyboard only, in Chromium: booking from the pair grid and answering a poll, and a
focus ring that stands out (contrast at least 3:1 against what surrounds it).

Selectors are semantic (roles, labels, accessible names) so the tests survive changes
to the grid's markup."""

from __future__ import annotations

from datetime import date

import pytest
from playwright.async_api import Browser, Page, expect

from server.models import Meeting
from server.models.enums import PollAnswerValue
from server.services.polls import rules as poll_rules
from tests.browser.conftest import LiveServer, sign_in
from tests.browser.site_tour import seed_site
from tests.polls_support import make_circle, make_poll, user
from tests.scheduling_data import connect_calendar, make_pair, next_monday

pytestmark = pytest.mark.browser

FOCUSED = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const label = el.labels && el.labels.length ? el.labels[0].innerText : '';
    return {tag: el.tagName.toLowerCase(), type: el.type || '', name: el.getAttribute('aria-label')
        || label || el.innerText || el.value || '', checked: !!el.checked};
}"""


async def tab_until(page: Page, wanted: str, *, limit: int = 120) -> dict[str, str]:
    """Press Tab until the focused element's accessible text starts with ``wanted``."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(FOCUSED)
        if focused and str(focused["name"]).strip().startswith(wanted):
            return focused  # type: ignore[no-any-return]
    raise AssertionError(f"{limit} presses of Tab never reached {wanted!r}")


async def test_booking_with_the_keyboard_only(live_server: LiveServer, browser: Browser) -> None:
    pair = await make_pair(live_server.services)
    await connect_calendar(live_server.services, pair.mentor)
    await connect_calendar(live_server.services, pair.mentee)
    monday: date = next_monday("Europe/Paris")
    context = await browser.new_context(timezone_id="Europe/Paris", locale="en-GB")
    page = await context.new_page()
    try:
        await sign_in(page, live_server, "ana@example.org")
        await page.goto(
            live_server.at(f"/connections/{pair.connection}/schedule?week={monday.isoformat()}")
        )
        slot = await tab_until(page, "Book ")
        assert slot["tag"] == "a"
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        await tab_until(page, "Title")
        await page.keyboard.type("Planned by keyboard")
        await tab_until(page, "Book meeting")
        await page.keyboard.press("Enter")
        await expect(page.locator("main")).to_contain_text("The meeting is booked", timeout=10_000)
        await expect(page.get_by_role("heading", name="Planned by keyboard")).to_be_visible()
    finally:
        await context.close()
    async with live_server.services.db.session() as db:
        from sqlmodel import select

        titles = (await db.exec(select(Meeting.title))).all()
    assert titles == ["Planned by keyboard"]


async def test_answering_a_poll_with_the_keyboard_only(
    live_server: LiveServer, browser: Browser
) -> None:
    services = live_server.services
    circle = await make_circle(services, size=3)
    poll = await make_poll(services, circle, slots=2, title="Keyboard poll")
    ana = circle.members[1]
    context = await browser.new_context(timezone_id="UTC", locale="en-GB")
    page = await context.new_page()
    try:
        await sign_in(page, live_server, circle.emails[ana])
        await page.goto(live_server.at(f"/polls/{poll.id}"))
        # First slot: Tab reaches its first choice; Space picks "Yes".
        first = await tab_until(page, "Yes")
        assert first["type"] == "radio"
        await page.keyboard.press("Space")
        # Second slot: Tab to its group, then the arrow key moves to "If need be".
        await tab_until(page, "Yes")
        await page.keyboard.press("ArrowRight")
        moved = await page.evaluate(FOCUSED)
        assert moved["name"].strip() == "If need be" and moved["checked"]
        await tab_until(page, "Save my answers")
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
        await expect(page.locator("main")).to_contain_text("Your answers are saved")
    finally:
        await context.close()
    details = await _details(live_server, ana, poll.id)
    assert [details.answers_of(ana)[slot.id] for slot in details.slots] == [
        PollAnswerValue.YES,
        PollAnswerValue.IF_NEED_BE,
    ]


async def _details(live_server: LiveServer, user_id, poll_id):  # type: ignore[no-untyped-def]
    viewer = await user(live_server.services, user_id)
    async with live_server.services.db.session() as db:
        return await poll_rules.poll_details(db, viewer, poll_id)


RING = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    let node = el.parentElement, bg = null;
    while (node) {
        const c = getComputedStyle(node).backgroundColor;
        if (c && c !== 'transparent' && !c.endsWith(', 0)')) { bg = c; break; }
        node = node.parentElement;
    }
    return {ring: style.outlineColor, width: parseFloat(style.outlineWidth),
            style: style.outlineStyle, bg: bg || 'rgb(255, 255, 255)',
            what: el.tagName + ' ' + (el.innerText || el.name || el.id || '').slice(0, 30)};
}"""


def _luminance(css: str) -> float:
    """Relative luminance (WCAG 2.x) of an ``rgb(...)``/``rgba(...)`` colour."""
    parts = css[css.index("(") + 1 : css.index(")")].split(",")
    channels = []
    for raw in parts[:3]:
        c = float(raw) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = channels
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_formula() -> None:
    assert round(contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)"), 1) == 21.0
    assert contrast("rgb(255, 191, 71)", "rgb(255, 255, 255)") < 3  # the old yellow ring


async def test_focus_ring_contrast(live_server: LiveServer, browser: Browser) -> None:
    site = await seed_site(live_server.services)
    context = await browser.new_context()
    page = await context.new_page()
    problems: list[str] = []
    checked = 0
    try:
        await sign_in(page, live_server, site.participant)
        for path in (
            "/",
            "/profile/edit?tab=settings",
            f"/meetings/{site.ids['meeting_id'][0]}",
            f"/polls/{site.ids['poll_id'][0]}",
        ):
            await page.goto(live_server.at(path))
            for _ in range(15):
                await page.keyboard.press("Tab")
                ring = await page.evaluate(RING)
                if ring is None:  # past the last control: back to the page itself
                    break
                checked += 1
                ratio = contrast(ring["ring"], ring["bg"])
                if ring["style"] == "none" or ring["width"] < 2 or ratio < 3:
                    problems.append(f"{path} {ring['what']}: {ring} ({ratio:.2f}:1)")
    finally:
        await context.close()
    assert checked >= 30
    assert not problems, "\n".join(problems)
