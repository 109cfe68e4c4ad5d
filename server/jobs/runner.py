"""The periodic jobs, and the tick that runs them in the embedded default.

Jobs are plain async functions of the process's services. On PostgreSQL each is a
procrastinate periodic task run once a minute by one of the workers
(``server.jobs.pg_queue``); on SQLite the tick below runs every job once a minute inside
``tandem serve`` (or ``tandem worker``). A job's failure is logged and never stops the
others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from server.jobs.polls import poll_deadlines
from server.jobs.queue import EmbeddedQueue
from server.services.calendars import changes, coverage, push, sync
from server.services.integrations import sync as org_sync
from server.services.invites.queue import QueueingMailer, retry_queued_mail
from server.services.meetings.calendar_sync import sync_meeting_changes
from server.services.meetings.delivery import retry_pending_calendar_writes
from server.services.meetings.mailbox_sync import sync_mailbox_changes
from server.web.quiet_log import exception_summary
from server.wiring import AppServices

log = logging.getLogger("tandem.jobs")

Job = Callable[[AppServices], Awaitable[None]]


async def sync_stale_calendars(services: AppServices) -> None:
    """Queue a sync for calendars whose cache is older than SYNC_MAX_AGE_SECONDS or that a
    push notification asked for (the safety net when push is late or lost). Each is one
    ``sync_calendar`` task, coalesced per calendar with the ones webhooks queue."""
    max_age = timedelta(seconds=services.settings.sync_max_age_seconds)
    async with services.db.session() as db:
        due = await sync.stale_user_ids(db, None, max_age)
    for user_id in due:
        await services.tasks.sync_calendar(user_id)


async def check_caldav_changes(services: AppServices) -> None:
    """CalDAV has no push: ask recently active users' calendars whether they changed
    (one small request per calendar) and queue a full read of those that did."""
    async with services.db.session() as db:
        changed = await changes.detect_changes(
            db,
            services.calendar,
            active_days=services.settings.caldav_active_days,
            concurrency=services.settings.caldav_check_concurrency,
        )
    for user_id in changed:
        await services.tasks.sync_calendar(user_id)


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
    check_caldav_changes,
    pull_mailbox_changes,
    sync_stale_calendars,
    sync_org_calendars,
    keep_busy_ranges,
    renew_push_channels,
    retry_meeting_calendar_writes,
    poll_deadlines,
    retry_mail,
]


def every_seconds(services: AppServices, job: Job) -> int:
    """How often a job runs: every minute, the CalDAV change check more often."""
    if job is check_caldav_changes:
        return services.settings.caldav_check_seconds
    return 60


async def run_once(services: AppServices, jobs: list[Job] | None = None) -> None:
    """One tick. With the embedded queue, the tasks the jobs queued run before it returns,
    so a tick is complete (tests rely on that); procrastinate's workers take theirs."""
    for job in jobs or JOBS:
        await _run_job(services, job)
    await drain_tasks(services)


async def drain_tasks(services: AppServices) -> None:
    """Run the embedded queue's waiting tasks now (no-op for procrastinate)."""
    from server.jobs.tasks import handlers

    if isinstance(services.tasks, EmbeddedQueue):
        await services.tasks.drain(handlers(services))


async def run_forever(services: AppServices, interval_seconds: float = 60.0) -> None:
    """The embedded runner: the queue's consumers and the tick, until cancelled."""
    from server.jobs.tasks import handlers

    loops: list[asyncio.Task[None]] = []
    if isinstance(services.tasks, EmbeddedQueue):
        loops.append(asyncio.create_task(services.tasks.run(handlers(services))))
    frequent = [job for job in JOBS if every_seconds(services, job) < interval_seconds]
    for job in frequent:
        loops.append(asyncio.create_task(_every(services, job)))
    try:
        while True:
            for job in JOBS:
                if job not in frequent:
                    await _run_job(services, job)
            await asyncio.sleep(interval_seconds)
    finally:
        for loop in loops:
            loop.cancel()


async def _every(services: AppServices, job: Job) -> None:
    """Start ``job`` every interval (a fixed rate: a slow run shortens the next wait)."""
    loop = asyncio.get_running_loop()
    while True:
        began = loop.time()
        await _run_job(services, job)
        await asyncio.sleep(max(0.0, every_seconds(services, job) - (loop.time() - began)))


async def _run_job(services: AppServices, job: Job) -> None:
    try:
        await job(services)
    except Exception as exc:  # one job's bug must not stop the others
        # The summary, not the message: a provider's error may quote a token or a title.
        log.error("job %s failed: %s", getattr(job, "__name__", job), exception_summary(exc))
