"""The Google emulator's service accounts: the JWT bearer grant with ``sub``
impersonation, domain-wide delegation an admin has or has not granted, and the
multi-calendar freeBusy a domain user's token may ask for.

Assertions are signed here with google-auth's own ``jwt.encode`` so each claim can be
bent; Tandem's code never builds a JWT itself."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from google.auth import crypt, jwt

from emulators.google import RunningGoogle, seed_workspace, start_google_emulator
from emulators.google_jwt_grant import BAD_TIMES, JWT_BEARER, UNAUTHORIZED_CLIENT
from emulators.google_workspace import GOOGLE_TOKEN_URI, ServiceAccount

P = "https://www.googleapis.com/auth/"
SCOPES = f"{P}calendar.events.freebusy {P}calendar.events"
DOMAIN = "acme.test"
ACT_AS, ANA = f"tandem@{DOMAIN}", f"ana@{DOMAIN}"
NOW = int(time.time())


@pytest.fixture
def google() -> Iterator[RunningGoogle]:
    running = start_google_emulator()
    running.state.add_workspace(DOMAIN, users=["tandem", "ana"])
    running.state.add_account("outsider@gmail.com")
    yield running
    running.stop()


@pytest.fixture
def account(google: RunningGoogle) -> ServiceAccount:
    account = google.state.create_service_account()
    google.state.grant_delegation(DOMAIN, account.client_id, SCOPES.split())
    return account


@pytest.fixture
async def http(google: RunningGoogle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=google.base_url) as client:
        yield client


def assertion(key: dict[str, Any], **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": key["client_email"],
        "aud": GOOGLE_TOKEN_URI,
        "scope": SCOPES,
        "iat": now,
        "exp": now + 3600,
        "sub": ACT_AS,
        **claims,
    }
    payload = {k: v for k, v in payload.items() if v is not None}
    signer = crypt.RSASigner.from_service_account_info(key)
    return jwt.encode(signer, payload).decode()  # type: ignore[no-untyped-call]


async def grant(http: httpx.AsyncClient, signed: str) -> httpx.Response:
    return await http.post("/token", data={"grant_type": JWT_BEARER, "assertion": signed})


def test_key_file_has_the_fields_of_a_console_download(account: ServiceAccount) -> None:
    key = account.key_json()
    assert set(key) == {
        "type",
        "project_id",
        "private_key_id",
        "private_key",
        "client_email",
        "client_id",
        "auth_uri",
        "token_uri",
        "auth_provider_x509_cert_url",
        "client_x509_cert_url",
        "universe_domain",
    }
    assert key["type"] == "service_account"
    assert key["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n")
    assert key["client_email"].endswith(".iam.gserviceaccount.com")
    assert key["token_uri"] == GOOGLE_TOKEN_URI
    assert len(key["private_key_id"]) == 40


async def test_a_delegated_token_reads_other_domain_users_and_writes_as_the_subject(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    answer = await grant(http, assertion(account.key_json()))
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    assert "refresh_token" not in body
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    query = {
        "timeMin": "2030-01-07T00:00:00Z",
        "timeMax": "2030-01-08T00:00:00Z",
        "items": [
            {"id": ANA},
            {"id": f"nobody@{DOMAIN}"},
            {"id": "outsider@gmail.com"},
            {"id": f"bea@{DOMAIN}"},
        ],
    }
    google.state.add_account(f"bea@{DOMAIN}")
    google.state.deny_free_busy(f"bea@{DOMAIN}")
    free_busy = (await http.post("/calendar/v3/freeBusy", json=query, headers=bearer)).json()
    reasons = {
        calendar: answer.get("errors", [{}])[0].get("reason")
        for calendar, answer in free_busy["calendars"].items()
    }
    assert free_busy["calendars"][ANA] == {"busy": []}
    assert reasons == {
        ANA: None,
        f"nobody@{DOMAIN}": "notFound",
        "outsider@gmail.com": "notFound",  # not in the Workspace, not shared
        f"bea@{DOMAIN}": "forbidden",  # the knob
    }
    itself = (await grant(http, assertion(account.key_json(), sub=None))).json()["access_token"]
    alone = await http.post(
        "/calendar/v3/freeBusy", json=query, headers={"Authorization": f"Bearer {itself}"}
    )
    assert alone.json()["calendars"][ANA]["errors"][0]["reason"] == "notFound"
    event = {
        "start": {"dateTime": "2030-01-07T10:00:00Z"},
        "end": {"dateTime": "2030-01-07T11:00:00Z"},
        "attendees": [{"email": ANA}],
    }
    created = await http.post("/calendar/v3/calendars/primary/events", json=event, headers=bearer)
    assert created.json()["organizer"]["email"] == ACT_AS
    assert created.json()["id"] in google.state.events[ACT_AS]


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        ({"aud": "http://127.0.0.1/token"}, "invalid_grant", None),
        ({"iat": NOW, "exp": NOW + 3601}, "invalid_grant", BAD_TIMES),
        (
            {"iat": NOW - 7200, "exp": NOW - 3600},
            "invalid_grant",
            BAD_TIMES,
        ),
        ({"scope": None}, "invalid_scope", "Empty or missing scope not allowed."),
        ({"sub": "outsider@gmail.com"}, "invalid_grant", "Invalid email or User ID"),
        ({"sub": f"nobody@{DOMAIN}"}, "invalid_grant", "Invalid email or User ID"),
        ({"scope": f"{P}calendar"}, "unauthorized_client", UNAUTHORIZED_CLIENT),
        (
            {"iss": "ghost@tandem-org-1234.iam.gserviceaccount.com"},
            "invalid_grant",
            "Invalid grant: account not found",
        ),
    ],
)
async def test_bad_assertions_get_googles_errors(
    account: ServiceAccount,
    http: httpx.AsyncClient,
    claims: dict[str, Any],
    error: str,
    description: str | None,
) -> None:
    answer = await grant(http, assertion(account.key_json(), **claims))
    assert answer.status_code == 400
    assert answer.json()["error"] == error
    if description:
        assert answer.json()["error_description"] == description


async def test_signature_must_be_the_service_accounts_current_key(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    old = account.key_json()
    other = google.state.create_service_account("other")
    forged = {**old, "private_key": other.key_json()["private_key"]}
    answer = await grant(http, assertion(forged))
    assert answer.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid JWT Signature.",
    }
    assert (await grant(http, assertion(old))).status_code == 200
    del account.keys[old["private_key_id"]]
    account.new_key()
    assert (await grant(http, assertion(old))).json()["error"] == "invalid_grant"
    assert (await grant(http, assertion(account.key_json()))).status_code == 200
    tampered = assertion(account.key_json()).split(".")
    tampered[1] = tampered[1][:-2] + ("A" if tampered[1][-2] != "A" else "B") + tampered[1][-1]
    assert (await grant(http, ".".join(tampered))).json()["error"] == "invalid_grant"


async def test_delegation_is_the_admins_knob(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    google.state.revoke_delegation(DOMAIN, account.client_id)
    answer = await grant(http, assertion(account.key_json()))
    assert answer.json() == {
        "error": "unauthorized_client",
        "error_description": UNAUTHORIZED_CLIENT,
    }
    google.state.grant_delegation(DOMAIN, account.client_id, [f"{P}calendar.events.freebusy"])
    assert (await grant(http, assertion(account.key_json()))).json()["error"] == (
        "unauthorized_client"
    )
    narrow = assertion(account.key_json(), scope=f"{P}calendar.events.freebusy")
    assert (await grant(http, narrow)).status_code == 200


async def test_free_busy_answers_at_most_50_calendars_and_own_scope_sees_only_oneself(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    google.state.grant_delegation(
        DOMAIN, account.client_id, [*SCOPES.split(), f"{P}calendar.freebusy"]
    )
    token = (await grant(http, assertion(account.key_json()))).json()["access_token"]
    items = [{"id": f"user{n}@{DOMAIN}"} for n in range(51)]
    query = {"timeMin": "2030-01-07T00:00:00Z", "timeMax": "2030-01-08T00:00:00Z", "items": items}
    bearer = {"Authorization": f"Bearer {token}"}
    answer = (await http.post("/calendar/v3/freeBusy", json=query, headers=bearer)).json()
    assert answer["calendars"][f"user50@{DOMAIN}"]["errors"][0]["reason"] == (
        "tooManyCalendarsRequested"
    )
    own_scope = assertion(account.key_json(), scope=f"{P}calendar.freebusy")
    own = (await grant(http, own_scope)).json()["access_token"]
    query["items"] = [{"id": ACT_AS}, {"id": ANA}]
    answer = (
        await http.post(
            "/calendar/v3/freeBusy", json=query, headers={"Authorization": f"Bearer {own}"}
        )
    ).json()
    assert answer["calendars"][ACT_AS] == {"busy": []}
    assert answer["calendars"][ANA]["errors"][0]["reason"] == "notFound"


async def test_seed_workspace_starts_without_delegation_until_the_admin_grants_it(
    google: RunningGoogle, http: httpx.AsyncClient
) -> None:
    account = seed_workspace(google.state, "beta.test", ["ana"])
    key = account.key_json()
    signed = assertion(key, sub="tandem@beta.test")
    assert (await grant(http, signed)).json()["error"] == "unauthorized_client"
    google.state.grant_delegation("beta.test", account.client_id, SCOPES.split())
    assert (await grant(http, signed)).status_code == 200
    assert "ana@beta.test" in google.state.accounts
