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
import ssl
import uuid
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
    key_path = demo_dir / "google-workspace-key.json"
    key_path.touch(mode=0o600)
    key_path.write_text(json.dumps(account.key_json(), indent=2))
    return key_path


def run_demo(*, host: str, port: int) -> None:
    import uvicorn

    from emulators.google import start_google_emulator
    from emulators.microsoft import start_microsoft_emulator
    from emulators.radicale import start_radicale
    from server.app import create_app
    from server.services import demo

    data_dir = Path(os.environ.get("TANDEM_DATA_DIR", "./var")).resolve()
    demo_dir = data_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    demo_dir.mkdir(parents=True)
    base_url = f"http://{host}:{port}"

    people = [email for email, *_ in demo.PEOPLE]
    google = start_google_emulator(redirect_uris=[f"{base_url}/calendar/callback/google"])
    microsoft = start_microsoft_emulator(demo_dir / "microsoft-ca")
    radicale = start_radicale(
        demo_dir / "radicale", users={e: DEMO_CALDAV_PASSWORD for e in people}
    )
    atexit.register(radicale.stop)
    for email in (demo.CONTOSO_IT_ADMIN, demo.CONTOSO_SERVICE_ACCOUNT):
        microsoft.state.add_account(email)
    microsoft.state.add_tenant([demo.CONTOSO_DOMAIN], admin=demo.CONTOSO_IT_ADMIN)
    google_key = seed_google_workspace(google.state, demo_dir)
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
    settings = Settings(**overrides)
    microsoft.state.deny_app_access(demo.CONTOSO_DENIED)
    for email in people:
        if PRECONNECTED.get(email) == "icloud":
            radicale.make_calendar(email, DEMO_CALDAV_PASSWORD, "Home")
            for start, end in _demo_events(email + "caldav"):
                radicale.add_event(email, DEMO_CALDAV_PASSWORD, "Home", _ics(start, end))

    logins = asyncio.run(_prepare(settings, microsoft.ca_path))
    print(f"Tandem demo: {base_url}")
    print(f"Sign in with any of these (password: {demo.DEMO_PASSWORD}):")
    for login in logins:
        connected = PRECONNECTED.get(login.email)
        note = f", {connected} calendar connected" if connected else ""
        print(f"  {login.email:<36} {login.role}{note}")
    print(
        f"Google/Microsoft consent pages list the demo accounts; iCloud form: server {radicale.url},"
    )
    print(f"  user name = the demo email, app-specific password = {DEMO_CALDAV_PASSWORD}")
    print(
        "Organization-wide calendars: as admin@demo.tandem.test open Manage → Integrations, "
        f"integrate Microsoft Exchange with service account {demo.CONTOSO_SERVICE_ACCOUNT}; "
        f"on the consent page enter {demo.CONTOSO_IT_ADMIN}. Its access policy denies "
        f"{demo.CONTOSO_DENIED}."
    )
    print(
        f"  Google Calendar: choose the key file {google_key} (or paste its contents), "
        f"domain {demo.FABRIKAM_DOMAIN}, account to act as {demo.FABRIKAM_ACT_AS}, then "
        "Verify and integrate (the emulator's Workspace admin has already added the "
        f"domain-wide delegation). {demo.FABRIKAM_DENIED}'s calendar is hidden by policy."
    )
    from server.web.http_server import uvicorn_options

    options = {**uvicorn_options(settings), "log_level": "warning"}
    uvicorn.run(create_app(settings), host=host, port=port, **options)


def _ics(start: datetime, end: datetime) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Tandem demo//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uuid.uuid4()}@demo\r\nDTSTAMP:{start.strftime(fmt)}\r\nDTSTART:{start.strftime(fmt)}\r\n"
        f"DTEND:{end.strftime(fmt)}\r\nSUMMARY:Private\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


async def _prepare(settings: Settings, ms_ca: Path) -> list[Any]:
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
