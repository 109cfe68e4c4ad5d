"""Organization-wide calendars end to end against the Microsoft emulator, on SQLite and
PostgreSQL: who may integrate, admin consent (forged and replayed ``state``), automatic
connection, batched sync (calls counted), a policy denial marking only those people,
booking through the service mailbox, and disabling."""

from __future__ import annotations

import math
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import select

from emulators.microsoft import RunningMicrosoft, admin_consent
from server.models import (
    AuditEvent,
    BusyBlock,
    CalendarConnection,
    IntegrationConsent,
    Meeting,
    OrganizationIntegration,
)
from server.models.enums import CalendarStatus, IntegrationKind, ProgramRole, ProviderName
from server.providers.org_base import UncoveredReason
from server.services.errors import DomainError, PermissionDenied
from server.services.integrations import cover, setup, sync
from server.services.meetings import booking
from server.services.people import accounts, programs
from server.services.people.sessions import Viewer
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import provider_overrides
from tests.conftest import create_user, make_settings
from tests.meetings_support import make_world, viewer_of, weekday_slot
from tests.services.integrations.support import book_for_covered_owner, disable_and_check_gone

SENTINEL = "CANARY-org-subject-91ab"
REDIRECT = "http://testserver/admin/integrations/microsoft/callback"


@dataclass
class Org:
    services: AppServices
    ms: RunningMicrosoft
    domain: str
    tenant: str
    admin: uuid.UUID
    operator: uuid.UUID
    mentor: uuid.UUID
    mentee: uuid.UUID
    program_admin: uuid.UUID
    people: list[uuid.UUID]
    service: str


@pytest.fixture
async def org(tmp_path: Path, database_url: str, microsoft: RunningMicrosoft) -> AsyncIterator[Org]:
    services = build_services(
        make_settings(tmp_path, database_url, **provider_overrides(microsoft))
    )
    tag = uuid.uuid4().hex[:6]
    domain = f"org{tag}.example"
    tenant = str(uuid.uuid4())
    state = microsoft.state
    service = f"tandem-mentoring@{domain}"
    state.add_account(f"it@{domain}", tenant_id=tenant)
    state.add_account(service, tenant_id=tenant)
    world = await make_world(services, two_way_sync=True, mentor_email=f"mentor@{domain}", tag=tag)
    state.add_account(f"mentor@{domain}", tenant_id=tenant)
    people = []
    for index in range(23):
        email = f"p{index}@{domain}"
        people.append(await create_user(services, email, name=f"Person {index:02d}", password=""))
        state.add_account(email, tenant_id=tenant)
    async with services.db.session() as db:
        actor = await accounts.get_user(db, world.admin)
        for person in people:
            await programs.add_member(db, actor, world.program, person, ProgramRole.PARTICIPANT)
        await db.commit()
    program_admin = await create_user(services, f"padmin@{domain}", name="Pat Program", password="")
    async with services.db.session() as db:
        actor = await accounts.get_user(db, world.admin)
        await programs.add_member(db, actor, world.program, program_admin, ProgramRole.ADMIN)
        await db.commit()
    state.add_account(f"padmin@{domain}", tenant_id=tenant)
    state.add_tenant([domain], tenant_id=tenant, admin=f"it@{domain}")
    operator = await create_user(services, f"op-{tag}@vendor.example", operator=True, password="")
    yield Org(
        services,
        microsoft,
        domain,
        tenant,
        world.admin,
        operator,
        world.mentor,
        world.mentee,
        program_admin,
        people,
        service,
    )
    await close_services(services)


@pytest.fixture
async def browser(microsoft: RunningMicrosoft) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=str(microsoft.ca_path))
    ) as http:
        yield http


async def _viewer(org: Org, user_id: uuid.UUID, session: uuid.UUID | None = None) -> Viewer:
    viewer = await viewer_of(org.services, user_id)
    return Viewer(user=viewer.user, actor=viewer.user, session_id=session)


async def _switch_on(org: Org) -> None:
    async with org.services.db.session() as db:
        await setup.set_switch(db, org.services.calendar, await _viewer(org, org.operator), True)


async def _start(org: Org, viewer: Viewer) -> str:
    async with org.services.db.session() as db:
        return await setup.start_microsoft(
            db,
            org.services.calendar,
            viewer,
            service_account=org.service,
            tenant=org.domain,
            redirect_uri=REDIRECT,
        )


async def _integrate(org: Org, browser: httpx.AsyncClient) -> OrganizationIntegration:
    await _switch_on(org)
    viewer = await _viewer(org, org.admin)
    reply = await admin_consent(browser, await _start(org, viewer), f"it@{org.domain}")
    async with org.services.db.session() as db:
        return await setup.finish_microsoft(db, org.services.calendar, viewer, reply)


async def test_only_operators_switch_and_only_global_admins_integrate(
    org: Org, browser: httpx.AsyncClient
) -> None:
    admin = await _viewer(org, org.admin)
    with pytest.raises(DomainError, match="operator can turn it on"):
        await _start(org, admin)
    async with org.services.db.session() as db:
        with pytest.raises(PermissionDenied):
            await setup.set_switch(db, org.services.calendar, admin, True)
    await _switch_on(org)
    for someone in (org.program_admin, org.mentee):
        with pytest.raises(PermissionDenied):
            await _start(org, await _viewer(org, someone))
    # A global admin working on behalf of a participant administers nothing in their name.
    admin_user = admin.user
    mentee = (await _viewer(org, org.mentee)).user
    with pytest.raises(PermissionDenied):
        await _start(org, Viewer(user=mentee, actor=admin_user))
    async with org.services.db.session() as db:
        # The refusals changed nothing: no integration was even started.
        assert await setup.get(db, IntegrationKind.EXCHANGE_ONLINE) is None
        audit = (
            await db.exec(
                select(AuditEvent).where(AuditEvent.action == "organization.org_calendars_switched")
            )
        ).all()
        assert [a.details["enabled"] for a in audit] == [True]


async def test_forged_and_replayed_consent_state_are_refused(
    org: Org, browser: httpx.AsyncClient
) -> None:
    await _switch_on(org)
    session = uuid.uuid4()
    viewer = await _viewer(org, org.admin)
    url = await _start(org, viewer)
    reply = await admin_consent(browser, url, f"it@{org.domain}")
    forged = dict(reply, state="forged-" + reply["state"][:10])
    async with org.services.db.session() as db:
        with pytest.raises(setup.IntegrationRefused, match="invalid or has expired"):
            await setup.finish_microsoft(db, org.services.calendar, viewer, forged)
        # Another session of the same admin cannot finish it either (bound to the session).
        other = await _viewer(org, org.admin, session)
        url2 = await _start(org, Viewer(user=other.user, actor=other.user, session_id=None))
    reply2 = await admin_consent(browser, url2, f"it@{org.domain}")
    async with org.services.db.session() as db:
        integration = await setup.finish_microsoft(db, org.services.calendar, viewer, reply2)
        assert integration.status == "active" and integration.tenant == org.tenant
        with pytest.raises(setup.IntegrationRefused, match="invalid or has expired"):
            await setup.finish_microsoft(db, org.services.calendar, viewer, reply2)
        left = (await db.exec(select(IntegrationConsent))).all()
        assert all(row.state_hash != reply2["state"] for row in left)


async def test_integrate_cover_sync_book_disable(org: Org, browser: httpx.AsyncClient) -> None:
    services, state = org.services, org.ms.state
    # A covered person's personal calendar is replaced by the organization's.
    async with services.db.session() as db:
        db.add(
            CalendarConnection(
                user_id=org.people[0],
                provider=ProviderName.ICLOUD,
                status=CalendarStatus.CONNECTED,
                label="iCal",
                account_email="p0@icloud.example",
            )
        )
        await db.commit()
    soon = weekday_slot(days=2, hour=9)
    state.add_event(
        f"p1@{org.domain}",
        subject=SENTINEL,
        location=SENTINEL,
        body=SENTINEL,
        start=soon,
        end=soon + timedelta(hours=1),
    )
    state.deny_app_access(f"p2@{org.domain}")
    integration = await _integrate(org, browser)
    assert integration.enabled and integration.exchange_slot == "exchange"
    assert integration.service_account == org.service

    async with services.db.session() as db:
        connections = {
            c.user_id: c
            for c in (
                await db.exec(
                    select(CalendarConnection).where(
                        CalendarConnection.integration_id == integration.id
                    )
                )
            ).all()
        }
    # mentor + 23 people + program admin are in the domain; the mentee and admin are not.
    assert set(org.people) | {org.mentor, org.program_admin} <= set(connections)
    assert org.mentee not in connections
    assert connections[org.people[0]].replaced_provider == "icloud"
    assert connections[org.people[0]].encrypted_secret is None

    before = len(state.requests_to(f"/users/{org.service}/calendar/getSchedule"))
    async with services.db.session() as db:
        fresh = await db.get(OrganizationIntegration, integration.id)
        assert fresh is not None
        report = await sync.sync_integration(db, services.calendar, fresh)
    calls = len(state.requests_to(f"/users/{org.service}/calendar/getSchedule")) - before
    covered = len(connections)
    days = services.calendar.horizon_days + 1  # the horizon plus a day looking back
    expected = math.ceil(covered / 20) * math.ceil(days / 61)
    assert calls == expected == report.calls
    assert report.complete and report.problems == 1

    async with services.db.session() as db:
        blocks = (await db.exec(select(BusyBlock).where(BusyBlock.user_id == org.people[1]))).all()
        assert [(b.start_at, b.end_at) for b in blocks] == [(soon, soon + timedelta(hours=1))]
        denied = (
            await db.exec(
                select(CalendarConnection).where(CalendarConnection.user_id == org.people[2])
            )
        ).one()
        assert denied.uncovered_reason == UncoveredReason.ACCESS_DENIED.value
        assert denied.status == CalendarStatus.ERROR
        others = (
            await db.exec(
                select(CalendarConnection).where(
                    CalendarConnection.integration_id == integration.id,
                    CalendarConnection.user_id != org.people[2],
                )
            )
        ).all()
        assert all(
            c.status == CalendarStatus.CONNECTED and c.uncovered_reason is None for c in others
        )
        fresh = await db.get(OrganizationIntegration, integration.id)
        assert fresh is not None
        coverage = await cover.report(db, fresh)
        assert coverage.covered_count == covered - 1
        assert coverage.participant_count == covered + 2  # plus the mentee and the admin
        reasons = {u.user.id: u.reason for u in coverage.uncovered}
        assert reasons[org.people[2]] == UncoveredReason.ACCESS_DENIED
        assert reasons[org.mentee] == UncoveredReason.NOT_IN_DOMAIN
        # The emulator's subjects, locations and bodies never reached the database.
        dump = await _dump(db)
        assert SENTINEL not in dump

    # A meeting booked for a covered owner is created in the service mailbox with everyone.
    row = await book_for_covered_owner(services, org.mentor)
    created = state.account(org.service).events[str(row.provider_event_id)]
    invited = {a["emailAddress"]["address"] for a in created.attendees}
    assert f"mentor@{org.domain}" in invited and len(invited) == 2
    assert created.transaction_id == row.ical_uid
    # Cancelling removes it from the service mailbox (Graph tells the attendees).
    async with services.db.session() as db:
        mentor = await viewer_of(services, org.mentor)
        await booking.cancel_meeting(db, services.meetings, mentor, row.id)
        cancelled = await db.get(Meeting, row.id, populate_existing=True)
        assert cancelled is not None and cancelled.calendar_sync_state == "synced"
    assert state.account(org.service).events[str(row.provider_event_id)].deleted

    # Disabling: connections, blocks and configuration go, audited; people not connected.
    async with services.db.session() as db:
        actions = await disable_and_check_gone(
            db,
            services,
            await _viewer(org, org.admin),
            IntegrationKind.EXCHANGE_ONLINE,
            integration.id,
            org.people[1],
        )
        assert {"integration.enabled", "integration.disabled"} <= actions


async def test_the_operator_switch_off_disables_integrations(
    org: Org, browser: httpx.AsyncClient
) -> None:
    integration = await _integrate(org, browser)
    async with org.services.db.session() as db:
        await setup.set_switch(db, org.services.calendar, await _viewer(org, org.operator), False)
        assert await db.get(OrganizationIntegration, integration.id) is None
        assert (
            await db.exec(
                select(CalendarConnection).where(
                    CalendarConnection.integration_id == integration.id
                )
            )
        ).first() is None


async def test_throttled_batches_back_off_and_keep_going(
    org: Org, browser: httpx.AsyncClient
) -> None:
    integration = await _integrate(org, browser)
    org.ms.state.fail_next(
        f"/users/{org.service}/calendar/getSchedule", 429, headers={"Retry-After": "0"}, times=3
    )
    async with org.services.db.session() as db:
        fresh = await db.get(OrganizationIntegration, integration.id)
        assert fresh is not None
        report = await sync.sync_integration(db, org.services.calendar, fresh)
        assert report.complete and report.failed_batches == 0
        assert fresh.last_full_sync_at is not None


async def _dump(db: Any) -> str:
    parts = []
    for table in ("busy_block", "calendar_connection", "organization_integration", "audit_event"):
        rows = (await db.exec(text(f"SELECT * FROM {table}"))).all()  # noqa: S608
        parts.append(repr(rows))
    return "\n".join(parts)


async def test_online_exchange_is_refused_while_on_premises_is_on(org: Org) -> None:
    await _switch_on(org)
    async with org.services.db.session() as db:
        organization = await programs.organization(db)
        db.add(
            OrganizationIntegration(
                organization_id=organization.id,
                kind=IntegrationKind.EXCHANGE_ONPREM,
                enabled=True,
                exchange_slot="exchange",
                status="active",
            )
        )
        await db.commit()
    with pytest.raises(setup.IntegrationRefused, match="cannot be on together"):
        await _start(org, await _viewer(org, org.admin))
    async with org.services.db.session() as db:
        assert await setup.get(db, IntegrationKind.EXCHANGE_ONLINE) is None


async def test_withdrawn_consent_needs_attention_and_keeps_the_cache(
    org: Org, browser: httpx.AsyncClient
) -> None:
    integration = await _integrate(org, browser)
    async with org.services.db.session() as db:
        fresh = await db.get(OrganizationIntegration, integration.id)
        assert fresh is not None
        assert (await sync.sync_integration(db, org.services.calendar, fresh)).complete
    org.ms.state.tenants[org.tenant].consented = False
    async with org.services.db.session() as db:
        fresh = await db.get(OrganizationIntegration, integration.id)
        assert fresh is not None
        report = await sync.sync_integration(db, org.services.calendar, fresh)
        assert not report.complete
        assert fresh.status == "attention"
        assert "Integrate again" in (fresh.last_error or "")
        # Nothing more is synced until an administrator integrates again.
        assert await sync.claim_due(db, timedelta(0)) == []


async def test_the_job_covers_new_people_and_releases_changed_addresses(
    org: Org, browser: httpx.AsyncClient
) -> None:
    from server.jobs.runner import JOBS, sync_org_calendars

    assert sync_org_calendars in JOBS
    integration = await _integrate(org, browser)
    newcomer = await create_user(org.services, f"new@{org.domain}", password="")
    org.ms.state.add_account(f"new@{org.domain}", tenant_id=org.tenant)
    async with org.services.db.session() as db:
        moved = await accounts.get_user(db, org.people[5])
        moved.email = f"p5@elsewhere-{org.tenant[:6]}.example"
        db.add(moved)
        await db.commit()
    await sync_org_calendars(org.services)
    async with org.services.db.session() as db:
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
        assert newcomer in rows and rows[newcomer].last_synced_at is not None
        assert org.people[5] not in rows
        fresh = await db.get(OrganizationIntegration, integration.id, populate_existing=True)
        assert fresh is not None
        assert fresh.last_full_sync_at is not None and fresh.sync_lease_until is None
