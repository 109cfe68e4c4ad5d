"""Microsoft token refresh across nodes (PostgreSQL): two processes syncing the same
account with expired access tokens refresh once, one after the other, and the rotated
refresh token is never lost."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlmodel import select

from emulators.microsoft import RunningMicrosoft
from server.models import CalendarConnection
from server.models.enums import CalendarStatus, ProviderName
from server.services.calendars import refresh_lock, sync
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import provider_overrides
from tests.conftest import create_user, make_settings
from tests.services.calendars.test_sync import connect_microsoft

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_lock_keys_are_stable_and_distinct() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert refresh_lock.lock_key(a) == refresh_lock.lock_key(a)
    assert refresh_lock.lock_key(a) != refresh_lock.lock_key(b)
    assert -(2**63) <= refresh_lock.lock_key(a) < 2**63


async def _status(svc: AppServices, user: uuid.UUID) -> CalendarStatus:
    async with svc.db.session() as db:
        row = (
            await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user))
        ).one()
    return row.status


async def test_two_nodes_refreshing_one_account_keep_the_grant(
    tmp_path: Path, postgres_ready: str, microsoft: RunningMicrosoft
) -> None:
    from tests.conftest import _truncate

    await _truncate(postgres_ready)
    settings = make_settings(tmp_path, postgres_ready, **provider_overrides(microsoft))
    node_a, node_b = build_services(settings), build_services(settings)  # two processes' worth
    try:
        user = await create_user(node_a, "rotate@example.org")
        microsoft.state.add_account("rotate@contoso.test")
        await connect_microsoft(node_a, user, "rotate@contoso.test", microsoft.ca_path)
        async with node_a.db.session() as db:
            assert refresh_lock.needs_lock(db, ProviderName.MICROSOFT) is True
        for _round in range(2):
            microsoft.state.expire_access_tokens()  # both must refresh (Graph answers 401)

            async def run(node: AppServices) -> bool:
                async with node.db.session() as db:
                    outcome = await sync.sync_users(db, node.calendar, [user])
                return outcome[user].ok

            assert await asyncio.gather(run(node_a), run(node_b)) == [True, True]
            assert await _status(node_a, user) == CalendarStatus.CONNECTED
        # The grant still works from a third process that only has what is stored.
        node_c = build_services(settings)
        try:
            microsoft.state.expire_access_tokens()
            async with node_c.db.session() as db:
                assert (await sync.sync_users(db, node_c.calendar, [user]))[user].ok is True
        finally:
            await close_services(node_c)
    finally:
        await close_services(node_a)
        await close_services(node_b)
