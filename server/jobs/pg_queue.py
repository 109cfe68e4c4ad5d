"""Background work on PostgreSQL: procrastinate (jobs in the database, LISTEN/NOTIFY
wake-ups, retries, periodic tasks, locks), shared by every web node and worker.

Web nodes only defer; ``tandem worker`` runs ``run_workers``. procrastinate's own tables
(``procrastinate_*``) are created by its schema SQL (``ensure_schema``), not by Tandem's
Alembic migrations: they are procrastinate's to change between its versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import zlib
from collections.abc import Mapping
from typing import Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued, UniqueViolation
from procrastinate.jobs import Status
from procrastinate.schema import SchemaManager
from sqlalchemy import make_url

from server.jobs.queue import RETRY_WAITS, SYNC_CALENDAR, Handler, sync_lock

log = logging.getLogger("tandem.queue")

TASK_PREFIX = "tandem."
SYNC_QUEUE = "sync"
PERIODIC_QUEUE = "periodic"
# Any constant: serialises schema creation when several nodes start together.
_SCHEMA_LOCK = zlib.crc32(b"tandem:procrastinate-schema")


def conninfo(database_url: str) -> str:
    """procrastinate speaks psycopg; Tandem's URL names SQLAlchemy's asyncpg driver."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def ensure_schema(database_url: str) -> bool:
    """Create procrastinate's tables once (True when it did). Safe on several nodes."""
    import psycopg

    conn = await psycopg.AsyncConnection.connect(conninfo(database_url))
    async with conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
        row = await cur.fetchone()
        if row is not None and row[0]:
            return False
        await conn.execute(SchemaManager.get_schema())  # procrastinate's own SQL, one script
    return True


def build_app(
    database_url: str,
    handlers: Mapping[str, Handler] | None = None,
    periodic: Mapping[str, tuple[Handler, str]] | None = None,
    *,
    pool_size: int = 4,
) -> procrastinate.App:
    """An app that can defer Tandem's tasks and, given ``handlers``, run them.

    ``periodic`` maps a name to a job and its cron schedule; each runs once per slot across
    all workers (procrastinate defers it under a unique (task, timestamp))."""
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo(database_url), min_size=1, max_size=pool_size
    )
    app = procrastinate.App(connector=connector)
    retry = procrastinate.RetryStrategy(
        max_attempts=len(RETRY_WAITS), exponential_wait=2, retry_exceptions={Exception}
    )
    for name, handler in (handlers or {}).items():
        app.task(name=TASK_PREFIX + name, queue=SYNC_QUEUE, retry=retry)(_by_keyword(handler))
    for name, (job, cron) in (periodic or {}).items():
        task = app.task(name=TASK_PREFIX + name, queue=PERIODIC_QUEUE, queueing_lock=name)(
            _periodic(job)
        )
        app.periodic(cron=cron, periodic_id=name)(task)
    return app


def _by_keyword(handler: Handler) -> Handler:
    async def run(**kwargs: Any) -> None:
        await handler(**kwargs)

    run.__name__ = getattr(handler, "__name__", "task")
    return run


def _periodic(job: Handler) -> Handler:
    async def run(timestamp: int) -> None:
        await job()

    run.__name__ = getattr(job, "__name__", "job")
    return run


class ProcrastinateQueue:
    """``TaskQueue`` for web nodes and workers on PostgreSQL."""

    def __init__(self, database_url: str, app: procrastinate.App | None = None) -> None:
        self.app = app or build_app(database_url, pool_size=2)
        self._opened = False
        self._opening = asyncio.Lock()

    async def open(self) -> None:
        async with self._opening:
            if not self._opened:
                await self.app.open_async()
                self._opened = True

    async def sync_calendar(self, user_id: uuid.UUID) -> bool:
        await self.open()
        lock = sync_lock(user_id)
        deferrer = self.app.configure_task(
            TASK_PREFIX + SYNC_CALENDAR, queue=SYNC_QUEUE, lock=lock, queueing_lock=lock
        )
        try:
            await deferrer.defer_async(user_id=str(user_id))
        except AlreadyEnqueued:
            return False
        return True

    async def close(self) -> None:
        if self._opened:
            await self.app.close_async()
            self._opened = False


async def requeue_stalled(app: procrastinate.App, stalled_after: float) -> int:
    """Jobs of workers that stopped sending heartbeats (killed, lost their network) go
    back to the queue: procrastinate finds them, Tandem decides to retry them."""
    stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after)
    count = 0
    for job in stalled:
        log.warning("retrying job %s of a stalled worker", job.id)
        try:
            await app.job_manager.retry_job(job)
        except UniqueViolation:
            # A newer request for the same work is already waiting (its queueing lock):
            # it does what the retry would; end the dead one so its lock frees that one.
            await app.job_manager.finish_job(job, status=Status.FAILED, delete_job=False)
        count += 1
    return count


async def run_workers(
    app: procrastinate.App,
    *,
    concurrency: int,
    stalled_after: float,
    install_signal_handlers: bool = True,
) -> None:
    """One procrastinate worker (``concurrency`` jobs at once) and the stalled-job sweep."""
    heartbeat = max(stalled_after / 3, 0.5)

    async def sweep() -> None:
        while True:
            await asyncio.sleep(heartbeat)
            try:
                await requeue_stalled(app, stalled_after)
            except Exception:  # the database may be briefly away; the next sweep retries
                log.exception("stalled-job sweep failed")

    sweeper = asyncio.create_task(sweep())
    try:
        await app.run_worker_async(
            queues=[SYNC_QUEUE, PERIODIC_QUEUE],
            concurrency=concurrency,
            update_heartbeat_interval=heartbeat,
            stalled_worker_timeout=stalled_after,
            install_signal_handlers=install_signal_handlers,
            delete_jobs="successful",
        )
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
