"""Several nodes on one PostgreSQL database: two ``tandem serve`` processes (no jobs in
process) and two ``tandem worker`` processes, as subprocesses.

* a Google push delivered to node A is synced by a worker within 5 s and shows in
  availability through node B; three notifications, two workers: one sync;
* the periodic jobs run once across both workers: each queued invitation and each poll
  reminder reaches the SMTP server exactly once;
* a worker killed (SIGKILL) in the middle of a sync loses nothing: the other worker
  retries the job once the dead one has sent no heartbeat for WORKER_STALLED_SECONDS.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from cryptography.fernet import Fernet
from sqlalchemy import text, update
from sqlmodel import col, select

from emulators.google import RunningGoogle, send_push_notifications
from emulators.microsoft import RunningMicrosoft
from emulators.runner import free_port
from server.db import create_engine
from server.jobs.pg_queue import ProcrastinateQueue, ensure_schema
from server.models import BusyBlock, CalendarConnection, QueuedMail
from server.models.base import utcnow
from server.services.polls import rules as poll_rules
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import provider_overrides
from tests.conftest import _truncate, create_user, gql, make_settings
from tests.polls_support import make_circle, slot_starts, user
from tests.schema.test_graphql_programs import token_for
from tests.services.calendars.test_sync import connect_google, connect_microsoft

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

AVAILABILITY = """
query A($input: AvailabilityInput!) {
  availability(input: $input) { busy { userId start end } }
}"""


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def subjects(self) -> list[str]:
        out = []
        for envelope in self.envelopes:
            data = envelope.content if isinstance(envelope.content, bytes) else b""
            for line in data.decode("latin-1").splitlines():
                if line.startswith("Subject:"):
                    out.append(f"{line[8:].strip()} -> {','.join(envelope.rcpt_tos)}")
        return sorted(out)


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    box = Inbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


class Node:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case the test paused it
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _at(days: int, hour: int) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(
        hour=hour, minute=0, second=0, microsecond=0
    )


async def _wait_healthy(url: str, nodes: list[Node]) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            for node in nodes:
                assert node.proc.poll() is None, node.log.read_text()[-3000:]
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


async def _blocks(svc: AppServices, user: uuid.UUID) -> list[tuple[datetime, datetime]]:
    async with svc.db.session() as db:
        rows = (await db.exec(select(BusyBlock).where(BusyBlock.user_id == user))).all()
    return sorted((b.start_at, b.end_at) for b in rows)


async def _until(check: Any, seconds: float) -> float:
    """Seconds until ``check()`` is true (fails after ``seconds``)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if await check():
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds} s")


@pytest.fixture
async def cluster_db(postgres_ready: str) -> str:
    await _truncate(postgres_ready)
    await ensure_schema(postgres_ready)
    engine = create_engine(postgres_ready)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM procrastinate_jobs"))
        await conn.execute(text("DELETE FROM procrastinate_periodic_defers"))
        await conn.execute(text("DELETE FROM procrastinate_workers"))
    await engine.dispose()
    return postgres_ready


async def test_two_web_nodes_and_two_workers(
    tmp_path: Path,
    cluster_db: str,
    google: RunningGoogle,
    microsoft: RunningMicrosoft,
    inbox: tuple[Inbox, int],
) -> None:
    box, smtp_port = inbox
    port_a, port_b = free_port(), free_port()
    node_a, node_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    key = Fernet.generate_key().decode()
    overrides = provider_overrides(google, microsoft)
    # This process plays the part of earlier web requests: connecting calendars and
    # creating a poll while the SMTP server was down (its invitations are queued).
    svc = build_services(
        make_settings(
            tmp_path,
            cluster_db,
            secret_keys=key,
            base_url=node_a,
            push_notifications=True,
            smtp_host="127.0.0.1",
            smtp_port=free_port(),
            smtp_starttls=False,
            **overrides,
        )
    )
    nodes: list[Node] = []
    try:
        google.state.add_redirect_uri(google.client_id, f"{node_a}/calendar/callback/google")
        mentor = await create_user(svc, "mentor@example.org")
        google.state.add_account("mentor@gmail.test")
        before_connect = len(google.state.requests_to("freeBusy"))
        await connect_google(svc, mentor, "mentor@gmail.test")
        per_sync = len(google.state.requests_to("freeBusy")) - before_connect
        ms_user = await create_user(svc, "killed@example.org")
        microsoft.state.add_account("killed@contoso.test")
        await connect_microsoft(svc, ms_user, "killed@contoso.test", microsoft.ca_path)
        circle = await make_circle(svc, size=3)
        async with svc.db.session() as db:  # invitations through this process's mailer
            await poll_rules.create_poll(
                db,
                svc.polls,
                await user(svc, circle.organizer),
                group_id=circle.group,
                title="Kickoff",
                duration_minutes=60,
                slot_starts=slot_starts(3),
                deadline=utcnow() + timedelta(hours=5),
            )
        async with svc.db.session() as db:
            queued = len((await db.exec(select(QueuedMail))).all())
            await db.exec(update(QueuedMail).values(next_attempt_at=utcnow()))
            await db.commit()
        assert queued >= 2  # one invitation per invitee, none delivered yet
        token = await token_for(svc, mentor)

        env = {
            **os.environ,
            "TANDEM_DATABASE_URL": cluster_db,
            "TANDEM_SECRET_KEYS": key,
            "TANDEM_DATA_DIR": str(tmp_path / "data"),
            "TANDEM_BASE_URL": node_a,
            "TANDEM_PUSH_NOTIFICATIONS": "true",
            "TANDEM_RUN_JOBS_IN_PROCESS": "false",
            "TANDEM_TASK_QUEUE": "procrastinate",
            "TANDEM_WORKER_STALLED_SECONDS": "2",
            "TANDEM_SMTP_HOST": "127.0.0.1",
            "TANDEM_SMTP_PORT": str(smtp_port),
            "TANDEM_SMTP_STARTTLS": "false",
            "TANDEM_CALDAV_ALLOW_PRIVATE_HOSTS": "true",
            **{k: str(v) for k, v in google.settings_overrides().items()},
            **{k: str(v) for k, v in microsoft.settings_overrides().items()},
        }
        serve_a = Node(["serve", "--port", str(port_a)], env, tmp_path / "a.log")
        serve_b = Node(["serve", "--port", str(port_b)], env, tmp_path / "b.log")
        worker_1 = Node(["worker"], env, tmp_path / "w1.log")
        worker_2 = Node(["worker"], env, tmp_path / "w2.log")
        nodes += [serve_a, serve_b, worker_1, worker_2]
        await _wait_healthy(node_a, nodes)
        await _wait_healthy(node_b, nodes)

        # Periodic jobs: once across both workers (each deferred once per minute slot).
        members = sorted(circle.emails.values())  # nobody answered: all are reminded
        await _until(lambda: _async(len(box.envelopes) >= queued + len(members)), 20)
        await asyncio.sleep(1.0)  # anything sent twice would have arrived by now
        subjects = box.subjects()
        assert len(subjects) == queued + len(members), subjects
        reminders = [s for s in subjects if s.startswith("Reminder: Kickoff")]
        assert sorted(s.split(" -> ")[1] for s in reminders) == members
        assert len(set(subjects)) == len(subjects)  # nobody got the same mail twice

        async def busy_on_b() -> list[dict[str, str]]:
            async with httpx.AsyncClient(base_url=node_b) as web_b:
                body = await gql(
                    web_b,
                    AVAILABILITY,
                    {
                        "input": {
                            "participantIds": [str(mentor)],
                            "start": _at(2, 0).isoformat(),
                            "end": _at(3, 0).isoformat(),
                            "durationMinutes": 30,
                        }
                    },
                    token=token,
                )
            busy: list[dict[str, str]] = body["data"]["availability"]["busy"]
            return busy

        # Node B reads (and keeps in memory) the mentor's blocks before the change: the
        # worker's write must reach its memory through the busy version.
        assert await busy_on_b() == []

        # Push to node A, three notifications: one sync by a worker within 5 s.
        google.state.add_event(
            "mentor@gmail.test",
            {
                "summary": "x",
                "start": {"dateTime": _at(2, 9).isoformat()},
                "end": {"dateTime": _at(2, 10).isoformat()},
            },
        )
        calls = len(google.state.requests_to("freeBusy"))
        async with httpx.AsyncClient(base_url=node_a) as web:
            for _ in range(3):
                assert await send_push_notifications(google.state, web, "mentor@gmail.test") == [
                    200
                ]
        seen = await _until(lambda: _blocks_are(svc, mentor, [(_at(2, 9), _at(2, 10))]), 5)
        assert seen < 5
        await asyncio.sleep(1.0)
        assert per_sync >= 1
        assert len(google.state.requests_to("freeBusy")) - calls == per_sync
        assert await busy_on_b() == [
            {
                "userId": str(mentor),
                "start": _at(2, 9).isoformat(),
                "end": _at(2, 10).isoformat(),
            }
        ]
        # A worker killed mid-sync: the job is retried by another and nothing is lost.
        # Worker 2 is paused while the job is queued, so worker 1 takes it.
        worker_2.proc.send_signal(signal.SIGSTOP)
        microsoft.state.add_event(
            "killed@contoso.test",
            subject="x",
            start=_at(3, 14),
            end=_at(3, 15),
            show_as="busy",
        )
        schedule_calls = len(microsoft.state.requests_to("getSchedule"))
        microsoft.state.fail_after_commit("getSchedule", 503, delay=20)
        async with svc.db.session() as db:
            await db.exec(
                update(CalendarConnection)
                .where(col(CalendarConnection.user_id) == ms_user)
                .values(sync_requested=True)
            )
            await db.commit()
        queue = ProcrastinateQueue(cluster_db)
        try:
            assert await queue.sync_calendar(ms_user) is True
        finally:
            await queue.close()
        await _until(
            lambda: _async(len(microsoft.state.requests_to("getSchedule")) > schedule_calls), 5
        )
        worker_1.proc.send_signal(signal.SIGKILL)
        worker_1.proc.wait(5)
        assert await _blocks(svc, ms_user) == []
        worker_2.proc.send_signal(signal.SIGCONT)  # it finds worker 1's job stalled
        await _until(lambda: _blocks_are(svc, ms_user, [(_at(3, 14), _at(3, 15))]), 15)
        async with svc.db.session() as db:
            row = (
                await db.exec(
                    select(CalendarConnection).where(CalendarConnection.user_id == ms_user)
                )
            ).one()
        assert row.sync_requested is False and row.failure_count == 0
    finally:
        for node in nodes:
            node.stop()
        await close_services(svc)


async def _async(value: bool) -> bool:
    return value


async def _blocks_are(
    svc: AppServices, user: uuid.UUID, expected: list[tuple[datetime, datetime]]
) -> bool:
    return await _blocks(svc, user) == expected
