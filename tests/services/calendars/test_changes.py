"""CalDAV change detection: a cheap tag check per calendar for recently active users,
a full read (through the sync task) only when the tag moved."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from emulators.radicale import RunningRadicale, start_radicale
from server.jobs.runner import check_caldav_changes, drain_tasks
from server.models import BusyBlock, CalendarConnection, UserSession
from server.models.base import utcnow
from server.services.calendars import changes, connect
from server.services.people import accounts
from server.services.people.sessions import Viewer
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import provider_overrides
from tests.conftest import create_user, make_settings

USER, PASSWORD = "dana", "dana-app-pw-3318"
CALENDAR = "main"


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRadicale]:
    running = start_radicale(tmp_path_factory.mktemp("dav"), users={USER: PASSWORD})
    running.make_calendar(USER, PASSWORD, CALENDAR)
    yield running
    running.stop()


@pytest.fixture
async def svc(tmp_path: Path, sqlite_url: str) -> AsyncIterator[AppServices]:
    services = build_services(make_settings(tmp_path, sqlite_url, **provider_overrides()))
    yield services
    await close_services(services)


def _event(radicale: RunningRadicale, start: datetime) -> None:
    stamp = f"{start:%Y%m%dT%H%M%SZ}"
    end = f"{start + timedelta(hours=1):%Y%m%dT%H%M%SZ}"
    radicale.add_event(
        USER,
        PASSWORD,
        CALENDAR,
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uuid.uuid4().hex}@test\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{stamp}\r\nDTEND:{end}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )


async def _connect(svc: AppServices, radicale: RunningRadicale, email: str) -> uuid.UUID:
    user_id = await create_user(svc, email)
    async with svc.db.session() as db:
        user = await accounts.get_user(db, user_id)
        await connect.connect_with_password(
            db,
            svc.calendar,
            Viewer(user=user, actor=user),
            username=USER,
            password=PASSWORD,
            server_url=radicale.url,
        )
    return user_id


async def _sign_in(svc: AppServices, user_id: uuid.UUID, *, days_ago: int = 0) -> None:
    created = utcnow() - timedelta(days=days_ago)
    async with svc.db.session() as db:
        db.add(
            UserSession(
                token_hash=secrets.token_hex(32),
                user_id=user_id,
                csrf_token=secrets.token_hex(16),
                created_at=created,
                expires_at=utcnow() + timedelta(days=1),
            )
        )
        await db.commit()


async def _blocks(svc: AppServices, user_id: uuid.UUID) -> list[datetime]:
    async with svc.db.session() as db:
        rows = (await db.exec(select(BusyBlock).where(BusyBlock.user_id == user_id))).all()
    return sorted(b.start_at for b in rows)


async def test_only_a_changed_tag_causes_a_full_read(
    svc: AppServices, radicale: RunningRadicale
) -> None:
    user = await _connect(svc, radicale, "dana@example.org")
    await _sign_in(svc, user)
    # The first check stores the tag and reads once (a change since connecting counts).
    async with svc.db.session() as db:
        assert await changes.detect_changes(db, svc.calendar, active_days=14) == [user]
    assert await svc.tasks.sync_calendar(user) is True
    await drain_tasks(svc)
    async with svc.db.session() as db:
        assert await changes.detect_changes(db, svc.calendar, active_days=14) == []
        row = (
            await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user))
        ).one()
        assert row.sync_requested is False
        synced_at = row.last_synced_at
    start = (datetime.now(UTC) + timedelta(days=2)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    _event(radicale, start)
    await check_caldav_changes(svc)  # the job: detects, queues one sync
    await drain_tasks(svc)
    assert start in await _blocks(svc, user)
    async with svc.db.session() as db:
        row = (
            await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user))
        ).one()
        assert row.sync_requested is False
        assert row.last_synced_at is not None and synced_at is not None
        assert row.last_synced_at > synced_at


async def test_inactive_users_are_not_checked(svc: AppServices, radicale: RunningRadicale) -> None:
    idle = await _connect(svc, radicale, "idle@example.org")
    old = await _connect(svc, radicale, "old@example.org")
    await _sign_in(svc, old, days_ago=30)
    async with svc.db.session() as db:
        assert await changes.active_candidates(db, svc.calendar, 14, utcnow()) == []
    await _sign_in(svc, idle)
    async with svc.db.session() as db:
        found = await changes.active_candidates(db, svc.calendar, 14, utcnow())
    assert [c.user_id for c in found] == [idle]
