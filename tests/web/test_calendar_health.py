"""Calendar health on Calendar Settings, the admins' program summary and GraphQL: who
sees it, what it says (zone-labelled), and that no event's title ever shows."""

from __future__ import annotations

import html
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from emulators.radicale import RunningRadicale, start_radicale
from server.app import create_app
from server.models import BusyBlock, CalendarConnection
from server.models.base import utcnow
from server.models.enums import BusyKind, CalendarStatus, ConnectionKind, ProgramRole, ProviderName
from server.services.calendars import sync
from server.services.people import accounts, mentoring, programs
from server.wiring import AppServices, build_services, close_services
from tests.conftest import create_user, gql, login, make_settings, new_client

SENTINEL = "HEALTHCANARY" + uuid.uuid4().hex[:10]
DAV_USER, DAV_PASSWORD = "healthcheck", "health-pass"

HEALTH_QUERY = """
query Health($id: ID!) {
  user(id: $id) {
    calendar { status health { state through lastSyncedAt horizonCovered
      reasons { code message action actionText needsAttention } } }
  }
}
"""
ME_HEALTH = """
query { me { calendar { health { state lastSyncedAt reasons { code message action } } } } }
"""


# --- a real CalDAV calendar whose events have titles --------------------------------


@pytest.fixture(scope="module")
def own_radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRadicale]:
    running = start_radicale(tmp_path_factory.mktemp("health-dav"), users={DAV_USER: DAV_PASSWORD})
    yield running
    running.stop()


@pytest.fixture
async def dav_services(tmp_path: Path, sqlite_url: str) -> AsyncIterator[AppServices]:
    svc = build_services(make_settings(tmp_path, sqlite_url, caldav_allow_private_hosts=True))
    yield svc
    await close_services(svc)


def _vevent(start: str, end: str, extra: str = "") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//health//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uuid.uuid4()}@health\r\nDTSTAMP:20270101T000000Z\r\n{start}\r\n{end}\r\n"
        f"SUMMARY:{SENTINEL} summary\r\nDESCRIPTION:{SENTINEL} notes\r\n"
        f"LOCATION:{SENTINEL} room\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def _weekdays(today: date, count: int) -> list[date]:
    found, day = [], today
    while len(found) < count:
        if day.weekday() < 5:
            found.append(day)
        day += timedelta(days=1)
    return found


async def test_a_real_calendar_shows_its_hints_and_never_a_title(
    dav_services: AppServices, own_radicale: RunningRadicale
) -> None:
    zone = "America/New_York"
    user_id = await create_user(dav_services, "dana@example.org", name="Dana", time_zone=zone)
    admin_id = await create_user(dav_services, "boss@example.org", name="Boss", global_admin=True)
    async with dav_services.db.session() as db:
        admin = await accounts.get_user(db, admin_id)
        program = await programs.create_program(db, admin, "Health")
        await programs.add_member(db, admin, program.id, user_id, ProgramRole.MENTEE)
        await db.commit()
    name = f"h{uuid.uuid4().hex[:8]}"
    own_radicale.make_calendar(DAV_USER, DAV_PASSWORD, name)
    today = datetime.now(ZoneInfo(zone)).date()
    for day in _weekdays(today, 4):
        own_radicale.add_event(
            DAV_USER,
            DAV_PASSWORD,
            name,
            _vevent(
                f"DTSTART;VALUE=DATE:{day:%Y%m%d}",
                f"DTEND;VALUE=DATE:{day + timedelta(days=1):%Y%m%d}",
            ),
        )
    now = datetime.now(UTC).replace(microsecond=0)
    away_until = (
        (now + timedelta(days=3)).astimezone(ZoneInfo(zone)).replace(hour=18, minute=0, second=0)
    )
    stamp = "%Y%m%dT%H%M%SZ"
    own_radicale.add_event(
        DAV_USER,
        DAV_PASSWORD,
        name,
        _vevent(
            f"DTSTART:{(now - timedelta(hours=2)):{stamp}}",
            f"DTEND:{away_until.astimezone(UTC):{stamp}}",
            "X-MICROSOFT-CDO-BUSYSTATUS:OOF\r\n",
        ),
    )
    app = create_app(services=dav_services)
    async with await new_client(app) as web:
        csrf = await login(web, "dana@example.org")
        done = await web.post(
            "/calendar/connect/icloud",
            data={
                "username": DAV_USER,
                "app_password": DAV_PASSWORD,
                "server_url": own_radicale.url,
                "csrf_token": csrf,
            },
        )
        assert done.status_code == 303, done.text
        page = await web.get("/profile/edit?tab=settings")
        text = html.unescape(page.text)
        assert "Calendar health" in text
        assert "All-day events block 4 of the next 10 weekdays." in text
        assert f"Out of office until {away_until.day} {away_until:%B}." in text
        assert "Check the all-day events" in text
        assert f"({zone})" in text  # the sync time says its zone
        mine = await gql(web, ME_HEALTH, csrf=csrf)
        found = mine["data"]["me"]["calendar"]["health"]
        assert found["state"] == "NEEDS_ATTENTION" and found["lastSyncedAt"]
        assert {r["code"] for r in found["reasons"]} == {"all_day_blocking", "out_of_office"}
        seen = [page.text, str(mine)]
    async with await new_client(app) as web:
        csrf = await login(web, "boss@example.org")
        summary = await web.get(f"/admin/programs/{program.id}/calendars")
        assert summary.status_code == 200
        assert "All-day events block 4 of the next 10 weekdays." in html.unescape(summary.text)
        theirs = await gql(web, HEALTH_QUERY, {"id": str(user_id)}, csrf=csrf)
        assert theirs["data"]["user"]["calendar"]["health"]["through"] == "iCal"
        seen += [summary.text, str(theirs)]
    assert not [part for part in seen if SENTINEL in part]


# --- seeded connections, on both databases ------------------------------------------


async def _connect(services: AppServices, user_id: uuid.UUID, **values: Any) -> None:
    now = utcnow()
    fields: dict[str, Any] = {
        "provider": ProviderName.MICROSOFT,
        "status": CalendarStatus.CONNECTED,
        "label": "Office 365",
        "account_email": "someone@contoso.test",
        "last_synced_at": now - timedelta(minutes=3),
        "synced_from": now - timedelta(days=1),
        "synced_until": now + timedelta(days=60),
    }
    fields.update(values)
    async with services.db.session() as db:
        db.add(CalendarConnection(user_id=user_id, **fields))
        db.add(
            BusyBlock(
                user_id=user_id,
                start_at=now + timedelta(hours=2),
                end_at=now + timedelta(hours=3),
                kind=BusyKind.BUSY,
            )
        )
        await db.commit()


async def _program(services: AppServices) -> dict[str, Any]:
    """A program run by a program admin (not global) with three participants, a pair, and
    an outsider in another program."""
    root = await create_user(
        services, "root@example.org", name="Root", global_admin=True, password=""
    )
    lead = await create_user(services, "lead@example.org", name="Lead")
    fine = await create_user(services, "fine@example.org", name="Fina Fine")
    lost = await create_user(services, "lost@example.org", name="Lorna Lost")
    none = await create_user(services, "none@example.org", name="Nora None", password="")
    outsider = await create_user(services, "out@example.org", name="Otto Outsider")
    async with services.db.session() as db:
        admin = await accounts.get_user(db, root)
        program = await programs.create_program(db, admin, "Mentoring")
        other = await programs.create_program(db, admin, "Elsewhere")
        await programs.add_member(db, admin, program.id, lead, ProgramRole.ADMIN)
        for person, role in ((fine, ProgramRole.MENTOR), (lost, ProgramRole.MENTEE)):
            await programs.add_member(db, admin, program.id, person, role)
        await programs.add_member(db, admin, program.id, none, ProgramRole.PARTICIPANT)
        await programs.add_member(db, admin, other.id, outsider, ProgramRole.PARTICIPANT)
        await mentoring.create_connection(
            db,
            admin,
            program_id=program.id,
            member_ids=[fine, lost],
            kind=ConnectionKind.PAIR,
            name=None,
        )
        await db.commit()
    await _connect(services, fine)
    await _connect(
        services,
        lost,
        status=CalendarStatus.NEEDS_REAUTH,
        error_code=sync.PROBLEM_AUTH_LOST,
        last_error="Microsoft no longer accepts Tandem's access. Reconnect your calendar.",
    )
    return {"program": program, "fine": fine, "lost": lost, "none": none, "outsider": outsider}


async def test_participant_sees_the_action_that_fixes_their_calendar(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await _program(services)
    await login(client, "lost@example.org")
    page = await client.get("/profile/edit?tab=settings")
    text = html.unescape(page.text)
    assert 'data-code="auth_lost"' in text
    assert "Disconnect and reconnect the calendar, then wait ten minutes." in text
    assert "Needs attention" in text and "through Office 365" in text
    assert "(Europe/Paris)" in text


async def test_admin_summary_counts_filters_and_links_to_work_on_behalf(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    seeded = await _program(services)
    program = seeded["program"]
    await login(client, "lead@example.org")
    admin = await client.get("/admin")
    assert f'href="/admin/programs/{program.id}/calendars"' in admin.text
    page = await client.get(f"/admin/programs/{program.id}/calendars")
    assert page.status_code == 200
    text = html.unescape(page.text)
    # Lead (no calendar), Nora (no calendar), Lorna (access lost), Fina (fine).
    assert "<dt>Connected</dt><dd>1</dd>" in text
    assert "<dt>Needing attention</dt><dd>1</dd>" in text
    assert "<dt>Not connected</dt><dd>2</dd>" in text
    assert 'href="?reason=auth_lost"' in text and "Access lost: reconnect</a>: 1" in text
    assert "Europe/Paris" in text
    assert f'name="user_id" value="{seeded["lost"]}"' in text
    filtered = html.unescape(
        (await client.get(f"/admin/programs/{program.id}/calendars?reason=auth_lost")).text
    )
    assert "Lorna Lost" in filtered and "Fina Fine" not in filtered and "Nora None" not in filtered


@pytest.mark.parametrize("email", ["fine@example.org", "out@example.org"])
async def test_members_and_strangers_get_no_program_summary(
    client: httpx.AsyncClient, services: AppServices, email: str
) -> None:
    seeded = await _program(services)
    await login(client, email)
    page = await client.get(f"/admin/programs/{seeded['program'].id}/calendars")
    assert page.status_code == 404
    assert "Lorna" not in page.text
    assert (await client.get("/admin/programs/not-a-uuid/calendars")).status_code == 404


async def test_graphql_health_for_self_and_admins_only(
    client: httpx.AsyncClient, services: AppServices, app: Any
) -> None:
    seeded = await _program(services)
    lost = {"id": str(seeded["lost"])}
    csrf = await login(client, "lead@example.org")
    seen = await gql(client, HEALTH_QUERY, lost, csrf=csrf)
    health = seen["data"]["user"]["calendar"]["health"]
    assert health["state"] == "NEEDS_ATTENTION" and health["through"] == "Office 365"
    assert health["reasons"][0]["code"] == "auth_lost"
    assert health["reasons"][0]["action"] == "RECONNECT"
    assert health["horizonCovered"] is True
    # The partner sees that the calendar needs reconnecting (status), not its health.
    async with await new_client(app) as partner:
        csrf = await login(partner, "fine@example.org")
        seen = await gql(partner, HEALTH_QUERY, lost, csrf=csrf)
        assert seen["data"]["user"]["calendar"]["status"] == "NEEDS_REAUTH"
        assert seen["data"]["user"]["calendar"]["health"] is None
        mine = await gql(partner, ME_HEALTH, csrf=csrf)
        assert mine["data"]["me"]["calendar"]["health"]["state"] == "CONNECTED"
    async with await new_client(app) as stranger:
        csrf = await login(stranger, "out@example.org")
        seen = await gql(stranger, HEALTH_QUERY, lost, csrf=csrf)
        assert seen["data"]["user"] is None
