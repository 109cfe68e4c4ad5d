"""Microsoft token refresh across nodes (PostgreSQL): two processes calling Graph for the
same account, each needing a new access token, refresh once, one after the other, and the
rotated refresh token is never lost; on every path that calls Graph (busy reads, meeting
create/update/delete, change reads, push open/renew/close). Without the lock the same
race loses the grant (the emulator rotates refresh tokens and refuses a used one), which
is what makes these tests able to fail."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select, update

from emulators.microsoft import RunningMicrosoft
from server.models import CalendarConnection, Meeting, PushSubscription
from server.models.enums import CalendarStatus, MeetingStatus, ProviderName
from server.services.calendars import coverage, push, refresh_lock, sync
from server.services.calendars.deps import load_credentials
from server.services.invites import MemoryMailer
from server.services.meetings import booking
from server.services.meetings.calendar_sync import sync_meeting_changes
from server.services.meetings.delivery import write_owner_calendar
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import provider_overrides
from tests.conftest import _truncate, create_user, make_settings, use_mailer
from tests.meetings_support import World, make_world, viewer_of, weekday_slot
from tests.services.calendars.test_sync import connect_microsoft

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# A hang (the deadlock the lock must not cause) fails the test instead of the run.
RACE_TIMEOUT = 45.0


def test_lock_keys_are_stable_and_distinct() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert refresh_lock.lock_key(a) == refresh_lock.lock_key(a)
    assert refresh_lock.lock_key(a) != refresh_lock.lock_key(b)
    assert -(2**63) <= refresh_lock.lock_key(a) < 2**63


@pytest.fixture
def short_tokens(microsoft: RunningMicrosoft) -> Iterator[None]:
    """Access tokens that are always within ``MIN_VALID`` of expiry: every call refreshes
    ahead, under the lock."""
    before = microsoft.state.access_token_lifetime
    microsoft.state.access_token_lifetime = 420  # msal itself refreshes under 5 minutes
    yield
    microsoft.state.access_token_lifetime = before


@pytest.fixture
async def nodes(
    tmp_path: Path, postgres_ready: str, microsoft: RunningMicrosoft
) -> AsyncIterator[tuple[AppServices, AppServices]]:
    """Two processes' worth of services on one PostgreSQL database."""
    await _truncate(postgres_ready)
    settings = make_settings(
        tmp_path, postgres_ready, push_notifications=True, **provider_overrides(microsoft)
    )
    node_a, node_b = build_services(settings), build_services(settings)
    use_mailer(node_a, MemoryMailer())
    use_mailer(node_b, MemoryMailer())
    try:
        yield node_a, node_b
    finally:
        await close_services(node_a)
        await close_services(node_b)


async def _race(microsoft: RunningMicrosoft, *steps: Awaitable[Any]) -> list[Any]:
    """Run the steps at once after Graph stops accepting every access token issued so far,
    so each step must get a new one; a deadlock shows as a timeout."""
    microsoft.state.expire_access_tokens()
    return list(await asyncio.wait_for(asyncio.gather(*steps), RACE_TIMEOUT))


def _meet_before_reading(monkeypatch: pytest.MonkeyPatch, *nodes: AppServices) -> None:
    """Each node's busy read waits for the other's before calling Graph, so both hold what
    was stored before either refreshes: the race happens every time, not by luck."""
    barrier = asyncio.Barrier(len(nodes))
    for node in nodes:
        provider = node.calendar.registry.get(ProviderName.MICROSOFT)
        original = provider.fetch_busy

        async def fetch(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            await asyncio.wait_for(barrier.wait(), RACE_TIMEOUT / 3)
            return await _original(*args, **kwargs)

        monkeypatch.setattr(provider, "fetch_busy", fetch)


async def _busy(node: AppServices, user: uuid.UUID) -> bool:
    async with node.db.session() as db:
        outcome = await sync.sync_users(db, node.calendar, [user])
    return outcome[user].ok


async def _connection(node: AppServices, user: uuid.UUID) -> CalendarConnection:
    async with node.db.session() as db:
        return (
            await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user))
        ).one()


async def _grant_kept(node: AppServices, user: uuid.UUID, microsoft: RunningMicrosoft) -> None:
    """The connection is fine and the grant still works from a third process that only has
    what is stored."""
    assert (await _connection(node, user)).status == CalendarStatus.CONNECTED
    node_c = build_services(node.settings)
    try:
        microsoft.state.expire_access_tokens()
        assert await _busy(node_c, user) is True
    finally:
        await close_services(node_c)


async def _microsoft_user(node: AppServices, microsoft: RunningMicrosoft) -> uuid.UUID:
    account = f"rotate-{uuid.uuid4().hex[:6]}@contoso.test"
    user = await create_user(node, f"{account.split('@')[0]}@example.org")
    microsoft.state.add_account(account)
    await connect_microsoft(node, user, account, microsoft.ca_path)
    return user


async def _microsoft_world(node: AppServices, microsoft: RunningMicrosoft) -> tuple[World, str]:
    world = await make_world(node, two_way_sync=True)
    account = f"owner-{uuid.uuid4().hex[:6]}@contoso.test"
    microsoft.state.add_account(account)
    await connect_microsoft(node, world.mentor, account, microsoft.ca_path)
    return world, account


async def _book(node: AppServices, world: World, hours: int) -> uuid.UUID:
    viewer = await viewer_of(node, world.mentor)
    async with node.db.session() as db:
        meeting = await booking.schedule_meeting(
            db,
            node.meetings,
            viewer,
            connection_id=world.connection,
            start=weekday_slot(days=3, hour=13) + timedelta(hours=hours),
            duration_minutes=30,
            title="Mentoring session",
        )
    return meeting.id


async def _rename(node: AppServices, world: World, meeting_id: uuid.UUID) -> None:
    viewer = await viewer_of(node, world.mentor)
    async with node.db.session() as db:
        await booking.update_meeting(db, node.meetings, viewer, meeting_id, title="Renamed")


async def _cancel(node: AppServices, world: World, meeting_id: uuid.UUID) -> None:
    viewer = await viewer_of(node, world.mentor)
    async with node.db.session() as db:
        await booking.cancel_meeting(db, node.meetings, viewer, meeting_id)


async def _meeting(node: AppServices, meeting_id: uuid.UUID) -> Meeting:
    async with node.db.session() as db:
        row = await db.get(Meeting, meeting_id)
    assert row is not None
    return row


async def _changes(node: AppServices, user: uuid.UUID) -> int:
    async with node.db.session() as db:
        return await sync_meeting_changes(db, node.meetings, [user])


async def test_two_nodes_refreshing_one_account_keep_the_grant(
    nodes: tuple[AppServices, AppServices],
    microsoft: RunningMicrosoft,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node_a, node_b = nodes
    user = await _microsoft_user(node_a, microsoft)
    async with node_a.db.session() as db:
        assert refresh_lock.needs_lock(db, ProviderName.MICROSOFT) is True
    _meet_before_reading(monkeypatch, node_a, node_b)
    for _round in range(2):
        assert await _race(microsoft, _busy(node_a, user), _busy(node_b, user)) == [True, True]
    monkeypatch.undo()
    # On-demand reads of a range beyond the synced horizon, on both nodes at once.
    far = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=100)

    async def far_read(node: AppServices, days: int) -> list[coverage.Gap]:
        window = (far + timedelta(days=days), far + timedelta(days=days, hours=8))
        async with node.db.session() as db:
            gaps = await coverage.ensure_covered(
                db, node.calendar, [user], [window], budget_seconds=None
            )
        return gaps.get(user, [])

    assert await _race(microsoft, far_read(node_a, 0), far_read(node_b, 1)) == [[], []]
    await _grant_kept(node_a, user, microsoft)


async def test_without_the_lock_the_same_race_loses_the_grant(
    nodes: tuple[AppServices, AppServices],
    microsoft: RunningMicrosoft,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The control: what the tests above would see if the lock did nothing."""
    node_a, node_b = nodes
    user = await _microsoft_user(node_a, microsoft)
    monkeypatch.setattr(refresh_lock, "needs_lock", lambda db, provider: False)
    _meet_before_reading(monkeypatch, node_a, node_b)
    outcomes = await _race(microsoft, _busy(node_a, user), _busy(node_b, user))
    assert sorted(outcomes) == [False, True]
    assert (await _connection(node_a, user)).status == CalendarStatus.NEEDS_REAUTH


async def test_tokens_near_expiry_are_refreshed_ahead_under_the_lock(
    nodes: tuple[AppServices, AppServices], microsoft: RunningMicrosoft, short_tokens: None
) -> None:
    node_a, node_b = nodes
    user = await _microsoft_user(node_a, microsoft)
    before = (await _connection(node_a, user)).encrypted_secret
    for _round in range(2):
        # No 401 at all: each node sees a token about to expire and refreshes first.
        outcomes = await asyncio.wait_for(
            asyncio.gather(_busy(node_a, user), _busy(node_b, user)), RACE_TIMEOUT
        )
        assert outcomes == [True, True]
    assert (await _connection(node_a, user)).encrypted_secret != before
    await _grant_kept(node_a, user, microsoft)


async def test_meeting_writes_race_busy_reads_and_each_other_without_deadlock(
    nodes: tuple[AppServices, AppServices], microsoft: RunningMicrosoft
) -> None:
    node_a, node_b = nodes
    world, account = await _microsoft_world(node_a, microsoft)
    owner = world.mentor
    # Create against a busy read, then create against create.
    first, busy = await _race(microsoft, _book(node_a, world, 0), _busy(node_b, owner))
    assert busy is True
    second, third = await _race(microsoft, _book(node_a, world, 2), _book(node_b, world, 4))
    # Update against update, then delete against a busy read.
    await _race(microsoft, _rename(node_a, world, first), _rename(node_b, world, second))
    _done, busy = await _race(microsoft, _cancel(node_a, world, first), _busy(node_b, owner))
    assert busy is True
    rows = [await _meeting(node_a, m) for m in (first, second, third)]
    assert [r.calendar_sync_state for r in rows] == ["synced"] * 3
    assert [r.status for r in rows] == [
        MeetingStatus.CANCELLED,
        MeetingStatus.SCHEDULED,
        MeetingStatus.SCHEDULED,
    ]
    events = microsoft.state.account(account).events
    assert [r.provider_event_id in events for r in rows] == [True, True, True]
    assert events[rows[0].provider_event_id or ""].deleted
    assert events[rows[1].provider_event_id or ""].subject == "Renamed"
    await _grant_kept(node_a, owner, microsoft)


async def test_a_write_whose_transaction_holds_the_connection_row_does_not_hang(
    nodes: tuple[AppServices, AppServices], microsoft: RunningMicrosoft
) -> None:
    """The case the lock used to stay out of: the caller's own transaction has written the
    connection row before the provider call, while another node reads busy times. No path
    does this today; if one did, the locked session gives up waiting for the row after
    ``ROW_WAIT`` and the caller's commit stores the token, so nothing hangs. Which node's
    refresh wins is then timing (the loser's call fails and is retried later), so only
    that both finish, and that the meeting is written or waiting for its retry, is
    asserted."""
    node_a, node_b = nodes
    world, _account = await _microsoft_world(node_a, microsoft)
    owner = world.mentor
    meeting_id = await _book(node_a, world, 0)

    async def write_holding_the_row() -> str:
        async with node_a.db.session() as db:
            await db.exec(
                update(CalendarConnection)
                .where(col(CalendarConnection.user_id) == owner)
                .values(last_error=None)
            )
            meeting = await db.get(Meeting, meeting_id)
            assert meeting is not None
            meeting.title = "Moved"
            meeting.calendar_sync_state = "pending"
            await write_owner_calendar(db, node_a.calendar, meeting)
            await db.commit()
            return meeting.calendar_sync_state

    started = asyncio.get_running_loop().time()
    state, _busy_ok = await _race(microsoft, write_holding_the_row(), _busy(node_b, owner))
    assert state in ("synced", "pending")
    assert asyncio.get_running_loop().time() - started < RACE_TIMEOUT / 2


async def test_change_reads_and_push_paths_keep_the_grant(
    nodes: tuple[AppServices, AppServices], microsoft: RunningMicrosoft
) -> None:
    node_a, node_b = nodes
    world, account = await _microsoft_world(node_a, microsoft)
    owner = world.mentor
    meeting_id = await _book(node_a, world, 0)
    event_id = (await _meeting(node_a, meeting_id)).provider_event_id
    assert event_id is not None
    assert await _changes(node_a, owner) == 0  # the first listing: nothing new
    # Change reads on both nodes at once: one applies the edit, the other finds it done.
    microsoft.state.update_event(account, event_id, subject="Edited in Outlook")
    outcomes = await _race(microsoft, _changes(node_a, owner), _changes(node_b, owner))
    assert sorted(outcomes) == [0, 1]
    # A push renewal against a change read: both must succeed.
    async with node_a.db.session() as db:
        row = (
            await db.exec(select(PushSubscription).where(PushSubscription.user_id == owner))
        ).one()
        row.expires_at = datetime.now(UTC) + timedelta(hours=1)
        db.add(row)
        await db.commit()

    async def renew(node: AppServices) -> int:
        async with node.db.session() as db:
            return await push.renew_expiring(db, node.calendar)

    microsoft.state.update_event(account, event_id, subject="Edited again")
    assert await _race(microsoft, renew(node_a), _changes(node_b, owner)) == [1, 1]
    assert (await _meeting(node_a, meeting_id)).title == "Edited again"
    # Opening a channel against closing the user's channels.
    connection = await _connection(node_a, owner)
    before = {key for key, sub in microsoft.state.subscriptions.items() if sub["owner"] == account}
    assert len(before) == 1

    async def open_one(node: AppServices) -> bool:
        async with node.db.session() as db:
            credentials = load_credentials(node.calendar.secrets, connection)
            opened = await push.open_channel(
                db,
                node.calendar,
                owner,
                ProviderName.MICROSOFT,
                credentials,
                connection_id=connection.id,
            )
            await db.commit()
        return opened is not None

    async def close_all(node: AppServices) -> None:
        async with node.db.session() as db:
            credentials = load_credentials(node.calendar.secrets, connection)
            await push.close_channels(
                db, node.calendar, owner, credentials, connection_id=connection.id
            )
            await db.commit()

    opened, _closed = await _race(microsoft, open_one(node_a), close_all(node_b))
    assert opened is True
    after = {key for key, sub in microsoft.state.subscriptions.items() if sub["owner"] == account}
    assert before.isdisjoint(after) and len(after) == 1
    await _grant_kept(node_a, owner, microsoft)
