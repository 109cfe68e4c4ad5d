"""Manage → Integrations through the pages, against the Microsoft and Google emulators: the
operator switch, integrating Exchange Online by admin consent and Google Workspace by key
upload and verified delegation, what covered people see, and disabling."""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from emulators.google import RunningGoogle, consent, seed_workspace
from emulators.microsoft import RunningMicrosoft, admin_consent
from server.app import create_app
from server.models.enums import ProgramRole
from server.providers.google_service_account import DELEGATION_SCOPE_LIST, DELEGATION_SCOPES
from server.services.people import accounts, programs
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import provider_overrides
from tests.conftest import create_user, csrf_from, login, make_settings, new_client
from tests.web.test_calendar_connect import start_flow

GOOGLE_KEY = {
    "type": "service_account",
    "project_id": "tandem-test",
    "private_key_id": "abc",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    "client_email": "tandem@tandem-test.iam.gserviceaccount.com",
    "client_id": "109876543210987654321",
}


@pytest.fixture
async def svc(
    tmp_path: Path, sqlite_url: str, microsoft: RunningMicrosoft
) -> AsyncIterator[AppServices]:
    services = build_services(make_settings(tmp_path, sqlite_url, **provider_overrides(microsoft)))
    yield services
    await close_services(services)


async def _client(svc: AppServices) -> httpx.AsyncClient:
    return await new_client(create_app(services=svc))


async def test_integrations_page_end_to_end(svc: AppServices, microsoft: RunningMicrosoft) -> None:
    tag = uuid.uuid4().hex[:6]
    domain = f"pg{tag}.example"
    tenant = str(uuid.uuid4())
    state = microsoft.state
    for name in ("it", "tandem", "pat"):
        state.add_account(f"{name}@{domain}", tenant_id=tenant)
    state.add_tenant([domain], tenant_id=tenant, admin=f"it@{domain}")
    admin_id = await create_user(svc, f"admin-{tag}@vendor.example", global_admin=True)
    operator_id = await create_user(svc, f"op-{tag}@vendor.example", operator=True)
    pat_id = await create_user(svc, f"pat@{domain}", name="Pat Participant")
    async with svc.db.session() as db:
        actor = await accounts.get_user(db, admin_id)
        program = await programs.create_program(db, actor, f"Program {tag}")
        await programs.add_member(db, actor, program.id, pat_id, ProgramRole.PARTICIPANT)
        await db.commit()
    assert operator_id

    participant = await _client(svc)
    await login(participant, f"pat@{domain}")
    refused = await participant.get("/admin/integrations")
    assert refused.status_code == 403

    admin = await _client(svc)
    csrf = await login(admin, f"admin-{tag}@vendor.example")
    page = await admin.get("/admin/integrations")
    assert page.status_code == 200
    assert "An operator can turn it on." in page.text
    assert "/admin/integrations/microsoft/start" not in page.text
    home = await admin.get("/admin")
    assert 'href="/admin/integrations"' in home.text

    # An admin cannot flip the operator's switch.
    assert (
        await admin.post("/admin/integrations/switch", data={"csrf_token": csrf, "enabled": "on"})
    ).status_code == 403
    operator = await _client(svc)
    op_csrf = await login(operator, f"op-{tag}@vendor.example")
    switched = await operator.post(
        "/admin/integrations/switch", data={"csrf_token": op_csrf, "enabled": "on"}
    )
    assert switched.status_code == 303

    start = await admin.post(
        "/admin/integrations/microsoft/start",
        data={"csrf_token": csrf, "service_account": f"tandem@{domain}", "tenant": domain},
    )
    assert start.status_code == 303
    consent_url = start.headers["location"]
    assert consent_url.startswith(microsoft.url) and "/v2.0/adminconsent?" in consent_url
    async with httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=str(microsoft.ca_path))
    ) as browser:
        reply = await admin_consent(browser, consent_url, f"it@{domain}")
    back = await admin.get("/admin/integrations/microsoft/callback", params=reply)
    assert back.status_code == 303, back.text
    done = await admin.get(back.headers["location"])
    assert "The Microsoft Exchange integration is on." in done.text
    assert "1 of 1" in done.text  # Pat is covered; the admin is in no program
    assert domain in done.text
    # Replaying the same redirect is refused and changes nothing.
    replay = await admin.get("/admin/integrations/microsoft/callback", params=reply)
    assert replay.status_code == 403
    assert "invalid or has expired" in replay.text

    settings = await participant.get("/profile/edit?tab=settings")
    assert "Your Office 365 calendar is connected" in settings.text
    assert "through your organization's Microsoft Exchange integration" in settings.text
    assert 'action="/calendar/disconnect"' not in settings.text
    blocked = await participant.post(
        "/calendar/disconnect", data={"csrf_token": csrf_from(settings.text)}
    )
    assert blocked.status_code in (403, 422)
    assert "managed by your organization" in blocked.text

    # Google: the key is pasted; the page shows what to paste into the Admin console.
    key_page = await admin.post(
        "/admin/integrations/google/key",
        data={
            "csrf_token": csrf,
            "key": json.dumps(GOOGLE_KEY),
            "domain": "g.example",
            "act_as": "admin@g.example",
        },
    )
    assert key_page.status_code == 200, key_page.text
    assert GOOGLE_KEY["client_id"] in key_page.text
    assert (
        "calendar.events.freebusy,https://www.googleapis.com/auth/calendar.events" in key_page.text
    )
    assert "PRIVATE KEY" not in key_page.text
    bad_key = await admin.post(
        "/admin/integrations/google/key",
        data={
            "csrf_token": csrf,
            "key": "{not json",
            "domain": "g.example",
            "act_as": "a@g.example",
        },
    )
    assert bad_key.status_code == 422 and "JSON key" in bad_key.text

    off = await admin.post("/admin/integrations/exchange_online/disable", data={"csrf_token": csrf})
    assert off.status_code == 303
    assert dict(parse_qsl(urlsplit(off.headers["location"]).query))["done"] == "microsoft_off"
    after = await participant.get("/profile/edit?tab=settings")
    assert "Your calendar is not connected" in after.text
    for client in (participant, admin, operator):
        await client.aclose()


@pytest.fixture
async def gsvc(
    tmp_path: Path, sqlite_url: str, google: RunningGoogle
) -> AsyncIterator[AppServices]:
    services = build_services(make_settings(tmp_path, sqlite_url, **provider_overrides(google)))
    yield services
    await close_services(services)


async def test_google_integration_through_the_page(
    gsvc: AppServices, google: RunningGoogle
) -> None:
    tag = uuid.uuid4().hex[:6]
    domain = f"gp{tag}.example"
    account = seed_workspace(google.state, domain, ["pat"])
    admin_id = await create_user(gsvc, f"admin-{tag}@vendor.example", global_admin=True)
    await create_user(gsvc, f"op-{tag}@vendor.example", operator=True)
    pat_id = await create_user(gsvc, f"pat@{domain}", name="Pat Participant")
    async with gsvc.db.session() as db:
        actor = await accounts.get_user(db, admin_id)
        program = await programs.create_program(db, actor, f"Program {tag}")
        await programs.add_member(db, actor, program.id, pat_id, ProgramRole.PARTICIPANT)
        await db.commit()
    # Pat connected Google personally before the organization integrated.
    participant = await _client(gsvc)
    await login(participant, f"pat@{domain}")
    start = await start_flow(participant, "google")
    async with httpx.AsyncClient() as browser:
        params = await consent(browser, start.headers["location"], f"pat@{domain}")
    assert (await participant.get("/calendar/callback/google", params=params)).status_code == 303

    operator = await _client(gsvc)
    op_csrf = await login(operator, f"op-{tag}@vendor.example")
    await operator.post("/admin/integrations/switch", data={"csrf_token": op_csrf, "enabled": "on"})
    admin = await _client(gsvc)
    csrf = await login(admin, f"admin-{tag}@vendor.example")
    form = {
        "csrf_token": csrf,
        "key": json.dumps(account.key_json()),
        "domain": domain,
        "act_as": f"tandem@{domain}",
    }
    key_page = await admin.post("/admin/integrations/google/key", data=form)
    assert key_page.status_code == 200, key_page.text
    assert f"Client ID: <code>{account.client_id}</code>" in key_page.text
    assert f"<code>{DELEGATION_SCOPES}</code>" in key_page.text
    assert "PRIVATE KEY" not in key_page.text and account.client_email not in key_page.text

    # A forged verify (no CSRF token) is refused before anything is called.
    calls = len(google.state.requests_to("/token", "POST"))
    forged = await admin.post("/admin/integrations/google/verify", data={})
    assert forged.status_code == 403
    assert len(google.state.requests_to("/token", "POST")) == calls
    # Until the domain's admin adds the delegation, Verify says exactly that.
    early = await admin.post("/admin/integrations/google/verify", data={"csrf_token": csrf})
    assert early.status_code == 403
    assert "Domain-wide delegation, add Client ID" in early.text
    assert account.client_id in early.text and "Verify and integrate" in early.text
    # A participant cannot verify it either.
    pat_csrf = csrf_from((await participant.get("/profile/edit?tab=settings")).text)
    refused = await participant.post(
        "/admin/integrations/google/verify", data={"csrf_token": pat_csrf}
    )
    assert refused.status_code == 403 and "Only global administrators" in refused.text

    google.state.grant_delegation(domain, account.client_id, DELEGATION_SCOPE_LIST)
    verified = await admin.post("/admin/integrations/google/verify", data={"csrf_token": csrf})
    assert verified.status_code == 303, verified.text
    done = await admin.get(verified.headers["location"])
    assert "The Google Calendar integration is on." in done.text
    assert f"meetings are created by tandem@{domain}" in done.text
    assert "1 of 1" in done.text

    settings = await participant.get("/profile/edit?tab=settings")
    assert "Your Google calendar is connected" in settings.text
    assert "through your organization's Google Calendar integration" in settings.text
    assert "Your personal Google calendar was disconnected" in settings.text
    assert 'action="/calendar/disconnect"' not in settings.text

    off = await admin.post(
        "/admin/integrations/google_workspace/disable", data={"csrf_token": csrf}
    )
    assert dict(parse_qsl(urlsplit(off.headers["location"]).query))["done"] == "google_off"
    after = await admin.get(off.headers["location"])
    assert "service account key were deleted" in after.text
    assert (
        "Your calendar is not connected"
        in (await participant.get("/profile/edit?tab=settings")).text
    )
    for client in (participant, admin, operator):
        await client.aclose()
