"""Every page at phone width (390x844) and at desktop width: nothing wider than the
screen, and no axe-core violations; on a phone the header folds into a menu from which
Sign out is reachable."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, BrowserContext, expect

from tests.browser.conftest import LiveServer, sign_in
from tests.browser.site_tour import NOT_PAGES, axe_violations, page_routes, seed_site, tour

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


async def _context(browser: Browser, viewport: dict[str, int]) -> BrowserContext:
    return await browser.new_context(
        viewport=viewport,  # type: ignore[arg-type]
        timezone_id="Europe/Paris",
        locale="en-GB",
        # Not ``is_mobile``: a mobile layout viewport widens to fit overflowing content,
        # which would hide exactly the overflow this test looks for.
    )


async def test_every_page_fits_a_phone_and_passes_axe(
    live_server: LiveServer, browser: Browser
) -> None:
    site = await seed_site(live_server.services)
    visits = tour(site, live_server.services)
    problems: list[str] = []
    for viewport in (PHONE, DESKTOP):
        width = viewport["width"]
        # Signed out first: the login page.
        context = await _context(browser, viewport)
        page = await context.new_page()
        await page.goto(live_server.at("/login"))
        problems += [f"{width}px /login: {v}" for v in await axe_violations(page)]
        for email, paths in visits.items():
            await sign_in(page, live_server, email)
            for path in paths:
                response = await page.goto(live_server.at(path))
                assert response is not None
                if response.status != 200:
                    problems.append(f"{email} {path}: HTTP {response.status}")
                    continue
                scroll, inner = await page.evaluate(
                    "[document.documentElement.scrollWidth, window.innerWidth]"
                )
                assert inner == width
                if scroll > inner:
                    problems.append(f"{width}px {path}: {scroll}px wide in a {inner}px window")
                problems += [f"{width}px {path}: {v}" for v in await axe_violations(page)]
            await context.clear_cookies()
        await context.close()
    assert not problems, "\n".join(problems)


def test_the_tour_covers_every_get_route(live_server: LiveServer) -> None:
    """A new page is in the tour without anyone adding it; only non-pages are left out."""
    pages = page_routes(live_server.services)
    assert "/connections/{connection_id}/schedule" in pages
    assert "/admin/programs/{program_id}/settings" in pages
    assert not set(NOT_PAGES) & set(pages)


async def test_phone_header_is_a_menu_with_sign_out(
    live_server: LiveServer, browser: Browser
) -> None:
    site = await seed_site(live_server.services)
    context = await _context(browser, PHONE)
    page = await context.new_page()
    try:
        await sign_in(page, live_server, site.participant)
        sign_out = page.get_by_role("button", name="Sign out")
        await expect(sign_out).to_be_hidden()  # folded away until the menu opens
        await page.get_by_text("Menu", exact=True).click()
        await expect(page.get_by_role("navigation", name="Main")).to_contain_text("My meetings")
        async with page.expect_navigation():
            await sign_out.click()
        await expect(page.locator("main")).to_contain_text("You are signed out.")
    finally:
        await context.close()


async def test_working_on_behalf_banner_fits_a_phone(
    live_server: LiveServer, browser: Browser
) -> None:
    site = await seed_site(live_server.services)
    context = await _context(browser, PHONE)
    page = await context.new_page()
    try:
        await sign_in(page, live_server, site.global_admin)
        await page.goto(live_server.at("/admin"))
        await page.get_by_label("Reason for working on behalf of Pat Participant").first.fill(
            "Checking the phone layout"
        )
        async with page.expect_navigation():
            await page.get_by_role("button", name="Work on behalf of Pat Participant").first.click()
        banner = page.get_by_role("status").filter(has_text="Everything you do is recorded")
        await expect(banner).to_be_visible()
        for path in ("/", "/meetings", f"/polls/{site.ids['poll_id'][0]}"):
            await page.goto(live_server.at(path))
            await expect(banner).to_be_visible()
            scroll, inner = await page.evaluate(
                "[document.documentElement.scrollWidth, window.innerWidth]"
            )
            assert scroll <= inner == PHONE["width"], path
            assert await axe_violations(page) == [], path
        await expect(page.get_by_role("button", name="End working on behalf")).to_be_visible()
    finally:
        await context.close()
