"""Benchmark the batched organization sync; prints one JSON line per case.

Run with ``.venv/bin/python -m bench.org_sync [sizes...]`` (default 1000 5000). Each case
starts the provider's emulator, a fresh migrated SQLite database, seeds that many covered
people with two busy events each, integrates through the real admin consent, connects
everyone (``cover.reconcile``) and runs one full ``sync_integration``. Printed: provider
calls (counted by the emulator), seconds for connecting and for syncing, rows written
and the process's peak RSS (``resource.getrusage``, kilobytes on Linux).

Providers plug in through ``CASES``: Microsoft (Graph getSchedule, 20 people per call)
today; Google Workspace's freeBusy joins once its directory and emulator parts exist.
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

from emulators.microsoft import admin_consent, start_microsoft_emulator
from server.config import Settings
from server.db import create_engine, migrate
from server.models import OrganizationIntegration, User
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


CASES: dict[str, Callable[[Path, str, list[str]], Seeded]] = {"microsoft": _microsoft}


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
    sizes = [int(a) for a in argv] or [1000, 5000]
    for provider in CASES:
        for size in sizes:
            print(json.dumps(asyncio.run(run_case(provider, size))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
