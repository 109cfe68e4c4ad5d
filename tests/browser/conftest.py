"""Fixtures for browser tests: the real app served over HTTP, and headless Chromium.

- ``live_server``: a fresh migrated SQLite database and the app on uvicorn in a thread
  (``emulators.runner.BackgroundServer``) on a free loopback port. The app builds its
  own services in its lifespan, on the server's event loop; ``live_server.services`` is a
  second set (``server.app.build_services``) on the test's loop over the same database,
  for seeding rows with ``tests.conftest.create_user`` and friends. ``base_url`` in the
  settings equals the served URL, so absolute links and OAuth redirects point back here.
- ``browser``: Chromium from /usr/bin/chromium driven by Playwright's async API; every
  test is skipped, with the reason, when it is missing.
- ``sign_in(page, live_server, email)``: logs in through the real form.

Mark browser tests ``@pytest.mark.browser``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from emulators.runner import BackgroundServer, free_port
from server.app import create_app
from server.config import Settings
from server.wiring import AppServices, build_services, close_services
from tests.conftest import TEST_PASSWORD, make_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Checked once at import: async fixtures should not touch the file system.
HAVE_CHROMIUM = shutil.which(str(CHROMIUM)) is not None


@dataclass(frozen=True, slots=True)
class LiveServer:
    url: str  # e.g. http://127.0.0.1:41234, no trailing slash
    settings: Settings
    services: AppServices  # for seeding data from the test; not the server's own

    def at(self, path: str) -> str:
        return self.url + path


@pytest.fixture
async def live_server(tmp_path: Path, sqlite_url: str) -> AsyncIterator[LiveServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path, sqlite_url, base_url=url)
    server = BackgroundServer(create_app(settings), port=port).start()
    seed = build_services(settings)
    try:
        yield LiveServer(url, settings, seed)
    finally:
        await close_services(seed)
        server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def sign_in(
    page: Page, server: LiveServer, email: str, password: str = TEST_PASSWORD
) -> None:
    """Sign in through the login form and wait for the page it leads to."""
    await page.goto(server.at("/login"))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Sign in").click()
    if "/login" in page.url:
        raise AssertionError(f"sign-in as {email} failed: {await page.inner_text('main')}")
