"""The bounded retry helper the Google provider sends every request through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest

from server.providers.base import ProviderUnavailable, RateLimited
from server.providers.http_errors import RetryPolicy, parse_retry_after, send_with_retry


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def answers(*responses: httpx.Response | Exception) -> Callable[[], Awaitable[httpx.Response]]:
    queue = list(responses)

    async def send() -> httpx.Response:
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return send


def test_parse_retry_after_accepts_seconds_and_dates() -> None:
    now = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Mon, 07 Jan 2030 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Mon, 07 Jan 2030 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_transient_failures_are_retried_with_capped_jitter() -> None:
    sleep = FakeSleep()
    policy = RetryPolicy(attempts=4, base_delay=0.5, max_delay=0.75)
    response = await send_with_retry(
        answers(
            httpx.ConnectError("refused"),
            httpx.Response(502),
            httpx.Response(429, headers={"Retry-After": "1"}),
            httpx.Response(404),
        ),
        service="Example",
        policy=policy,
        sleep=sleep,
    )
    assert response.status_code == 404  # not transient: handed back to the caller
    assert len(sleep.delays) == 3
    assert all(0 <= d <= 0.75 for d in sleep.delays[:2])
    assert sleep.delays[2] == 1.0


async def test_total_wait_is_capped() -> None:
    sleep = FakeSleep()
    policy = RetryPolicy(attempts=5, max_total_wait=2.5)
    throttled = [httpx.Response(429, headers={"Retry-After": "2"}) for _ in range(5)]
    with pytest.raises(RateLimited) as caught:
        await send_with_retry(answers(*throttled), service="Example", policy=policy, sleep=sleep)
    assert sleep.delays == [2.0]
    assert caught.value.retry_after == 2.0


async def test_timeouts_become_unavailable_without_details() -> None:
    sleep = FakeSleep()
    failing = [httpx.ReadTimeout("https://example.test/?token=abc") for _ in range(3)]
    with pytest.raises(ProviderUnavailable) as caught:
        await send_with_retry(
            answers(*failing), service="Example", policy=RetryPolicy(), sleep=sleep
        )
    assert "token" not in str(caught.value)
    assert "ReadTimeout" in str(caught.value)
    assert len(sleep.delays) == 2
