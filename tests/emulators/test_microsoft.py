"""The Microsoft emulator's own contract: the shapes and refusals clients depend on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from emulators.microsoft import RunningMicrosoft, start_microsoft_emulator
from emulators.runner import client_ssl_context

WORK = "ada@contoso.example"
HOME = "grace@outlook.example"
T0 = datetime(2030, 1, 7, tzinfo=UTC)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[RunningMicrosoft]:
    running = start_microsoft_emulator(tmp_path)
    running.state.add_account(WORK, name="<script>alert(1)</script>")
    running.state.add_account(HOME, personal=True)
    yield running
    running.stop()


@pytest.fixture
async def http(emulator: RunningMicrosoft) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=client_ssl_context(emulator.ca_path)) as client:
        yield client


def bearer(emulator: RunningMicrosoft, email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {emulator.state.issue_access_token(email)}"}


def schedule_body(schedules: list[str], days: int) -> dict[str, object]:
    end = T0 + timedelta(days=days)
    return {
        "schedules": schedules,
        "startTime": {"dateTime": T0.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "endTime": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "availabilityViewInterval": 60,
    }


async def test_discovery_document_points_at_the_emulator(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    doc = (await http.get(emulator.authority + "/v2.0/.well-known/openid-configuration")).json()
    assert doc["authorization_endpoint"] == emulator.authority + "/oauth2/v2.0/authorize"
    assert doc["token_endpoint"] == emulator.authority + "/oauth2/v2.0/token"
    assert doc["issuer"].endswith("/{tenantid}/v2.0")
    assert set(emulator.settings_overrides()) >= {
        "TANDEM_MICROSOFT_AUTHORITY",
        "TANDEM_MICROSOFT_GRAPH_BASE",
        "TANDEM_MICROSOFT_CA_BUNDLE",
    }


async def test_consent_page_escapes_account_names(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    page = await http.get(
        emulator.authority + "/oauth2/v2.0/authorize",
        params={
            "client_id": emulator.state.client_id,
            "response_type": "code",
            "redirect_uri": "http://127.0.0.1/cb",
            "scope": "<b>Calendars.ReadWrite</b>",
            "state": "s",
        },
    )
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert "<b>" not in page.text


async def test_token_endpoint_refuses_bad_client_and_unknown_refresh_token(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    url = emulator.authority + "/oauth2/v2.0/token"
    wrong = await http.post(
        url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": "x",
            "client_id": emulator.state.client_id,
            "client_secret": "wrong",
        },
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    unknown = await http.post(
        url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": "nope",
            "client_id": emulator.state.client_id,
            "client_secret": emulator.state.client_secret,
        },
    )
    assert unknown.status_code == 400
    assert unknown.json()["error_codes"] == [70008]


async def test_graph_refuses_missing_and_expired_tokens(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    missing = await http.get(emulator.graph_base + "/me")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "InvalidAuthenticationToken"
    headers = bearer(emulator, WORK)
    assert (await http.get(emulator.graph_base + "/me", headers=headers)).json()["mail"] == WORK
    emulator.state.expire_access_tokens()
    expired = await http.get(emulator.graph_base + "/me", headers=headers)
    assert expired.status_code == 401


async def test_get_schedule_limits_and_private_fields(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    url = emulator.graph_base + "/me/calendar/getSchedule"
    headers = bearer(emulator, WORK)
    emulator.state.add_event(
        WORK, subject="Secret", location="Room 1", start=T0, end=T0 + timedelta(hours=1)
    )
    ok = await http.post(url, json=schedule_body([WORK], 1), headers=headers)
    (entry,) = ok.json()["value"]
    assert entry["scheduleItems"][0]["subject"] == "Secret"  # like the real Graph
    assert entry["availabilityView"].startswith("2")
    too_many = await http.post(url, json=schedule_body([WORK] * 21, 1), headers=headers)
    assert too_many.json()["error"]["code"] == "ErrorMailboxDataArrayTooBig"
    too_long = await http.post(url, json=schedule_body([WORK], 63), headers=headers)
    assert too_long.json()["error"]["code"] == "ErrorTimeIntervalTooBig"
    personal = await http.post(url, json=schedule_body([HOME], 1), headers=bearer(emulator, HOME))
    assert personal.status_code == 403


async def test_calendar_view_pages_and_keeps_all_day_midnight(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    for index in range(12):
        start = T0 + timedelta(hours=index)
        emulator.state.add_event(HOME, subject="x", start=start, end=start + timedelta(minutes=30))
    emulator.state.add_event(
        HOME,
        subject="Holiday",
        start=date(2030, 1, 8),
        end=date(2030, 1, 9),
        is_all_day=True,
        time_zone="Asia/Tokyo",
    )
    params = {
        "startDateTime": "2030-01-06T00:00:00Z",
        "endDateTime": "2030-01-10T00:00:00Z",
        "$select": "start,end,isAllDay",
    }
    headers = bearer(emulator, HOME) | {"Prefer": 'outlook.timezone="UTC"'}
    first = (
        await http.get(emulator.graph_base + "/me/calendarView", params=params, headers=headers)
    ).json()
    assert len(first["value"]) == 10
    assert "subject" not in first["value"][0]
    second = (await http.get(first["@odata.nextLink"], headers=headers)).json()
    assert "@odata.nextLink" not in second
    all_day = [item for item in first["value"] + second["value"] if item["isAllDay"]]
    assert all_day[0]["start"] == {"dateTime": "2030-01-08T00:00:00.0000000", "timeZone": "UTC"}


async def test_faults_are_served_then_cleared(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    emulator.state.fail_next("/me", 429, headers={"Retry-After": "7"})
    headers = bearer(emulator, WORK)
    throttled = await http.get(emulator.graph_base + "/me", headers=headers)
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "7"
    assert (await http.get(emulator.graph_base + "/me", headers=headers)).status_code == 200
    assert [r.method for r in emulator.state.requests_to("/v1.0/me")] == ["GET", "GET"]


async def test_delta_reports_removed_and_forgets_tokens(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    event_id = emulator.state.add_event(WORK, subject="a", start=T0, end=T0 + timedelta(hours=1))
    headers = bearer(emulator, WORK)
    url = emulator.graph_base + "/me/calendarView/delta"
    window = {"startDateTime": "2030-01-01T00:00:00Z", "endDateTime": "2030-02-01T00:00:00Z"}
    first = (await http.get(url, params=window, headers=headers)).json()
    assert [item["id"] for item in first["value"]] == [event_id]
    emulator.state.remove_event(WORK, event_id)
    second = (await http.get(first["@odata.deltaLink"], headers=headers)).json()
    assert second["value"] == [
        {"@odata.type": "#microsoft.graph.event", "id": event_id, "@removed": {"reason": "deleted"}}
    ]
    emulator.state.invalidate_delta_tokens()
    gone = await http.get(second["@odata.deltaLink"], headers=headers)
    assert gone.status_code == 410


def event_body(transaction_id: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "subject": "Mentoring",
        "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
    }
    if transaction_id:
        body["transactionId"] = transaction_id
    return body


async def test_used_transaction_id_is_refused_not_answered_with_the_first_event(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    url, headers = emulator.graph_base + "/me/events", bearer(emulator, WORK)
    first = await http.post(url, json=event_body("uid-1@tandem"), headers=headers)
    assert first.status_code == 201
    assert first.json()["transactionId"] == "uid-1@tandem"
    again = await http.post(url, json=event_body("uid-1@tandem"), headers=headers)
    assert again.status_code == 400
    error = again.json()["error"]
    assert error["code"] == "ErrorDuplicateTransactionId"
    assert set(error["innerError"]) >= {"date", "request-id"}
    assert len(emulator.state.account(WORK).events) == 1
    plain = await http.post(url, json=event_body(), headers=headers)
    assert "transactionId" not in plain.json()  # only returned when an app set it


async def test_failure_after_commit_keeps_the_work_done(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    emulator.state.fail_after_commit("/v1.0/me/events", 503)
    url, headers = emulator.graph_base + "/me/events", bearer(emulator, WORK)
    answer = await http.post(url, json=event_body("uid-2@tandem"), headers=headers)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "ServiceUnavailable"
    (stored,) = emulator.state.account(WORK).events.values()
    assert stored.transaction_id == "uid-2@tandem"
    assert (await http.post(url, json=event_body(), headers=headers)).status_code == 201


async def test_event_ids_have_slashes_and_need_double_encoding_in_paths(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    event_id = emulator.state.add_event(WORK, subject="a", start=T0, end=T0 + timedelta(hours=1))
    assert "/" in event_id and "+" in event_id and event_id.endswith("=")
    base, headers = emulator.graph_base + "/me/events/", bearer(emulator, WORK)
    raw = await http.get(base + event_id, headers=headers)
    assert raw.status_code == 400
    single = await http.get(base + quote(event_id, safe=""), headers=headers)
    assert single.status_code == 400
    assert single.json()["error"]["code"] == "RequestBroker--ParseUri"
    double = quote(event_id, safe="").replace("%2F", "%252F")
    found = await http.get(base + double, headers=headers)
    assert found.status_code == 200
    assert found.json()["id"] == event_id


async def test_get_schedule_resolves_mail_not_upn_and_me_selects(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    upn = "ada.l@contoso.onmicrosoft.example"
    emulator.state.add_account(upn, mail="ada.lovelace@contoso.example")
    headers = bearer(emulator, upn)
    me = await http.get(
        emulator.graph_base + "/me", params={"$select": "mail,userPrincipalName"}, headers=headers
    )
    assert me.json() == {"mail": "ada.lovelace@contoso.example", "userPrincipalName": upn}
    url = emulator.graph_base + "/me/calendar/getSchedule"
    answer = await http.post(
        url, json=schedule_body([upn, "ada.lovelace@contoso.example"], 1), headers=headers
    )
    by_upn, by_mail = answer.json()["value"]
    assert by_upn["scheduleId"] == upn and "message" in by_upn["error"]
    assert by_upn["scheduleItems"] == []
    assert "error" not in by_mail


async def test_access_policy_answers_403_access_denied(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    emulator.state.deny_access(WORK)
    denied = await http.get(emulator.graph_base + "/me", headers=bearer(emulator, WORK))
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        "code": "ErrorAccessDenied",
        "message": "Access to OData is disabled.",
        "innerError": denied.json()["error"]["innerError"],
    }


async def test_expired_client_secret_answers_invalid_client_7000222(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    emulator.state.expire_client_secret()
    answer = await http.post(
        emulator.authority + "/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "x",
            "client_id": emulator.state.client_id,
            "client_secret": emulator.state.client_secret,
        },
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert answer.json()["error_codes"] == [7000222]


async def test_subscription_renews_with_patch_and_renewal_faults(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    headers = bearer(emulator, WORK)
    soon = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = await http.post(
        emulator.graph_base + "/subscriptions",
        json={
            "changeType": "created,updated,deleted",
            "notificationUrl": "https://tandem.example/webhooks/microsoft",
            "resource": "/me/events",
            "expirationDateTime": soon,
            "clientState": "s",
        },
        headers=headers,
    )
    sub_url = emulator.graph_base + "/subscriptions/" + created.json()["id"]
    emulator.state.fail_renewals(1)
    failed = await http.patch(sub_url, json={"expirationDateTime": later}, headers=headers)
    assert failed.status_code == 503
    renewed = await http.patch(sub_url, json={"expirationDateTime": later}, headers=headers)
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"].startswith(later[:16])
