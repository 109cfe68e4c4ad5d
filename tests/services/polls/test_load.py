"""Fifty invitees answering at the same moment lose nothing.

Real concurrency: 50 asyncio tasks, each with its own database session and connection,
released together, against a file-based SQLite database and against PostgreSQL (the
``database_url`` fixture runs this once per database). The unique (slot, user)
constraint plus the upsert must leave exactly 50 x slots rows and exact tallies, even
when one invitee submits from two tabs at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import col, func, select

from server.db import Database, create_engine
from server.models import PollAnswer, User
from server.models.enums import PollAnswerValue
from server.services.polls import rules as poll_rules
from server.wiring import AppServices, build_services, close_services
from tests.conftest import make_settings
from tests.polls_support import make_circle, make_poll

INVITEES = 50
SLOTS = 5
VALUES = (PollAnswerValue.YES, PollAnswerValue.IF_NEED_BE, PollAnswerValue.NO)

pytestmark = pytest.mark.slow


@pytest.fixture
async def wide_services(tmp_path: Path, database_url: str) -> AsyncIterator[AppServices]:
    """Services whose pool holds a connection per invitee, so all 50 really run at once."""
    svc = build_services(make_settings(tmp_path, database_url))
    await svc.db.dispose()
    svc.db = Database(create_engine(database_url, pool_size=INVITEES + 5, max_overflow=0))
    yield svc
    await close_services(svc)


def _choice(member: int, slot: int) -> PollAnswerValue:
    return VALUES[(member + slot) % len(VALUES)]


async def test_fifty_simultaneous_answers_lose_nothing(wide_services: AppServices) -> None:
    services = wide_services
    circle = await make_circle(services, size=INVITEES)
    poll = await make_poll(services, circle, slots=SLOTS)
    async with services.db.session() as db:
        voters = list((await db.exec(select(User).where(col(User.id).in_(circle.members)))).all())
        slot_ids = [s.id for s in (await poll_rules.load_details(db, [poll]))[0].slots]
    index = {uid: n for n, uid in enumerate(circle.members)}
    start = asyncio.Event()
    failures: list[BaseException] = []

    async def vote(voter: User, values: list[PollAnswerValue]) -> None:
        async with services.db.session() as db:
            await db.connection()  # hold a connection before the start signal
            await start.wait()
            try:
                await poll_rules.answer_poll(
                    db, voter, poll.id, list(zip(slot_ids, values, strict=True))
                )
                await db.commit()
            except Exception as exc:  # recorded; the test fails on any below
                failures.append(exc)
                await db.rollback()

    tasks = [
        asyncio.create_task(vote(v, [_choice(index[v.id], s) for s in range(SLOTS)]))
        for v in voters
    ]
    # The organizer also submits a second time at once, as from a second tab.
    organizer = next(v for v in voters if v.id == circle.organizer)
    tasks.append(asyncio.create_task(vote(organizer, [_choice(0, s) for s in range(SLOTS)])))
    await asyncio.sleep(0.2)
    start.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
    assert failures == []

    async with services.db.session() as db:
        total = (
            await db.exec(
                select(func.count()).select_from(PollAnswer).where(PollAnswer.poll_id == poll.id)
            )
        ).one()
        details = (await poll_rules.load_details(db, [poll]))[0]
    assert total == INVITEES * SLOTS
    for s, slot in enumerate(details.slots):
        expected = {v: 0 for v in VALUES}
        for member in range(INVITEES):
            expected[_choice(member, s)] += 1
        assert (slot.yes, slot.if_need_be, slot.no) == (
            expected[PollAnswerValue.YES],
            expected[PollAnswerValue.IF_NEED_BE],
            expected[PollAnswerValue.NO],
        )
        assert len({uid for uid, _ in slot.answers}) == INVITEES
