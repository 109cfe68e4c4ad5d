"""Benchmark the batched organization sync; prints one JSON line per case.

Run with ``.venv/bin/python -m bench.org_sync [sizes...]`` (default 1000 5000). Each case
starts the provider's emulator, a fresh migrated SQLite database, seeds that many covered
people with two busy events each, integrates through the real admin consent, connects
everyone (``cover.reconcile``) and runs one full ``sync_integration``. Printed: provider
calls (counted by the emulator), seconds for connecting and for syncing, rows written
and the process's peak RSS (``resource.getrusage``, kilobytes on Linux).

Providers plug in through ``CASES``: Microsoft (Graph getSchedule, 20 people per call)
and Google Workspace (freeBusy through domain-wide delegation, 50 calendars per call;
integrated by uploading the key and verifying the delegation). Pass a provider name
(``microsoft``, ``google``) before the sizes to run only that one.

Google Workspace, measured on a shared 2-core machine (each size in its own process;
the 61-day window is two chunks, so calls = ceil(people / 50) x 2)::

    people  provider_calls  integrate_and_connect_s  sync_s  rows_written  peak_rss_kb
      1000              40                    1.278   1.054          2000       153324
      5000             200                    2.545   3.060         10000       199676
"""

from __future__ import annotations

import asyncio
import json
import resource
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import insert

from emulators.google import seed_workspace, start_google_emulator
from emulators.microsoft import admin_consent, start_microsoft_emulator
from server.config import Settings
from server.db import create_engine, migrate
from server.models import OrganizationIntegration, User
from server.providers.google_service_account import DELEGATION_SCOPE_LIST
from server.services.integrations import cover, setup, sync
from server.services.people.sessions import Viewer
from server.wiring import build_services, close_services


@dataclass
class Seeded:
    settings: dict[str, Any]
    integrate: Callable[[Any, Any, Viewer], Awaitable[OrganizationIntegration]]
    calls: Callable[[], int]
    stop: Callable[[], None]


def _microsoft(tmp: Path, domain: str, emails: list[str]) -> Seeded:
    running = start_microsoft_emulator(tmp)
    state = running.state
    tenant = str(uuid.uuid4())
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for name in ("it", "tandem"):
        state.add_account(f"{name}@{domain}", tenant_id=tenant)
    for index, email in enumerate(emails):
        state.add_account(email, tenant_id=tenant)
        for day in (1 + index % 20, 30 + index % 25):
            begin = start + timedelta(days=day, hours=index % 8)
            state.add_event(email, subject="x", start=begin, end=begin + timedelta(hours=1))
    state.add_tenant([domain], tenant_id=tenant, admin=f"it@{domain}")

    async def integrate(db: Any, deps: Any, viewer: Viewer) -> OrganizationIntegration:
        url = await setup.start_microsoft(
            db,
            deps,
            viewer,
            service_account=f"tandem@{domain}",
            redirect_uri="http://127.0.0.1/admin/integrations/microsoft/callback",
        )
        context = ssl.create_default_context(cafile=str(running.ca_path))
        async with httpx.AsyncClient(verify=context) as browser:
            reply = await admin_consent(browser, url, f"it@{domain}")
        return await setup.finish_microsoft(db, deps, viewer, reply)

    overrides = {
        k.removeprefix("TANDEM_").lower(): v for k, v in running.settings_overrides().items()
    }
    return Seeded(
        settings=overrides,
        integrate=integrate,
        calls=lambda: len(state.requests_to("/calendar/getSchedule", "POST")),
        stop=running.stop,
    )


def _google(tmp: Path, domain: str, emails: list[str]) -> Seeded:
    running = start_google_emulator()
    state = running.state
    account = seed_workspace(
        state,
        domain,
        [e.split("@")[0] for e in emails],
        delegated_scopes=DELEGATION_SCOPE_LIST,
    )
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for index, email in enumerate(emails):
        for day in (1 + index % 20, 30 + index % 25):
            begin = start + timedelta(days=day, hours=index % 8)
            state.add_event(
                email,
                {
                    "summary": "x",
                    "start": {"dateTime": begin.isoformat()},
                    "end": {"dateTime": (begin + timedelta(hours=1)).isoformat()},
                },
            )

    async def integrate(db: Any, deps: Any, viewer: Viewer) -> OrganizationIntegration:
        await setup.start_google(
            db,
            deps,
            viewer,
            key_text=json.dumps(account.key_json()),
            domain=domain,
            act_as=f"tandem@{domain}",
        )
        return await setup.verify_google(db, deps, viewer)

    overrides = {
        k.removeprefix("TANDEM_").lower(): v for k, v in running.settings_overrides().items()
    }
    return Seeded(
        settings=overrides,
        integrate=integrate,
        calls=lambda: len(state.requests_to("/calendar/v3/freeBusy", "POST")),
        stop=running.stop,
    )


CASES: dict[str, Callable[[Path, str, list[str]], Seeded]] = {
    "microsoft": _microsoft,
    "google": _google,
}


async def run_case(provider: str, people: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as raw:
        tmp = Path(raw)
        domain = f"bench{uuid.uuid4().hex[:6]}.example"
        emails = [f"p{i:05d}@{domain}" for i in range(people)]
        seeded = CASES[provider](tmp, domain, emails)
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        engine = create_engine(url)
        await migrate(engine)
        await engine.dispose()
        settings = Settings(
            env="test",
            data_dir=tmp / "data",
            database_url=url,
            secret_keys=Fernet.generate_key().decode(),
            **seeded.settings,
        )
        services = build_services(settings)
        try:
            async with services.db.session() as db:
                admin = User(email=f"admin@{domain}.vendor", name="Admin", is_global_admin=True)
                operator = User(email=f"op@{domain}.vendor", name="Op", is_operator=True)
                db.add_all([admin, operator])
                await db.exec(
                    insert(User),
                    params=[
                        {"id": uuid.uuid4(), "email": e, "name": e.split("@")[0]} for e in emails
                    ],
                )
                await db.commit()
                await setup.set_switch(db, services.calendar, operator, True)
                viewer = Viewer(user=admin, actor=admin)
                began = time.perf_counter()
                integration = await seeded.integrate(db, services.calendar, viewer)
                connected_s = time.perf_counter() - began
                await cover.reconcile(db, services.calendar, integration)
                before = seeded.calls()
                began = time.perf_counter()
                report = await sync.sync_integration(db, services.calendar, integration)
                sync_s = time.perf_counter() - began
            return {
                "provider": provider,
                "people": people,
                "provider_calls": seeded.calls() - before,
                "integrate_and_connect_s": round(connected_s, 3),
                "sync_s": round(sync_s, 3),
                "rows_written": report.rows_written,
                "problems": report.problems,
                "complete": report.complete,
                "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        finally:
            await close_services(services)
            seeded.stop()


def main(argv: list[str]) -> None:
    chosen = [a for a in argv if a in CASES] or list(CASES)
    sizes = [int(a) for a in argv if a not in CASES] or [1000, 5000]
    for provider in chosen:
        for size in sizes:
            print(json.dumps(asyncio.run(run_case(provider, size))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
