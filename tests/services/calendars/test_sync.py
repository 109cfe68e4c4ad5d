"""Busy-block sync against the emulators: refresh, lost grants, unreadable calendars,
rate limits and outages, each affecting only the connection it belongs to."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from emulators.google import RunningGoogle, consent
from emulators.microsoft import RunningMicrosoft
from server.jobs.runner import run_once
from server.models import BusyBlock, CalendarConnection
from server.models.base import utcnow
from server.models.enums import CalendarStatus, ProviderName
from server.services.availability.query import AvailabilityRequest, find_availability
from server.services.calendars import connect, sync
from server.services.calendars import status as calendar_status
from server.services.people import accounts
from server.services.people.sessions import Viewer
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import microsoft_consent, provider_overrides
from tests.conftest import create_user, make_settings

pytestmark = pytest.mark.slow


@pytest.fixture
async def svc(
    tmp_path: Path, sqlite_url: str, google: RunningGoogle, microsoft: RunningMicrosoft
) -> AsyncIterator[AppServices]:
    services = build_services(
        make_settings(tmp_path, sqlite_url, **provider_overrides(google, microsoft))
    )
    yield services
    await close_services(services)


def _at(days: int, hour: int) -> datetime:
    base = (datetime.now(UTC) + timedelta(days=days)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return base + timedelta(hours=hour)


async def _viewer(services: AppServices, user_id: uuid.UUID) -> Viewer:
    async with services.db.session() as db:
        user = await accounts.get_user(db, user_id)
    return Viewer(user=user, actor=user)


async def connect_google(
    services: AppServices, user_id: uuid.UUID, account: str, *, untick: tuple[str, ...] = ()
) -> None:
    viewer = await _viewer(services, user_id)
    async with services.db.session() as db:
        url = await connect.start_oauth(db, services.calendar, viewer, ProviderName.GOOGLE)
        await db.commit()
    async with httpx.AsyncClient() as browser:
        params = await consent(browser, url, account, untick=untick)
    async with services.db.session() as db:
        await connect.finish_oauth(db, services.calendar, viewer, ProviderName.GOOGLE, params)


async def connect_microsoft(
    services: AppServices, user_id: uuid.UUID, account: str, ca: Path
) -> None:
    viewer = await _viewer(services, user_id)
    async with services.db.session() as db:
        url = await connect.start_oauth(db, services.calendar, viewer, ProviderName.MICROSOFT)
        await db.commit()
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca))) as browser:
        params = await microsoft_consent(browser, url, account)
    async with services.db.session() as db:
        await connect.finish_oauth(db, services.calendar, viewer, ProviderName.MICROSOFT, params)


async def _connection(services: AppServices, user_id: uuid.UUID) -> CalendarConnection:
    async with services.db.session() as db:
        row = (
            await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user_id))
        ).one()
        return row


async def _make_stale(services: AppServices, user_id: uuid.UUID) -> None:
    async with services.db.session() as db:
        row = (
            await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user_id))
        ).one()
        row.last_synced_at = utcnow() - timedelta(hours=2)
        row.retry_after = None
        db.add(row)
        await db.commit()


async def _blocks(services: AppServices, user_id: uuid.UUID) -> list[tuple[datetime, datetime]]:
    async with services.db.session() as db:
        rows = (
            await db.exec(
                select(BusyBlock).where(BusyBlock.user_id == user_id).order_by(BusyBlock.start_at)
            )
        ).all()
        return [(r.start_at, r.end_at) for r in rows]


async def test_job_loop_picks_up_new_events_when_cache_is_stale(
    svc: AppServices, google: RunningGoogle
) -> None:
    user = await create_user(svc, "s1@example.org")
    google.state.add_account("s1@gmail.test")
    await connect_google(svc, user, "s1@gmail.test")
    assert await _blocks(svc, user) == []
    google.state.add_event(
        "s1@gmail.test",
        {
            "summary": "new",
            "start": {"dateTime": _at(2, 9).isoformat()},
            "end": {"dateTime": _at(2, 10).isoformat()},
        },
    )
    await run_once(svc)  # fresh cache: nothing to do yet
    assert await _blocks(svc, user) == []
    await _make_stale(svc, user)
    await run_once(svc)
    assert await _blocks(svc, user) == [(_at(2, 9), _at(2, 10))]


async def test_invalid_grant_marks_needs_reauth_and_person_unknown(
    svc: AppServices, google: RunningGoogle
) -> None:
    owner = await create_user(svc, "s2@example.org", global_admin=True)
    user = await create_user(svc, "s2b@example.org")
    google.state.add_account("s2@gmail.test")
    await connect_google(svc, user, "s2@gmail.test")
    google.state.revoke_all("s2@gmail.test")
    google.state.expire_access_tokens()
    await _make_stale(svc, user)
    await run_once(svc)
    connection = await _connection(svc, user)
    assert connection.status == CalendarStatus.NEEDS_REAUTH
    assert connection.last_error and "Reconnect" in connection.last_error
    async with svc.db.session() as db:
        admin = await accounts.get_user(db, owner)
        answer = await find_availability(
            db,
            svc.calendar,
            admin,
            AvailabilityRequest(
                participant_ids=[owner, user], start=_at(1, 0), end=_at(3, 0), duration_minutes=30
            ),
        )
    assert answer.participants[1].calendar_status == "needs_reauth"
    assert all(user in slot.unknown for slot in answer.result.slots)
    token_calls = len(google.state.requests_to("/token"))
    await run_once(svc)  # no retry storm: a lost grant is not polled again
    assert len(google.state.requests_to("/token")) == token_calls


async def test_unreadable_calendar_is_error_and_unknown(
    svc: AppServices, google: RunningGoogle
) -> None:
    user = await create_user(svc, "s3@example.org")
    google.state.add_account("s3@gmail.test")
    google.state.set_unreadable("s3@gmail.test")
    await connect_google(svc, user, "s3@gmail.test")
    connection = await _connection(svc, user)
    assert connection.status == CalendarStatus.ERROR
    assert (
        connection.last_error
        == "Google could not read your calendar, so your availability is unknown."
    )


async def test_rate_limit_keeps_cache_and_backs_off(
    svc: AppServices, google: RunningGoogle
) -> None:
    user = await create_user(svc, "s4@example.org")
    google.state.add_account("s4@gmail.test")
    google.state.add_event(
        "s4@gmail.test",
        {
            "summary": "x",
            "start": {"dateTime": _at(2, 9).isoformat()},
            "end": {"dateTime": _at(2, 10).isoformat()},
        },
    )
    await connect_google(svc, user, "s4@gmail.test")
    await _make_stale(svc, user)
    google.state.fail_next("freeBusy", 429, headers={"Retry-After": "120"}, times=10)
    async with svc.db.session() as db:
        outcomes = await sync.sync_users(db, svc.calendar, [user])
    assert outcomes[user].ok is False
    connection = await _connection(svc, user)
    assert connection.status == CalendarStatus.CONNECTED
    assert connection.retry_after is not None and connection.retry_after >= utcnow() + timedelta(
        seconds=110
    )
    assert await _blocks(svc, user) == [(_at(2, 9), _at(2, 10))]
    async with svc.db.session() as db:
        assert await sync.stale_user_ids(db, [user], timedelta(seconds=1)) == []  # backing off


async def test_one_provider_outage_does_not_affect_another(
    svc: AppServices, google: RunningGoogle, microsoft: RunningMicrosoft
) -> None:
    g_user = await create_user(svc, "s5g@example.org")
    m_user = await create_user(svc, "s5m@example.org")
    google.state.add_account("s5@gmail.test")
    microsoft.state.add_account("s5@contoso.test")
    microsoft.state.add_event(
        "s5@contoso.test",
        subject="standup",
        start=_at(2, 9),
        end=_at(2, 10),
        show_as="busy",
    )
    await connect_google(svc, g_user, "s5@gmail.test")
    await connect_microsoft(svc, m_user, "s5@contoso.test", microsoft.ca_path)
    await _make_stale(svc, g_user)
    await _make_stale(svc, m_user)
    google.state.fail_next("freeBusy", 503, times=10)
    async with svc.db.session() as db:
        outcomes = await sync.sync_users(db, svc.calendar, [g_user, m_user])
    assert outcomes[g_user].ok is False and outcomes[m_user].ok is True
    assert await _blocks(svc, m_user) == [(_at(2, 9), _at(2, 10))]


async def test_stale_cache_answers_from_cache_and_says_how_old(
    svc: AppServices, google: RunningGoogle
) -> None:
    me = await create_user(svc, "s6@example.org", global_admin=True, name="Ada")
    user = await create_user(svc, "s6b@example.org", name="Bo")
    google.state.add_account("s6@gmail.test")
    google.state.add_event(
        "s6@gmail.test",
        {
            "summary": "x",
            "start": {"dateTime": _at(2, 9).isoformat()},
            "end": {"dateTime": _at(2, 10).isoformat()},
        },
    )
    await connect_google(svc, user, "s6@gmail.test")
    await _make_stale(svc, user)
    google.state.fail_next("freeBusy", 503, times=10)
    async with svc.db.session() as db:
        admin = await accounts.get_user(db, me)
        answer = await find_availability(
            db,
            svc.calendar,
            admin,
            AvailabilityRequest(
                participant_ids=[me, user], start=_at(2, 0), end=_at(3, 0), duration_minutes=60
            ),
        )
    assert answer.notes == [
        "Bo's calendar could not be refreshed just now; showing busy times from 120 minutes ago."
    ]
    assert answer.participants[1].calendar_status == "connected"
    assert [(b.start, b.end) for b in answer.busy] == [(_at(2, 9), _at(2, 10))]


async def test_microsoft_access_policy_is_an_error_with_its_reason_and_is_retried(
    svc: AppServices, microsoft: RunningMicrosoft
) -> None:
    user = await create_user(svc, "s9@example.org")
    account = f"s9-{uuid.uuid4().hex[:6]}@contoso.test"
    microsoft.state.add_account(account)
    await connect_microsoft(svc, user, account, microsoft.ca_path)
    microsoft.state.deny_access(account)
    await _make_stale(svc, user)
    async with svc.db.session() as db:
        outcomes = await sync.sync_users(db, svc.calendar, [user])
    connection = await _connection(svc, user)
    assert outcomes[user].ok is False
    assert connection.status == CalendarStatus.ERROR  # not "reconnect your calendar"
    assert connection.error_code == sync.PROBLEM_ACCESS_POLICY
    assert connection.last_error is not None and "policy" in connection.last_error
    assert connection.retry_after is not None and connection.retry_after > utcnow()
    # Still polled once the backoff is over, and back to connected when the policy lifts.
    microsoft.state.deny_access(account, None)
    async with svc.db.session() as db:
        row = await db.get(CalendarConnection, connection.id)
        assert row is not None
        row.retry_after = utcnow() - timedelta(seconds=1)
        db.add(row)
        await db.commit()
        assert user in await sync.stale_user_ids(db, [user], timedelta(minutes=15))
        await sync.sync_users(db, svc.calendar, [user])
    connection = await _connection(svc, user)
    assert connection.status == CalendarStatus.CONNECTED and connection.error_code is None


async def test_microsoft_passing_403_backs_off_without_asking_to_reconnect(
    svc: AppServices, microsoft: RunningMicrosoft
) -> None:
    user = await create_user(svc, "s10@example.org")
    account = f"s10-{uuid.uuid4().hex[:6]}@contoso.test"
    microsoft.state.add_account(account)
    await connect_microsoft(svc, user, account, microsoft.ca_path)
    await _make_stale(svc, user)
    microsoft.state.fail_next("/getSchedule", 403)
    async with svc.db.session() as db:
        await sync.sync_users(db, svc.calendar, [user])
    connection = await _connection(svc, user)
    assert connection.status != CalendarStatus.NEEDS_REAUTH
    assert connection.error_code == sync.PROBLEM_ACCESS_DENIED
    assert connection.retry_after is not None and connection.retry_after > utcnow()


async def test_expired_microsoft_client_secret_is_an_operator_problem_not_a_user_one(
    svc: AppServices, microsoft: RunningMicrosoft
) -> None:
    user = await create_user(svc, "s11@example.org")
    account = f"s11-{uuid.uuid4().hex[:6]}@contoso.test"
    microsoft.state.add_account(account)
    await connect_microsoft(svc, user, account, microsoft.ca_path)
    await _make_stale(svc, user)
    microsoft.state.expire_access_tokens()
    microsoft.state.expire_client_secret()
    try:
        async with svc.db.session() as db:
            await sync.sync_users(db, svc.calendar, [user])
        connection = await _connection(svc, user)
        assert connection.status == CalendarStatus.CONNECTED  # nothing for the user to do
        assert connection.error_code == sync.PROBLEM_PROVIDER_CONFIG
        assert connection.retry_after is not None and connection.retry_after > utcnow()
        async with svc.db.session() as db:
            problems = await calendar_status.operator_problems(db)
        assert problems == {ProviderName.MICROSOFT: 1}
    finally:
        microsoft.state.expire_client_secret(False)
