"""Where background tasks are sent: procrastinate on PostgreSQL, an in-process queue with
the same semantics for the embedded default (SQLite, one process).

A task is an async function of the process's services plus keyword arguments
(``server.jobs.tasks``). Both queues give the same guarantees, so the code that enqueues
never asks which one it has:

* **coalescing**: a task deferred with a ``lock`` while another with that lock is still
  waiting is dropped (one pending at a time); deferred while one is running, it waits and
  runs once after it (a change during a sync causes exactly one more);
* **one at a time per lock**: two tasks with the same lock never run at once;
* **retries with backoff** for tasks that raise (``RETRY_WAITS``), then give up (the
  periodic jobs are the safety net: a calendar nobody synced stays stale and is found).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.web.quiet_log import exception_summary

log = logging.getLogger("tandem.queue")

SYNC_CALENDAR = "sync_calendar"
# Seconds before each retry of a failed task; procrastinate's RetryStrategy is built to
# match (``exponential_wait=2`` waits 2, 4, 8, 16, 32 s).
RETRY_WAITS: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 32.0)

Handler = Callable[..., Awaitable[None]]


def sync_lock(user_id: uuid.UUID) -> str:
    """The lock and queueing lock of a calendar's sync: one pending, one running."""
    return f"calendar-sync:{user_id}"


class TaskQueue(Protocol):
    """What the web nodes and jobs need: send work to whoever runs tasks."""

    async def sync_calendar(self, user_id: uuid.UUID) -> bool:
        """Ask for a sync of this user's calendar now; False when one was already waiting."""
        ...

    async def close(self) -> None: ...


@dataclass
class _Item:
    name: str
    lock: str
    kwargs: dict[str, Any]
    attempt: int = 0


@dataclass
class EmbeddedQueue:
    """The in-process queue of ``tandem serve`` on SQLite (and of tests).

    ``run`` consumes it with ``concurrency`` coroutines until cancelled; ``drain`` runs
    whatever is waiting to completion (the tick of a test, or of a worker without
    procrastinate). Nothing survives a restart: the periodic jobs find what was lost
    (``sync_requested`` stays set until a sync succeeds)."""

    concurrency: int = 4
    retry_waits: tuple[float, ...] = RETRY_WAITS
    _items: asyncio.Queue[_Item] = field(default_factory=asyncio.Queue)
    _pending: set[str] = field(default_factory=set)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _timers: set[asyncio.TimerHandle] = field(default_factory=set)
    ran: int = 0

    async def sync_calendar(self, user_id: uuid.UUID) -> bool:
        return self.defer(SYNC_CALENDAR, sync_lock(user_id), user_id=str(user_id))

    def defer(self, name: str, lock: str, **kwargs: Any) -> bool:
        if lock in self._pending:
            return False
        self._pending.add(lock)
        self._items.put_nowait(_Item(name, lock, kwargs))
        return True

    @property
    def waiting(self) -> int:
        return self._items.qsize()

    async def run(self, handlers: Mapping[str, Handler]) -> None:
        """Consume the queue until cancelled."""
        workers = [
            asyncio.create_task(self._consume(handlers)) for _ in range(max(self.concurrency, 1))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            for timer in self._timers:
                timer.cancel()

    async def drain(self, handlers: Mapping[str, Handler]) -> None:
        """Run everything waiting now (and what it defers) without retries' waits."""
        while not self._items.empty():
            await self._run_one(handlers, self._items.get_nowait(), retry_later=False)

    async def _consume(self, handlers: Mapping[str, Handler]) -> None:
        while True:
            item = await self._items.get()
            await self._run_one(handlers, item, retry_later=True)

    async def _run_one(
        self, handlers: Mapping[str, Handler], item: _Item, retry_later: bool
    ) -> None:
        lock = self._locks.setdefault(item.lock, asyncio.Lock())
        async with lock:
            # Started: a new request for this lock from now on waits for one more run.
            self._pending.discard(item.lock)
            try:
                await handlers[item.name](**item.kwargs)
                self.ran += 1
            except Exception as exc:
                self._failed(item, retry_later, exc)
        if not lock.locked() and item.lock not in self._pending:
            self._locks.pop(item.lock, None)

    def _failed(self, item: _Item, retry_later: bool, exc: Exception) -> None:
        # The summary, not the message: a provider's error may quote a token or a title.
        if item.attempt >= len(self.retry_waits):
            log.error(
                "task %s gave up after %d attempts: %s",
                item.name,
                item.attempt + 1,
                exception_summary(exc),
            )
            return
        log.warning("task %s failed; retrying: %s", item.name, exception_summary(exc))
        again = _Item(item.name, item.lock, item.kwargs, item.attempt + 1)
        if not retry_later:
            self._requeue(again)
            return
        timer = asyncio.get_running_loop().call_later(
            self.retry_waits[item.attempt], self._requeue, again
        )
        self._timers.add(timer)

    def _requeue(self, item: _Item) -> None:
        if item.lock in self._pending:
            return  # a newer request will do the same work
        self._pending.add(item.lock)
        self._items.put_nowait(item)

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
