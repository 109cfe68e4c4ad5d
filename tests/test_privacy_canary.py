"""The privacy promise, end to end: a unique string in the titles, descriptions, locations
and attendees of users' own events, on Google, Microsoft and a real CalDAV server, must
not appear in the database (tables and raw files), the logs, the pages or the API."""

from __future__ import annotations

import json
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


def _weekend_shift() -> int:
    """Days to move the whole story so that its event day (two days ahead) is a weekday:
    the default program rules mark every weekend cell as a weekend, never as busy."""
    event_day = datetime.now(UTC) + timedelta(days=2)
    return (7 - event_day.weekday()) % 7 if event_day.weekday() >= 5 else 0


def _at(days: int, hour: int) -> datetime:
    base = (datetime.now(UTC) + timedelta(days=days + _weekend_shift())).replace(
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
        for page in ("calendars", "people", "connections"):
            shown = await admin_web.get(f"/admin/programs/{program.id}/{page}")
            assert shown.status_code == 200
            seen.append(shown.text)
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
                    "query U($id: ID!) { user(id: $id) { name calendar { status provider"
                    " health { state reasons { code message } } } } }",
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


async def test_event_details_never_leave_the_integration_path(
    svc: AppServices,
    microsoft: RunningMicrosoft,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same promise when an organization's Exchange Online integration reads
    everyone's schedule at once (Graph getSchedule returns subjects and locations)."""
    from emulators.microsoft import admin_consent
    from server.services.integrations import setup
    from server.services.integrations import sync as org_sync
    from server.services.people.sessions import Viewer

    caplog.set_level(logging.DEBUG)
    tag = uuid.uuid4().hex[:6]
    domain = f"canary{tag}.example"
    tenant = str(uuid.uuid4())
    for name in ("it", "tandem", "ann", "bob"):
        microsoft.state.add_account(f"{name}@{domain}", tenant_id=tenant)
    microsoft.state.add_tenant([domain], tenant_id=tenant, admin=f"it@{domain}")
    for name in ("ann", "bob"):
        microsoft.state.add_event(
            f"{name}@{domain}",
            subject=f"{SENTINEL} subject",
            location=f"{SENTINEL} room",
            body=f"{SENTINEL} body",
            start=_at(2, 10),
            end=_at(2, 11),
            attendees=[{"emailAddress": {"address": f"{SENTINEL.lower()}@example.org"}}],
        )
    admin_id = await create_user(svc, f"root@{tag}.vendor.example", global_admin=True)
    operator_id = await create_user(svc, f"op@{tag}.vendor.example", operator=True)
    people = [await create_user(svc, f"{n}@{domain}", name=n.title()) for n in ("ann", "bob")]
    async with svc.db.session() as db:
        admin = await accounts.get_user(db, admin_id)
        operator = await accounts.get_user(db, operator_id)
        program = await programs.create_program(db, admin, "Canary org")
        for person in people:
            await programs.add_member(db, admin, program.id, person, ProgramRole.PARTICIPANT)
        await db.commit()
        await setup.set_switch(db, svc.calendar, operator, True)
        viewer = Viewer(user=admin, actor=admin)
        url = await setup.start_microsoft(
            db,
            svc.calendar,
            viewer,
            service_account=f"tandem@{domain}",
            redirect_uri="http://testserver/admin/integrations/microsoft/callback",
        )
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(microsoft.ca_path))
        ) as browser:
            reply = await admin_consent(browser, url, f"it@{domain}")
        integration = await setup.finish_microsoft(db, svc.calendar, viewer, reply)
        report = await org_sync.sync_integration(db, svc.calendar, integration)
        assert report.rows_written == 2, "each covered person's event must be busy"
    await _assert_no_canary(svc, admin_id, f"root@{tag}.vendor.example", people, sqlite_url, caplog)


async def test_event_details_never_leave_the_google_integration_path(
    svc: AppServices,
    google: RunningGoogle,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same promise through a Google Workspace integration: the key upload, the
    delegated freeBusy of everyone's calendar, and what the pages and API show."""
    from emulators.google import seed_workspace
    from server.providers.google_service_account import DELEGATION_SCOPE_LIST
    from server.services.integrations import setup
    from server.services.integrations import sync as org_sync
    from server.services.people.sessions import Viewer

    caplog.set_level(logging.DEBUG)
    tag = uuid.uuid4().hex[:6]
    domain = f"gcanary{tag}.example"
    account = seed_workspace(
        google.state, domain, ["ann", "bob"], delegated_scopes=DELEGATION_SCOPE_LIST
    )
    for name in ("ann", "bob"):
        google.state.add_event(
            f"{name}@{domain}",
            {
                "summary": f"{SENTINEL} summary",
                "description": f"{SENTINEL} description",
                "location": f"{SENTINEL} room",
                "attendees": [{"email": f"{SENTINEL.lower()}@example.org"}],
                "start": {"dateTime": _at(2, 10).isoformat()},
                "end": {"dateTime": _at(2, 11).isoformat()},
            },
        )
    admin_id = await create_user(svc, f"root@{tag}.vendor.example", global_admin=True)
    operator_id = await create_user(svc, f"op@{tag}.vendor.example", operator=True)
    people = [await create_user(svc, f"{n}@{domain}", name=n.title()) for n in ("ann", "bob")]
    async with svc.db.session() as db:
        admin = await accounts.get_user(db, admin_id)
        operator = await accounts.get_user(db, operator_id)
        program = await programs.create_program(db, admin, "Canary Google org")
        for person in people:
            await programs.add_member(db, admin, program.id, person, ProgramRole.PARTICIPANT)
        await db.commit()
        await setup.set_switch(db, svc.calendar, operator, True)
        viewer = Viewer(user=admin, actor=admin)
        await setup.start_google(
            db,
            svc.calendar,
            viewer,
            key_text=json.dumps(account.key_json()),
            domain=domain,
            act_as=f"tandem@{domain}",
        )
        integration = await setup.verify_google(db, svc.calendar, viewer)
        report = await org_sync.sync_integration(db, svc.calendar, integration)
        assert report.rows_written == 2, "each covered person's event must be busy"
    await _assert_no_canary(svc, admin_id, f"root@{tag}.vendor.example", people, sqlite_url, caplog)


async def _assert_no_canary(
    svc: AppServices,
    admin_id: uuid.UUID,
    admin_email: str,
    people: list[uuid.UUID],
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> str:
    """Busy through the API for both people, and the sentinel nowhere: API, pages, every
    table, the raw database files and the logs. Returns all that text, for more checks."""
    seen: list[str] = []
    api = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services=svc)), base_url="http://testserver"
    )
    token = await token_for(svc, admin_id)
    seen.append(
        str(
            await gql(
                api,
                """query A($ids: [ID!]!, $start: DateTime!, $end: DateTime!) {
              availability(input: {participantIds: $ids, start: $start, end: $end,
                durationMinutes: 30}) { busy { userId start end kind } } }""",
                {
                    "ids": [str(p) for p in people],
                    "start": _at(2, 0).isoformat(),
                    "end": _at(3, 0).isoformat(),
                },
                token=token,
            )
        )
    )
    seen.append(
        str(
            await gql(
                api, "{ organization { integrations { uncovered { reason } } } }", token=token
            )
        )
    )
    await login(api, admin_email)
    seen.append((await api.get("/admin/integrations")).text)
    await api.aclose()
    assert seen[0].count("'kind'") == 2, "both covered people are busy through the API"
    async with svc.db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            seen.append(repr((await conn.execute(table.select())).all()))
    db_path = Path(sqlite_url.split("///", 1)[1])
    raw = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    everything = "\n".join(seen) + "\n".join(r.getMessage() for r in caplog.records)
    assert SENTINEL not in everything
    assert SENTINEL.lower() not in everything.lower()
    assert SENTINEL.encode() not in raw
    return everything


@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
async def test_event_details_never_leave_the_exchange_on_premises_path(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The same promise through Exchange on-premises: the EWS emulator's mailboxes carry
    subjects and locations (a ``Detailed`` view would return them), and the service
    mailbox holds someone else's meeting whose subject must not come back either."""
    from emulators.ews import MailboxEvent, start_ews_emulator
    from server.services.integrations import onprem
    from server.services.integrations import sync as org_sync

    caplog.set_level(logging.DEBUG)
    ews = start_ews_emulator(tmp_path)
    svc = build_services(make_settings(tmp_path, sqlite_url, ews_ca_bundle=ews.ca_path))
    try:
        domain = "contoso.example"
        for name in ("ann", "bob"):
            ews.state.add_mailbox(
                f"{name}@{domain}",
                MailboxEvent(
                    _at(2, 10), _at(2, 11), subject=f"{SENTINEL} subject", location=SENTINEL
                ),
            )
        ews.state.seed_item("not-ours-1", f"{SENTINEL} seeded", _at(3, 9), _at(3, 10), SENTINEL)
        admin_id = await create_user(svc, "root@vendor.example", global_admin=True)
        operator_id = await create_user(svc, "op@vendor.example", operator=True)
        await create_user(svc, ews.state.service_account, name="Tandem", global_admin=True)
        people = [await create_user(svc, f"{n}@{domain}", name=n.title()) for n in ("ann", "bob")]
        async with svc.db.session() as db:
            admin = await accounts.get_user(db, admin_id)
            operator = await accounts.get_user(db, operator_id)
            program = await programs.create_program(db, admin, "Canary on-premises")
            for person in people:
                await programs.add_member(db, admin, program.id, person, ProgramRole.PARTICIPANT)
            org = await programs.organization(db)
            org.org_calendars_enabled = True
            db.add(org)
            await db.commit()
            config = ews.config()
            integration = await onprem.configure(
                db,
                svc.calendar,
                operator,
                ews_url=config["ews_url"],
                username=config["username"],
                password=config["password"],
                auth_type="basic",
                service_account_email=config["service_account_email"],
            )
            report = await org_sync.sync_integration(db, svc.calendar, integration)
            assert report.rows_written == 2, "each covered person's event must be busy"
        assert SENTINEL not in "\n".join(r.body for r in ews.state.received)

        everything = await _assert_no_canary(
            svc, admin_id, "root@vendor.example", people, sqlite_url, caplog
        )
        assert ews.state.password not in everything
    finally:
        await close_services(svc)
        ews.stop()
