"""Task functions: what the queues run (``server.jobs.queue``), the same code on the
embedded queue and on procrastinate workers.

A task is an async function of the process's services plus JSON-able keyword arguments.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from functools import partial

from server.jobs.queue import SYNC_CALENDAR, Handler
from server.services.calendars import sync
from server.services.meetings.calendar_sync import sync_meeting_changes
from server.wiring import AppServices

SYNC_BUDGET_SECONDS = 60
EVERY_MINUTE = "* * * * *"


async def sync_calendar(services: AppServices, user_id: str) -> None:
    """Sync one user's calendar if it is due: a push notification asked
    (``sync_requested``) or the cache is older than SYNC_MAX_AGE_SECONDS. Connections
    backing off after a provider failure wait for their backoff (the polling job takes
    them then). Two-way meeting changes are read first, while the request is still set.

    Killed half-way, nothing was written (results land in one transaction) and
    ``sync_requested`` is still set, so the retry does the whole sync again."""
    uid = uuid.UUID(user_id)
    max_age = timedelta(seconds=services.settings.sync_max_age_seconds)
    async with services.db.session() as db:
        await sync_meeting_changes(db, services.meetings, [uid], max_age=max_age)
    async with services.db.session() as db:
        due = await sync.stale_user_ids(db, [uid], max_age)
        if due:
            await sync.sync_users(db, services.calendar, due, budget_seconds=SYNC_BUDGET_SECONDS)


def handlers(services: AppServices) -> dict[str, Handler]:
    """Every task by name, bound to this process's services."""
    return {SYNC_CALENDAR: partial(sync_calendar, services)}


def cron(seconds: int) -> str:
    """procrastinate's cron (a sixth field is seconds) for "every ``seconds``"."""
    if seconds >= 60:
        return EVERY_MINUTE
    return f"* * * * * */{seconds}"


def periodic(services: AppServices) -> Mapping[str, tuple[Handler, str]]:
    """The periodic jobs (``runner.JOBS``) with their schedules, for procrastinate."""
    from server.jobs.runner import JOBS, every_seconds

    return {
        job.__name__: (partial(job, services), cron(every_seconds(services, job))) for job in JOBS
    }
