"""Google Workspace organization-wide calendars end to end against the Google emulator, on
SQLite and PostgreSQL: the key upload and the delegation to paste, Verify refused until
the domain's admin grants the delegation, automatic coverage replacing a personal Google
connection, batched freeBusy (calls counted), per-calendar errors marking only those
people, booking in the acting account's calendar, disabling, and refused verifies."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from emulators.google import EMULATOR_CLIENT_ID, RunningGoogle, seed_workspace
from emulators.google_workspace import ServiceAccount
from server.models import (
    BusyBlock,
    CalendarConnection,
    OrganizationIntegration,
    ProgramMembership,
    User,
)
from server.models.base import utcnow
from server.models.enums import CalendarStatus, IntegrationKind, ProgramRole
from server.providers.google_service_account import DELEGATION_SCOPE_LIST, DELEGATION_SCOPES
from server.providers.org_base import UncoveredReason
from server.services.calendars import coverage
from server.services.errors import PermissionDenied, ValidationFailed
from server.services.integrations import cover, setup, sync
from server.services.invites.mailer import MemoryMailer
from server.services.people import accounts, programs
from server.services.people.sessions import Viewer
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import provider_overrides
from tests.conftest import create_user, make_settings, use_mailer
from tests.meetings_support import make_world, viewer_of, weekday_slot
from tests.services.calendars.test_sync import connect_google
from tests.services.integrations.support import book_for_covered_owner, disable_and_check_gone

COVERED = 120  # mentor + program admin + 118 participants, all in the domain
FREE_BUSY = "/calendar/v3/freeBusy"


@dataclass
class Org:
    services: AppServices
    google: RunningGoogle
    account: ServiceAccount
    mailer: MemoryMailer
    domain: str
    act_as: str
    admin: uuid.UUID
    operator: uuid.UUID
    mentor: uuid.UUID
    mentee: uuid.UUID
    program_admin: uuid.UUID
    people: list[uuid.UUID]


@pytest.fixture
async def org(tmp_path: Path, database_url: str, google: RunningGoogle) -> AsyncIterator[Org]:
    services = build_services(make_settings(tmp_path, database_url, **provider_overrides(google)))
    mailer = MemoryMailer()
    use_mailer(services, mailer)
    tag = uuid.uuid4().hex[:6]
    domain = f"gw{tag}.example"
    locals_ = ["mentor", "padmin", *(f"p{i}" for i in range(COVERED - 2))]
    account = seed_workspace(google.state, domain, locals_, act_as="tandem")
    world = await make_world(services, two_way_sync=True, mentor_email=f"mentor@{domain}", tag=tag)
    program_admin = await create_user(services, f"padmin@{domain}", name="Pat Program", password="")
    async with services.db.session() as db:
        actor = await accounts.get_user(db, world.admin)
        await programs.add_member(db, actor, world.program, program_admin, ProgramRole.ADMIN)
        # The many participants in bulk (as an import would), to keep the fixture quick.
        people = [uuid.uuid4() for _ in range(COVERED - 2)]
        await db.exec(
            insert(User),
            params=[
                {"id": uid, "email": f"p{i}@{domain}", "name": f"Person {i:03d}"}
                for i, uid in enumerate(people)
            ],
        )
        await db.exec(
            insert(ProgramMembership),
            params=[
                {
                    "id": uuid.uuid4(),
                    "program_id": world.program,
                    "user_id": uid,
                    "role": ProgramRole.PARTICIPANT,
                }
                for uid in people
            ],
        )
        await db.commit()
    operator = await create_user(services, f"op-{tag}@vendor.example", operator=True, password="")
    yield Org(
        services,
        google,
        account,
        mailer,
        domain,
        f"tandem@{domain}",
        world.admin,
        operator,
        world.mentor,
        world.mentee,
        program_admin,
        people,
    )
    await close_services(services)


async def _viewer(org: Org, user_id: uuid.UUID) -> Viewer:
    viewer = await viewer_of(org.services, user_id)
    return Viewer(user=viewer.user, actor=viewer.user, session_id=uuid.uuid4())


async def _switch_on(org: Org) -> None:
    async with org.services.db.session() as db:
        await setup.set_switch(db, org.services.calendar, await _viewer(org, org.operator), True)


async def _upload(org: Org, viewer: Viewer) -> setup.GoogleDelegation:
    async with org.services.db.session() as db:
        return await setup.start_google(
            db,
            org.services.calendar,
            viewer,
            key_text=json.dumps(org.account.key_json()),
            domain=org.domain,
            act_as=org.act_as,
        )


async def _verify(org: Org, viewer: Viewer) -> OrganizationIntegration:
    async with org.services.db.session() as db:
        return await setup.verify_google(db, org.services.calendar, viewer)


async def _integrate(org: Org) -> OrganizationIntegration:
    await _switch_on(org)
    admin = await _viewer(org, org.admin)
    await _upload(org, admin)
    org.google.state.grant_delegation(org.domain, org.account.client_id, DELEGATION_SCOPE_LIST)
    return await _verify(org, admin)


async def _connections(org: Org, integration_id: uuid.UUID) -> dict[uuid.UUID, CalendarConnection]:
    async with org.services.db.session() as db:
        rows = await db.exec(
            select(CalendarConnection).where(CalendarConnection.integration_id == integration_id)
        )
        return {c.user_id: c for c in rows.all()}


async def test_verify_needs_the_delegation_then_integrates(org: Org) -> None:
    await _switch_on(org)
    admin = await _viewer(org, org.admin)
    delegation = await _upload(org, admin)
    # Exactly what the Admin console asks for: the numeric client id and the scopes.
    assert delegation.client_id == org.account.client_id
    assert delegation.scopes == DELEGATION_SCOPES
    with pytest.raises(setup.IntegrationRefused) as refused:
        await _verify(org, admin)
    message = refused.value.message
    assert "Domain-wide delegation" in message and "add Client ID" in message
    assert org.account.client_id in message and DELEGATION_SCOPES in message
    async with org.services.db.session() as db:
        pending = await setup.get(db, IntegrationKind.GOOGLE_WORKSPACE)
        assert pending is not None and not pending.enabled and pending.status == "pending"
        assert "add Client ID" in (pending.last_error or "")
        linked = select(CalendarConnection).where(CalendarConnection.integration_id == pending.id)
        assert (await db.exec(linked)).first() is None
    org.google.state.grant_delegation(org.domain, org.account.client_id, DELEGATION_SCOPE_LIST)
    integration = await _verify(org, admin)
    assert integration.enabled and integration.status == "active"
    assert integration.service_account == org.act_as  # meetings come from this account
    assert integration.tenant == org.domain and integration.last_error is None
    assert integration.exchange_slot is None  # Google never takes the Exchange slot
    # The key is stored encrypted: no part of it is readable in the row.
    async with org.services.db.session() as db:
        dump = await _dump(db)
    assert "PRIVATE KEY" not in dump and org.account.client_email not in dump


async def test_integrate_cover_sync_book_disable(org: Org) -> None:
    services, state = org.services, org.google.state
    personal = org.people[0]
    await connect_google(services, personal, f"p0@{org.domain}")
    assert any(g.client_id == EMULATOR_CLIENT_ID for g in state.grants.values())
    soon = weekday_slot(days=2, hour=9)
    state.add_event(
        f"p1@{org.domain}",
        {
            "summary": "Private",
            "start": {"dateTime": soon.isoformat()},
            "end": {"dateTime": (soon + timedelta(hours=1)).isoformat()},
        },
    )
    state.deny_free_busy(f"p2@{org.domain}")
    integration = await _integrate(org)

    connections = await _connections(org, integration.id)
    assert set(connections) == {*org.people, org.mentor, org.program_admin}
    assert org.mentee not in connections and org.admin not in connections
    # One calendar for the person who had connected Google personally: the organization's.
    assert connections[personal].replaced_provider == "google"
    assert connections[personal].encrypted_secret is None
    assert not any(
        g.client_id == EMULATOR_CLIENT_ID and g.email == f"p0@{org.domain}"
        for g in state.grants.values()
    )
    # An address the directory does not know (a sign-up after the seed) is read too.
    stranger = await create_user(services, f"gone@{org.domain}", name="Gone", password="")
    async with services.db.session() as db:
        await cover.reconcile_user(db, services.calendar, stranger)

    before = len(state.requests_to(FREE_BUSY, "POST"))
    async with services.db.session() as db:
        fresh = await db.get(OrganizationIntegration, integration.id)
        assert fresh is not None
        report = await sync.sync_integration(db, services.calendar, fresh)
    calls = len(state.requests_to(FREE_BUSY, "POST")) - before
    days = services.calendar.horizon_days + 1  # the horizon plus a day looking back
    chunks = math.ceil(days / 60)
    assert report.people == COVERED + 1
    assert calls == report.calls == math.ceil((COVERED + 1) / 50) * chunks
    assert report.complete and report.problems == 2  # the denied and the unknown address

    async with services.db.session() as db:
        blocks = (await db.exec(select(BusyBlock).where(BusyBlock.user_id == org.people[1]))).all()
        assert [(b.start_at, b.end_at) for b in blocks] == [(soon, soon + timedelta(hours=1))]
        rows = {
            c.user_id: c
            for c in (
                await db.exec(
                    select(CalendarConnection).where(
                        CalendarConnection.integration_id == integration.id
                    )
                )
            ).all()
        }
        assert rows[org.people[2]].uncovered_reason == UncoveredReason.ACCESS_DENIED.value
        assert rows[org.people[2]].status == CalendarStatus.ERROR
        assert rows[stranger].uncovered_reason == UncoveredReason.NO_MAILBOX.value
        fine = [c for uid, c in rows.items() if uid not in (org.people[2], stranger)]
        assert len(fine) == COVERED - 1
        assert all(
            c.status == CalendarStatus.CONNECTED and c.uncovered_reason is None for c in fine
        )
        fresh = await db.get(OrganizationIntegration, integration.id)
        assert fresh is not None
        coverage = await cover.report(db, fresh)
        assert coverage.covered_count == COVERED - 1
        reasons = {u.user.id: u.reason for u in coverage.uncovered}
        assert reasons[org.people[2]] == UncoveredReason.ACCESS_DENIED
        assert reasons[org.mentee] == UncoveredReason.NOT_IN_DOMAIN
        assert "Private" not in await _dump(db)

    # A meeting for a covered owner is inserted in the acting account's calendar.
    org.mailer.sent.clear()
    row = await book_for_covered_owner(services, org.mentor)
    created = state.events[org.act_as][str(row.provider_event_id)].data
    invited = {a["email"] for a in created["attendees"]}
    assert f"mentor@{org.domain}" in invited and len(invited) == 2
    assert created["iCalUID"] == row.ical_uid
    inserts = state.requests_to("/calendars/primary/events", "POST")
    assert inserts[-1].send_updates == "all"
    # Google sends the invitations: Tandem mails no invitation of its own.
    assert not [
        m
        for m in org.mailer.sent
        if any(part.get_content_type() == "application/ics" for part in m.walk())
    ]

    async with services.db.session() as db:
        actions = await disable_and_check_gone(
            db,
            services,
            await _viewer(org, org.admin),
            IntegrationKind.GOOGLE_WORKSPACE,
            integration.id,
            org.people[1],
        )
        assert "integration.enabled" in actions and "integration.disabled" in actions
        assert "PRIVATE KEY" not in await _dump(db)


async def test_revoked_delegation_needs_attention(org: Org) -> None:
    integration = await _integrate(org)
    org.google.state.revoke_delegation(org.domain, org.account.client_id)
    async with org.services.db.session() as db:
        fresh = await db.get(OrganizationIntegration, integration.id)
        assert fresh is not None
        report = await sync.sync_integration(db, org.services.calendar, fresh)
        assert not report.complete and fresh.status == "attention"
        assert "Integrate again" in (fresh.last_error or "")


async def test_refused_and_replayed_verifies_change_nothing(org: Org) -> None:
    await _switch_on(org)
    admin = await _viewer(org, org.admin)
    # Only a global administrator, as themselves, uploads a key or verifies.
    for someone in (org.program_admin, org.mentee):
        with pytest.raises(PermissionDenied):
            await _upload(org, await _viewer(org, someone))
    await _upload(org, admin)
    org.google.state.grant_delegation(org.domain, org.account.client_id, DELEGATION_SCOPE_LIST)
    for someone in (org.program_admin, org.mentor):
        with pytest.raises(PermissionDenied):
            await _verify(org, await _viewer(org, someone))
    mentee = (await _viewer(org, org.mentee)).user
    with pytest.raises(PermissionDenied):
        await _verify(org, Viewer(user=mentee, actor=admin.user, session_id=admin.session_id))
    async with org.services.db.session() as db:
        row = await setup.get(db, IntegrationKind.GOOGLE_WORKSPACE)
        assert row is not None and not row.enabled
    await _verify(org, admin)
    async with org.services.db.session() as db:
        await setup.disable(db, org.services.calendar, admin, IntegrationKind.GOOGLE_WORKSPACE)
    # A verify replayed after the disable finds no key and turns nothing back on.
    with pytest.raises(ValidationFailed, match="Upload the service account key first"):
        await _verify(org, admin)
    async with org.services.db.session() as db:
        assert await setup.get(db, IntegrationKind.GOOGLE_WORKSPACE) is None


async def test_a_bad_key_or_act_as_is_refused_and_changes_nothing(org: Org) -> None:
    await _switch_on(org)
    admin = await _viewer(org, org.admin)
    async with org.services.db.session() as db:
        with pytest.raises(ValidationFailed, match="not a Google service account key"):
            await setup.start_google(
                db,
                org.services.calendar,
                admin,
                key_text=json.dumps({"type": "authorized_user"}),
                domain=org.domain,
                act_as=org.act_as,
            )
        with pytest.raises(ValidationFailed, match="must be in"):
            await setup.start_google(
                db,
                org.services.calendar,
                admin,
                key_text=json.dumps(org.account.key_json()),
                domain=org.domain,
                act_as="someone@elsewhere.example",
            )
        assert await setup.get(db, IntegrationKind.GOOGLE_WORKSPACE) is None


async def _dump(db: AsyncSession) -> str:
    parts = []
    for table in ("busy_block", "calendar_connection", "organization_integration", "audit_event"):
        rows = (await db.exec(text(f"SELECT * FROM {table}"))).all()  # noqa: S608
        parts.append(repr(rows))
    return "\n".join(parts)


async def test_far_away_windows_are_read_through_the_directory(org: Org) -> None:
    services, state = org.services, org.google.state
    integration = await _integrate(org)
    async with services.db.session() as db:
        fresh = await db.get(OrganizationIntegration, integration.id)
        assert fresh is not None
        assert (await sync.sync_integration(db, services.calendar, fresh)).complete
    far = weekday_slot(days=150, hour=10)
    far_event = state.add_event(
        f"p3@{org.domain}",
        {
            "start": {"dateTime": far.isoformat()},
            "end": {"dateTime": (far + timedelta(hours=1)).isoformat()},
        },
    )
    state.deny_free_busy(f"p4@{org.domain}")
    everyone = [*org.people, org.mentor, org.program_admin]
    window = [(far - timedelta(hours=2), far + timedelta(hours=4))]
    before = len(state.requests_to(FREE_BUSY, "POST"))
    async with services.db.session() as db:
        gaps = await coverage.ensure_covered(
            db, services.calendar, everyone, window, budget_seconds=30
        )
    # One range for everyone, read 50 people a call through the integration.
    assert len(state.requests_to(FREE_BUSY, "POST")) - before == math.ceil(COVERED / 50)
    assert set(gaps) == {org.people[4]}  # only the hidden calendar stays unknown
    assert gaps[org.people[4]][0].why == coverage.WHY_FAILED
    far_block = (far, far + timedelta(hours=1))
    async with services.db.session() as db:
        blocks = (await db.exec(select(BusyBlock).where(BusyBlock.user_id == org.people[3]))).all()
        assert far_block in [(b.start_at, b.end_at) for b in blocks]
    # Asking again reads only the person still unknown (one call); a full sync of the
    # horizon keeps the far-away blocks.
    before = len(state.requests_to(FREE_BUSY, "POST"))
    async with services.db.session() as db:
        again = await coverage.ensure_covered(db, services.calendar, everyone, window)
        assert set(again) == {org.people[4]}
        assert len(state.requests_to(FREE_BUSY, "POST")) == before + 1
        fresh = await db.get(OrganizationIntegration, integration.id)
        assert fresh is not None
        await sync.sync_integration(db, services.calendar, fresh)
        blocks = (await db.exec(select(BusyBlock).where(BusyBlock.user_id == org.people[3]))).all()
        assert far_block in [(b.start_at, b.end_at) for b in blocks]
    # Ranges still in use are refreshed through the directory too, in the same batches.
    with state.lock:
        del state.events[f"p3@{org.domain}"][far_event]
    before = len(state.requests_to(FREE_BUSY, "POST"))
    async with services.db.session() as db:
        refreshed = await coverage.refresh_in_use(
            db, services.calendar, timedelta(0), now=utcnow() + timedelta(seconds=1), limit=500
        )
        assert refreshed == COVERED - 1  # everyone but the hidden calendar
        assert len(state.requests_to(FREE_BUSY, "POST")) - before == math.ceil(refreshed / 50)
        blocks = (await db.exec(select(BusyBlock).where(BusyBlock.user_id == org.people[3]))).all()
        assert far_block not in [(b.start_at, b.end_at) for b in blocks]
