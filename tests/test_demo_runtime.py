"""``tandem demo``'s rough edges: Microsoft's sign-in page over plain http (no certificate
warning) while Tandem's own calls keep TLS, a calendar on the demo CalDAV server for every
person, one newcomer, and a printed ``tandem user create`` that reaches the running demo."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from server.demo_runtime import (
    DEMO_CALDAV_PASSWORD,
    PRECONNECTED,
    DemoBackends,
    instructions,
    prepare,
    start_backends,
)
from server.models.enums import CalendarStatus, ProviderName
from server.services import demo
from server.services.calendars import connect as calendar_connect
from server.services.calendars import status as calendar_status
from server.services.people import accounts
from server.services.people.sessions import Viewer
from server.web.guard import content_security_policy
from server.wiring import build_services, close_services

ROOT = Path(__file__).resolve().parent.parent


def _user_create(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """The printed command, as a person would run it (no other ``TANDEM_`` setting)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    env["TANDEM_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "user",
            "create",
            "--email",
            "added@demo.tandem.test",
            "--name",
            "Added Later",
            "--password",
            "a long enough password",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[DemoBackends]:
    running = start_backends(tmp_path / "demo", "http://127.0.0.1:8765")
    try:
        yield running
    finally:
        running.stop()


async def test_demo_has_no_certificate_warning_and_every_calendar_works(
    backends: DemoBackends,
) -> None:
    settings = backends.settings
    assert urlsplit(settings.microsoft_authority).scheme == "https"  # Tandem's calls: TLS
    assert urlsplit(settings.microsoft_graph_base).scheme == "https"
    logins = await prepare(settings, backends.microsoft.ca_path)
    services = build_services(settings)
    try:
        async with services.db.session() as db:
            # Those pre-connected through the Microsoft consent page (served over http).
            for email, provider in PRECONNECTED.items():
                user = await accounts.get_by_email(db, email)
                assert user is not None
                connection = await calendar_status.connection_for(db, user.id)
                assert connection is not None and connection.status == CalendarStatus.CONNECTED
                assert connection.provider == ProviderName(provider)
            kim = await accounts.get_by_email(db, "kim@demo.tandem.test")
            assert kim is not None
            url = await calendar_connect.start_oauth(
                db, services.calendar, Viewer(user=kim, actor=kim), ProviderName.MICROSOFT
            )
            await db.rollback()
        browser_page = urlsplit(url)
        assert (browser_page.scheme, browser_page.hostname) == ("http", "127.0.0.1")
        # The connect form's redirect to that page is allowed by the CSP.
        assert f"{browser_page.scheme}://{browser_page.netloc}" in content_security_policy(settings)

        # Everyone not connected at start-up can use the iCal form with the printed login.
        others = [e for e, *_ in demo.PEOPLE if e not in PRECONNECTED]
        for email in others:
            async with services.db.session() as db:
                user = await accounts.get_by_email(db, email)
                assert user is not None
                connection = await calendar_connect.connect_with_password(
                    db,
                    services.calendar,
                    Viewer(user=user, actor=user),
                    username=email,
                    password=DEMO_CALDAV_PASSWORD,
                    server_url=None,
                )
                assert connection.status == CalendarStatus.CONNECTED, email
        async with services.db.session() as db:
            newcomer = await accounts.get_by_email(db, demo.NEWCOMER)
            assert newcomer is not None and not newcomer.profile_completed
            completed = [
                u.profile_completed
                for e, *_ in demo.PEOPLE
                if e != demo.NEWCOMER and (u := await accounts.get_by_email(db, e)) is not None
            ]
            assert completed == [True] * (len(demo.PEOPLE) - 1)
    finally:
        await close_services(services)
    assert demo.NEWCOMER in {login.email for login in logins}

    # The printed command adds a person to this demo's database, not to ./var.
    printed = instructions(settings, logins, backends.radicale.url)
    assert any("mo.mentee" in line and "Office 365 / Outlook.com" in line for line in printed)
    assert any(demo.NEWCOMER in line and "first sign-in" in line for line in printed)
    command = next(line.strip() for line in printed if "tandem user create" in line)
    assert command.startswith(f"TANDEM_DATA_DIR={settings.data_dir} tandem user create")
    result = _user_create(settings.data_dir)
    assert result.returncode == 0, result.stderr
    services = build_services(settings)
    try:
        async with services.db.session() as db:
            added = await accounts.get_by_email(db, "added@demo.tandem.test")
        assert added is not None and str(added.id) == result.stdout.strip()
    finally:
        await close_services(services)
