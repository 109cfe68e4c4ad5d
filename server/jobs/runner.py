"""The job loop shared by ``tandem worker`` and the in-process default.

Each tick runs every job once; a job's failure is logged and never stops the others.
Jobs are plain async functions of the process's services, so they run the same in one
process with SQLite or on several workers against PostgreSQL (sync claims use leases).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from server.jobs.polls import poll_deadlines
from server.services.calendars import coverage, push, sync
from server.services.integrations import sync as org_sync
from server.services.invites.queue import QueueingMailer, retry_queued_mail
from server.services.meetings.calendar_sync import sync_meeting_changes
from server.services.meetings.delivery import retry_pending_calendar_writes
from server.services.meetings.mailbox_sync import sync_mailbox_changes
from server.wiring import AppServices

log = logging.getLogger("tandem.jobs")

Job = Callable[[AppServices], Awaitable[None]]


async def sync_stale_calendars(services: AppServices) -> None:
    """Poll providers for calendars whose cache is older than SYNC_MAX_AGE_SECONDS (push is
    not available for CalDAV, and push for Google/Microsoft is only a hint)."""
    max_age = timedelta(seconds=services.settings.sync_max_age_seconds)
    async with services.db.session() as db:
        claimed = await sync.claim_stale(db, max_age)
        if claimed:
            await sync.sync_users(db, services.calendar, claimed, budget_seconds=60)


async def sync_org_calendars(services: AppServices) -> None:
    """Organization integrations: connect newly covered people (sign-ups, changed
    addresses) and refresh everyone covered in batches once the last full sync is older
    than SYNC_MAX_AGE_SECONDS (a lease keeps workers from syncing one integration twice)."""
    max_age = timedelta(seconds=services.settings.sync_max_age_seconds)
    async with services.db.session() as db:
        await org_sync.run_due(db, services.calendar, max_age)


async def keep_busy_ranges(services: AppServices) -> None:
    """Ranges read on demand beyond the default horizon (a window months ahead) are
    refreshed like it while someone still asks about them, and dropped with their busy
    blocks once nobody has for a week, so caches do not grow without bound."""
    max_age = timedelta(seconds=services.settings.sync_max_age_seconds)
    async with services.db.session() as db:
        await coverage.drop_unused(db, horizon_days=services.calendar.horizon_days)
        await coverage.refresh_in_use(db, services.calendar, max_age)


async def renew_push_channels(services: AppServices) -> None:
    """Google channels and Graph subscriptions expire within days: replace them early."""
    async with services.db.session() as db:
        await push.renew_expiring(db, services.calendar)


async def retry_meeting_calendar_writes(services: AppServices) -> None:
    """A provider failure never loses a meeting: its calendar write is retried here."""
    async with services.db.session() as db:
        await retry_pending_calendar_writes(db, services.meetings)


async def pull_meeting_changes(services: AppServices) -> None:
    """Two-way sync: owners' edits to Tandem's meetings in their own calendars, and
    attendees' answers there, flow back. Runs before ``sync_stale_calendars`` so a push
    notification's ``sync_requested`` is still set when it looks."""
    max_age = timedelta(seconds=services.settings.sync_max_age_seconds)
    async with services.db.session() as db:
        await sync_meeting_changes(db, services.meetings, max_age=max_age)


async def pull_mailbox_changes(services: AppServices) -> None:
    """Covered owners' meetings live in the organization's service mailbox (Exchange
    on-premises): attendees' answers, edits and cancellations there flow back."""
    async with services.db.session() as db:
        await sync_mailbox_changes(db, services.meetings)


async def retry_mail(services: AppServices) -> None:
    """Invitations that met an SMTP outage go out when the server is back."""
    mailer = services.mailer
    if isinstance(mailer, QueueingMailer):
        async with services.db.session() as db:
            await retry_queued_mail(db, mailer.inner, services.secrets)


JOBS: list[Job] = [
    pull_meeting_changes,
    pull_mailbox_changes,
    sync_stale_calendars,
    sync_org_calendars,
    keep_busy_ranges,
    renew_push_channels,
    retry_meeting_calendar_writes,
    poll_deadlines,
    retry_mail,
]


async def run_once(services: AppServices, jobs: list[Job] | None = None) -> None:
    for job in jobs or JOBS:
        try:
            await job(services)
        except Exception:  # one job's bug must not stop the others
            log.exception("job %s failed", getattr(job, "__name__", job))


async def run_forever(services: AppServices, interval_seconds: float = 60.0) -> None:
    while True:
        await run_once(services)
        await asyncio.sleep(interval_seconds)
