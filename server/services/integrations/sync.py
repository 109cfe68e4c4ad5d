"""Refreshing covered people's busy times in batches.

People are read ``max_people_per_call`` at a time (Graph 20, Google 50) over window
chunks of at most ``max_window_days`` covering the connection horizon, with at most
``concurrency`` calls in flight per integration. Batches are fetched a wave at a time and
written before the next wave, so memory holds one wave's blocks, never everyone's. A
throttled or unavailable call is retried after its ``Retry-After`` (with backoff); a batch
that keeps failing keeps its cached blocks and the run does not count as a full sync.
A person the provider cannot read is marked with the reason and has no blocks: unknown,
never free. A whole-call refusal (consent withdrawn, key revoked) puts the integration
in "needs attention" and stops the run.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, update
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import BusyBlock, CalendarConnection, OrganizationIntegration, busy_version
from server.models.base import new_id, utcnow
from server.models.enums import CalendarStatus, IntegrationKind
from server.models.integration import INTEGRATION_ACTIVE, INTEGRATION_ATTENTION
from server.providers.base import (
    AccessDenied,
    InvalidCredentials,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
)
from server.providers.org_base import OrgDirectory, PersonSchedule, UncoveredReason
from server.services.calendars.coverage import LOOKBEHIND
from server.services.calendars.deps import CalendarDeps
from server.services.integrations import cover
from server.services.integrations.directory import KIND_LABELS, REASON_TEXT, open_directory

log = logging.getLogger("tandem.integrations.sync")

DEFAULT_CONCURRENCY = 4
MAX_TRIES = 4
BACKOFF_BASE_SECONDS = 1.0
MAX_WAIT_SECONDS = 60.0
LEASE = timedelta(minutes=10)
PROBLEM_CODES = {
    UncoveredReason.ACCESS_DENIED: "access_policy",
    UncoveredReason.NO_MAILBOX: "no_mailbox",
    UncoveredReason.NOT_IN_DOMAIN: "not_in_domain",
    UncoveredReason.UNREADABLE: "unreadable",
}


@dataclass(slots=True)
class SyncReport:
    people: int = 0
    readable: int = 0
    problems: int = 0
    calls: int = 0
    rows_written: int = 0
    failed_batches: int = 0
    complete: bool = False


class _Stop(Exception):
    """A whole-call refusal: the integration's credential no longer works."""


async def sync_integration(
    db: AsyncSession,
    deps: CalendarDeps,
    integration: OrganizationIntegration,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_wait_seconds: float = MAX_WAIT_SECONDS,
    now: datetime | None = None,
) -> SyncReport:
    """One full pass over everyone the integration covers. Commits per wave."""
    report = SyncReport()
    if not integration.enabled or integration.status != INTEGRATION_ACTIVE:
        return report
    now = now or utcnow()
    start = now - LOOKBEHIND
    end = now + timedelta(days=deps.horizon_days)
    people = (
        await db.exec(
            select(
                CalendarConnection.id, CalendarConnection.user_id, CalendarConnection.account_email
            )
            .where(CalendarConnection.integration_id == integration.id)
            .order_by(col(CalendarConnection.account_email))
        )
    ).all()
    report.people = len(people)
    if not people:
        integration.last_full_sync_at = now
        db.add(integration)
        await db.commit()
        report.complete = True
        return report
    directory = open_directory(deps, integration)
    try:
        size = max(1, directory.max_people_per_call)
        chunks = _chunks(start, end, directory.max_window_days)
        batches = [people[i : i + size] for i in range(0, len(people), size)]
        for wave_start in range(0, len(batches), concurrency):
            wave = batches[wave_start : wave_start + concurrency]
            results = await asyncio.gather(
                *(
                    _read_batch(directory, batch, chunks, report, max_wait_seconds)
                    for batch in wave
                ),
                return_exceptions=True,
            )
            stop = next((r for r in results if isinstance(r, _Stop)), None)
            if stop is not None:
                await _needs_attention(db, integration, str(stop))
                return report
            for batch, result in zip(wave, results, strict=True):
                if isinstance(result, BaseException):
                    report.failed_batches += 1
                    if not isinstance(result, ProviderError | TimeoutError):
                        log.warning("org sync batch failed: %s", type(result).__name__)
                    continue
                await _write_batch(db, batch, result, start, end, now, report)
            await db.commit()
    finally:
        await directory.aclose()
    report.complete = report.failed_batches == 0
    if report.complete:
        integration.last_full_sync_at = now
        integration.last_error = None
    else:
        integration.last_error = (
            f"{KIND_LABELS[integration.kind]} did not answer for some people; Tandem will retry."
        )
    db.add(integration)
    await db.commit()
    return report


def _chunks(start: datetime, end: datetime, max_days: int) -> list[tuple[datetime, datetime]]:
    step = timedelta(days=max(1, max_days))
    chunks = []
    lo = start
    while lo < end:
        hi = min(end, lo + step)
        chunks.append((lo, hi))
        lo = hi
    return chunks


async def _read_batch(
    directory: OrgDirectory,
    batch: Sequence[tuple[uuid.UUID, uuid.UUID, str]],
    chunks: Sequence[tuple[datetime, datetime]],
    report: SyncReport,
    max_wait_seconds: float,
) -> dict[str, PersonSchedule]:
    """Every chunk for one batch of people, merged per address."""
    emails = [email.lower() for _cid, _uid, email in batch]
    merged: dict[str, PersonSchedule] = {}
    for lo, hi in chunks:
        answer = await _call(directory, emails, lo, hi, report, max_wait_seconds)
        for person in answer:
            before = merged.get(person.email)
            if before is not None and before.problem is not None:
                continue
            if person.problem is not None or before is None:
                merged[person.email] = person
            else:
                before.intervals.extend(person.intervals)
    return merged


async def _call(
    directory: OrgDirectory,
    emails: list[str],
    lo: datetime,
    hi: datetime,
    report: SyncReport,
    max_wait_seconds: float,
) -> list[PersonSchedule]:
    tries = 0
    while True:
        tries += 1
        try:
            report.calls += 1
            return await directory.read_schedules(emails, lo, hi, "UTC")
        except (AccessDenied, InvalidCredentials, ProviderMisconfigured) as exc:
            raise _Stop(str(exc)) from exc
        except (RateLimited, ProviderUnavailable) as exc:
            if tries >= MAX_TRIES:
                raise
            hinted = exc.retry_after if isinstance(exc, RateLimited) else None
            wait = hinted if hinted is not None else BACKOFF_BASE_SECONDS * 2 ** (tries - 1)
            if wait > max_wait_seconds:
                raise
            await asyncio.sleep(wait)


async def _write_batch(
    db: AsyncSession,
    batch: Sequence[tuple[uuid.UUID, uuid.UUID, str]],
    answers: dict[str, PersonSchedule],
    start: datetime,
    end: datetime,
    now: datetime,
    report: SyncReport,
) -> None:
    """Replace the batch's cached blocks within the synced window with the answer, in
    bulk. Blocks outside it (far-away ranges read on demand) keep their outside parts."""
    user_ids = [uid for _cid, uid, _email in batch]
    inside = (
        col(BusyBlock.user_id).in_(user_ids),
        col(BusyBlock.start_at) < end,
        col(BusyBlock.end_at) > start,
    )
    straddling = (
        await db.exec(
            select(BusyBlock.user_id, BusyBlock.start_at, BusyBlock.end_at, BusyBlock.kind).where(
                *inside, or_(col(BusyBlock.start_at) < start, col(BusyBlock.end_at) > end)
            )
        )
    ).all()
    await db.exec(delete(BusyBlock).where(*inside))
    busy_version.note_changed(db, user_ids)
    rows: list[dict[str, object]] = []
    for user_id, block_start, block_end, kind in straddling:
        for lo, hi in ((block_start, start), (end, block_end)):
            if lo < hi:
                rows.append(
                    {"id": new_id(), "user_id": user_id, "start_at": lo, "end_at": hi, "kind": kind}
                )
    fine: list[uuid.UUID] = []
    problems: dict[UncoveredReason, list[uuid.UUID]] = {}
    for connection_id, user_id, email in batch:
        person = answers.get(email.lower())
        problem = UncoveredReason.UNREADABLE if person is None else person.problem
        if problem is not None:
            problems.setdefault(problem, []).append(connection_id)
            continue
        assert person is not None
        fine.append(connection_id)
        for interval in sorted(set(person.intervals)):
            rows.append(
                {
                    "id": new_id(),
                    "user_id": user_id,
                    "start_at": interval.start,
                    "end_at": interval.end,
                    "kind": interval.kind,
                }
            )
    if rows:
        await db.exec(insert(BusyBlock), params=rows)
    report.rows_written += len(rows)
    report.readable += len(fine)
    if fine:
        await db.exec(
            update(CalendarConnection)
            .where(col(CalendarConnection.id).in_(fine))
            .values(
                status=CalendarStatus.CONNECTED,
                last_synced_at=now,
                synced_from=start,
                synced_until=end,
                last_error=None,
                error_code=None,
                uncovered_reason=None,
                failure_count=0,
                retry_after=None,
                sync_requested=False,
            )
        )
    for reason, ids in problems.items():
        report.problems += len(ids)
        await db.exec(
            update(CalendarConnection)
            .where(col(CalendarConnection.id).in_(ids))
            .values(
                status=CalendarStatus.ERROR,
                last_synced_at=now,
                synced_from=None,
                synced_until=None,
                last_error=f"Not covered: {REASON_TEXT[reason]}.",
                error_code=PROBLEM_CODES[reason],
                uncovered_reason=reason.value,
                sync_requested=False,
            )
        )


async def _needs_attention(
    db: AsyncSession, integration: OrganizationIntegration, detail: str
) -> None:
    label = KIND_LABELS[integration.kind]
    log.info("integration %s needs attention: %s", integration.id, detail[:200])
    integration.status = INTEGRATION_ATTENTION
    integration.last_error = (
        f"{label} no longer accepts Tandem's access. Integrate again to restore coverage."
    )
    if integration.kind == IntegrationKind.EXCHANGE_ONPREM:  # operators configure it
        integration.last_error = (
            f"{label} no longer accepts the service account's credentials. An operator "
            "must enter them again (contact the support team)."
        )
    db.add(integration)
    await db.commit()


async def claim_due(db: AsyncSession, max_age: timedelta) -> list[uuid.UUID]:
    """Active integrations whose last full sync is older than ``max_age`` (or that have
    people waiting for a first read), claimed with a lease by a conditional UPDATE."""
    now = utcnow()
    candidates = (
        await db.exec(
            select(OrganizationIntegration.id).where(
                col(OrganizationIntegration.enabled).is_(True),
                OrganizationIntegration.status == INTEGRATION_ACTIVE,
                or_(
                    col(OrganizationIntegration.sync_lease_until).is_(None),
                    col(OrganizationIntegration.sync_lease_until) <= now,
                ),
            )
        )
    ).all()
    claimed = []
    for integration_id in candidates:
        integration = await db.get(OrganizationIntegration, integration_id)
        if integration is None:
            continue
        waiting = (
            await db.exec(
                select(CalendarConnection.id)
                .where(
                    CalendarConnection.integration_id == integration_id,
                    col(CalendarConnection.sync_requested).is_(True),
                )
                .limit(1)
            )
        ).first()
        fresh = (
            integration.last_full_sync_at is not None
            and integration.last_full_sync_at > now - max_age
        )
        if fresh and waiting is None:
            continue
        result = await db.exec(
            update(OrganizationIntegration)
            .where(
                col(OrganizationIntegration.id) == integration_id,
                or_(
                    col(OrganizationIntegration.sync_lease_until).is_(None),
                    col(OrganizationIntegration.sync_lease_until) <= now,
                ),
            )
            .values(sync_lease_until=now + LEASE)
        )
        if result.rowcount == 1:
            claimed.append(integration_id)
    await db.commit()
    return claimed


async def run_due(db: AsyncSession, deps: CalendarDeps, max_age: timedelta) -> list[SyncReport]:
    """The job: reconcile coverage (sign-ups, changed addresses), then sync what is due."""
    reports = []
    for integration_id in await claim_due(db, max_age):
        integration = await db.get(OrganizationIntegration, integration_id)
        if integration is None:
            continue
        try:
            await cover.reconcile(db, deps, integration)
            reports.append(await sync_integration(db, deps, integration))
        finally:
            await db.exec(
                update(OrganizationIntegration)
                .where(col(OrganizationIntegration.id) == integration_id)
                .values(sync_lease_until=None)
            )
            await db.commit()
    return reports
