"""Never free where Tandem has not looked: busy times months ahead, beyond the default
horizon, against a real CalDAV server (Radicale) on SQLite and PostgreSQL.

Busy events 100 and 300 days out are busy in the GraphQL ``availability`` query, on
the pair week page, in a poll's busy marks and in ranked suggestions; with the server
down those times are *unknown* with a note, never free. Ranges already read make no
provider call; ranges nobody used for a week are dropped with their blocks.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col, select

from emulators.radicale import RunningRadicale, start_radicale
from server.app import build_services, close_services, create_app
from server.jobs.runner import keep_busy_ranges
from server.models import BusyBlock, BusyCoverage, CalendarConnection
from server.models.base import utcnow
from server.models.enums import BusyKind, ConnectionKind, ProgramRole, ProviderName
from server.providers.base import BusyFetch, BusyInterval, Credentials
from server.services.availability.busy import read_busy
from server.services.calendars import connect, coverage, sync
from server.services.people import accounts, mentoring, programs
from server.services.people.sessions import Viewer
from server.services.polls import rules as poll_rules
from server.services.polls import suggestions
from server.services.polls.mail import PollDeps
from server.wiring import AppServices
from tests.calendar_fixtures import provider_overrides
from tests.conftest import create_user, gql, login, make_settings, new_client
from tests.schema.test_graphql_programs import token_for

pytestmark = pytest.mark.slow

USER, PASSWORD, CALENDAR = "ana", "ana-app-pass", "work"

AVAILABILITY = """
query A($input: AvailabilityInput!) {
  availability(input: $input) {
    busy { userId start end }
    slots { start freeUserIds busyUserIds unknownUserIds reason }
    unknown { userId start end reason }
    notes
  }
}"""


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[RunningRadicale]:
    """A CalDAV server of this test's own, so a test may stop it (the provider down)."""
    running = start_radicale(tmp_path / "dav", users={USER: PASSWORD})
    running.make_calendar(USER, PASSWORD, CALENDAR)
    yield running
    running.stop()


@pytest.fixture
async def svc(
    tmp_path: Path, database_url: str, radicale: RunningRadicale
) -> AsyncIterator[AppServices]:
    services = build_services(make_settings(tmp_path, database_url, **provider_overrides()))
    yield services
    await close_services(services)


def weekday_ahead(days: int) -> date:
    """The first weekday at least ``days`` from today (UTC)."""
    day = datetime.now(UTC).date() + timedelta(days=days)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def add_busy(radicale: RunningRadicale, day: date) -> None:
    """A 10:00-11:00 UTC event on ``day`` (its title must never reach Tandem's answers)."""
    stamp = f"{day:%Y%m%d}"
    radicale.add_event(
        USER,
        PASSWORD,
        CALENDAR,
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:far-{stamp}-{uuid.uuid4().hex}@test\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{stamp}T100000Z\r\nDTEND:{stamp}T110000Z\r\n"
        "SUMMARY:Secret far away appointment\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )


@dataclass
class World:
    olga: uuid.UUID  # no calendar; organizer and mentor
    ana: uuid.UUID  # CalDAV calendar on Radicale
    bo: uuid.UUID
    pair: uuid.UUID
    group: uuid.UUID
    ana_email: str
    olga_email: str


async def make_world(services: AppServices, radicale: RunningRadicale) -> World:
    tag = uuid.uuid4().hex[:6]
    root = await create_user(
        services, f"root-{tag}@example.org", global_admin=True, operator=True, time_zone="UTC"
    )
    olga_email, ana_email = f"olga-{tag}@example.org", f"ana-{tag}@example.org"
    olga = await create_user(services, olga_email, name="Olga", time_zone="UTC")
    ana = await create_user(services, ana_email, name="Ana", time_zone="UTC")
    bo = await create_user(services, f"bo-{tag}@example.org", name="Bo", time_zone="UTC")
    async with services.db.session() as db:
        actor = await accounts.get_user(db, root)
        program = await programs.create_program(db, actor, f"Far {tag}")
        await programs.add_member(db, actor, program.id, olga, ProgramRole.MENTOR)
        await programs.add_member(db, actor, program.id, ana, ProgramRole.MENTEE)
        await programs.add_member(db, actor, program.id, bo, ProgramRole.PARTICIPANT)
        await programs.update_settings(
            db, actor, program.id, programs.SettingsChange(group_polls_enabled=True)
        )
        pair = await mentoring.create_connection(
            db,
            actor,
            program_id=program.id,
            member_ids=[olga, ana],
            kind=ConnectionKind.PAIR,
            name=None,
        )
        group = await mentoring.create_connection(
            db,
            actor,
            program_id=program.id,
            member_ids=[olga, ana, bo],
            kind=ConnectionKind.GROUP,
            name=f"Circle {tag}",
            organizer_id=olga,
        )
        await db.commit()
        ana_user = await accounts.get_user(db, ana)
        await connect.connect_with_password(
            db,
            services.calendar,
            Viewer(user=ana_user, actor=ana_user),
            username=USER,
            password=PASSWORD,
            server_url=radicale.url,
        )
    return World(olga, ana, bo, pair.id, group.id, ana_email, olga_email)


async def ask(client: httpx.AsyncClient, token: str, world: World, day: date) -> dict[str, Any]:
    body = await gql(
        client,
        AVAILABILITY,
        {
            "input": {
                "participantIds": [str(world.olga), str(world.ana)],
                "start": at(day, 8).isoformat(),
                "end": at(day, 14).isoformat(),
                "durationMinutes": 60,
                "stepMinutes": 60,
            }
        },
        token=token,
    )
    answer: dict[str, Any] = body["data"]["availability"]
    return answer


def slot_at(answer: dict[str, Any], moment: datetime) -> dict[str, Any] | None:
    return next((s for s in answer["slots"] if s["start"] == moment.isoformat()), None)


_ROW = re.compile(r'<th scope="row">(\d\d:\d\d)</th>(.*?)</tr>', re.S)
_CELL = re.compile(r'<td class="cell cell-([a-z-]+)[" ]')


def week_cell(html: str, day: date, clock: str) -> str:
    """The state of the week grid's cell at ``clock`` on ``day`` (a week shown from Monday)."""
    for time_text, cells in _ROW.findall(html):
        if time_text == clock:
            return _CELL.findall(cells)[day.weekday()]
    raise AssertionError(f"no row at {clock}")


async def test_busy_months_ahead_is_busy_in_the_api_week_page_poll_and_suggestions(
    svc: AppServices, radicale: RunningRadicale
) -> None:
    near, far = weekday_ahead(100), weekday_ahead(300)
    add_busy(radicale, near)
    add_busy(radicale, far)
    world = await make_world(svc, radicale)
    app = create_app(services=svc)
    token = await token_for(svc, world.olga)
    async with await new_client(app) as client:
        for day in (near, far):
            answer = await ask(client, token, world, day)
            assert answer["busy"] == [
                {
                    "userId": str(world.ana),
                    "start": at(day, 10).isoformat(),
                    "end": at(day, 11).isoformat(),
                }
            ]
            assert slot_at(answer, at(day, 10)) is None  # Ana is busy, not free
            nine = slot_at(answer, at(day, 9))
            assert nine is not None and nine["freeUserIds"] == [str(world.ana)]
            assert answer["unknown"] == [] and answer["notes"] == []
            assert "Secret" not in str(answer)

        await login(client, world.ana_email)
        page = await client.get(
            f"/connections/{world.pair}/schedule?week={near - timedelta(days=near.weekday())}"
            "&duration=60"
        )
        assert page.status_code == 200
        assert week_cell(page.text, near, "10:00") == "unavailable"
        assert week_cell(page.text, near, "12:00") == "free-slot"
        assert "Secret" not in page.text

    async with svc.db.session() as db:
        olga = await accounts.get_user(db, world.olga)
        deps = PollDeps(
            mailer=svc.mailer, mail_from="t@example.org", base_url="http://t", calendar=svc.calendar
        )
        poll = await poll_rules.create_poll(
            db,
            deps,
            olga,
            group_id=world.group,
            title="Far away",
            duration_minutes=60,
            slot_starts=[at(near, 10), at(near, 14), at(far, 10)],
        )
        details = await poll_rules.poll_details(db, olga, poll.id)  # the cache alone now
        marks = {s.start: (s.unavailable, s.unknown) for s in details.slots}
        assert marks == {
            at(near, 10): ((world.ana,), ()),
            at(near, 14): ((), ()),
            at(far, 10): ((world.ana,), ()),
        }
        organized = await poll_rules.organized_group(db, olga, world.group)
        ranked = await suggestions.suggest(
            db,
            svc.calendar,
            olga,
            organized,
            start=at(far, 9),
            end=at(far, 12),
            duration_minutes=60,
        )
        by_start = {s.start: s for s in ranked.slots}
        assert by_start[at(far, 10)].unavailable == (world.ana,)
        assert world.ana in by_start[at(far, 9)].free


async def test_with_the_calendar_server_down_far_times_are_unknown_not_free(
    svc: AppServices, radicale: RunningRadicale
) -> None:
    near, far = weekday_ahead(100), weekday_ahead(300)
    add_busy(radicale, near)
    world = await make_world(svc, radicale)  # the default horizon is read at connect
    radicale.stop()
    app = create_app(services=svc)
    token = await token_for(svc, world.olga)
    async with await new_client(app) as client:
        for day in (near, far):
            answer = await ask(client, token, world, day)
            assert answer["busy"] == []
            assert answer["slots"], "unknown people never block, so slots remain"
            for slot in answer["slots"]:
                assert slot["freeUserIds"] == []
                assert slot["unknownUserIds"] == [str(world.olga), str(world.ana)]
                assert "Ana is unknown (calendar not read for this time)" in slot["reason"]
            assert [u["userId"] for u in answer["unknown"]] == [str(world.ana)]
            assert answer["unknown"][0]["reason"] == coverage.WHY_FAILED
            assert any("Ana's calendar could not be read" in n for n in answer["notes"])

        await login(client, world.ana_email)
        page = await client.get(
            f"/connections/{world.pair}/schedule?week={near - timedelta(days=near.weekday())}"
            "&duration=60"
        )
        assert week_cell(page.text, near, "10:00") == "unknown"
        assert week_cell(page.text, near, "12:00") == "unknown"
        assert "free-slot" not in _CELL.findall(page.text)
        assert "Ana&#39;s calendar could not be read" in page.text

    async with svc.db.session() as db:
        olga = await accounts.get_user(db, world.olga)
        deps = PollDeps(
            mailer=svc.mailer, mail_from="t@example.org", base_url="http://t", calendar=svc.calendar
        )
        poll = await poll_rules.create_poll(
            db,
            deps,
            olga,
            group_id=world.group,
            title="Far away",
            duration_minutes=60,
            slot_starts=[at(near, 10), at(far, 10)],
        )
        details = await poll_rules.poll_details(db, olga, poll.id, calendar=svc.calendar)
        assert [(s.unavailable, s.unknown) for s in details.slots] == [((), (world.ana,))] * 2
        assert details.notes and "Ana's calendar could not be read" in details.notes[0]


class CountingFetch:
    """Wraps a provider's ``fetch_busy`` to count calls (and the windows asked for)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.windows: list[tuple[datetime, datetime]] = []

    async def __call__(
        self, credentials: Credentials, start: datetime, end: datetime, time_zone: str
    ) -> BusyFetch:
        self.windows.append((start, end))
        result: BusyFetch = await self.inner(credentials, start, end, time_zone)
        return result


async def test_a_covered_window_makes_no_provider_call_and_far_fetches_are_bounded(
    svc: AppServices, radicale: RunningRadicale, monkeypatch: pytest.MonkeyPatch
) -> None:
    near = weekday_ahead(100)
    add_busy(radicale, near)
    world = await make_world(svc, radicale)
    provider = svc.calendar.registry.get(ProviderName.ICLOUD)
    counter = CountingFetch(provider.fetch_busy)
    monkeypatch.setattr(provider, "fetch_busy", counter)
    inside = [(at(weekday_ahead(10), 9), at(weekday_ahead(10), 17))]
    async with svc.db.session() as db:
        picture = await read_busy(db, svc.calendar, [world.ana], inside)
        assert counter.windows == []  # the default horizon covers it
        assert picture.people[world.ana].unknown == []

        window = [(at(near, 9), at(near, 17))]
        picture = await read_busy(db, svc.calendar, [world.ana], window)
        assert len(counter.windows) == 1
        start, end = counter.windows[0]
        assert (start, end) == (at(near, 0), at(near + timedelta(days=1), 0))  # whole days
        assert [(i.start, i.end) for i in picture.people[world.ana].intervals] == [
            (at(near, 10), at(near, 11))
        ]
        again = await read_busy(db, svc.calendar, [world.ana], window)
        assert len(counter.windows) == 1  # now covered: no second call
        assert again.people[world.ana].intervals == picture.people[world.ana].intervals

        too_far = datetime.now(UTC) + timedelta(days=400)
        beyond = await read_busy(
            db, svc.calendar, [world.ana], [(too_far, too_far + timedelta(hours=2))]
        )
        assert len(counter.windows) == 1  # never asked beyond 12 months
        assert [g.why for g in beyond.people[world.ana].unknown] == [coverage.WHY_TOO_FAR]

        # Booking re-checks read the cache only: no call, unknown where not read.
        other = weekday_ahead(200)
        cached = await read_busy(
            db, svc.calendar, [world.ana], [(at(other, 9), at(other, 10))], fetch=False
        )
        assert len(counter.windows) == 1
        assert [g.why for g in cached.people[world.ana].unknown] == [coverage.WHY_NOT_FETCHED]


async def test_resync_keeps_far_ranges_and_unused_ranges_are_dropped_with_their_blocks(
    svc: AppServices, radicale: RunningRadicale
) -> None:
    near, far = weekday_ahead(100), weekday_ahead(300)
    add_busy(radicale, near)
    add_busy(radicale, far)
    world = await make_world(svc, radicale)
    async with svc.db.session() as db:
        await read_busy(db, svc.calendar, [world.ana], [(at(near, 9), at(near, 12))])
        await read_busy(db, svc.calendar, [world.ana], [(at(far, 9), at(far, 12))])
        # A resync of the default horizon must not throw away what was read further out.
        await sync.sync_users(db, svc.calendar, [world.ana])
        blocks = (await db.exec(select(BusyBlock).where(col(BusyBlock.user_id) == world.ana))).all()
        assert sorted(b.start_at for b in blocks) == [at(near, 10), at(far, 10)]
        # Nobody asked about the far range for eight days; the near one was used today.
        await db.exec(
            update(BusyCoverage)
            .where(col(BusyCoverage.start_at) == at(far, 0))
            .values(last_used_at=utcnow() - timedelta(days=8))
        )
        await db.commit()
    await keep_busy_ranges(svc)
    async with svc.db.session() as db:
        ranges = (await db.exec(select(BusyCoverage))).all()
        assert [(r.start_at, r.end_at) for r in ranges] == [
            (at(near, 0), at(near + timedelta(days=1), 0))
        ]
        blocks = (await db.exec(select(BusyBlock).where(col(BusyBlock.user_id) == world.ana))).all()
        assert [b.start_at for b in blocks] == [at(near, 10)]
        # The far range is unknown again until someone asks, and then read afresh.
        gaps = await coverage.ensure_covered(
            db, svc.calendar, [world.ana], [(at(far, 9), at(far, 12))], fetch=False
        )
        assert [(g.start, g.end) for g in gaps[world.ana]] == [(at(far, 9), at(far, 12))]
        # Disconnecting drops every range with the connection.
        ana = await accounts.get_user(db, world.ana)
        await connect.disconnect(db, svc.calendar, Viewer(user=ana, actor=ana))
        assert (await db.exec(select(BusyCoverage))).all() == []
        assert (await db.exec(select(CalendarConnection))).all() == []


async def test_ranges_in_use_are_refreshed_by_the_job_loop(
    svc: AppServices, radicale: RunningRadicale
) -> None:
    near = weekday_ahead(100)
    world = await make_world(svc, radicale)
    async with svc.db.session() as db:
        picture = await read_busy(db, svc.calendar, [world.ana], [(at(near, 9), at(near, 12))])
        assert picture.people[world.ana].intervals == []
    add_busy(radicale, near)  # booked in the calendar after Tandem read the range
    async with svc.db.session() as db:
        await db.exec(update(BusyCoverage).values(fetched_at=utcnow() - timedelta(hours=2)))
        await db.commit()
    await keep_busy_ranges(svc)
    async with svc.db.session() as db:
        picture = await read_busy(
            db, svc.calendar, [world.ana], [(at(near, 9), at(near, 12))], fetch=False
        )
        assert [(i.start, i.end) for i in picture.people[world.ana].intervals] == [
            (at(near, 10), at(near, 11))
        ]


async def test_replacing_a_range_keeps_the_parts_of_blocks_outside_it(svc: AppServices) -> None:
    user_id = await create_user(svc, time_zone="UTC")
    day = weekday_ahead(100)
    async with svc.db.session() as db:
        db.add(
            BusyBlock(user_id=user_id, start_at=at(day, 8), end_at=at(day, 12), kind=BusyKind.BUSY)
        )
        db.add(
            BusyBlock(user_id=user_id, start_at=at(day, 13), end_at=at(day, 14), kind=BusyKind.BUSY)
        )
        await db.commit()
        fresh = [BusyInterval(at(day, 9), at(day, 18), BusyKind.TENTATIVE)]
        await coverage.replace_blocks(db, user_id, (at(day, 10), at(day, 16)), fresh)
        await db.commit()
        rows = (
            await db.exec(
                select(BusyBlock)
                .where(col(BusyBlock.user_id) == user_id)
                .order_by(col(BusyBlock.start_at))
            )
        ).all()
        assert [(r.start_at, r.end_at, r.kind) for r in rows] == [
            (at(day, 8), at(day, 10), BusyKind.BUSY),  # the old block's part before the range
            (at(day, 10), at(day, 16), BusyKind.TENTATIVE),  # the range is exactly the fetch
        ]


async def test_credentials_a_far_fetch_rotates_are_kept(
    svc: AppServices, radicale: RunningRadicale, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The people of a question are read as rows, detached from the session; a far read
    fetches through the session's own copy of the connection, so credentials the provider
    rotated during it (Microsoft's refresh tokens) are stored, not lost with a copy."""
    from server.services.calendars.deps import load_credentials

    near = weekday_ahead(120)
    add_busy(radicale, near)
    world = await make_world(svc, radicale)
    provider = svc.calendar.registry.get(ProviderName.ICLOUD)
    inner = provider.fetch_busy

    async def rotating(
        credentials: Credentials, start: datetime, end: datetime, time_zone: str
    ) -> BusyFetch:
        result: BusyFetch = await inner(credentials, start, end, time_zone)
        credentials.secret = {**credentials.secret, "rotated": "yes"}
        credentials.changed = True
        return result

    monkeypatch.setattr(provider, "fetch_busy", rotating)
    async with svc.db.session() as db:
        picture = await read_busy(db, svc.calendar, [world.ana], [(at(near, 9), at(near, 17))])
        assert [(i.start, i.end) for i in picture.people[world.ana].intervals] == [
            (at(near, 10), at(near, 11))
        ]
    async with svc.db.session() as db:
        stored = (
            await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == world.ana))
        ).one()
        assert load_credentials(svc.calendar.secrets, stored).secret.get("rotated") == "yes"
