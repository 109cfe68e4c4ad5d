"""Seed data for the load benchmarks: a mentoring pair with connected calendars and busy
blocks, written straight into the database as if a sync had just run.

Importable without pytest, so ``bench.api_load`` and the tests can share it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import BusyBlock, CalendarConnection
from server.models.base import utcnow
from server.models.enums import (
    BusyKind,
    CalendarStatus,
    ConnectionKind,
    ProgramRole,
    ProviderName,
)
from server.services.people import accounts, api_tokens, mentoring, programs, sessions

PASSWORD = "bench-password-1234"
KINDS = [BusyKind.BUSY, BusyKind.BUSY, BusyKind.BUSY, BusyKind.TENTATIVE, BusyKind.OUT_OF_OFFICE]


@dataclass(frozen=True, slots=True)
class SeededPair:
    mentor: uuid.UUID
    mentee: uuid.UUID
    connection: uuid.UUID
    token: str  # the mentor's API token
    session: str  # the mentor's session cookie value
    window_start: datetime
    window_end: datetime


def busy_blocks(
    user_id: uuid.UUID, start: datetime, days: int, count: int, rng: random.Random
) -> list[BusyBlock]:
    """``count`` blocks of 15 minutes to 3 hours at 5-minute offsets in ``days`` days."""
    minutes = days * 24 * 60
    rows = []
    for _ in range(count):
        begin = start + timedelta(minutes=5 * rng.randrange(minutes // 5))
        length = timedelta(minutes=15 * rng.randint(1, 12))
        rows.append(
            BusyBlock(
                user_id=user_id, start_at=begin, end_at=begin + length, kind=rng.choice(KINDS)
            )
        )
    return rows


def connected(user_id: uuid.UUID, now: datetime, horizon_days: int = 60) -> CalendarConnection:
    """A calendar connection synced just now over the default horizon: nothing to fetch."""
    return CalendarConnection(
        user_id=user_id,
        provider=ProviderName.GOOGLE,
        status=CalendarStatus.CONNECTED,
        label="Google",
        account_email=f"{user_id.hex[:8]}@gmail.test",
        last_synced_at=now,
        synced_from=now - timedelta(days=7),
        synced_until=now + timedelta(days=horizon_days),
    )


async def seed_pair(
    db: AsyncSession, *, days: int = 14, blocks: int = 300, seed: int = 14
) -> SeededPair:
    """A program with a mentor (Europe/Paris) and a mentee (America/New_York), both with a
    connected calendar and ``blocks`` busy blocks between them over the ``days`` days
    starting at the next UTC midnight; the mentor gets an API token and a session."""
    now = utcnow()
    rng = random.Random(seed)
    admin = await accounts.create_user(
        db,
        email="admin@bench.test",
        name="Admin",
        password=PASSWORD,
        global_admin=True,
        profile_completed=True,
    )
    mentor = await accounts.create_user(
        db,
        email="ana@bench.test",
        name="Ana",
        password=PASSWORD,
        time_zone="Europe/Paris",
        profile_completed=True,
    )
    mentee = await accounts.create_user(
        db,
        email="maya@bench.test",
        name="Maya",
        password=PASSWORD,
        time_zone="America/New_York",
        profile_completed=True,
    )
    program = await programs.create_program(db, admin, "Bench")
    await programs.add_member(db, admin, program.id, mentor.id, ProgramRole.MENTOR)
    await programs.add_member(db, admin, program.id, mentee.id, ProgramRole.MENTEE)
    connection = await mentoring.create_connection(
        db,
        admin,
        program_id=program.id,
        member_ids=[mentor.id, mentee.id],
        kind=ConnectionKind.PAIR,
        name=None,
    )
    start = (
        (now + timedelta(days=1)).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    for person in (mentor, mentee):
        db.add(connected(person.id, now))
        db.add_all(busy_blocks(person.id, start, days, blocks // 2, rng))
    token, _row = await api_tokens.create_token(db, mentor, "bench")
    raw_session, _session = await sessions.start_session(db, mentor, lifetime=timedelta(days=1))
    await db.commit()
    return SeededPair(
        mentor.id, mentee.id, connection.id, token, raw_session, start, start + timedelta(days=days)
    )


@dataclass(frozen=True, slots=True)
class SeededCrowd:
    viewer: uuid.UUID  # a global administrator, who may ask about everyone
    people: list[uuid.UUID]
    token: str
    window_start: datetime
    window_end: datetime


async def seed_crowd(
    db: AsyncSession,
    *,
    count: int = 100,
    blocks_each: int = 500,
    days: int = 30,
    seed: int = 7,
    zones: Sequence[str] = ("UTC",),
) -> SeededCrowd:
    """``count`` people with connected calendars and ``blocks_each`` busy blocks each over
    ``days`` days from the next UTC midnight; the first is a global admin with a token."""
    now = utcnow()
    rng = random.Random(seed)
    start = (
        (now + timedelta(days=1)).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    people = []
    for index in range(count):
        user = await accounts.create_user(
            db,
            email=f"person{index}@bench.test",
            name=f"Person {index}",
            time_zone=zones[index % len(zones)],
            global_admin=index == 0,
            profile_completed=True,
        )
        people.append(user)
        db.add(connected(user.id, now))
        db.add_all(busy_blocks(user.id, start, days, blocks_each, rng))
    token, _row = await api_tokens.create_token(db, people[0], "bench")
    await db.commit()
    return SeededCrowd(
        people[0].id, [p.id for p in people], token, start, start + timedelta(days=days)
    )
