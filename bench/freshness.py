"""How fresh busy times are; prints one JSON line per case.

Run with ``.venv/bin/python -m bench.freshness [--changes 20] [--caldav-changes 4]
[--caldav-users 50]``. One Tandem process as ``tandem serve`` runs it by default
(SQLite, the in-process queue consuming tasks, the CalDAV change check on its schedule),
with the Google and Microsoft emulators and a real Radicale:

* ``push_google`` / ``push_microsoft``: an event is added in the emulator and the
  provider's notification is delivered to ``/webhooks/*`` (Google's as the emulator
  sends it, Graph's as a direct POST with the subscription's clientState); the latency
  is until the busy block is in Tandem's cache, which is what availability answers from.
  Median, p95 and max over ``--changes`` changes. Goal: p95 <= 5 s.
* ``caldav_change``: an event is added in Radicale; latency until the block is cached,
  with the change check every ``CALDAV_CHECK_SECONDS`` (30 s). Goal: max <= 60 s.
* ``caldav_poll_cost``: requests and bytes (both directions, counted by a TCP proxy in
  front of Radicale) of one change check, per user-hour at the check interval, and for
  1,000 users. ``--caldav-users`` real users (all on one Radicale account) are checked
  in one round to time it; 1,000 is extrapolated from that, linearly, and said so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from sqlmodel import select

from emulators.google import consent as google_consent
from emulators.google import send_push_notifications, start_google_emulator
from emulators.microsoft import consent as microsoft_consent
from emulators.microsoft import start_microsoft_emulator
from emulators.radicale import start_radicale
from server.app import create_app
from server.config import Settings
from server.db import migrate
from server.jobs.runner import check_caldav_changes, run_forever
from server.models import BusyBlock, PushSubscription, UserSession
from server.models.base import utcnow
from server.models.enums import ProviderName
from server.services.calendars import changes, connect
from server.services.people import accounts
from server.services.people.sessions import Viewer
from server.wiring import AppServices, build_services, close_services

DAV_USER, DAV_PASSWORD = "bench", "bench-app-pw-2291"
BASE_URL = "http://bench.test"


def emit(case: str, **values: Any) -> None:
    print(json.dumps({"case": case, **values}), flush=True)


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "median_s": round(statistics.median(ordered), 3),
        "p95_s": round(p95, 3),
        "max_s": round(ordered[-1], 3),
    }


class CountingProxy:
    """A TCP relay that counts bytes both ways and HTTP requests sent through it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.bytes = 0
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, requests: bool
        ) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    self.bytes += len(data)
                    if requests:
                        self.requests += sum(
                            data.count(m) for m in (b"PROPFIND ", b"REPORT ", b"GET ", b"PUT ")
                        )
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(
            pipe(reader, up_writer, requests=True), pipe(up_reader, writer, requests=False)
        )

    def reset(self) -> None:
        self.bytes = self.requests = 0


async def _user(svc: AppServices, email: str) -> uuid.UUID:
    async with svc.db.session() as db:
        user = await accounts.create_user(db, email=email, name="Bench", password=None)
        await db.commit()
        # Signed in just now: a recently active user, for the CalDAV change check.
        db.add(
            UserSession(
                token_hash=secrets.token_hex(32),
                user_id=user.id,
                csrf_token=secrets.token_hex(16),
                expires_at=utcnow() + timedelta(days=1),
            )
        )
        await db.commit()
        return user.id


async def _viewer(svc: AppServices, user_id: uuid.UUID) -> Viewer:
    async with svc.db.session() as db:
        user = await accounts.get_user(db, user_id)
    return Viewer(user=user, actor=user)


async def _oauth(
    svc: AppServices,
    user_id: uuid.UUID,
    provider: ProviderName,
    agree: Callable[[httpx.AsyncClient, str], Awaitable[dict[str, str]]],
    verify: Any = True,
) -> None:
    viewer = await _viewer(svc, user_id)
    async with svc.db.session() as db:
        url = await connect.start_oauth(db, svc.calendar, viewer, provider)
        await db.commit()
    async with httpx.AsyncClient(verify=verify) as browser:
        params = await agree(browser, url)
    async with svc.db.session() as db:
        await connect.finish_oauth(db, svc.calendar, viewer, provider, params)


async def _has_block(svc: AppServices, user_id: uuid.UUID, start: datetime) -> bool:
    async with svc.db.session() as db:
        rows = (
            await db.exec(
                select(BusyBlock.start_at).where(
                    BusyBlock.user_id == user_id, BusyBlock.start_at == start
                )
            )
        ).all()
    return bool(rows)


async def _until_cached(
    svc: AppServices, user_id: uuid.UUID, start: datetime, since: float, limit: float
) -> float:
    while time.monotonic() - since < limit:
        if await _has_block(svc, user_id, start):
            return time.monotonic() - since
        await asyncio.sleep(0.02)
    return float("inf")


def _slot(index: int) -> datetime:
    base = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    return base + timedelta(hours=index)


def _ics(start: datetime) -> str:
    end = start + timedelta(minutes=30)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uuid.uuid4().hex}@bench\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="tandem-fresh-"))
    google = start_google_emulator(redirect_uris=[f"{BASE_URL}/calendar/callback/google"])
    microsoft = start_microsoft_emulator(work / "ms")
    radicale = start_radicale(work / "dav", users={DAV_USER: DAV_PASSWORD})
    radicale.make_calendar(DAV_USER, DAV_PASSWORD, "main")
    proxy = CountingProxy(int(radicale.url.rsplit(":", 1)[1].split("/")[0]))
    dav_url = f"http://127.0.0.1:{await proxy.start()}"
    overrides: dict[str, Any] = {}
    for running in (google, microsoft):
        for name, value in running.settings_overrides().items():
            overrides[name.removeprefix("TANDEM_").lower()] = value
    settings = Settings(
        data_dir=work / "data",
        secret_keys=Fernet.generate_key().decode(),
        base_url=BASE_URL,
        push_notifications=True,
        caldav_allow_private_hosts=True,
        task_queue="embedded",
        **({"caldav_check_concurrency": args.check_concurrency} if args.check_concurrency else {}),
        **overrides,
    )
    svc = build_services(settings)
    await migrate(svc.db.engine)
    runner: asyncio.Task[None] | None = None
    try:
        g_user = await _user(svc, "g@example.org")
        google.state.add_account("g@gmail.test")
        await _oauth(
            svc, g_user, ProviderName.GOOGLE, lambda b, u: google_consent(b, u, "g@gmail.test")
        )
        m_user = await _user(svc, "m@example.org")
        microsoft.state.add_account("m@contoso.test")
        await _oauth(
            svc,
            m_user,
            ProviderName.MICROSOFT,
            lambda b, u: microsoft_consent(b, u, "m@contoso.test"),
            verify=str(microsoft.ca_path),
        )
        dav_users = []
        for index in range(max(args.caldav_users, 1)):
            user_id = await _user(svc, f"dav{index}@example.org")
            async with svc.db.session() as db:
                await connect.connect_with_password(
                    db,
                    svc.calendar,
                    await _viewer(svc, user_id),
                    username=DAV_USER,
                    password=DAV_PASSWORD,
                    server_url=dav_url,
                )
            dav_users.append(user_id)
        async with svc.db.session() as db:  # the first check stores every tag
            await changes.detect_changes(db, svc.calendar, active_days=14)

        # As `tandem serve` runs it: the queue's consumers and the schedules.
        runner = asyncio.create_task(run_forever(svc))
        app = create_app(services=svc)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL
        ) as web:
            latencies = []
            for index in range(args.changes):
                start = _slot(index)
                google.state.add_event(
                    "g@gmail.test",
                    {
                        "summary": "bench",
                        "start": {"dateTime": start.isoformat()},
                        "end": {"dateTime": (start + timedelta(minutes=30)).isoformat()},
                    },
                )
                since = time.monotonic()
                await send_push_notifications(google.state, web, "g@gmail.test")
                latencies.append(await _until_cached(svc, g_user, start, since, 30))
            emit("push_google", goal_p95_s=5, **summary(latencies))

            async with svc.db.session() as db:
                sub = (
                    await db.exec(
                        select(PushSubscription).where(PushSubscription.user_id == m_user)
                    )
                ).one()
            client_state = microsoft.state.subscriptions[sub.channel_id]["clientState"]
            latencies = []
            for index in range(args.changes):
                start = _slot(100 + index)
                microsoft.state.add_event(
                    "m@contoso.test",
                    subject="bench",
                    start=start,
                    end=start + timedelta(minutes=30),
                    show_as="busy",
                )
                since = time.monotonic()
                note = {
                    "subscriptionId": sub.channel_id,
                    "clientState": client_state,
                    "changeType": "updated",
                }
                await web.post("/webhooks/microsoft", json={"value": [note]})
                latencies.append(await _until_cached(svc, m_user, start, since, 30))
            emit("push_microsoft", goal_p95_s=5, **summary(latencies))

        latencies = []
        for index in range(args.caldav_changes):
            start = _slot(200 + index)
            radicale.add_event(DAV_USER, DAV_PASSWORD, "main", _ics(start))
            since = time.monotonic()
            latencies.append(await _until_cached(svc, dav_users[0], start, since, 90))
            await asyncio.sleep(index * 3.7 % settings.caldav_check_seconds)  # spread phases
        if latencies:
            emit(
                "caldav_change",
                check_every_s=settings.caldav_check_seconds,
                goal_max_s=60,
                **summary(latencies),
            )

        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        runner = None
        await asyncio.sleep(0.5)
        proxy.reset()
        round_start = time.monotonic()
        await check_caldav_changes(svc)  # nothing changed: tags only, no full reads
        round_s = time.monotonic() - round_start
        users = len(dav_users)
        per_check_requests = proxy.requests / users
        per_check_bytes = proxy.bytes / users
        checks_per_hour = 3600 / settings.caldav_check_seconds
        emit(
            "caldav_poll_cost",
            measured_users=users,
            calendars_per_user=1,
            requests_per_check=round(per_check_requests, 2),
            bytes_per_check=round(per_check_bytes),
            requests_per_user_hour=round(per_check_requests * checks_per_hour, 1),
            bytes_per_user_hour=round(per_check_bytes * checks_per_hour),
            round_s_measured=round(round_s, 3),
            users_1000_requests_per_hour=round(per_check_requests * checks_per_hour * 1000),
            users_1000_bytes_per_hour=round(per_check_bytes * checks_per_hour * 1000),
            check_concurrency=settings.caldav_check_concurrency,
            users_1000_round_s_extrapolated=round(round_s * 1000 / users, 2),
            note="1,000 users extrapolated linearly from the measured round; "
            "requests and bytes counted at a TCP proxy in front of Radicale",
        )
    finally:
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        await close_services(svc)
        radicale.stop()
        microsoft.stop()
        google.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--caldav-changes", type=int, default=4)
    parser.add_argument("--caldav-users", type=int, default=50)
    parser.add_argument("--check-concurrency", type=int, default=None)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
