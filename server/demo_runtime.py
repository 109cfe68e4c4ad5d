"""``tandem demo``: everything on one machine — SQLite in the data folder, the Google and
Microsoft emulators (with a Microsoft 365 tenant and a Google Workspace domain to
integrate), a real CalDAV server (Radicale), demo people with calendars — then prints the
URL, the logins and what to enter on Manage → Integrations, and serves.

The emulators keep their state in memory, so the demo database is recreated on each start
(under ``DATA_DIR/demo``) to stay consistent with them.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import random
import shutil
import signal
import ssl
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from server.config import Settings

DEMO_CALDAV_PASSWORD = "demo-app-password"  # noqa: S105 - the local demo's CalDAV login

# Who starts with which calendar already connected (others connect by clicking through).
PRECONNECTED = {
    "maya.mentor@demo.tandem.test": "google",
    "mo.mentee@demo.tandem.test": "microsoft",
    "nia.mentor@demo.tandem.test": "icloud",
    "sam@demo.tandem.test": "google",
    "lee@demo.tandem.test": "microsoft",
    "ana@demo.tandem.test": "google",
    "ben@demo.tandem.test": "icloud",
    "eva@demo.tandem.test": "google",
    # Replaced by the organization's calendar once the admin integrates Google Workspace.
    "hugo@fabrikam.demo.tandem.test": "google",
}


def _demo_events(seed: str) -> list[tuple[datetime, datetime]]:
    """A fortnight of plausible busy times (deterministic per person)."""
    rng = random.Random(seed)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    events = []
    for day in range(14):
        for _ in range(rng.randint(1, 4)):
            start = today + timedelta(
                days=day, hours=rng.randint(6, 19), minutes=rng.choice([0, 30])
            )
            events.append((start, start + timedelta(minutes=rng.choice([30, 60, 90]))))
    return events


@dataclass
class DemoBackends:
    """The stand-ins a demo runs against, and the settings that point Tandem at them."""

    settings: Settings
    google: Any
    microsoft: Any
    radicale: Any

    def stop(self) -> None:
        self.radicale.stop()
        self.microsoft.stop()
        self.google.stop()


GOOGLE_KEY_FILE = "google-workspace-key.json"


def seed_google_workspace(state: Any, demo_dir: Path) -> Path:
    """Fabrikam's Workspace in the Google emulator, with its admin's domain-wide delegation
    already added for the service account; returns the path of the JSON key file the demo
    admin uploads (owner-only: it is a private key, if only an emulator's)."""
    from emulators.google import seed_workspace
    from server.providers.google_service_account import DELEGATION_SCOPE_LIST
    from server.services import demo

    local_parts = [
        email.split("@")[0] for email, *_ in demo.PEOPLE if email.endswith(demo.FABRIKAM_DOMAIN)
    ]
    account = seed_workspace(
        state,
        demo.FABRIKAM_DOMAIN,
        local_parts,
        act_as=demo.FABRIKAM_ACT_AS.split("@")[0],
        delegated_scopes=DELEGATION_SCOPE_LIST,
    )
    state.deny_free_busy(demo.FABRIKAM_DENIED)
    key_path = demo_dir / GOOGLE_KEY_FILE
    key_path.touch(mode=0o600)
    key_path.write_text(json.dumps(account.key_json(), indent=2))
    return key_path


def start_backends(demo_dir: Path, base_url: str) -> DemoBackends:
    """The Google and Microsoft emulators and Radicale, seeded with every demo person's
    accounts and busy times; ``settings`` points Tandem at them.

    No certificate warning in the browser: Microsoft's sign-in page is served over plain
    http on loopback (Tandem's own calls to the emulator keep TLS), Google's emulator and
    Radicale speak plain http anyway. Every demo person has a Radicale calendar, so the
    iCal form works for anyone, not only those connected through it at start-up.
    """
    from emulators.google import start_google_emulator
    from emulators.microsoft import start_microsoft_emulator
    from emulators.radicale import start_radicale
    from server.services import demo

    people = [email for email, *_ in demo.PEOPLE]
    google = start_google_emulator(redirect_uris=[f"{base_url}/calendar/callback/google"])
    microsoft = start_microsoft_emulator(demo_dir / "microsoft-ca", browser_over_http=True)
    radicale = start_radicale(
        demo_dir / "radicale", users={e: DEMO_CALDAV_PASSWORD for e in people}
    )
    for email in (demo.CONTOSO_IT_ADMIN, demo.CONTOSO_SERVICE_ACCOUNT):
        microsoft.state.add_account(email)
    microsoft.state.add_tenant([demo.CONTOSO_DOMAIN], admin=demo.CONTOSO_IT_ADMIN)
    seed_google_workspace(google.state, demo_dir)
    for email in people:
        google.state.add_account(email)
        microsoft.state.add_account(email, personal=email.startswith("mo."))
        for index, (start, end) in enumerate(_demo_events(email)):
            google.state.add_event(
                email,
                {
                    "summary": "Private",
                    "start": {"dateTime": start.isoformat()},
                    "end": {"dateTime": end.isoformat()},
                },
            )
            microsoft.state.add_event(
                email,
                subject="Private",
                start=start,
                end=end,
                show_as="busy" if index % 3 else "tentative",
            )
        radicale.put_calendar(
            email, DEMO_CALDAV_PASSWORD, "Home", _ics(_demo_events(email + "caldav"))
        )
    overrides: dict[str, Any] = {
        "env": "demo",
        "data_dir": demo_dir,
        "database_url": f"sqlite+aiosqlite:///{demo_dir / 'tandem.db'}",
        "base_url": base_url,
        "caldav_allow_private_hosts": True,
        "caldav_default_url": radicale.url,
    }
    for item in (google, microsoft):
        for env_name, value in item.settings_overrides().items():
            overrides[env_name.removeprefix("TANDEM_").lower()] = value
    microsoft.state.deny_app_access(demo.CONTOSO_DENIED)
    return DemoBackends(Settings(**overrides), google, microsoft, radicale)


def instructions(settings: Settings, logins: list[Any], caldav_url: str) -> list[str]:
    """What ``tandem demo`` prints: the URL, the logins, and how to add a person."""
    from server.services import demo
    from server.services.calendars.status import PROVIDER_LABELS

    lines = [
        f"Tandem demo: {settings.base_url}",
        f"Sign in with any of these (password: {demo.DEMO_PASSWORD}):",
    ]
    for login in logins:
        connected = PRECONNECTED.get(login.email)
        label = PROVIDER_LABELS.get(connected or "", "")
        note = f", {label} calendar connected" if connected else ""
        lines.append(f"  {login.email:<36} {login.role}{note}")
    lines += [
        f"Google/Microsoft consent pages list the demo accounts; iCal form: server {caldav_url},",
        f"  user name = the demo email, app-specific password = {DEMO_CALDAV_PASSWORD}",
        "Add a person to this running demo (its data folder is recreated on each start):",
        f"  TANDEM_DATA_DIR={settings.data_dir} tandem user create --email E --name N --password P",
        "Organization-wide calendars: as admin@demo.tandem.test open Manage → Integrations, "
        f"integrate Microsoft Exchange with service account {demo.CONTOSO_SERVICE_ACCOUNT}; "
        f"on the consent page enter {demo.CONTOSO_IT_ADMIN}. Its access policy denies "
        f"{demo.CONTOSO_DENIED}.",
        f"  Google Calendar: choose the key file {settings.data_dir / GOOGLE_KEY_FILE} (or paste "
        f"its contents), domain {demo.FABRIKAM_DOMAIN}, account to act as {demo.FABRIKAM_ACT_AS}, "
        "then Verify and integrate (the emulator's Workspace admin has already added the "
        f"domain-wide delegation). {demo.FABRIKAM_DENIED}'s calendar is hidden by policy.",
        "Freshness: Google and Microsoft changes show within about 5 s of their push notification;",
        "  CalDAV (the iCal form) within a minute: its calendars are checked every "
        f"{settings.caldav_check_seconds} s for recently active users.",
    ]
    return lines


def run_demo(*, host: str, port: int) -> None:
    import uvicorn

    from server.app import create_app
    from server.web.http_server import uvicorn_options

    data_dir = Path(os.environ.get("TANDEM_DATA_DIR", "./var")).resolve()
    demo_dir = data_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    demo_dir.mkdir(parents=True)
    backends = start_backends(demo_dir, f"http://{host}:{port}")
    atexit.register(backends.radicale.stop)
    # uvicorn re-raises SIGTERM once it has shut down; by default that kills the process
    # before atexit runs and leaves Radicale (a child process) behind.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    settings = backends.settings
    logins = asyncio.run(prepare(settings, backends.microsoft.ca_path))
    print("\n".join(instructions(settings, logins, backends.radicale.url)))
    options = {**uvicorn_options(settings), "log_level": "warning"}
    uvicorn.run(create_app(settings), host=host, port=port, **options)


def _ics(events: list[tuple[datetime, datetime]]) -> str:
    """One VCALENDAR holding one private-looking event per busy time."""
    fmt = "%Y%m%dT%H%M%SZ"
    body = "".join(
        "BEGIN:VEVENT\r\n"
        f"UID:{uuid.uuid4()}@demo\r\nDTSTAMP:{start.strftime(fmt)}\r\n"
        f"DTSTART:{start.strftime(fmt)}\r\nDTEND:{end.strftime(fmt)}\r\n"
        "SUMMARY:Private\r\nEND:VEVENT\r\n"
        for start, end in events
    )
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Tandem demo//EN\r\n{body}END:VCALENDAR\r\n"


async def prepare(settings: Settings, ms_ca: Path) -> list[Any]:
    """Migrate, seed, and connect the pre-connected people through the real flows."""
    from emulators.google import consent as google_consent
    from emulators.microsoft import consent as microsoft_consent
    from server.db import migrate
    from server.models.enums import ProviderName
    from server.services import demo
    from server.services.calendars import connect as calendar_connect
    from server.services.people import accounts
    from server.services.people.sessions import Viewer
    from server.wiring import build_services, close_services

    services = build_services(settings)
    browser = httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ms_ca)))
    try:
        await migrate(services.db.engine)
        async with services.db.session() as db:
            logins = await demo.seed(db)
        for email, provider in PRECONNECTED.items():
            async with services.db.session() as db:
                user = await accounts.get_by_email(db, email)
                assert user is not None
                viewer = Viewer(user=user, actor=user)
                if provider == "icloud":
                    await calendar_connect.connect_with_password(
                        db,
                        services.calendar,
                        viewer,
                        username=email,
                        password=DEMO_CALDAV_PASSWORD,
                        server_url=settings.caldav_default_url,
                    )
                    continue
                name = ProviderName(provider)
                url = await calendar_connect.start_oauth(db, services.calendar, viewer, name)
                await db.commit()
                consent = google_consent if name == ProviderName.GOOGLE else microsoft_consent
                params = await consent(browser, url, email)
                await calendar_connect.finish_oauth(db, services.calendar, viewer, name, params)
        return logins
    finally:
        await browser.aclose()
        await close_services(services)
