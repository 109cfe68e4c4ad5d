"""The integrations API against the Microsoft and Google emulators: the operator switch,
start and finish (admin consent; key upload and verified delegation), the organization's
coverage, covered calendars, disabling, and who may do each."""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from emulators.google import RunningGoogle, seed_workspace
from emulators.microsoft import RunningMicrosoft, admin_consent
from server.app import create_app
from server.models.enums import ProgramRole
from server.providers.google_service_account import DELEGATION_SCOPE_LIST, DELEGATION_SCOPES
from server.services.people import accounts, programs
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import provider_overrides
from tests.conftest import create_user, gql, make_settings
from tests.schema.test_graphql_programs import token_for

SWITCH = """mutation S($on: Boolean!) { setOrganizationCalendarAuthorization(enabled: $on) {
  organization { orgCalendarsEnabled } errors { code message } } }"""
START = """mutation M($sa: String!, $tenant: String) {
  startMicrosoftIntegration(serviceAccount: $sa, tenant: $tenant) {
    authorizationUrl errors { code message } } }"""
FINISH = """mutation F($q: String!) { finishMicrosoftIntegration(redirectQuery: $q) {
  integration { kind status coveredCount } errors { code message } } }"""
ORG = """{ organization { orgCalendarsEnabled integrations {
  kind status coveredCount participantCount domains serviceAccount
  uncovered { user { id } reason } lastSyncedAt } } }"""
ME = "{ me { calendar { status managedByOrganization integrationKind } } }"
DISABLE = (
    """mutation D { disableIntegration(kind: EXCHANGE_ONLINE) { disabled errors { code } } }"""
)


@pytest.fixture
async def svc(
    tmp_path: Path, sqlite_url: str, microsoft: RunningMicrosoft
) -> AsyncIterator[AppServices]:
    services = build_services(make_settings(tmp_path, sqlite_url, **provider_overrides(microsoft)))
    yield services
    await close_services(services)


async def test_integrate_through_the_api(svc: AppServices, microsoft: RunningMicrosoft) -> None:
    tag = uuid.uuid4().hex[:6]
    domain = f"api{tag}.example"
    tenant = str(uuid.uuid4())
    for name in ("it", "tandem", "pat"):
        microsoft.state.add_account(f"{name}@{domain}", tenant_id=tenant)
    microsoft.state.add_tenant([domain], tenant_id=tenant, admin=f"it@{domain}")
    admin_id = await create_user(svc, f"admin@{tag}.vendor.example", global_admin=True)
    operator_id = await create_user(svc, f"op@{tag}.vendor.example", operator=True)
    pat_id = await create_user(svc, f"pat@{domain}")
    outsider_id = await create_user(svc, f"out@{tag}.other.example")
    async with svc.db.session() as db:
        actor = await accounts.get_user(db, admin_id)
        program = await programs.create_program(db, actor, f"P {tag}")
        for person in (pat_id, outsider_id):
            await programs.add_member(db, actor, program.id, person, ProgramRole.PARTICIPANT)
        await db.commit()
    admin, operator, pat = (
        await token_for(svc, admin_id),
        await token_for(svc, operator_id),
        await token_for(svc, pat_id),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services=svc)), base_url="http://testserver"
    ) as client:
        refused = await gql(client, START, {"sa": f"tandem@{domain}"}, token=admin)
        assert refused["data"]["startMicrosoftIntegration"]["errors"][0]["code"] == "FORBIDDEN"
        assert (
            "operator can turn it on"
            in refused["data"]["startMicrosoftIntegration"]["errors"][0]["message"]
        )
        by_admin = await gql(client, SWITCH, {"on": True}, token=admin)
        assert (
            by_admin["data"]["setOrganizationCalendarAuthorization"]["errors"][0]["code"]
            == "FORBIDDEN"
        )
        on = await gql(client, SWITCH, {"on": True}, token=operator)
        assert on["data"]["setOrganizationCalendarAuthorization"]["organization"] == {
            "orgCalendarsEnabled": True
        }
        by_pat = await gql(client, START, {"sa": f"tandem@{domain}"}, token=pat)
        assert by_pat["data"]["startMicrosoftIntegration"]["errors"][0]["code"] == "FORBIDDEN"

        started = await gql(
            client, START, {"sa": f"tandem@{domain}", "tenant": domain}, token=admin
        )
        url = started["data"]["startMicrosoftIntegration"]["authorizationUrl"]
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(microsoft.ca_path))
        ) as browser:
            reply = await admin_consent(browser, url, f"it@{domain}")
        forged = await gql(client, FINISH, {"q": urlencode(dict(reply, state="x"))}, token=admin)
        assert forged["data"]["finishMicrosoftIntegration"]["errors"][0]["code"] == "FORBIDDEN"
        # The forged attempt did not consume the real state (it was never found).
        finished = await gql(client, FINISH, {"q": urlencode(reply)}, token=admin)
        assert finished["data"]["finishMicrosoftIntegration"]["integration"] == {
            "kind": "EXCHANGE_ONLINE",
            "status": "ACTIVE",
            "coveredCount": 1,
        }

        org = (await gql(client, ORG, token=admin))["data"]["organization"]
        [integration] = org["integrations"]
        assert integration["participantCount"] == 2
        assert integration["domains"] == [domain]
        assert integration["serviceAccount"] == f"tandem@{domain}"
        assert integration["uncovered"] == [
            {"user": {"id": str(outsider_id)}, "reason": "NOT_IN_DOMAIN"}
        ]
        assert (await gql(client, ORG, token=pat))["data"]["organization"]["integrations"] == []

        me = (await gql(client, ME, token=pat))["data"]["me"]["calendar"]
        assert me == {
            "status": "CONNECTED",
            "managedByOrganization": True,
            "integrationKind": "EXCHANGE_ONLINE",
        }
        assert (await gql(client, DISABLE, token=pat))["data"]["disableIntegration"] == {
            "disabled": False,
            "errors": [{"code": "FORBIDDEN"}],
        }
        assert (await gql(client, DISABLE, token=admin))["data"]["disableIntegration"] == {
            "disabled": True,
            "errors": [],
        }
        me = (await gql(client, ME, token=pat))["data"]["me"]["calendar"]
        assert me == {
            "status": "NOT_CONNECTED",
            "managedByOrganization": False,
            "integrationKind": None,
        }


GSTART = """mutation G($key: String!, $domain: String!, $actAs: String!) {
  startGoogleIntegration(serviceAccountKey: $key, domain: $domain, actAs: $actAs) {
    authorizationUrl googleDelegation { clientId scopes } errors { code message } } }"""
GFINISH = """mutation V { finishGoogleIntegration {
  integration { kind status coveredCount serviceAccount tenant } errors { code message } } }"""


@pytest.fixture
async def gsvc(
    tmp_path: Path, sqlite_url: str, google: RunningGoogle
) -> AsyncIterator[AppServices]:
    services = build_services(make_settings(tmp_path, sqlite_url, **provider_overrides(google)))
    yield services
    await close_services(services)


async def test_integrate_google_through_the_api(gsvc: AppServices, google: RunningGoogle) -> None:
    tag = uuid.uuid4().hex[:6]
    domain = f"gapi{tag}.example"
    account = seed_workspace(google.state, domain, ["pat"])
    admin_id = await create_user(gsvc, f"admin@{tag}.vendor.example", global_admin=True)
    operator_id = await create_user(gsvc, f"op@{tag}.vendor.example", operator=True)
    pat_id = await create_user(gsvc, f"pat@{domain}")
    async with gsvc.db.session() as db:
        actor = await accounts.get_user(db, admin_id)
        program = await programs.create_program(db, actor, f"G {tag}")
        await programs.add_member(db, actor, program.id, pat_id, ProgramRole.PARTICIPANT)
        await db.commit()
    admin, operator, pat = (
        await token_for(gsvc, admin_id),
        await token_for(gsvc, operator_id),
        await token_for(gsvc, pat_id),
    )
    key = {"key": json.dumps(account.key_json()), "domain": domain, "actAs": f"tandem@{domain}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services=gsvc)), base_url="http://testserver"
    ) as client:
        await gql(client, SWITCH, {"on": True}, token=operator)
        by_pat = await gql(client, GSTART, key, token=pat)
        assert by_pat["data"]["startGoogleIntegration"]["errors"][0]["code"] == "FORBIDDEN"
        started = (await gql(client, GSTART, key, token=admin))["data"]["startGoogleIntegration"]
        assert started["errors"] == [] and started["authorizationUrl"] is None
        assert started["googleDelegation"] == {
            "clientId": account.client_id,
            "scopes": DELEGATION_SCOPES,
        }
        early = (await gql(client, GFINISH, token=admin))["data"]["finishGoogleIntegration"]
        assert early["integration"] is None
        assert early["errors"][0]["code"] == "FORBIDDEN"
        assert f"add Client ID {account.client_id}" in early["errors"][0]["message"]
        google.state.grant_delegation(domain, account.client_id, DELEGATION_SCOPE_LIST)
        by_pat = await gql(client, GFINISH, token=pat)
        assert by_pat["data"]["finishGoogleIntegration"]["errors"][0]["code"] == "FORBIDDEN"
        done = (await gql(client, GFINISH, token=admin))["data"]["finishGoogleIntegration"]
        assert done == {
            "integration": {
                "kind": "GOOGLE_WORKSPACE",
                "status": "ACTIVE",
                "coveredCount": 1,
                "serviceAccount": f"tandem@{domain}",
                "tenant": domain,
            },
            "errors": [],
        }
        me = (await gql(client, ME, token=pat))["data"]["me"]["calendar"]
        assert me == {
            "status": "CONNECTED",
            "managedByOrganization": True,
            "integrationKind": "GOOGLE_WORKSPACE",
        }
        off = await gql(
            client,
            "mutation { disableIntegration(kind: GOOGLE_WORKSPACE) { disabled errors { code } } }",
            token=admin,
        )
        assert off["data"]["disableIntegration"] == {"disabled": True, "errors": []}
