"""Exchange on-premises end to end against the EWS emulator, on SQLite and PostgreSQL: an
operator configures and verifies it, people in the domain are covered, the batched sync
asks 100 mailboxes per GetUserAvailability, a covered owner's meeting is sent from the
service account, and disabling removes everything; the refusals change nothing and never
show the password; busy time across Berlin's spring-forward reaches the API at the right
instants."""

from __future__ import annotations

import gc
import logging
import math
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from emulators.ews import MailboxEvent, RunningEws, start_ews_emulator
from server.app import create_app
from server.models import (
    BusyBlock,
    CalendarConnection,
    Meeting,
    MeetingAttendee,
    Organization,
    OrganizationIntegration,
    ProgramMembership,
    User,
)
from server.models.enums import AttendeeResponse, IntegrationKind, MeetingStatus, ProgramRole
from server.services.errors import DomainError, PermissionDenied
from server.services.integrations import cover, onprem, setup, sync
from server.services.integrations.directory import read_config
from server.services.meetings import mailbox_sync
from server.services.people import programs
from server.services.people.sessions import Viewer
from server.wiring import AppServices, build_services, close_services
from tests.conftest import create_user, csrf_from, gql, login, make_settings, new_client
from tests.meetings_support import make_world, viewer_of, weekday_slot
from tests.schema.test_graphql_programs import token_for
from tests.services.integrations.support import book_for_covered_owner, disable_and_check_gone

DOMAIN = "contoso.example"
SERVICE = "tandem@contoso.example"
SENTINEL = "CANARY-ews-subject-5d1c"
BERLIN = ZoneInfo("Europe/Berlin")
HORIZON_DAYS = 40  # with the day looking back, one 42-day GetUserAvailability window
CONFIGURE = """mutation C($url: String!, $user: String!, $pw: String, $auth: String!,
  $sa: String!) { configureExchangeOnPremises(ewsUrl: $url, username: $user, password: $pw,
  authType: $auth, serviceAccountEmail: $sa) {
    integration { kind status serviceAccount serviceAccountUser { id } domains }
    errors { code field message } } }"""
ORG = "{ organization { integrations { kind status serviceAccount coveredCount } } }"


@dataclass
class World:
    services: AppServices
    ews: RunningEws
    operator: uuid.UUID
    admin: uuid.UUID
    service_user: uuid.UUID
    mentor: uuid.UUID
    mentee: uuid.UUID
    program: uuid.UUID


@pytest.fixture
def ews(tmp_path: Path) -> Iterator[RunningEws]:
    running = start_ews_emulator(tmp_path)
    yield running
    running.stop()


async def _world(tmp_path: Path, url: str, ews: RunningEws, horizon: int) -> World:
    services = build_services(
        make_settings(tmp_path, url, ews_ca_bundle=ews.ca_path, sync_horizon_days=horizon)
    )
    world = await make_world(services, two_way_sync=True, mentor_email=f"mentor@{DOMAIN}")
    ews.state.add_mailbox(f"mentor@{DOMAIN}")
    operator = await create_user(services, "op@vendor.example", operator=True)
    service_user = await create_user(
        services, SERVICE, name="Mentoring Program Tandem", global_admin=True
    )
    async with services.db.session() as db:
        organization = (await db.exec(select(Organization))).one()
        organization.org_calendars_enabled = True
        db.add(organization)
        await db.commit()
    return World(
        services,
        ews,
        operator,
        world.admin,
        service_user,
        world.mentor,
        world.mentee,
        world.program,
    )


@pytest.fixture
async def world(tmp_path: Path, database_url: str, ews: RunningEws) -> AsyncIterator[World]:
    built = await _world(tmp_path, database_url, ews, HORIZON_DAYS)
    yield built
    await close_services(built.services)


async def _as(world: World, user_id: uuid.UUID) -> Viewer:
    found = await viewer_of(world.services, user_id)
    return Viewer(user=found.user, actor=found.user)


async def _configure(world: World, who: uuid.UUID, **overrides: str) -> OrganizationIntegration:
    values: dict[str, str] = {**world.ews.config(), "auth_type": "basic"}
    values.update(overrides)
    async with world.services.db.session() as db:
        return await onprem.configure(
            db,
            world.services.calendar,
            await _as(world, who),
            ews_url=values["ews_url"],
            username=values["username"],
            password=values["password"],
            auth_type=values["auth_type"],
            service_account_email=values["service_account_email"],
        )


def _availability_calls(ews: RunningEws) -> int:
    return sum(1 for r in ews.state.received if r.operation == "GetUserAvailabilityRequest")


async def test_configure_cover_sync_book_disable(world: World) -> None:
    services, state = world.services, world.ews.state
    people = [f"p{i:03d}@{DOMAIN}" for i in range(248)]
    async with services.db.session() as db:
        for index, email in enumerate(people):
            db.add(User(email=email, name=f"Person {index:03d}", time_zone="Europe/Berlin"))
        await db.flush()
        for user in (await db.exec(select(User).where(col(User.email).in_(people)))).all():
            db.add(
                ProgramMembership(
                    program_id=world.program, user_id=user.id, role=ProgramRole.PARTICIPANT
                )
            )
        await db.commit()
    soon = weekday_slot(days=2, hour=9)
    for email in people:
        state.add_mailbox(email)
    state.add_mailbox(
        people[1],
        MailboxEvent(soon, soon + timedelta(hours=1), subject=SENTINEL, location=SENTINEL),
    )

    integration = await _configure(world, world.operator)
    assert integration.enabled and integration.status == "active"
    assert integration.exchange_slot == "exchange"
    assert integration.service_account == SERVICE
    assert integration.service_user_id == world.service_user
    assert integration.domain_list == [DOMAIN]
    assert b"battery" not in (integration.encrypted_config or b"")

    async with services.db.session() as db:
        fresh = await db.get(OrganizationIntegration, integration.id)
        assert fresh is not None
        coverage = await cover.report(db, fresh)
        # 248 people and the mentor take part; the service account's own Tandem account is
        # covered too: 250 mailboxes.
        assert (coverage.covered_count, coverage.participant_count) == (249, 251)
        connections = (
            await db.exec(
                select(CalendarConnection).where(
                    CalendarConnection.integration_id == integration.id
                )
            )
        ).all()
        assert len(connections) == 250
        before = _availability_calls(world.ews)
        report = await sync.sync_integration(db, services.calendar, fresh)
    calls = _availability_calls(world.ews) - before
    assert calls == 3 == report.calls == math.ceil(250 / 100)
    assert report.complete and report.problems == 0
    async with services.db.session() as db:
        person = (await db.exec(select(User).where(User.email == people[1]))).one()
        blocks = (await db.exec(select(BusyBlock).where(BusyBlock.user_id == person.id))).all()
        assert [(b.start_at, b.end_at) for b in blocks] == [(soon, soon + timedelta(hours=1))]
        dump = ""
        for table in (
            "busy_block",
            "calendar_connection",
            "organization_integration",
            "audit_event",
        ):
            dump += repr((await db.exec(text(f"SELECT * FROM {table}"))).all())  # noqa: S608
        assert SENTINEL not in dump and state.password not in dump

    # A covered owner's meeting is created in the service mailbox; Exchange sends the
    # invitations from it.
    row = await book_for_covered_owner(services, world.mentor)
    item = state.items[str(row.provider_event_id)]
    assert item.uid == row.ical_uid
    invited = {m.to for m in state.outbox if m.uid == row.ical_uid and m.kind == "invitation"}
    mentee_email = (await viewer_of(services, world.mentee)).user.email
    assert invited == {f"mentor@{DOMAIN}", mentee_email}
    assert SERVICE not in invited

    # The mentee's answer in Exchange flows back from the service mailbox, once.
    from server.jobs.runner import JOBS, pull_mailbox_changes

    assert pull_mailbox_changes in JOBS
    await pull_mailbox_changes(services)
    assert "SyncFolderItems" in state.operations()
    state.respond(item.item_id, mentee_email, "Accept")
    async with services.db.session() as db:
        assert await mailbox_sync.sync_mailbox_changes(db, services.meetings) == 1
        assert await mailbox_sync.sync_mailbox_changes(db, services.meetings) == 0
        answer = (
            await db.exec(
                select(MeetingAttendee).where(
                    MeetingAttendee.meeting_id == row.id, MeetingAttendee.user_id == world.mentee
                )
            )
        ).one()
        assert answer.response == AttendeeResponse.ACCEPTED
        stored = await db.get(OrganizationIntegration, integration.id)
        assert stored is not None and stored.changes_sync_state
    # Moving it in the service mailbox moves it in Tandem (and asks everyone again).
    moved_to = row.start_at + timedelta(hours=2)
    item.start, item.end = moved_to, moved_to + timedelta(minutes=30)
    state.touch(item.item_id)
    async with services.db.session() as db:
        assert await mailbox_sync.sync_mailbox_changes(db, services.meetings) == 1
        moved = await db.get(Meeting, row.id, populate_existing=True)
        assert moved is not None and (moved.start_at, moved.sequence) == (
            moved_to,
            row.sequence + 1,
        )
        asked = await db.get(MeetingAttendee, answer.id, populate_existing=True)
        assert asked is not None and asked.response == AttendeeResponse.NEEDS_ACTION
    # Deleting the meeting in the service mailbox cancels it in Tandem.
    del state.items[item.item_id]
    state.touch(item.item_id)
    async with services.db.session() as db:
        assert await mailbox_sync.sync_mailbox_changes(db, services.meetings) == 1
        cancelled = await db.get(Meeting, row.id, populate_existing=True)
        assert cancelled is not None and cancelled.status == MeetingStatus.CANCELLED

    async with services.db.session() as db:
        actions = await disable_and_check_gone(
            db,
            services,
            await _as(world, world.operator),
            IntegrationKind.EXCHANGE_ONPREM,
            integration.id,
            person.id,
        )
        assert {"integration.configured", "integration.enabled", "integration.disabled"} <= actions


async def test_refusals_change_nothing_and_never_show_the_password(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = f"wrong-{uuid.uuid4().hex}"
    # A global administrator is not an operator: the admin guide says "contact support".
    with pytest.raises(PermissionDenied, match="contact the support team"):
        await _configure(world, world.admin)
    # The wrong password: refused in plain words, nothing enabled or stored.
    with pytest.raises(DomainError) as refused:
        await _configure(world, world.operator, password=wrong)
    assert str(refused.value.message) == onprem.CREDENTIALS_REFUSED
    assert getattr(refused.value, "field", None) == "password"
    assert wrong not in refused.value.message
    # The service account must be a Tandem global administrator.
    async with world.services.db.session() as db:
        service_user = await db.get(User, world.service_user)
        assert service_user is not None
        service_user.is_global_admin = False
        db.add(service_user)
        await db.commit()
    with pytest.raises(DomainError, match="is not a global administrator"):
        await _configure(world, world.operator)
    with pytest.raises(DomainError, match="No Tandem account has the address"):
        await _configure(world, world.operator, service_account_email=f"other@{DOMAIN}")
    # Bad input names the field.
    with pytest.raises(DomainError, match="https://") as bad:
        await _configure(world, world.operator, ews_url="http://mail.contoso.example/EWS")
    assert getattr(bad.value, "field", None) == "ews_url"
    with pytest.raises(DomainError, match="must be an email address"):
        await _configure(world, world.operator, service_account_email="tandem-svc")
    with pytest.raises(DomainError, match="is not a domain name"):
        async with world.services.db.session() as db:
            await onprem.configure(
                db,
                world.services.calendar,
                await _as(world, world.operator),
                **{**world.ews.config(), "auth_type": "basic"},
                domains="not a domain",
            )
    with pytest.raises(DomainError, match="NTLM, basic or digest"):
        await _configure(world, world.operator, auth_type="kerberos")
    async with world.services.db.session() as db:
        assert await setup.get(db, IntegrationKind.EXCHANGE_ONPREM) is None
        audit = repr((await db.exec(text("SELECT * FROM audit_event"))).all())
    assert wrong not in audit and wrong not in caplog.text

    # Exchange Online on: on-premises is refused with the reason.
    async with world.services.db.session() as db:
        organization = await programs.organization(db)
        db.add(
            OrganizationIntegration(
                organization_id=organization.id,
                kind=IntegrationKind.EXCHANGE_ONLINE,
                enabled=True,
                exchange_slot="exchange",
                status="active",
            )
        )
        service_user = await db.get(User, world.service_user)
        assert service_user is not None
        service_user.is_global_admin = True
        db.add(service_user)
        await db.commit()
    with pytest.raises(setup.IntegrationRefused, match="cannot be on together"):
        await _configure(world, world.operator)
    async with world.services.db.session() as db:
        assert await setup.get(db, IntegrationKind.EXCHANGE_ONPREM) is None


# requests_ntlm leaves a refused handshake's socket to the garbage collector (see
# tests/providers/test_exchange_onprem.py): collect it so it does not hold the emulator's
# shutdown.
@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
async def test_the_page_and_the_api(world: World) -> None:
    services = world.services
    app = create_app(services=services)
    admin = await new_client(app)
    await login(admin, (await viewer_of(services, world.admin)).user.email)
    page = await admin.get("/admin/integrations")
    assert page.status_code == 200
    assert "To configure Exchange on-premises, contact the support team." in page.text
    assert 'id="onprem-form"' not in page.text

    operator = await new_client(app)
    await login(operator, "op@vendor.example")
    page = await operator.get("/admin/integrations")
    assert 'id="onprem-form"' in page.text
    wrong = f"wrong-{uuid.uuid4().hex}"
    form = {**world.ews.config(), "password": wrong, "csrf_token": csrf_from(page.text)}
    refused = await operator.post("/admin/integrations/exchange_onprem/configure", data=form)
    assert refused.status_code == 422
    assert "Exchange refused the service account&#39;s user name or password" in refused.text
    assert wrong not in refused.text
    assert world.ews.config()["ews_url"] in refused.text  # what was entered stays

    form["password"] = world.ews.state.password
    done = await operator.post("/admin/integrations/exchange_onprem/configure", data=form)
    assert done.status_code == 303
    page = await operator.get(done.headers["location"])
    assert "The Exchange on-premises integration is on." in page.text
    assert (
        "Service account: Mentoring Program Tandem &lt;tandem@contoso.example&gt; "
        "(Tandem global administrator)" in page.text
    )
    assert 'id="onprem-password-stored"' in page.text
    assert world.ews.state.password not in page.text
    # Saving again with the password left empty keeps the stored one.
    form["password"] = ""
    again = await operator.post("/admin/integrations/exchange_onprem/configure", data=form)
    assert again.status_code == 303, again.text

    token = await token_for(services, world.operator)
    data = await gql(
        admin,
        CONFIGURE,
        {
            "url": world.ews.ews_url,
            "user": world.ews.state.username,
            "pw": wrong,
            "auth": "ntlm",
            "sa": SERVICE,
        },
        token=token,
    )
    payload = data["data"]["configureExchangeOnPremises"]
    assert payload["integration"] is None
    assert payload["errors"][0]["message"] == onprem.CREDENTIALS_REFUSED
    assert payload["errors"][0]["field"] == "password"
    data = await gql(
        admin,
        CONFIGURE,
        {
            "url": world.ews.ews_url,
            "user": world.ews.state.username,
            "pw": None,
            "auth": "basic",
            "sa": SERVICE,
        },
        token=token,
    )
    found = data["data"]["configureExchangeOnPremises"]["integration"]
    assert found["kind"] == "EXCHANGE_ONPREM" and found["status"] == "ACTIVE"
    assert found["serviceAccountUser"]["id"] == str(world.service_user)
    admin_token = await token_for(services, world.admin)
    refused_api = await gql(
        admin,
        CONFIGURE,
        {
            "url": world.ews.ews_url,
            "user": "x",
            "pw": "y",
            "auth": "basic",
            "sa": SERVICE,
        },
        token=admin_token,
    )
    assert refused_api["data"]["configureExchangeOnPremises"]["errors"][0]["code"] == "FORBIDDEN"
    org = await gql(admin, ORG, token=admin_token)
    [listed] = org["data"]["organization"]["integrations"]
    assert listed["kind"] == "EXCHANGE_ONPREM" and listed["serviceAccount"] == SERVICE

    # The operator disables it from the page.
    page = await operator.get("/admin/integrations")
    off = await operator.post(
        "/admin/integrations/exchange_onprem/disable", data={"csrf_token": csrf_from(page.text)}
    )
    assert off.status_code == 303
    page = await operator.get(off.headers["location"])
    assert "The Exchange on-premises integration is off." in page.text
    assert "Service account:" not in page.text
    async with services.db.session() as db:
        assert await setup.get(db, IntegrationKind.EXCHANGE_ONPREM) is None
    gc.collect()


def _next_spring_forward(now: datetime) -> datetime:
    """Berlin's next change to summer time (02:00 on the last Sunday of March)."""
    for year in (now.year, now.year + 1):
        day = datetime(year, 3, 31, tzinfo=BERLIN)
        day -= timedelta(days=(day.weekday() + 1) % 7)
        change = day.replace(hour=3)
        if change.astimezone(UTC) > now + timedelta(days=2):
            return change
    raise AssertionError("unreachable")


async def test_busy_across_berlin_spring_forward_reaches_the_api(
    tmp_path: Path, sqlite_url: str, ews: RunningEws
) -> None:
    now = datetime.now(UTC)
    change = _next_spring_forward(now)
    horizon = (change.astimezone(UTC) - now).days + 3
    world = await _world(tmp_path, sqlite_url, ews, horizon)
    try:
        # 01:30 CET to 04:00 CEST is 1.5 hours; 09:00 the day after is 07:00Z.
        saturday = change - timedelta(days=1)
        events = [
            MailboxEvent(saturday.replace(hour=9), saturday.replace(hour=10), subject=SENTINEL),
            MailboxEvent(change.replace(hour=1, minute=30), change.replace(hour=4)),
            MailboxEvent(
                (change + timedelta(days=1)).replace(hour=9),
                (change + timedelta(days=1)).replace(hour=10),
                "OOF",
            ),
        ]
        ews.state.add_mailbox(f"mentor@{DOMAIN}", *events)
        integration = await _configure(world, world.operator)
        async with world.services.db.session() as db:
            fresh = await db.get(OrganizationIntegration, integration.id)
            assert fresh is not None
            assert (await sync.sync_integration(db, world.services.calendar, fresh)).complete
        client = await new_client(create_app(services=world.services))
        token = await token_for(world.services, world.mentor)
        start = (saturday - timedelta(days=1)).astimezone(UTC)
        query = """query A($input: AvailabilityInput!) { availability(input: $input) {
          busy { userId start end kind } } }"""
        data = await gql(
            client,
            query,
            {
                "input": {
                    "participantIds": [str(world.mentor)],
                    "start": start.isoformat(),
                    "end": (start + timedelta(days=4)).isoformat(),
                    "durationMinutes": 30,
                    "programId": str(world.program),
                }
            },
            token=token,
        )
        busy = [
            (datetime.fromisoformat(b["start"]), datetime.fromisoformat(b["end"]), b["kind"])
            for b in data["data"]["availability"]["busy"]
            if b["userId"] == str(world.mentor)
        ]
        utc = [
            (e.start.astimezone(UTC), e.end.astimezone(UTC), kind)
            for e, kind in zip(events, ["BUSY", "BUSY", "OUT_OF_OFFICE"], strict=True)
        ]
        assert busy == utc
        # The same wall-clock 09:00 is 08:00Z before the change and 07:00Z after it, and
        # the night of the change lasts 1.5 hours, not 2.5.
        assert (busy[0][0].hour, busy[2][0].hour) == (8, 7)
        assert busy[1][1] - busy[1][0] == timedelta(hours=1, minutes=30)
        assert SENTINEL not in repr(data)
    finally:
        await close_services(world.services)


async def test_a_new_password_replaces_the_stored_one(world: World) -> None:
    first = await _configure(world, world.operator)
    assert read_config(world.services.calendar, first)["password"] == world.ews.state.password
    # The customer's IT changes the service account's password: the stored one (kept when
    # the field is left empty) no longer works, and the refusal changes nothing.
    world.ews.state.password = f"rotated-{uuid.uuid4().hex}"
    async with world.services.db.session() as db:
        fresh = await db.get(OrganizationIntegration, first.id)
        assert fresh is not None
        assert not (await sync.sync_integration(db, world.services.calendar, fresh)).complete
        assert fresh.status == "attention"
        assert "An operator must enter them again" in (fresh.last_error or "")
    with pytest.raises(DomainError, match="user name or password"):
        await _configure(world, world.operator, password="")
    async with world.services.db.session() as db:
        kept = await db.get(OrganizationIntegration, first.id)
        assert kept is not None and kept.enabled
        assert read_config(world.services.calendar, kept)["password"] != world.ews.state.password
    again = await _configure(world, world.operator, password=world.ews.state.password)
    assert again.id == first.id and again.status == "active" and again.last_error is None
    assert read_config(world.services.calendar, again)["password"] == world.ews.state.password
