"""Poll deadlines and reminders, for the job loop (``server.jobs.runner.JOBS``)."""

from __future__ import annotations

from server.models.base import utcnow
from server.services.polls import rules as poll_rules
from server.wiring import AppServices


async def poll_deadlines(services: AppServices) -> None:
    """Close polls past their deadline (telling organizers to pick), then remind invitees
    who have not answered a day before a deadline. Safe to run on several workers."""
    deps = services.polls
    now = utcnow()
    async with services.db.session() as db:
        await poll_rules.close_due_polls(db, deps, now)
    async with services.db.session() as db:
        await poll_rules.send_due_reminders(db, deps, now)
