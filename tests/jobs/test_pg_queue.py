"""procrastinate on PostgreSQL: its schema is created once, a push notification queues one
coalesced sync task, and a worker runs it within seconds; the periodic jobs are its
periodic tasks."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import select

from emulators.google import RunningGoogle, send_push_notifications
from server.app import create_app
from server.db import create_engine
from server.jobs.pg_queue import build_app, conninfo, ensure_schema
from server.jobs.runner import JOBS
from server.jobs.worker import run_jobs
from server.models import BusyBlock
from server.wiring import build_services, close_services
from tests.calendar_fixtures import provider_overrides
from tests.conftest import create_user, make_settings
from tests.services.calendars.test_sync import connect_google

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _at(days: int, hour: int) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(
        hour=hour, minute=0, second=0, microsecond=0
    )


async def _jobs(url: str, status: str) -> list[tuple[str, str | None]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT task_name, queueing_lock FROM procrastinate_jobs WHERE status = :s"),
                {"s": status},
            )
            return [(r[0], r[1]) for r in rows]
    finally:
        await engine.dispose()


async def _clear_jobs(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM procrastinate_jobs"))
        await conn.execute(text("DELETE FROM procrastinate_periodic_defers"))
    await engine.dispose()


def test_conninfo_speaks_psycopg() -> None:
    assert (
        conninfo("postgresql+asyncpg://tandem:s3cret@db:5432/tandem")
        == "postgresql://tandem:s3cret@db:5432/tandem"
    )


async def test_periodic_jobs_are_procrastinate_periodic_tasks(postgres_ready: str) -> None:
    app = build_app(postgres_ready, {}, {job.__name__: (job, "* * * * *") for job in JOBS})
    names = {t.task.name for t in app.periodic_registry.periodic_tasks.values()}
    assert names == {f"tandem.{job.__name__}" for job in JOBS}


async def test_push_queues_one_task_and_a_worker_syncs_it(
    tmp_path: Path, postgres_ready: str, google: RunningGoogle
) -> None:
    url = postgres_ready
    await ensure_schema(url)
    assert await ensure_schema(url) is False  # once only
    await _clear_jobs(url)
    svc = build_services(
        make_settings(
            tmp_path,
            url,
            task_queue="procrastinate",
            push_notifications=True,
            worker_stalled_seconds=3,
            **provider_overrides(google),
        )
    )
    worker: asyncio.Task[None] | None = None
    try:
        user = await create_user(svc, "pgpush@example.org")
        google.state.add_account("pgpush@gmail.test")
        before_connect = len(google.state.requests_to("freeBusy"))
        await connect_google(svc, user, "pgpush@gmail.test")
        per_sync = len(google.state.requests_to("freeBusy")) - before_connect
        google.state.add_event(
            "pgpush@gmail.test",
            {
                "summary": "x",
                "start": {"dateTime": _at(4, 9).isoformat()},
                "end": {"dateTime": _at(4, 10).isoformat()},
            },
        )
        app = create_app(services=svc)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as web:
            for _ in range(3):
                assert await send_push_notifications(google.state, web, "pgpush@gmail.test") == [
                    200
                ]
        assert await _jobs(url, "todo") == [("tandem.sync_calendar", f"calendar-sync:{user}")]
        calls = len(google.state.requests_to("freeBusy"))
        sent = asyncio.get_running_loop().time()
        worker = asyncio.create_task(run_jobs(svc, install_signal_handlers=False))
        blocks: list[tuple[datetime, datetime]] = []
        while asyncio.get_running_loop().time() - sent < 5 and not blocks:
            await asyncio.sleep(0.1)
            async with svc.db.session() as db:
                rows = (await db.exec(select(BusyBlock).where(BusyBlock.user_id == user))).all()
            blocks = [(b.start_at, b.end_at) for b in rows]
        assert blocks == [(_at(4, 9), _at(4, 10))]
        await asyncio.sleep(0.5)
        assert per_sync >= 1
        assert len(google.state.requests_to("freeBusy")) - calls == per_sync  # 3 pushes, 1 sync
        assert worker.done() is False
    finally:
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        await close_services(svc)
        await _clear_jobs(url)
