"""The in-process queue keeps procrastinate's promises: one pending task per lock, one
more run for a request that arrives during a run, never two runs of a lock at once, and
retries with backoff that end."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import pytest

from server.jobs.queue import EmbeddedQueue


async def test_requests_while_one_waits_are_coalesced() -> None:
    queue = EmbeddedQueue()
    runs: list[str] = []

    async def task(key: str) -> None:
        runs.append(key)

    assert queue.defer("t", "lock-a", key="a") is True
    assert queue.defer("t", "lock-a", key="a") is False
    assert queue.defer("t", "lock-b", key="b") is True
    await queue.drain({"t": task})
    assert sorted(runs) == ["a", "b"]
    assert queue.defer("t", "lock-a", key="a") is True  # done: a new request queues again


async def test_request_during_a_run_causes_exactly_one_more_and_never_overlaps() -> None:
    queue = EmbeddedQueue(concurrency=4, retry_waits=())
    started = asyncio.Event()
    release = asyncio.Event()
    running = 0
    overlap = False
    runs = 0

    async def task() -> None:
        nonlocal running, overlap, runs
        running += 1
        overlap = overlap or running > 1
        runs += 1
        started.set()
        await release.wait()
        running -= 1

    consumer = asyncio.create_task(queue.run({"t": task}))
    try:
        assert queue.defer("t", "same") is True
        await asyncio.wait_for(started.wait(), 2)
        assert [queue.defer("t", "same") for _ in range(3)] == [True, False, False]
        await asyncio.sleep(0.05)
        assert runs == 1  # the second waits for the first: same lock
        release.set()
        for _ in range(100):
            if runs == 2 and running == 0:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
    finally:
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
    assert runs == 2
    assert overlap is False


async def test_failures_are_retried_with_backoff_then_given_up() -> None:
    queue = EmbeddedQueue(retry_waits=(0.01, 0.02))
    attempts: list[float] = []
    loop = asyncio.get_running_loop()

    async def flaky() -> None:
        attempts.append(loop.time())
        if len(attempts) < 3:
            raise RuntimeError("provider hiccup")

    async def broken() -> None:
        attempts.append(loop.time())
        raise RuntimeError("always")

    consumer = asyncio.create_task(queue.run({"flaky": flaky, "broken": broken}))
    try:
        queue.defer("flaky", "f")
        for _ in range(100):
            if queue.ran == 1:
                break
            await asyncio.sleep(0.01)
        assert len(attempts) == 3
        assert attempts[1] - attempts[0] >= 0.01  # the first wait
        assert attempts[2] - attempts[1] >= 0.02  # the second wait is the longer one
        attempts.clear()
        queue.defer("broken", "b")
        await asyncio.sleep(0.3)
        assert len(attempts) == 3  # the first try and two retries, then it gives up
        assert queue.defer("broken", "b") is True  # nothing is left pending for the lock
    finally:
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer


def test_schedules_become_procrastinate_crons() -> None:
    """The CalDAV check runs twice a minute (procrastinate's sixth cron field is seconds);
    everything else once a minute."""
    from croniter import croniter

    from server.jobs.tasks import cron

    assert cron(60) == "* * * * *"
    ticks = croniter(cron(30), datetime(2026, 1, 1, 0, 0, 5))
    assert [ticks.get_next(datetime).second for _ in range(3)] == [30, 0, 30]


async def test_failure_logs_name_the_error_but_not_its_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = EmbeddedQueue(retry_waits=(0.01,))

    async def leaky() -> None:
        raise RuntimeError("refresh_token=secret-in-the-message")

    consumer = asyncio.create_task(queue.run({"leaky": leaky}))
    try:
        with caplog.at_level(logging.WARNING, logger="tandem.queue"):
            queue.defer("leaky", "l")
            for _ in range(100):
                if "gave up" in caplog.text:
                    break
                await asyncio.sleep(0.01)
    finally:
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
    assert "retrying: RuntimeError" in caplog.text
    assert "gave up after 2 attempts: RuntimeError" in caplog.text
    assert "secret-in-the-message" not in caplog.text
