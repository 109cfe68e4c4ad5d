"""The Google emulator speaks Google's documented shapes and errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators.google import (
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    RunningGoogle,
    consent,
    send_push_notifications,
    start_google_emulator,
)
from emulators.runner import BackgroundServer

REDIRECT = "http://127.0.0.1:9/callback"
ALICE = "alice@example.com"
CAL = "https://www.googleapis.com/auth/calendar"
FREEBUSY = "https://www.googleapis.com/auth/calendar.freebusy"


@pytest.fixture
def google() -> Iterator[RunningGoogle]:
    running = start_google_emulator(redirect_uris=[REDIRECT])
    running.state.add_account(ALICE)
    yield running
    running.stop()


@pytest.fixture
async def http(google: RunningGoogle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=google.base_url) as client:
        yield client


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def auth_url(google: RunningGoogle, **params: str) -> str:
    query = {
        "client_id": EMULATOR_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": f"openid email {FREEBUSY}",
        "state": "st4te",
        **params,
    }
    return f"{google.base_url}/o/oauth2/v2/auth?{urlencode(query)}"


async def exchange(http: httpx.AsyncClient, code: str, **extra: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": EMULATOR_CLIENT_ID,
        "client_secret": EMULATOR_CLIENT_SECRET,
        **extra,
    }
    return await http.post("/token", data=form)


def bearer(google: RunningGoogle, scopes: tuple[str, ...] = (CAL,)) -> dict[str, str]:
    access, _ = google.state.grant_access(ALICE, EMULATOR_CLIENT_ID, scopes)
    return {"Authorization": f"Bearer {access}"}


def reason(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    assert body["error"]["code"] == response.status_code
    return str(body["error"]["errors"][0]["reason"])


# --- OAuth ------------------------------------------------------------------------------


async def test_unknown_client_and_unregistered_redirect_get_error_pages(
    google: RunningGoogle, http: httpx.AsyncClient
) -> None:
    unknown = await http.get(auth_url(google, client_id="nobody"))
    assert unknown.status_code == 401
    assert "invalid_client" in unknown.text
    mismatch = await http.get(auth_url(google, redirect_uri="https://evil.example/cb"))
    assert mismatch.status_code == 400
    assert "redirect_uri_mismatch" in mismatch.text
    assert "location" not in mismatch.headers


async def test_invalid_requests_redirect_with_an_error(
    google: RunningGoogle, http: httpx.AsyncClient
) -> None:
    for params, error in [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "https://www.googleapis.com/auth/drive"}, "invalid_scope"),
        ({"code_challenge": "abc", "code_challenge_method": "S512"}, "invalid_request"),
    ]:
        answer = await http.get(auth_url(google, **params))
        assert answer.status_code == 302
        query = parse_qs(urlsplit(answer.headers["location"]).query)
        assert query == {"error": [error], "state": ["st4te"]}


async def test_consent_page_escapes_everything(
    google: RunningGoogle, http: httpx.AsyncClient
) -> None:
    google.state.register_client('<script>alert("x")</script>', "s", [REDIRECT])
    google.state.add_account("<b>@example.com")
    page = await http.get(auth_url(google, client_id='<script>alert("x")</script>'))
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert "&lt;b&gt;@example.com" in page.text


async def test_unknown_account_re_renders_consent(
    google: RunningGoogle, http: httpx.AsyncClient
) -> None:
    with pytest.raises(ValueError, match="400"):
        await consent(http, auth_url(google), "stranger@example.com")
    assert google.state.requests_to("/token") == []


async def test_code_exchange_returns_google_token_shape_and_id_token(
    google: RunningGoogle, http: httpx.AsyncClient
) -> None:
    verifier = "v" * 50
    url = auth_url(
        google,
        access_type="offline",
        code_challenge=b64(hashlib.sha256(verifier.encode()).digest()),
        code_challenge_method="S256",
    )
    params = await consent(http, url, ALICE)
    assert params["state"] == "st4te"
    answer = await exchange(http, params["code"], code_verifier=verifier)
    assert answer.status_code == 200
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3599
    assert tokens["refresh_token"].startswith("1//")
    assert tokens["scope"].split() == [
        "openid",
        "https://www.googleapis.com/auth/userinfo.email",
        FREEBUSY,
    ]
    header, payload, signature = tokens["id_token"].split(".")
    expected = hmac.new(
        EMULATOR_CLIENT_SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256
    ).digest()
    assert signature == b64(expected)
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert (claims["email"], claims["aud"]) == (ALICE, EMULATOR_CLIENT_ID)
    assert claims["iss"] == "https://accounts.google.com"


async def test_pkce_verifier_must_match(google: RunningGoogle, http: httpx.AsyncClient) -> None:
    url = auth_url(google, code_challenge="plain-challenge-value-1234567890123456789012345")
    missing = await exchange(http, (await consent(http, url, ALICE))["code"])
    assert missing.json() == {
        "error": "invalid_grant",
        "error_description": "Missing code verifier.",
    }
    wrong = await exchange(http, (await consent(http, url, ALICE))["code"], code_verifier="nope")
    assert wrong.status_code == 400
    assert wrong.json()["error_description"] == "Invalid code verifier."
    good = await exchange(
        http,
        (await consent(http, url, ALICE))["code"],
        code_verifier="plain-challenge-value-1234567890123456789012345",
    )
    assert good.status_code == 200


async def test_refresh_token_only_for_offline_first_or_forced_consent(
    google: RunningGoogle, http: httpx.AsyncClient
) -> None:
    async def tokens(**params: str) -> dict[str, Any]:
        code = (await consent(http, auth_url(google, **params), ALICE))["code"]
        answer: dict[str, Any] = (await exchange(http, code)).json()
        return answer

    assert "refresh_token" not in await tokens()
    assert "refresh_token" in await tokens(access_type="offline")
    assert "refresh_token" not in await tokens(access_type="offline")
    assert "refresh_token" in await tokens(access_type="offline", prompt="consent")


async def test_token_endpoint_checks_client_and_redirect_uri(
    google: RunningGoogle, http: httpx.AsyncClient
) -> None:
    code = (await consent(http, auth_url(google), ALICE))["code"]
    bad_secret = await exchange(http, code, client_secret="wrong")
    assert (bad_secret.status_code, bad_secret.json()["error"]) == (401, "invalid_client")
    code = (await consent(http, auth_url(google), ALICE))["code"]
    other_uri = await exchange(http, code, redirect_uri="http://127.0.0.1:9/other")
    assert other_uri.json()["error"] == "redirect_uri_mismatch"
    unknown_grant = await http.post(
        "/token",
        data={
            "grant_type": "password",
            "client_id": EMULATOR_CLIENT_ID,
            "client_secret": EMULATOR_CLIENT_SECRET,
        },
    )
    assert unknown_grant.json()["error"] == "unsupported_grant_type"


async def test_refresh_and_revoke(google: RunningGoogle, http: httpx.AsyncClient) -> None:
    access, refresh = google.state.grant_access(ALICE, EMULATOR_CLIENT_ID, [CAL])
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "client_id": EMULATOR_CLIENT_ID,
        "client_secret": EMULATOR_CLIENT_SECRET,
    }
    refreshed = await http.post("/token", data=form)
    assert refreshed.status_code == 200
    assert "refresh_token" not in refreshed.json()
    assert (await http.post("/revoke", data={"token": access})).status_code == 200
    gone = await http.post("/token", data=form)
    assert gone.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }
    again = await http.post("/revoke", data={"token": refresh})
    assert (again.status_code, again.json()["error"]) == (400, "invalid_token")


# --- Calendar API -------------------------------------------------------------------------


async def test_api_refuses_missing_expired_and_underscoped_tokens(
    google: RunningGoogle, http: httpx.AsyncClient
) -> None:
    body = {"timeMin": "2030-01-07T00:00:00Z", "timeMax": "2030-01-08T00:00:00Z", "items": []}
    missing = await http.post("/calendar/v3/freeBusy", json=body)
    assert (missing.status_code, reason(missing)) == (401, "authError")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    underscoped = await http.post(
        "/calendar/v3/calendars/primary/events", json={}, headers=bearer(google, (FREEBUSY,))
    )
    assert (underscoped.status_code, reason(underscoped)) == (403, "insufficientPermissions")
    headers = bearer(google)
    google.state.expire_access_tokens()
    expired = await http.post("/calendar/v3/freeBusy", json=body, headers=headers)
    assert expired.status_code == 401


async def test_free_busy_errors_and_shapes(google: RunningGoogle, http: httpx.AsyncClient) -> None:
    headers = bearer(google)
    google.state.add_event(
        ALICE,
        {
            "start": {"dateTime": "2030-01-07T10:00:00", "timeZone": "Europe/Zurich"},
            "end": {"dateTime": "2030-01-07T11:00:00", "timeZone": "Europe/Zurich"},
        },
    )

    async def query(time_min: str, time_max: str, ids: list[str], **extra: str) -> httpx.Response:
        body = {"timeMin": time_min, "timeMax": time_max, "items": [{"id": i} for i in ids]}
        return await http.post("/calendar/v3/freeBusy", json={**body, **extra}, headers=headers)

    empty = await query("2030-01-07T00:00:00Z", "2030-01-07T00:00:00Z", ["primary"])
    assert (empty.status_code, reason(empty)) == (400, "timeRangeEmpty")
    long = await query("2030-01-01T00:00:00Z", "2030-06-01T00:00:00Z", ["primary"])
    assert long.status_code == 400
    ok = await query(
        "2030-01-07T00:00:00Z",
        "2030-01-08T00:00:00Z",
        ["primary", "ghost@example.com"],
        timeZone="Europe/Zurich",
    )
    calendars = ok.json()["calendars"]
    assert calendars["primary"] == {
        "busy": [{"start": "2030-01-07T10:00:00+01:00", "end": "2030-01-07T11:00:00+01:00"}]
    }
    assert calendars["ghost@example.com"] == {
        "errors": [{"domain": "global", "reason": "notFound"}]
    }
    many = await query(
        "2030-01-07T00:00:00Z", "2030-01-08T00:00:00Z", [f"u{i}@example.com" for i in range(51)]
    )
    assert many.json()["calendars"]["u50@example.com"]["errors"][0]["reason"] == (
        "tooManyCalendarsRequested"
    )


async def test_event_insert_get_delete_errors(
    google: RunningGoogle, http: httpx.AsyncClient
) -> None:
    headers = bearer(google)
    events = "/calendar/v3/calendars/primary/events"
    body = {
        "id": "abcdefv0123",
        "start": {"dateTime": "2030-01-07T10:00:00Z"},
        "end": {"dateTime": "2030-01-07T11:00:00Z"},
    }
    bad_id = await http.post(events, json={**body, "id": "Not_Valid"}, headers=headers)
    assert (bad_id.status_code, reason(bad_id)) == (400, "invalid")
    no_end = await http.post(events, json={"start": body["start"]}, headers=headers)
    assert (no_end.status_code, reason(no_end)) == (400, "required")
    created = await http.post(events, json=body, headers=headers)
    assert created.json()["status"] == "confirmed"
    duplicate = await http.post(events, json=body, headers=headers)
    assert (duplicate.status_code, reason(duplicate)) == (409, "duplicate")
    assert (await http.delete(f"{events}/abcdefv0123", headers=headers)).status_code == 204
    gone = await http.delete(f"{events}/abcdefv0123", headers=headers)
    assert (gone.status_code, reason(gone)) == (410, "deleted")
    fetched = await http.get(f"{events}/abcdefv0123", headers=headers)
    assert fetched.json()["status"] == "cancelled"
    missing = await http.get(f"{events}/nosuchevent", headers=headers)
    assert (missing.status_code, reason(missing)) == (404, "notFound")
    other = await http.get("/calendar/v3/calendars/bob%40example.com/events", headers=headers)
    assert other.status_code == 404


async def test_id_and_ical_uid_only_one_at_creation_and_guests_share_the_uid(
    google: RunningGoogle, http: httpx.AsyncClient
) -> None:
    headers = bearer(google)
    events = "/calendar/v3/calendars/primary/events"
    times = {
        "start": {"dateTime": "2030-01-07T10:00:00Z"},
        "end": {"dateTime": "2030-01-07T11:00:00Z"},
    }
    with_id = await http.post(events, json={"id": "abcdefv0999", **times}, headers=headers)
    assert with_id.json()["iCalUID"] == "abcdefv0999@google.com"  # Google makes one up
    both = await http.post(
        events, json={"id": "abcdefv0998", "iCalUID": "m-1@tandem", **times}, headers=headers
    )
    assert (both.status_code, reason(both)) == (400, "invalid")
    guest = "gmail-guest@example.com"
    google.state.add_account(guest)
    body = {"iCalUID": "m-1@tandem", "attendees": [{"email": guest}], **times}
    created = await http.post(events, json=body, headers=headers)
    assert created.status_code == 200
    assert created.json()["iCalUID"] == "m-1@tandem" and created.json()["id"] != "m-1@tandem"
    again = await http.post(events, json=body, headers=headers)
    assert (again.status_code, reason(again)) == (409, "duplicate")
    listed = await http.get(events, params={"iCalUID": "m-1@tandem"}, headers=headers)
    assert [item["id"] for item in listed.json()["items"]] == [created.json()["id"]]
    copies = google.state.guest_copies(guest)
    assert [(c["iCalUID"], c["organizer"]) for c in copies] == [("m-1@tandem", ALICE)]


async def test_list_pages_and_sync_tokens(google: RunningGoogle, http: httpx.AsyncClient) -> None:
    headers = bearer(google)
    events = "/calendar/v3/calendars/primary/events"
    ids = [
        google.state.add_event(
            ALICE,
            {
                "start": {"dateTime": f"2030-01-0{day}T10:00:00Z"},
                "end": {"dateTime": f"2030-01-0{day}T11:00:00Z"},
            },
        )
        for day in (1, 2, 3)
    ]
    window = {"timeMin": "2030-01-01T00:00:00Z", "timeMax": "2030-01-09T00:00:00Z"}
    first = (await http.get(events, params={**window, "maxResults": 2}, headers=headers)).json()
    assert [i["id"] for i in first["items"]] == ids[:2]
    assert "nextSyncToken" not in first
    second = (
        await http.get(
            events,
            params={**window, "maxResults": 2, "pageToken": first["nextPageToken"]},
            headers=headers,
        )
    ).json()
    assert [i["id"] for i in second["items"]] == ids[2:]
    assert "nextPageToken" not in second
    token = second["nextSyncToken"]

    await http.delete(f"{events}/{ids[0]}", headers=headers)
    changes = (await http.get(events, params={"syncToken": token}, headers=headers)).json()
    assert changes["items"] == [
        {
            "kind": "calendar#event",
            "etag": changes["items"][0]["etag"],
            "id": ids[0],
            "status": "cancelled",
            "updated": changes["items"][0]["updated"],
        }
    ]
    mixed = await http.get(events, params={"syncToken": token, **window}, headers=headers)
    assert mixed.status_code == 400
    stale = await http.get(events, params={"syncToken": "made-up"}, headers=headers)
    assert (stale.status_code, reason(stale)) == (410, "fullSyncRequired")
    listed = (await http.get(events, params=window, headers=headers)).json()
    assert [i["id"] for i in listed["items"]] == ids[1:]
    with_deleted = (
        await http.get(events, params={**window, "showDeleted": "true"}, headers=headers)
    ).json()
    assert len(with_deleted["items"]) == 3


async def test_watch_and_stop_channels(google: RunningGoogle, http: httpx.AsyncClient) -> None:
    headers = bearer(google)
    watch = "/calendar/v3/calendars/primary/events/watch"
    body = {"id": "c1", "type": "web_hook", "address": "https://t.example/hook", "token": "tk"}
    channel = (await http.post(watch, json=body, headers=headers)).json()
    assert channel["kind"] == "api#channel"
    assert channel["token"] == "tk"
    assert int(channel["expiration"]) > 0
    duplicate = await http.post(watch, json=body, headers=headers)
    assert duplicate.status_code == 400
    stop = "/calendar/v3/channels/stop"
    wrong = await http.post(stop, json={"id": "c1", "resourceId": "other"}, headers=headers)
    assert wrong.status_code == 404
    stopped = await http.post(
        stop, json={"id": "c1", "resourceId": channel["resourceId"]}, headers=headers
    )
    assert stopped.status_code == 204
    assert google.state.channels == {}


async def test_faults_are_injected_and_requests_recorded_without_values(
    google: RunningGoogle, http: httpx.AsyncClient
) -> None:
    headers = bearer(google)
    google.state.fail_next("/events", 503, times=2)
    events = "/calendar/v3/calendars/primary/events"
    first = await http.get(events, params={"maxResults": 5}, headers=headers)
    second = await http.get(events, headers=headers)
    third = await http.get(events, headers=headers)
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert reason(first) == "backendError"
    refresh = google.state.grant_access(ALICE, EMULATOR_CLIENT_ID, [CAL])[1]
    await http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": EMULATOR_CLIENT_ID,
            "client_secret": EMULATOR_CLIENT_SECRET,
        },
    )
    recorded = google.state.requests_to("/token")[0]
    assert recorded.param_names == {"grant_type", "refresh_token", "client_id", "client_secret"}
    assert refresh not in repr(google.state.requests)
    assert EMULATOR_CLIENT_SECRET not in repr(google.state.requests)
    assert google.state.requests_to(events)[0].param_names == {"maxResults"}


async def test_push_notifications_carry_googles_headers(
    google: RunningGoogle, http: httpx.AsyncClient
) -> None:
    received: list[dict[str, str]] = []

    async def hook(request: Request) -> Response:
        received.append(dict(request.headers))
        return Response(status_code=200)

    receiver = BackgroundServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    with receiver:
        body = {"id": "c9", "type": "web_hook", "address": f"{receiver.url}/hook", "token": "tk"}
        watch = "/calendar/v3/calendars/primary/events/watch"
        channel = (await http.post(watch, json=body, headers=bearer(google))).json()
        statuses = await send_push_notifications(google.state, http, ALICE, "sync")
        statuses += await send_push_notifications(google.state, http, ALICE)
    assert statuses == [200, 200]
    assert [h["x-goog-resource-state"] for h in received] == ["sync", "exists"]
    assert [h["x-goog-message-number"] for h in received] == ["1", "2"]
    assert received[0]["x-goog-channel-id"] == "c9"
    assert received[0]["x-goog-channel-token"] == "tk"
    assert received[0]["x-goog-resource-id"] == channel["resourceId"]
    assert received[0]["x-goog-resource-uri"] == channel["resourceUri"]
