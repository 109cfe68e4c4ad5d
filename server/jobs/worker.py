"""``tandem worker`` (and the in-process default of ``tandem serve``): run background work.

On PostgreSQL a procrastinate worker takes tasks from the shared queue and defers the
periodic jobs (once per minute across all workers); on SQLite the embedded queue and the
one-minute tick run in this process.
"""

from __future__ import annotations

import asyncio

from server.config import Settings
from server.db import migrate
from server.wiring import AppServices, build_services, close_services


async def prepare_queue(settings: Settings) -> None:
    """procrastinate's tables exist before anyone defers (every node calls this)."""
    if settings.uses_procrastinate:
        from server.jobs.pg_queue import ensure_schema

        await ensure_schema(settings.resolved_database_url)


async def run_jobs(
    services: AppServices, *, interval_seconds: float = 60.0, install_signal_handlers: bool
) -> None:
    """Run background work until cancelled (or, for procrastinate, a signal)."""
    from server.jobs.runner import run_forever

    settings = services.settings
    if not settings.uses_procrastinate:
        await run_forever(services, interval_seconds)
        return
    from server.jobs.pg_queue import build_app, run_workers
    from server.jobs.tasks import handlers, periodic

    app = build_app(
        settings.resolved_database_url,
        handlers(services),
        periodic(services),
        pool_size=settings.worker_concurrency + 2,
    )
    async with app.open_async():
        await run_workers(
            app,
            concurrency=settings.worker_concurrency,
            stalled_after=settings.worker_stalled_seconds,
            install_signal_handlers=install_signal_handlers,
        )


def run_worker(settings: Settings, interval_seconds: float = 60.0) -> None:
    async def main() -> None:
        services = build_services(settings)
        try:
            await migrate(services.db.engine)
            await prepare_queue(settings)
            await run_jobs(
                services, interval_seconds=interval_seconds, install_signal_handlers=True
            )
        finally:
            await close_services(services)

    asyncio.run(main())
