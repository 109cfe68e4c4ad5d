"""Push notifications: authentic ones mark a calendar for resync and queue it (coalesced); forged,
replayed-with-wrong-secret or unknown ones are acknowledged and change nothing."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from emulators.google import RunningGoogle, send_push_notifications
from emulators.microsoft import RunningMicrosoft
from server.app import create_app
from server.jobs.runner import run_once
from server.models import BusyBlock, CalendarConnection, PushSubscription
from server.models.enums import ProviderName
from server.providers.base import ProviderError, PushProvider
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import provider_overrides
from tests.conftest import create_user, make_settings
from tests.services.calendars.test_sync import connect_google, connect_microsoft

pytestmark = pytest.mark.slow


@pytest.fixture
async def svc(
    tmp_path: Path, sqlite_url: str, google: RunningGoogle, microsoft: RunningMicrosoft
) -> AsyncIterator[AppServices]:
    services = build_services(
        make_settings(
            tmp_path, sqlite_url, push_notifications=True, **provider_overrides(google, microsoft)
        )
    )
    yield services
    await close_services(services)


@pytest.fixture
async def web(svc: AppServices) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=svc)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


def _at(days: int, hour: int) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(
        hour=hour, minute=0, second=0, microsecond=0
    )


async def _requested(svc: AppServices, user_id: uuid.UUID) -> bool:
    async with svc.db.session() as db:
        row = (
            await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user_id))
        ).one()
        return row.sync_requested


async def test_google_push_marks_resync_and_job_syncs(
    svc: AppServices, web: httpx.AsyncClient, google: RunningGoogle
) -> None:
    user = await create_user(svc, "push@example.org")
    google.state.add_account("push@gmail.test")
    before_connect = len(google.state.requests_to("freeBusy"))
    await connect_google(svc, user, "push@gmail.test")
    per_sync = len(google.state.requests_to("freeBusy")) - before_connect
    async with svc.db.session() as db:
        channel = (
            await db.exec(select(PushSubscription).where(PushSubscription.user_id == user))
        ).one()
    assert channel.provider == ProviderName.GOOGLE
    assert await send_push_notifications(google.state, web, "push@gmail.test", "sync") == [200]
    assert await _requested(svc, user) is False  # the channel's hello is a no-op
    google.state.add_event(
        "push@gmail.test",
        {
            "summary": "x",
            "start": {"dateTime": _at(2, 9).isoformat()},
            "end": {"dateTime": _at(2, 10).isoformat()},
        },
    )
    for _ in range(5):  # a burst is coalesced into one resync
        assert await send_push_notifications(google.state, web, "push@gmail.test") == [200]
    assert await _requested(svc, user) is True
    calls = len(google.state.requests_to("freeBusy"))
    await run_once(svc)
    assert per_sync >= 1
    assert len(google.state.requests_to("freeBusy")) == calls + per_sync  # one resync
    assert await _requested(svc, user) is False
    async with svc.db.session() as db:
        blocks = (await db.exec(select(BusyBlock).where(BusyBlock.user_id == user))).all()
    assert [(b.start_at, b.end_at) for b in blocks] == [(_at(2, 9), _at(2, 10))]


async def test_forged_google_notifications_change_nothing(
    svc: AppServices, web: httpx.AsyncClient, google: RunningGoogle
) -> None:
    user = await create_user(svc, "forge@example.org")
    other = await create_user(svc, "forge2@example.org")
    google.state.add_account("forge@gmail.test")
    google.state.add_account("forge2@gmail.test")
    await connect_google(svc, user, "forge@gmail.test")
    await connect_google(svc, other, "forge2@gmail.test")
    async with svc.db.session() as db:
        mine = (
            await db.exec(select(PushSubscription).where(PushSubscription.user_id == user))
        ).one()
    theirs_token = next(
        c.token for c in google.state.channels.values() if c.email == "forge2@gmail.test"
    )
    cases = [
        {
            "X-Goog-Channel-ID": str(uuid.uuid4()),
            "X-Goog-Channel-Token": "x",
            "X-Goog-Resource-State": "exists",
        },
        {
            "X-Goog-Channel-ID": mine.channel_id,
            "X-Goog-Channel-Token": "wrong",
            "X-Goog-Resource-ID": mine.resource_id or "",
            "X-Goog-Resource-State": "exists",
        },
        {
            "X-Goog-Channel-ID": mine.channel_id,
            "X-Goog-Channel-Token": theirs_token or "",
            "X-Goog-Resource-ID": mine.resource_id or "",
            "X-Goog-Resource-State": "exists",
        },
        {"X-Goog-Channel-ID": mine.channel_id, "X-Goog-Resource-State": "exists"},
    ]
    for headers in cases:
        response = await web.post("/webhooks/google", headers=headers)
        assert response.status_code == 200
    assert await _requested(svc, user) is False and await _requested(svc, other) is False


async def test_microsoft_handshake_and_client_state(
    svc: AppServices, web: httpx.AsyncClient, microsoft: RunningMicrosoft
) -> None:
    echo = await web.post(
        "/webhooks/microsoft", params={"validationToken": "<script>x</script> token"}
    )
    assert echo.status_code == 200
    assert echo.text == "<script>x</script> token"
    assert echo.headers["content-type"].startswith("text/plain")
    assert echo.headers["x-content-type-options"] == "nosniff"
    assert (
        await web.post("/webhooks/microsoft", params={"validationToken": "x" * 5000})
    ).status_code == 400
    user = await create_user(svc, "graph@example.org")
    microsoft.state.add_account("graph@contoso.test")
    await connect_microsoft(svc, user, "graph@contoso.test", microsoft.ca_path)
    async with svc.db.session() as db:
        sub = (
            await db.exec(select(PushSubscription).where(PushSubscription.user_id == user))
        ).one()
    client_state = microsoft.state.subscriptions[sub.channel_id]["clientState"]
    wrong = {
        "value": [
            {"subscriptionId": sub.channel_id, "clientState": "guess", "changeType": "updated"}
        ]
    }
    assert (await web.post("/webhooks/microsoft", json=wrong)).status_code == 202
    assert await _requested(svc, user) is False
    right = {
        "value": [
            {"subscriptionId": sub.channel_id, "clientState": client_state, "changeType": "updated"}
        ]
    }
    assert (await web.post("/webhooks/microsoft", json=right)).status_code == 202
    assert await _requested(svc, user) is True


async def test_disconnect_stops_channels_and_later_pushes_are_ignored(
    svc: AppServices, web: httpx.AsyncClient, google: RunningGoogle
) -> None:
    from server.services.calendars import connect
    from server.services.people import accounts
    from server.services.people.sessions import Viewer

    user = await create_user(svc, "stop@example.org")
    google.state.add_account("stop@gmail.test")
    await connect_google(svc, user, "stop@gmail.test")
    channel = next(c for c in google.state.channels.values() if c.email == "stop@gmail.test")
    async with svc.db.session() as db:
        me = await accounts.get_user(db, user)
        await connect.disconnect(db, svc.calendar, Viewer(user=me, actor=me))
    assert channel.channel_id not in google.state.channels  # channels.stop was called
    headers = {
        "X-Goog-Channel-ID": channel.channel_id,
        "X-Goog-Channel-Token": channel.token or "",
        "X-Goog-Resource-ID": channel.resource_id,
        "X-Goog-Resource-State": "exists",
    }
    assert (await web.post("/webhooks/google", headers=headers)).status_code == 200
    async with svc.db.session() as db:
        assert (await db.exec(select(PushSubscription))).all() == []


async def test_expiring_channels_are_replaced(svc: AppServices, google: RunningGoogle) -> None:
    user = await create_user(svc, "renew@example.org")
    google.state.add_account("renew@gmail.test")
    await connect_google(svc, user, "renew@gmail.test")
    async with svc.db.session() as db:
        row = (
            await db.exec(select(PushSubscription).where(PushSubscription.user_id == user))
        ).one()
        old_id = row.channel_id
        row.expires_at = datetime.now(UTC) + timedelta(hours=1)
        db.add(row)
        await db.commit()
    await run_once(svc)
    async with svc.db.session() as db:
        rows = (
            await db.exec(select(PushSubscription).where(PushSubscription.user_id == user))
        ).all()
    assert len(rows) == 1 and rows[0].channel_id != old_id
    assert old_id not in google.state.channels


async def _expire_soon(svc: AppServices, user: uuid.UUID) -> PushSubscription:
    async with svc.db.session() as db:
        row = (
            await db.exec(select(PushSubscription).where(PushSubscription.user_id == user))
        ).one()
        row.expires_at = datetime.now(UTC) + timedelta(hours=1)
        db.add(row)
        await db.commit()
        await db.refresh(row)
        return row


async def test_graph_subscriptions_are_extended_in_place(
    svc: AppServices, microsoft: RunningMicrosoft
) -> None:
    user = await create_user(svc, "extend@example.org")
    microsoft.state.add_account("extend@contoso.test")
    await connect_microsoft(svc, user, "extend@contoso.test", microsoft.ca_path)
    old = await _expire_soon(svc, user)
    await run_once(svc)
    async with svc.db.session() as db:
        row = (
            await db.exec(select(PushSubscription).where(PushSubscription.user_id == user))
        ).one()
    assert (row.channel_id, row.secret_hash) == (old.channel_id, old.secret_hash)
    assert row.expires_at > datetime.now(UTC) + timedelta(days=1)
    assert (row.renew_failures, row.renew_retry_at) == (0, None)
    mine = [
        k for k, s in microsoft.state.subscriptions.items() if s["owner"] == "extend@contoso.test"
    ]
    assert mine == [old.channel_id]


async def test_a_failed_renewal_keeps_the_channel_for_the_next_try(
    svc: AppServices, microsoft: RunningMicrosoft
) -> None:
    user = await create_user(svc, "flaky@example.org")
    microsoft.state.add_account("flaky@contoso.test")
    await connect_microsoft(svc, user, "flaky@contoso.test", microsoft.ca_path)
    old = await _expire_soon(svc, user)
    microsoft.state.fail_renewals(20)
    await run_once(svc)
    async with svc.db.session() as db:
        rows = (
            await db.exec(select(PushSubscription).where(PushSubscription.user_id == user))
        ).all()
    assert [r.channel_id for r in rows] == [old.channel_id]
    assert rows[0].renew_failures == 1  # the settings page says live updates are paused
    assert rows[0].renew_retry_at is not None
    assert rows[0].renew_retry_at > datetime.now(UTC) + timedelta(seconds=30)  # backoff
    microsoft.state.faults.clear()
    patches = len(microsoft.state.requests_to("/subscriptions/", "PATCH"))
    await run_once(svc)  # not due yet: no retry storm
    assert len(microsoft.state.requests_to("/subscriptions/", "PATCH")) == patches
    async with svc.db.session() as db:
        due = (
            await db.exec(select(PushSubscription).where(PushSubscription.user_id == user))
        ).one()
        due.renew_retry_at = datetime.now(UTC) - timedelta(seconds=1)
        db.add(due)
        await db.commit()
    await run_once(svc)
    async with svc.db.session() as db:
        row = (
            await db.exec(select(PushSubscription).where(PushSubscription.user_id == user))
        ).one()
    assert row.expires_at > datetime.now(UTC) + timedelta(days=1)
    assert (row.renew_failures, row.renew_retry_at) == (0, None)


async def test_a_subscription_graph_forgot_is_opened_anew_at_renewal(
    svc: AppServices, microsoft: RunningMicrosoft
) -> None:
    user = await create_user(svc, "forgot@example.org")
    microsoft.state.add_account("forgot@contoso.test")
    await connect_microsoft(svc, user, "forgot@contoso.test", microsoft.ca_path)
    old = await _expire_soon(svc, user)
    del microsoft.state.subscriptions[old.channel_id]  # removed on Graph's side (404)
    await run_once(svc)
    async with svc.db.session() as db:
        row = (
            await db.exec(select(PushSubscription).where(PushSubscription.user_id == user))
        ).one()
    assert row.channel_id != old.channel_id and row.channel_id in microsoft.state.subscriptions
    assert row.renew_failures == 0


async def test_graph_validation_handshake_reaches_tandem_and_a_deaf_url_is_refused(
    svc: AppServices, microsoft: RunningMicrosoft
) -> None:
    from emulators.runner import BackgroundServer
    from server.services.calendars.deps import load_credentials

    user = await create_user(svc, "handshake@example.org")
    microsoft.state.add_account("handshake@contoso.test")
    await connect_microsoft(svc, user, "handshake@contoso.test", microsoft.ca_path)
    async with svc.db.session() as db:
        connection = (
            await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user))
        ).one()
    credentials = load_credentials(svc.calendar.secrets, connection)
    provider = svc.registry.get(ProviderName.MICROSOFT)
    assert isinstance(provider, PushProvider)
    tandem = BackgroundServer(create_app(services=svc)).start()
    microsoft.state.validate_notification_urls = True
    try:
        channel = await provider.open_push_channel(
            credentials, f"{tandem.url}/webhooks/microsoft", "s3cret"
        )
        assert channel.channel_id in microsoft.state.subscriptions
        with pytest.raises(ProviderError):  # nothing echoes the token there
            await provider.open_push_channel(credentials, f"{tandem.url}/healthz", "s3cret")
    finally:
        microsoft.state.validate_notification_urls = False
        tandem.stop()


async def test_google_push_is_synced_at_once_without_a_tick(
    svc: AppServices, web: httpx.AsyncClient, google: RunningGoogle
) -> None:
    """The embedded queue (as `tandem serve` runs it) syncs the one calendar a notification
    names within seconds; the 60-second tick never runs here."""
    from server.jobs.queue import EmbeddedQueue
    from server.jobs.tasks import handlers

    assert isinstance(svc.tasks, EmbeddedQueue)
    user = await create_user(svc, "fast@example.org")
    google.state.add_account("fast@gmail.test")
    await connect_google(svc, user, "fast@gmail.test")
    consumer = asyncio.create_task(svc.tasks.run(handlers(svc)))
    try:
        google.state.add_event(
            "fast@gmail.test",
            {
                "summary": "x",
                "start": {"dateTime": _at(3, 9).isoformat()},
                "end": {"dateTime": _at(3, 10).isoformat()},
            },
        )
        sent = asyncio.get_running_loop().time()
        assert await send_push_notifications(google.state, web, "fast@gmail.test") == [200]
        blocks: list[tuple[datetime, datetime]] = []
        while asyncio.get_running_loop().time() - sent < 5 and not blocks:
            await asyncio.sleep(0.05)
            async with svc.db.session() as db:
                rows = (await db.exec(select(BusyBlock).where(BusyBlock.user_id == user))).all()
            blocks = [(b.start_at, b.end_at) for b in rows]
        assert blocks == [(_at(3, 9), _at(3, 10))]
        assert await _requested(svc, user) is False
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer


async def test_a_read_only_google_calendar_is_polled_without_asking_for_push(
    svc: AppServices, google: RunningGoogle
) -> None:
    """Without calendar.events Google refuses a watch channel: Tandem does not ask."""
    user = await create_user(svc, "ro-push@example.org")
    google.state.add_account("ro-push@gmail.test")
    watches = len(google.state.requests_to("watch"))
    await connect_google(svc, user, "ro-push@gmail.test", untick=("calendar.events",))
    assert len(google.state.requests_to("watch")) == watches
    async with svc.db.session() as db:
        channels = (
            await db.exec(select(PushSubscription).where(PushSubscription.user_id == user))
        ).all()
        connection = (
            await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user))
        ).one()
    assert channels == [] and connection.can_write_events is False
