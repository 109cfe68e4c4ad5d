"""Manage → Integrations through the pages, against the Microsoft emulator: the operator
switch, integrating Exchange Online by admin consent, what covered people see, the Google
key form and disabling."""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from emulators.microsoft import RunningMicrosoft, admin_consent
from server.app import create_app
from server.models.enums import ProgramRole
from server.services.people import accounts, programs
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import provider_overrides
from tests.conftest import create_user, csrf_from, login, make_settings, new_client

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
