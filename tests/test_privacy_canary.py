"""The privacy promise, end to end: a unique string in the titles, descriptions, locations
and attendees of users' own events, on Google, Microsoft and a real CalDAV server, must
not appear in the database (tables and raw files), the logs, the pages or the API."""

from __future__ import annotations

import logging
import re
import ssl
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from emulators.google import RunningGoogle, consent
from emulators.microsoft import RunningMicrosoft
from emulators.radicale import RunningRadicale
from server.app import create_app
from server.models import metadata
from server.models.enums import ConnectionKind, ProgramRole
from server.services.people import accounts, mentoring, programs
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import (
    CALDAV_PASSWORD,
    CALDAV_USER,
    microsoft_consent,
    provider_overrides,
)
from tests.conftest import create_user, gql, login, make_settings
from tests.schema.test_graphql_programs import token_for
from tests.web.test_calendar_connect import start_flow

pytestmark = pytest.mark.slow

SENTINEL = "CANARY" + uuid.uuid4().hex[:12]


def _at(days: int, hour: int) -> datetime:
    base = (datetime.now(UTC) + timedelta(days=days)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return base + timedelta(hours=hour)


def _ics(uid: str, start: datetime) -> str:
    stamp = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//canary//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{start.strftime(stamp)}\r\nDTSTART:{start.strftime(stamp)}\r\n"
        f"DTEND:{(start + timedelta(hours=1)).strftime(stamp)}\r\nSUMMARY:{SENTINEL} summary\r\n"
        f"DESCRIPTION:{SENTINEL} description\r\nLOCATION:{SENTINEL} room\r\n"
        f"ATTENDEE;CN={SENTINEL}:mailto:{SENTINEL.lower()}@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


@pytest.fixture
async def svc(
    tmp_path: Path, sqlite_url: str, google: RunningGoogle, microsoft: RunningMicrosoft
) -> AsyncIterator[AppServices]:
    services = build_services(
        make_settings(tmp_path, sqlite_url, **provider_overrides(google, microsoft))
    )
    yield services
    await close_services(services)


async def test_event_details_never_leave_the_sync_boundary(
    svc: AppServices,
    google: RunningGoogle,
    microsoft: RunningMicrosoft,
    radicale: RunningRadicale,
    tmp_path: Path,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    google.state.add_account("canary@gmail.test")
    google.state.add_event(
        "canary@gmail.test",
        {
            "summary": f"{SENTINEL} summary",
            "description": f"{SENTINEL} description",
            "location": f"{SENTINEL} room",
            "attendees": [{"email": f"{SENTINEL.lower()}@example.org"}],
            "start": {"dateTime": _at(2, 9).isoformat()},
            "end": {"dateTime": _at(2, 10).isoformat()},
        },
    )
    microsoft.state.add_account("canary@contoso.test")
    microsoft.state.add_event(
        "canary@contoso.test",
        subject=f"{SENTINEL} subject",
        location=f"{SENTINEL} room",
        body=f"{SENTINEL} body",
        start=_at(2, 11),
        end=_at(2, 12),
        show_as="busy",
    )
    microsoft.state.add_account("canary@outlook.test", personal=True)
    microsoft.state.add_event(
        "canary@outlook.test",
        subject=f"{SENTINEL} personal",
        location=f"{SENTINEL} cafe",
        body=f"{SENTINEL} notes",
        start=_at(2, 15),
        end=_at(2, 16),
        show_as="busy",
    )
    radicale.make_calendar(CALDAV_USER, CALDAV_PASSWORD, "canary")
    radicale.add_event(
        CALDAV_USER, CALDAV_PASSWORD, "canary", _ics(f"{uuid.uuid4()}@elsewhere", _at(2, 13))
    )

    admin_id = await create_user(svc, "admin@example.org", name="Admin", global_admin=True)
    people = {
        "google": await create_user(svc, "g@example.org", name="Gee"),
        "microsoft": await create_user(svc, "m@example.org", name="Em"),
        "icloud": await create_user(svc, "c@example.org", name="Cee"),
        "outlook": await create_user(svc, "o@example.org", name="Oh"),
    }
    async with svc.db.session() as db:
        admin = await accounts.get_user(db, admin_id)
        program = await programs.create_program(db, admin, "Canary")
        for user_id in people.values():
            await programs.add_member(db, admin, program.id, user_id, ProgramRole.PARTICIPANT)
        await mentoring.create_connection(
            db,
            admin,
            program_id=program.id,
            member_ids=list(people.values()),
            kind=ConnectionKind.GROUP,
            name="Quartet",
            organizer_id=people["google"],
        )
        pair = await mentoring.create_connection(
            db,
            admin,
            program_id=program.id,
            member_ids=[people["google"], people["outlook"]],
            kind=ConnectionKind.PAIR,
            name=None,
        )
        org = await programs.organization(db)
        org.group_polls_enabled = True
        org.two_way_sync_enabled = True
        await db.commit()

    app = create_app(services=svc)
    seen: list[str] = []

    async def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )

    ms_browser = httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(microsoft.ca_path)))
    try:
        for provider in people:
            web = await client()
            email = {
                "google": "g@example.org",
                "microsoft": "m@example.org",
                "icloud": "c@example.org",
                "outlook": "o@example.org",
            }[provider]
            csrf = await login(web, email)
            if provider == "icloud":
                done = await web.post(
                    "/calendar/connect/icloud",
                    data={
                        "username": CALDAV_USER,
                        "app_password": CALDAV_PASSWORD,
                        "server_url": radicale.url,
                        "csrf_token": csrf,
                    },
                )
            else:
                start = await start_flow(web, "microsoft" if provider == "outlook" else provider)
                if provider == "google":
                    params = await consent(
                        ms_browser, start.headers["location"], "canary@gmail.test"
                    )
                else:
                    account = (
                        "canary@outlook.test" if provider == "outlook" else "canary@contoso.test"
                    )
                    params = await microsoft_consent(ms_browser, start.headers["location"], account)
                callback = "microsoft" if provider == "outlook" else provider
                done = await web.get(f"/calendar/callback/{callback}", params=params)
            assert done.status_code == 303, done.text
            for path in ("/", "/profile/edit?tab=settings", "/profile/edit?tab=profile"):
                seen.append((await web.get(path)).text)
            await web.aclose()
        # The partner's week, the group, a poll and a meeting, seen by the group organizer.
        organizer = await client()
        await login(organizer, "g@example.org")
        week = await organizer.get(
            f"/connections/{pair.id}/schedule?week={_at(2, 0).date().isoformat()}"
        )
        assert "cell-unavailable" in week.text and " busy</span>" in week.text
        seen.append(week.text)
        groups = [
            r.group(1)
            for r in re.finditer(r'href="/groups/([0-9a-f-]{36})"', (await organizer.get("/")).text)
        ]
        group_page = await organizer.get(f"/groups/{groups[0]}")
        seen.append(group_page.text)
        suggestions = await organizer.get(
            f"/groups/{groups[0]}/polls/new",
            params={
                "from": _at(2, 0).date().isoformat(),
                "to": _at(3, 0).date().isoformat(),
                "duration": "60",
            },
        )
        assert suggestions.status_code == 200
        seen.append(suggestions.text)
        await organizer.aclose()
        admin_web = await client()
        await login(admin_web, "admin@example.org")
        seen.append((await admin_web.get("/admin")).text)
        await admin_web.aclose()
    finally:
        await ms_browser.aclose()

    api = await client()
    token = await token_for(svc, admin_id)
    query = """query A($ids: [ID!]!, $start: DateTime!, $end: DateTime!) {
      availability(input: {participantIds: $ids, start: $start, end: $end, durationMinutes: 30}) {
        participants { user { id name email } calendarStatus } busy { userId start end kind }
        slots { start reason } emptyReason notes }
    }"""
    body = await gql(
        api,
        query,
        {
            "ids": [str(u) for u in people.values()],
            "start": _at(2, 0).isoformat(),
            "end": _at(3, 0).isoformat(),
        },
        token=token,
    )
    busy = body["data"]["availability"]["busy"]
    assert len(busy) == 4, "each provider's event must show up as busy"
    organizer_token = await token_for(svc, people["google"])
    slot = _at(7, 12) if _at(7, 12).weekday() < 5 else _at(9, 12)
    created = await gql(
        api,
        """mutation P($g: ID!, $s: DateTime!) { createPoll(input: {groupId: $g, title: "Kick-off",
          durationMinutes: 60, slots: [{start: $s}]}) { poll { id } errors { message } } }""",
        {"g": groups[0], "s": slot.isoformat()},
        token=organizer_token,
    )
    poll_id = created["data"]["createPoll"]["poll"]["id"]
    seen.append(
        str(
            await gql(
                api,
                "query Q($id: ID!) { poll(id: $id) { title slots { start unavailableUserIds answers { answer } } } }",
                {"id": poll_id},
                token=organizer_token,
            )
        )
    )
    seen.append(
        str(
            await gql(
                api, "{ meetings { title attendees { name response } } }", token=organizer_token
            )
        )
    )
    seen.append(str(body))
    for user_id in people.values():
        seen.append(
            str(
                await gql(
                    api,
                    "query U($id: ID!) { user(id: $id) { name calendar { status provider } } }",
                    {"id": str(user_id)},
                    token=token,
                )
            )
        )
    await api.aclose()

    async with svc.db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = (await conn.execute(table.select())).all()
            seen.append(repr(rows))
    db_path = Path(sqlite_url.split("///", 1)[1])
    raw = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))

    everything = "\n".join(seen) + "\n".join(r.getMessage() for r in caplog.records)
    assert SENTINEL not in everything
    assert SENTINEL.lower() not in everything.lower()
    assert SENTINEL.encode() not in raw
