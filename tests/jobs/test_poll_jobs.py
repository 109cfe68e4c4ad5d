"""The poll job closes overdue polls and sends due reminders, through the process's mailer."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col

from server.jobs.polls import poll_deadlines
from server.models import Poll
from server.models.base import utcnow
from server.models.enums import PollStatus
from server.services.invites import MemoryMailer
from server.wiring import AppServices
from tests.conftest import use_mailer
from tests.polls_support import make_circle, make_poll


async def test_poll_deadlines_closes_and_reminds(services: AppServices) -> None:
    mailer = MemoryMailer()
    use_mailer(services, mailer)
    circle = await make_circle(services, size=2)
    overdue = await make_poll(
        services, circle, deadline=utcnow() + timedelta(hours=3), title="Overdue"
    )
    soon = await make_poll(services, circle, deadline=utcnow() + timedelta(hours=5), title="Soon")
    async with services.db.session() as db:  # the first deadline has passed meanwhile
        await db.exec(
            update(Poll)
            .where(col(Poll.id) == overdue.id)
            .values(deadline=utcnow() - timedelta(minutes=1))
        )
        await db.commit()

    await poll_deadlines(services)
    await poll_deadlines(services)  # a second tick sends nothing new

    async with services.db.session() as db:
        closed = await db.get(Poll, overdue.id)
        still_open = await db.get(Poll, soon.id)
    assert closed is not None and closed.status == PollStatus.CLOSED
    assert still_open is not None and still_open.status == PollStatus.OPEN
    assert still_open.reminder_sent_at is not None
    subjects = sorted(str(m["Subject"]) for m in mailer.sent)
    assert subjects == ["Reminder: Soon", "Reminder: Soon", "Time to pick a slot: Overdue"]
