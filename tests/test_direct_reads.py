"""Hot reads straight from the driver (``server.direct_reads``) give SQLAlchemy's rows.

Every statement the availability question, the week page and the request guard read
through ``core_reads`` is run both ways on the same data, on SQLite and on PostgreSQL,
and the rows must be equal value for value and type for type (a UUID stays a UUID, a
stored time comes back aware, an enum comes back as its member).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, exc, func, select, text
from sqlalchemy.sql import Executable

from bench.seed import SeededPair, seed_pair
from server import direct_reads
from server.db import Database
from server.models import MeetingAttendee, User
from server.models.enums import AttendeeResponse
from server.services.availability import booked, busy
from server.services.people import access, api_tokens, mentoring, programs, sessions
from server.sqlite_driver import LONG_READ
from server.wiring import AppServices
from tests.conftest import statements_run
from tests.scheduling_data import book_meeting

_USERS = User.__table__  # type: ignore[attr-defined]


async def _seeded(services: AppServices) -> tuple[SeededPair, uuid.UUID]:
    async with services.db.session() as db:
        pair = await seed_pair(db, days=3, blocks=20)
    start = pair.window_start + timedelta(hours=10)
    meeting = await book_meeting(
        services, [pair.mentor, pair.mentee], start, start + timedelta(minutes=30)
    )
    return pair, meeting


def _statements(
    pair: SeededPair,
) -> list[tuple[str, Executable, dict[str, Any]]]:
    both = [pair.mentor, pair.mentee]
    window = {"ids": both, "start": pair.window_start, "end": pair.window_end}
    return [
        ("token", api_tokens._TOKEN_AND_OWNER, {"digest": api_tokens._digest(pair.token)}),
        (
            "session",
            sessions._SESSION_WITH_ACTOR,
            {"token_hash": sessions.token_hash(pair.session)},
        ),
        ("partners", access._PARTNERS, {"user_id": pair.mentor}),
        ("settings for user", programs._SETTINGS_FOR_USER, {"user_id": pair.mentor}),
        ("settings for none", programs._SETTINGS_FOR_PROGRAM, {"program_id": None}),
        ("people", busy._PEOPLE, {"ids": both}),
        ("one person", busy._PEOPLE, {"ids": [pair.mentee]}),
        ("booked", booked._BOOKED, window),
        ("people and booked", busy._PEOPLE_AND_BOOKED, window),
        ("booked but one", booked._BOOKED_BUT_ONE, {**window, "ignore": uuid.uuid4()}),
        (
            "connection with members",
            mentoring._CONNECTION_WITH_MEMBERS,
            {"connection_id": pair.connection},
        ),
    ]


async def _through_sqlalchemy(
    services: AppServices, statement: Executable, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    async with services.db.session() as db:
        connection = await db.connection()
        return [tuple(row) for row in (await connection.execute(statement, dict(params))).all()]


async def _direct(
    services: AppServices, statement: Executable, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    async with services.db.session() as db:
        connection = await db.connection()
        assert connection.sync_connection is not None
        read = direct_reads.direct_read(connection.sync_connection, statement)
        assert read is not None, "this statement should be read directly"
        return await read.rows(params)


def _shape(rows: Sequence[Sequence[Any]]) -> list[list[tuple[type, Any]]]:
    return [[(type(value), value) for value in row] for row in rows]


async def test_every_hot_statement_reads_the_same_rows_directly(services: AppServices) -> None:
    pair, meeting_id = await _seeded(services)
    for name, statement, params in _statements(pair):
        expected = await _through_sqlalchemy(services, statement, params)
        got = await _direct(services, statement, params)
        assert got, f"{name}: the seeded data should give rows"
        assert _shape(got) == _shape(expected), name
    # People and their meetings in one query: the people's rows as ``_PEOPLE`` reads
    # them, then one row per meeting, as ``_BOOKED`` reads it.
    both = [pair.mentor, pair.mentee]
    window = {"ids": both, "start": pair.window_start, "end": pair.window_end}
    merged = await _direct(services, busy._PEOPLE_AND_BOOKED, window)
    people_rows = await _direct(services, busy._PEOPLE, {"ids": both})
    assert sorted(map(str, (row[:-3] for row in merged if row[0] is not None))) == sorted(
        map(str, people_rows)
    )
    async with services.db.session() as db:
        expected = await booked.meeting_busy(db, both, pair.window_start, pair.window_end)
    assert booked.booked_in(merged) == expected
    assert sum(map(len, expected.values())) == 2  # both attendees of the seeded meeting
    # An empty IN list is written as SQLAlchemy writes it (an empty set), not cached wrong.
    assert await _direct(services, busy._PEOPLE, {"ids": []}) == []
    assert len(await _direct(services, busy._PEOPLE, {"ids": [pair.mentor]})) >= 1
    ignored = {"ids": [pair.mentor], "start": pair.window_start, "end": pair.window_end}
    ignored["ignore"] = meeting_id
    assert await _direct(services, booked._BOOKED_BUT_ONE, ignored) == []
    # The enum and the aware time come back as SQLAlchemy makes them.
    people = await _direct(services, busy._PEOPLE, {"ids": [pair.mentor]})
    assert any(value.tzinfo is not None for value in people[0] if hasattr(value, "tzinfo"))
    booked_rows = await _direct(
        services,
        booked._BOOKED,
        {"ids": [pair.mentor], "start": pair.window_start, "end": pair.window_end},
    )
    assert booked_rows == [
        (
            pair.mentor,
            pair.window_start + timedelta(hours=10),
            pair.window_start + timedelta(hours=10, minutes=30),
        )
    ]


async def test_a_declined_meeting_is_left_out_directly_as_through_sqlalchemy(
    services: AppServices,
) -> None:
    """The statement's own literals (``response != 'declined'``) are bound on each call."""
    pair, meeting_id = await _seeded(services)
    async with services.db.session() as db:
        attendee = (
            await db.exec(  # type: ignore[call-overload]
                select(MeetingAttendee).where(
                    MeetingAttendee.meeting_id == meeting_id,  # type: ignore[arg-type]
                    MeetingAttendee.user_id == pair.mentee,  # type: ignore[arg-type]
                )
            )
        ).scalar_one()
        attendee.response = AttendeeResponse.DECLINED
        await db.commit()
    window = {"ids": [pair.mentor, pair.mentee], "start": pair.window_start, "end": pair.window_end}
    rows = await _direct(services, booked._BOOKED, window)
    assert [row[0] for row in rows] == [pair.mentor]
    assert rows == await _through_sqlalchemy(services, booked._BOOKED, window)


async def test_a_read_after_a_write_sees_the_sessions_own_transaction(
    services: AppServices,
) -> None:
    """After a flush the direct read runs in the session's transaction: it sees the
    uncommitted row, and once rolled back nobody does."""
    user_id = uuid.uuid4()
    by_id = select(_USERS.c.name).where(_USERS.c.id == bindparam("id"))
    async with services.db.session() as db:
        db.add(User(id=user_id, email="new@example.org", name="Nova", time_zone="UTC"))
        await db.flush()
        assert await direct_reads.rows(await db.connection(), by_id, {"id": user_id}) == [("Nova",)]
        await db.rollback()
        assert await direct_reads.rows(await db.connection(), by_id, {"id": user_id}) == []


async def test_a_driver_error_is_raised_as_sqlalchemys(services: AppServices) -> None:
    missing = select(text("1")).select_from(text("no_such_table"))
    async with services.db.session() as db:
        with pytest.raises(exc.DBAPIError) as raised:
            await direct_reads.rows(await db.connection(), missing, {})
    assert "no_such_table" in str(raised.value)


async def test_a_watched_engine_reads_through_sqlalchemy(services: AppServices) -> None:
    """Statement listeners (and ``echo``) see every statement: while anyone listens,
    reads go through SQLAlchemy, so counts and logs stay true."""
    pair, _meeting = await _seeded(services)
    async with services.db.session() as db:
        connection = await db.connection()
        assert connection.sync_connection is not None
        assert direct_reads.direct_read(connection.sync_connection, access._PARTNERS) is not None
        with statements_run(services) as seen:
            assert direct_reads.direct_read(connection.sync_connection, access._PARTNERS) is None
            rows = await direct_reads.rows(connection, access._PARTNERS, {"user_id": pair.mentor})
        assert rows == [(pair.mentee,)]
        assert len(seen) == 1


async def test_sql_logged_by_logging_reads_through_sqlalchemy(
    services: AppServices, caplog: pytest.LogCaptureFixture
) -> None:
    """The engine's logger at INFO (by ``echo`` or by logging's configuration) logs every
    statement, so none bypasses it."""
    pair, _meeting = await _seeded(services)
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
        async with services.db.session() as db:
            connection = await db.connection()
            assert connection.sync_connection is not None
            assert direct_reads.direct_read(connection.sync_connection, access._PARTNERS) is None
            await direct_reads.rows(connection, access._PARTNERS, {"user_id": pair.mentor})
        assert any("theirs.user_id" in record.getMessage() for record in caplog.records)


async def test_locking_and_long_reads_go_through_sqlalchemy(services: AppServices) -> None:
    locking = select(_USERS.c.id).with_for_update()
    long_read = select(func.count()).select_from(_USERS).prefix_with(LONG_READ)
    async with services.db.session() as db:
        connection = await db.connection()
        assert connection.sync_connection is not None
        assert direct_reads.direct_read(connection.sync_connection, locking) is None
        read = direct_reads.direct_read(connection.sync_connection, long_read)
        if services.db.is_sqlite:  # SQLite does a long read on aiosqlite's thread
            assert read is None
        else:
            assert read is not None


async def test_a_cancelled_read_never_lends_its_connection_again(postgres_ready: str) -> None:
    """A request cancelled while PostgreSQL is still answering leaves the driver's
    connection mid-conversation: it is invalidated, and the next session reads fine.
    (SQLite reads inline, so a read there cannot be interrupted mid-statement.)"""
    database = Database.from_url(postgres_ready, pool_size=1)
    try:
        async with database.session() as db:
            connection = await db.connection()
            task = asyncio.create_task(direct_reads.rows(connection, select(func.pg_sleep(5)), {}))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert connection.sync_connection is not None
            assert connection.sync_connection.invalidated
        for _ in range(3):  # one pooled connection: the invalidated one was replaced
            async with database.session() as db:
                found = await direct_reads.rows(await db.connection(), select(func.now()), {})
                assert len(found) == 1
    finally:
        await database.dispose()
