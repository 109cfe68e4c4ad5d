"""``tandem worker``: the background jobs as their own process (multi-node deployments)."""

from __future__ import annotations

import asyncio

from server.config import Settings
from server.db import migrate
from server.jobs.runner import run_forever
from server.wiring import build_services, close_services


def run_worker(settings: Settings, interval_seconds: float = 60.0) -> None:
    async def main() -> None:
        services = build_services(settings)
        try:
            await migrate(services.db.engine)
            await run_forever(services, interval_seconds)
        finally:
            await close_services(services)

    asyncio.run(main())
