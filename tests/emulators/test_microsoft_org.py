"""The Microsoft emulator's app-only contract: client credentials per tenant, /users
endpoints reachable only with the mailbox's own tenant's token, and Graph's refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from emulators.microsoft import RunningMicrosoft, start_microsoft_emulator
from emulators.runner import client_ssl_context
from tests.emulators.test_microsoft import schedule_body

A = "a@alpha.example"
B = "b@beta.example"
ALPHA = "11111111-1111-4111-8111-111111111111"
BETA = "22222222-2222-4222-8222-222222222222"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[RunningMicrosoft]:
    running = start_microsoft_emulator(tmp_path)
    running.state.add_account(A, tenant_id=ALPHA)
    running.state.add_account(B, tenant_id=BETA)
    running.state.add_tenant(["alpha.example"], tenant_id=ALPHA).consented = True
    running.state.add_tenant(["beta.example"], tenant_id=BETA)
    yield running
    running.stop()


@pytest.fixture
async def http(emulator: RunningMicrosoft) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=client_ssl_context(emulator.ca_path)) as client:
        yield client


async def _token(
    emulator: RunningMicrosoft, http: httpx.AsyncClient, tenant: str, **form: str
) -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "client_id": emulator.state.client_id,
        "client_secret": emulator.state.client_secret,
        "scope": "https://graph.microsoft.com/.default",
    } | form
    return await http.post(f"{emulator.url}/{tenant}/oauth2/v2.0/token", data=data)


async def test_client_credentials_refusals(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    wrong = await _token(emulator, http, ALPHA, client_secret="nope")
    assert wrong.status_code == 401 and wrong.json()["error_codes"] == [7000215]
    unconsented = await _token(emulator, http, BETA)
    assert unconsented.status_code == 400
    assert unconsented.json()["error"] == "unauthorized_client"
    assert unconsented.json()["error_codes"] == [700016]
    scope = await _token(emulator, http, ALPHA, scope="Calendars.Read")
    assert scope.json()["error"] == "invalid_scope"
    by_domain = await _token(emulator, http, "alpha.example")
    assert by_domain.status_code == 200 and by_domain.json()["token_type"] == "Bearer"
    assert "refresh_token" not in by_domain.json()


async def test_users_endpoints_stay_inside_the_tenant(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    token = (await _token(emulator, http, ALPHA)).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    other = await http.post(
        f"{emulator.graph_base}/users/{B}/calendar/getSchedule",
        json=schedule_body([B], 1),
        headers=auth,
    )
    assert other.status_code == 404 and other.json()["error"]["code"] == "ErrorInvalidUser"
    mine = await http.post(
        f"{emulator.graph_base}/users/{A}/calendar/getSchedule",
        json=schedule_body([A, B], 1),
        headers=auth,
    )
    assert mine.status_code == 200
    entries = {e["scheduleId"]: e for e in mine.json()["value"]}
    assert "error" not in entries[A]
    assert entries[B]["error"]["responseCode"] == "ErrorMailboxNotFound"
    too_many = await http.post(
        f"{emulator.graph_base}/users/{A}/calendar/getSchedule",
        json=schedule_body([A] * 21, 1),
        headers=auth,
    )
    assert too_many.json()["error"]["code"] == "ErrorMailboxDataArrayTooBig"
    too_long = await http.post(
        f"{emulator.graph_base}/users/{A}/calendar/getSchedule",
        json=schedule_body([A], 63),
        headers=auth,
    )
    assert too_long.json()["error"]["code"] == "ErrorTimeIntervalTooBig"
    emulator.state.deny_app_access(A)
    denied = await http.post(
        f"{emulator.graph_base}/users/{A}/events", json={"subject": "x"}, headers=auth
    )
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "ErrorAccessDenied"
    delegated = {"Authorization": f"Bearer {emulator.state.issue_access_token(A)}"}
    refused = await http.post(
        f"{emulator.graph_base}/users/{A}/calendar/getSchedule",
        json=schedule_body([A], 1),
        headers=delegated,
    )
    assert refused.status_code == 403
