"""The one-query forms of settings, sessions and connection visibility answer exactly as
the rules they replace (``resolve_settings`` over the organization's row, the
``access`` rules), in one query each, on both databases; an availability question reads
in three queries, and the request path and the job path agree on who is stale."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import (
    BusyCoverage,
    CalendarConnection,
    MentoringConnection,
    OrganizationIntegration,
    Program,
    UserSession,
)
from server.models.base import utcnow
from server.models.enums import CalendarStatus, ConnectionKind, IntegrationKind, ProgramRole
from server.services.availability import busy
from server.services.availability.query import AvailabilityRequest, find_availability
from server.services.calendars import sync
from server.services.errors import NotFound
from server.services.people import access, accounts, mentoring, programs, sessions
from server.wiring import AppServices
from tests.conftest import create_user, statements_run
from tests.scheduling_data import add_busy, connect_calendar


async def _world(services: AppServices) -> dict[str, uuid.UUID]:
    """Two programs (one with its own hours), a pair in the first, an admin of each."""
    ids = {
        name: await create_user(services, name=name.title(), global_admin=name == "root")
        for name in ("root", "mentor", "mentee", "admin", "other_admin", "stranger")
    }
    async with services.db.session() as db:
        root = await accounts.get_user(db, ids["root"])
        first = await programs.create_program(db, root, f"First {uuid.uuid4().hex[:4]}")
        second = await programs.create_program(db, root, f"Second {uuid.uuid4().hex[:4]}")
        await db.flush()
        row = await db.get(Program, first.id)
        assert row is not None
        row.earliest_hour, row.buffer_minutes, row.allow_weekends = 10, 15, True
        await programs.add_member(db, root, first.id, ids["mentor"], ProgramRole.MENTOR)
        await programs.add_member(db, root, first.id, ids["mentee"], ProgramRole.MENTEE)
        await programs.add_member(db, root, second.id, ids["mentor"], ProgramRole.MENTOR)
        await programs.add_member(db, root, first.id, ids["admin"], ProgramRole.ADMIN)
        await programs.add_member(db, root, second.id, ids["other_admin"], ProgramRole.ADMIN)
        pair = await mentoring.create_connection(
            db,
            root,
            program_id=first.id,
            member_ids=[ids["mentor"], ids["mentee"]],
            kind=ConnectionKind.PAIR,
            name=None,
        )
        await db.commit()
    return {**ids, "first": first.id, "second": second.id, "pair": pair.id}


async def _expected(db: AsyncSession, program_id: uuid.UUID | None) -> programs.ProgramSettings:
    program = await db.get(Program, program_id) if program_id else None
    return programs.resolve_settings(await programs.organization(db), program)


async def test_settings_in_one_query_match_the_program_over_the_organization(
    services: AppServices,
) -> None:
    w = await _world(services)
    async with services.db.session() as db:
        first, org_only = await _expected(db, w["first"]), await _expected(db, None)
        assert (first.earliest_hour, first.buffer_minutes, first.allow_weekends) == (10, 15, True)
        assert first != org_only
        mentor = await accounts.get_user(db, w["mentor"])
        stranger = await accounts.get_user(db, w["stranger"])
        root = await accounts.get_user(db, w["root"])
        with statements_run(services) as statements:
            assert await programs.settings_for(db, w["first"]) == first
            assert await programs.settings_for(db, None) == org_only
            assert await programs.settings_for(db, uuid.uuid4()) == org_only
            # The mentor joined the first program first.
            assert await programs.settings_for_user(db, w["mentor"]) == first
            assert await programs.settings_for_user(db, w["stranger"]) == org_only
            assert await programs.settings_if_visible(db, mentor, w["first"]) == first
            assert await programs.settings_if_visible(db, stranger, w["first"]) is None
        assert len(statements) == 7  # one each
        assert await programs.settings_if_visible(db, root, w["first"]) == first
        assert await programs.settings_if_visible(db, mentor, w["second"]) == await _expected(
            db, w["second"]
        )
        assert await programs.settings_if_visible(db, mentor, uuid.uuid4()) is None


async def test_settings_and_partners_in_one_query_match_the_two_rules(
    services: AppServices,
) -> None:
    """``settings_for_user_seeing`` answers as ``settings_for_user`` and "is every one a
    partner?" by ``access.partner_ids``; anyone else falls to ``visible_user_ids``, so a
    program administrator still sees the program's people and a stranger sees nobody."""
    w = await _world(services)
    async with services.db.session() as db:
        users = {name: await accounts.get_user(db, w[name]) for name in w if name in _PEOPLE}
        cases = [
            ("mentor", set(), True),
            ("mentor", {w["mentee"]}, True),
            ("mentor", {w["stranger"]}, False),
            ("mentor", {w["mentee"], w["stranger"]}, False),
            ("mentee", {w["mentor"]}, True),
            ("admin", {w["mentee"]}, False),  # an administrator, not a partner
            ("stranger", {w["mentor"], w["mentee"]}, False),
        ]
        for name, candidates, expected in cases:
            with statements_run(services) as statements:
                settings, all_partners = await programs.settings_for_user_seeing(
                    db, users[name], candidates
                )
            assert len(statements) == 1
            assert settings == await programs.settings_for_user(db, w[name]), name
            assert all_partners is expected, (name, candidates)
            partners = await access.partner_ids(db, w[name])
            assert all_partners is (candidates <= partners)
    window = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    request = _pair_question(w, window, window + timedelta(days=2))
    async with services.db.session() as db:
        admin = await accounts.get_user(db, w["admin"])
        seen = await find_availability(db, services.calendar, admin, request)
        assert [state.user.id for state in seen.participants] == [w["mentor"], w["mentee"]]
        stranger = await accounts.get_user(db, w["stranger"])
        with pytest.raises(NotFound) as refused:
            await find_availability(db, services.calendar, stranger, request)
        assert refused.value.field == "participantIds"


_PEOPLE = ("mentor", "mentee", "admin", "stranger")


def _pair_question(w: dict[str, uuid.UUID], start: datetime, end: datetime) -> AvailabilityRequest:
    """The world's pair, for 30-minute meetings between ``start`` and ``end``."""
    return AvailabilityRequest(
        participant_ids=[w["mentor"], w["mentee"]], start=start, end=end, duration_minutes=30
    )


async def test_a_session_its_user_and_the_admin_flag_in_one_query(services: AppServices) -> None:
    w = await _world(services)
    raws: dict[str, str] = {}
    async with services.db.session() as db:
        for name in ("mentor", "admin", "root"):
            user = await accounts.get_user(db, w[name])
            raws[name], _row = await sessions.start_session(db, user, lifetime=timedelta(hours=1))
        expired_user = await accounts.get_user(db, w["mentee"])
        raws["expired"], expired = await sessions.start_session(
            db, expired_user, lifetime=timedelta(hours=1)
        )
        expired.expires_at = utcnow() - timedelta(minutes=1)
        await db.commit()
    for name, is_admin in (("mentor", False), ("admin", True), ("root", True)):
        async with services.db.session() as db:
            with statements_run(services) as statements:
                row, viewer = await sessions.signed_in(db, raws[name])
            assert len(statements) == 1
            assert row is not None and viewer is not None
            assert viewer.user.id == viewer.actor.id == w[name] == row.user_id
            assert viewer.actor_is_admin is is_admin
            assert viewer.session_id == row.id
            # The same as the two-step form.
            again = await sessions.load_session(db, raws[name])
            assert again is not None
            assert await sessions.viewer_for(db, again) == viewer
    async with services.db.session() as db:
        assert await sessions.signed_in(db, "not-a-token") == (None, None)
        assert await sessions.signed_in(db, raws["expired"]) == (None, None)
        left = await db.exec(select(UserSession).where(UserSession.user_id == w["mentee"]))
        assert left.first() is None  # the expired row is gone


async def test_who_may_see_a_connection_in_one_query(services: AppServices) -> None:
    w = await _world(services)
    async with services.db.session() as db:
        connection = await db.get(MentoringConnection, w["pair"])
        assert connection is not None
        seen: dict[str, bool] = {}
        with statements_run(services) as statements:
            for name in ("mentor", "mentee", "admin", "other_admin", "stranger"):
                user = await accounts.get_user(db, w[name])
                before = len(statements)
                seen[name] = await access.can_see_connection(db, user, connection)
                assert len(statements) == before + 1
        assert seen == {
            "mentor": True,
            "mentee": True,
            "admin": True,
            "other_admin": False,
            "stranger": False,
        }
        root = await accounts.get_user(db, w["root"])
        assert await access.can_see_connection(db, root, connection)


async def test_an_availability_question_reads_in_three_queries(services: AppServices) -> None:
    """Settings with "are these my partners?", the people with their connections,
    covered ranges and Tandem's meetings, and the blocks: one query each, however many
    people are asked about."""
    w = await _world(services)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today + timedelta(days=7 - today.weekday())
    end = start + timedelta(days=5)
    for name in ("mentor", "mentee"):
        await connect_calendar(services, w[name])
    await add_busy(services, w["mentor"], start + timedelta(hours=11), start + timedelta(hours=12))
    async with services.db.session() as db:
        connection = (
            await db.exec(
                select(CalendarConnection).where(CalendarConnection.user_id == w["mentee"])
            )
        ).one()
        # The default horizon ends with the fifth day; an extra range read on demand
        # covers the days after it, and is read with the connections.
        connection.synced_from, connection.synced_until = start - timedelta(days=1), end
        db.add(connection)
        db.add(
            BusyCoverage(
                connection_id=connection.id,
                start_at=end,
                end_at=end + timedelta(days=30),
                fetched_at=utcnow(),
                last_used_at=utcnow(),
            )
        )
        await db.commit()
    request = _pair_question(w, start, end + timedelta(days=2))
    async with services.db.session() as db:
        mentor = await accounts.get_user(db, w["mentor"])
        with statements_run(services) as statements:
            answer = await find_availability(db, services.calendar, mentor, request)
    assert len(statements) == 3, statements
    assert answer.notes == [] and answer.unknown == []
    assert [state.calendar_status for state in answer.participants] == ["connected"] * 2
    assert [(b.user_id, b.start) for b in answer.busy] == [
        (w["mentor"], start + timedelta(hours=11))
    ]
    assert answer.result.slots
    # Without the extra range the last two days are unknown for the mentee (from the
    # cache only): the range read beside the connections is the one that counted.
    async with services.db.session() as db:
        for row in (await db.exec(select(BusyCoverage))).all():
            await db.delete(row)
        await db.commit()
        mentor = await accounts.get_user(db, w["mentor"])
        answer = await find_availability(db, services.calendar, mentor, request, refresh=False)
    assert [(u.user_id, u.start, u.end) for u in answer.unknown] == [
        (w["mentee"], end, end + timedelta(days=2))
    ]


async def test_who_is_stale_is_one_rule_for_the_job_and_the_request(
    services: AppServices,
) -> None:
    """``stale_user_ids`` (the job loop's SQL) and the request path's ``is_stale`` on the
    connections ``read_busy`` already read agree on every combination of states."""
    user_id = await create_user(services, name="Sam")
    await connect_calendar(services, user_id)
    async with services.db.session() as db:
        organization = await programs.organization(db)
        integration = OrganizationIntegration(
            organization_id=organization.id, kind=IntegrationKind.GOOGLE_WORKSPACE
        )
        db.add(integration)
        await db.commit()
    max_age = timedelta(minutes=15)
    hour = timedelta(hours=1)
    cases = [
        *itertools.product(
            [None],
            list(CalendarStatus),
            [None, timedelta(0), -2 * hour],  # never synced, just now, two hours ago
            [False, True],
            [None, -hour, hour],  # not backing off, backoff over, backing off
        ),
        (integration.id, CalendarStatus.CONNECTED, None, True, None),  # covered: the org's
    ]
    seen = set()
    for integration_id, status, synced, requested, retry in cases:
        now = utcnow()
        async with services.db.session() as db:
            connection = (
                await db.exec(
                    select(CalendarConnection).where(CalendarConnection.user_id == user_id)
                )
            ).one()
            connection.integration_id = integration_id
            connection.status = status
            connection.last_synced_at = None if synced is None else now + synced
            connection.sync_requested = requested
            connection.retry_after = None if retry is None else now + retry
            db.add(connection)
            await db.commit()
        async with services.db.session() as db:
            by_job = user_id in await sync.stale_user_ids(db, [user_id], max_age)
            assert by_job == (user_id in await sync.stale_user_ids(db, None, max_age))
            by_request = busy._stale(await busy._people(db, [user_id]), max_age) == [user_id]
        expected = (
            integration_id is None
            and status in (CalendarStatus.CONNECTED, CalendarStatus.ERROR)
            and (synced is None or synced < -max_age or requested)
            and (retry is None or retry < timedelta(0))
        )
        case = (integration_id, status, synced, requested, retry)
        assert by_job == by_request == expected, case
        seen.add(expected)
    assert seen == {True, False}


async def test_a_visible_connection_and_its_members_in_one_query(services: AppServices) -> None:
    """The same connection, members (in name order) and 404s as ``get_visible_connection``
    with ``members_by_connection``; one query for a member, the access check beside it
    for anyone else."""
    w = await _world(services)
    async with services.db.session() as db:
        expected = (await mentoring.members_by_connection(db, [w["pair"]]))[w["pair"]]
        assert [u.name for u, _ in expected] == ["Mentee", "Mentor"]
        outcome: dict[str, tuple[bool, int]] = {}
        with statements_run(services) as statements:
            for name in ("mentor", "mentee", "admin", "other_admin", "stranger", "root"):
                user = await accounts.get_user(db, w[name])
                before = len(statements)
                try:
                    connection, members = await mentoring.visible_connection_with_members(
                        db, user, w["pair"]
                    )
                except NotFound:
                    outcome[name] = (False, len(statements) - before)
                    continue
                assert connection.id == w["pair"]
                assert [(u.id, role) for u, role in members] == [
                    (u.id, role) for u, role in expected
                ]
                outcome[name] = (True, len(statements) - before)
            before = len(statements)
            try:
                await mentoring.visible_connection_with_members(db, user, uuid.uuid4())
                raise AssertionError("a missing connection must not be found")
            except NotFound:
                assert len(statements) == before + 1
    assert outcome == {
        "mentor": (True, 1),
        "mentee": (True, 1),
        "admin": (True, 2),
        "other_admin": (False, 2),
        "stranger": (False, 2),
        "root": (True, 1),
    }
