"""Bounded retries over httpx and the mapping of transient failures to provider errors.

Providers retry a few times with full-jitter exponential backoff, honouring
``Retry-After``, but never wait more than a few seconds in total: a caller (a sync job,
a page) is better placed to schedule a longer wait than a request handler is to block.
Messages name the service and the HTTP status only, never a URL, body or token.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from server.providers.base import ProviderUnavailable, RateLimited

Sleep = Callable[[float], Awaitable[None]]

_UNAVAILABLE_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: ``attempts`` in all, sleeping at most ``max_total_wait`` seconds."""

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0
    max_total_wait: float = 4.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def is_status_429(response: httpx.Response) -> bool:
    return response.status_code == 429


async def send_with_retry(
    send: Callable[[], Awaitable[httpx.Response]],
    *,
    service: str,
    policy: RetryPolicy,
    is_rate_limited: Callable[[httpx.Response], bool] = is_status_429,
    sleep: Sleep = asyncio.sleep,
) -> httpx.Response:
    """Call ``send`` until it returns a response that is neither rate limited nor a 5xx.

    Returns that response (any other status included: the caller interprets 4xx).
    Raises ``RateLimited`` or ``ProviderUnavailable`` once attempts or the wait budget
    run out.
    """
    waited = 0.0
    for attempt in range(policy.attempts):
        last = attempt == policy.attempts - 1
        retry_after: float | None = None
        try:
            response = await send()
        except httpx.TransportError as exc:  # timeouts, refused connections, broken streams
            failure: Exception = ProviderUnavailable(
                f"{service} is unreachable ({type(exc).__name__})"
            )
        else:
            if is_rate_limited(response):
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                failure = RateLimited(
                    f"{service} rate limited the request (HTTP {response.status_code})",
                    retry_after,
                )
            elif response.status_code in _UNAVAILABLE_STATUSES:
                failure = ProviderUnavailable(f"{service} failed (HTTP {response.status_code})")
            else:
                return response
        delay = _backoff(policy, attempt) if retry_after is None else retry_after
        if last or waited + delay > policy.max_total_wait:
            raise failure
        await sleep(delay)
        waited += delay
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises


def _backoff(policy: RetryPolicy, attempt: int) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(policy.max_delay, policy.base_delay * 2**attempt))
