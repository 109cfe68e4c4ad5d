"""Reading covered people's calendars on demand through their organization's directory.

A covered person's connection holds no personal credential: the organization's
integration reads everyone at once. When someone asks about a window beyond the sync
horizon (a poll 100 days out), the people to read are grouped by integration and range
and read in the directory's batches (Graph 20, Google 50 people a call) over chunks of
at most its ``max_window_days``, a few calls at a time, within the caller's deadline.

The integration's configuration is opened here (not in ``services.integrations``,
which builds on this package) so the on-demand reader and the batched sync open
directories the same way.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import CalendarConnection, OrganizationIntegration
from server.models.integration import INTEGRATION_ACTIVE
from server.providers.base import BusyFetch, BusyInterval, ProviderError, ProviderMisconfigured
from server.providers.org_base import OrgDirectory, PersonSchedule
from server.services.calendars.deps import CalendarDeps

Span = tuple[datetime, datetime]

# Calls in flight per integration for one on-demand read (the batched sync uses its own).
CONCURRENCY = 4


def config_binding(integration: OrganizationIntegration) -> str:
    """Ties the encrypted configuration to its row: copied elsewhere it will not open."""
    return f"integration:{integration.id}"


def read_config(deps: CalendarDeps, integration: OrganizationIntegration) -> dict[str, Any]:
    if integration.encrypted_config is None:
        return {}
    value = deps.secrets.decrypt(integration.encrypted_config, binding=config_binding(integration))
    return dict(value)


def open_directory(deps: CalendarDeps, integration: OrganizationIntegration) -> OrgDirectory:
    """The integration's directory; the caller closes it (``aclose``)."""
    if deps.directories is None:
        raise ProviderMisconfigured("organization-wide integrations are not configured")
    return deps.directories(integration.kind.value, read_config(deps, integration))


async def fetch_covered(
    db: AsyncSession,
    deps: CalendarDeps,
    plans: Sequence[tuple[CalendarConnection, Span]],
    deadline: float | None,
) -> list[BusyFetch | None]:
    """Busy times for each covered ``(connection, span)``, in order: ``None`` when the
    deadline passed first, ``readable=False`` when the directory could not read that
    person (or the integration is off or refused the call)."""
    outcomes: list[BusyFetch | None] = [BusyFetch([], readable=False)] * len(plans)
    groups: dict[tuple[uuid.UUID, Span], list[int]] = defaultdict(list)
    for index, (connection, span) in enumerate(plans):
        if connection.integration_id is not None:
            groups[(connection.integration_id, span)].append(index)
    for (integration_id, span), indexes in groups.items():
        integration = await db.get(OrganizationIntegration, integration_id)
        if (
            integration is None
            or not integration.enabled
            or integration.status != INTEGRATION_ACTIVE
        ):
            continue
        emails = [plans[i][0].account_email.lower() for i in indexes]
        answers = await _read_group(deps, integration, emails, span, deadline)
        for index, email in zip(indexes, emails, strict=True):
            outcomes[index] = answers.get(email, BusyFetch([], readable=False))
    return outcomes


async def _read_group(
    deps: CalendarDeps,
    integration: OrganizationIntegration,
    emails: list[str],
    span: Span,
    deadline: float | None,
) -> dict[str, BusyFetch | None]:
    try:
        directory = open_directory(deps, integration)
    except (ProviderError, ValueError):
        return {}
    try:
        size = max(1, directory.max_people_per_call)
        step = timedelta(days=max(1, directory.max_window_days))
        chunks: list[Span] = []
        lo = span[0]
        while lo < span[1]:
            chunks.append((lo, min(span[1], lo + step)))
            lo = chunks[-1][1]
        batches = [emails[i : i + size] for i in range(0, len(emails), size)]
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def call(batch: list[str], chunk: Span) -> list[PersonSchedule] | None:
            async with semaphore:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                try:
                    return await asyncio.wait_for(
                        directory.read_schedules(batch, chunk[0], chunk[1], "UTC"), remaining
                    )
                except TimeoutError:
                    return None
                except (ProviderError, ValueError):
                    return []

        jobs = [(batch, chunk) for batch in batches for chunk in chunks]
        answers = await asyncio.gather(*(call(b, c) for b, c in jobs))
    finally:
        await directory.aclose()
    intervals: dict[str, list[BusyInterval]] = defaultdict(list)
    result: dict[str, BusyFetch | None] = {}
    for (batch, _chunk), answer in zip(jobs, answers, strict=True):
        if answer is None:
            for email in batch:
                result[email] = None
            continue
        seen = {person.email: person for person in answer}
        for email in batch:
            person = seen.get(email)
            if person is None or person.problem is not None:
                result.setdefault(email, BusyFetch([], readable=False))
                continue
            intervals[email].extend(person.intervals)
    for email in emails:
        if email not in result:
            result[email] = BusyFetch(sorted(set(intervals[email])))
    return result
