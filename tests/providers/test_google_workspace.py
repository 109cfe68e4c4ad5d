"""GoogleWorkspaceDirectory against the Google emulator: google-auth tokens through
domain-wide delegation, batched freeBusy, meetings in the acting account's calendar."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulators.google import (
    GoogleState,
    RunningGoogle,
    create_google_emulator,
    seed_workspace,
    start_google_emulator,
)
from emulators.google_workspace import ServiceAccount
from emulators.runner import BackgroundServer, client_ssl_context, make_test_ca
from server.config import Settings
from server.providers.base import (
    AccessDenied,
    BusyInterval,
    EventAttendee,
    ExternalEvent,
    InvalidCredentials,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
)
from server.providers.google_service_account import (
    DELEGATION_SCOPE_LIST,
    DELEGATION_SCOPES,
    delegation_client_id,
    load_service_account_key,
    validate_service_account_key,
)
from server.providers.google_workspace import GoogleWorkspaceDirectory
from server.providers.http_errors import RetryPolicy
from server.providers.org_base import OrgDirectory, PersonSchedule, UncoveredReason

DOMAIN = "example.org"
ACT_AS = f"tandem@{DOMAIN}"
ANA, BEN = f"ana@{DOMAIN}", f"ben@{DOMAIN}"
SENTINEL = "ZZ-private-sentinel-5c1e"
NO_RETRY = RetryPolicy(attempts=1)


def at(day: int, hour: int) -> datetime:
    return datetime(2030, 1, day, hour, tzinfo=UTC)


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def google() -> Iterator[RunningGoogle]:
    running = start_google_emulator()
    running.state.add_workspace(DOMAIN, "example.net", users=["tandem", "ana", "ben"])
    yield running
    running.stop()


@pytest.fixture
def account(google: RunningGoogle) -> ServiceAccount:
    account = google.state.create_service_account()
    google.state.grant_delegation(DOMAIN, account.client_id, DELEGATION_SCOPE_LIST)
    return account


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def settings_for(google: RunningGoogle) -> Settings:
    fields: dict[str, Any] = {
        k.removeprefix("TANDEM_").lower(): v for k, v in google.settings_overrides().items()
    }
    return Settings(**fields)


def directory(
    google: RunningGoogle,
    http: httpx.AsyncClient,
    key: dict[str, Any],
    *,
    act_as: str = ACT_AS,
    retry: RetryPolicy = NO_RETRY,
    sleep: FakeSleep | None = None,
) -> GoogleWorkspaceDirectory:
    config = {"service_account_key": key, "domain": DOMAIN, "domains": ["example.net"]}
    return GoogleWorkspaceDirectory(
        settings_for(google),
        http,
        {**config, "act_as": act_as},
        retry=retry,
        sleep=sleep or FakeSleep(),
    )


def token_calls(google: RunningGoogle) -> int:
    return len(google.state.requests_to("/token", "POST"))


def free_busy_calls(google: RunningGoogle) -> int:
    return len(google.state.requests_to("/calendar/v3/freeBusy", "POST"))


def meeting(uid: str = "meeting-1@tandem") -> ExternalEvent:
    return ExternalEvent(
        uid=uid,
        title="Mentoring: Ana and Ben",
        description="Agenda",
        location=None,
        start=at(7, 15),
        end=at(7, 16),
        time_zone="Europe/Paris",
        organizer_email=ACT_AS,
        attendees=[EventAttendee(ANA, "Ana"), EventAttendee(BEN)],
    )


# --- tokens --------------------------------------------------------------------------


async def test_verify_gets_a_google_auth_token_once_and_names_the_service_account(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    org = directory(google, http, account.key_json())
    assert isinstance(org, OrgDirectory)
    assert await org.verify() == account.client_email
    await org.read_schedules([ANA], at(7, 9), at(7, 17), "UTC")
    assert token_calls(google) == 1  # cached until shortly before expiry
    [request] = google.state.requests_to("/token", "POST")
    assert request.param_names == {"grant_type", "assertion"}
    assert free_busy_calls(google) == 2


async def test_a_token_close_to_expiry_is_refreshed(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    google.state.access_token_ttl = 120  # inside google-auth's refresh threshold
    org = directory(google, http, account.key_json())
    await org.read_schedules([ANA], at(7, 9), at(7, 17), "UTC")
    await org.read_schedules([ANA], at(7, 9), at(7, 17), "UTC")
    assert token_calls(google) == 2


async def test_a_revoked_token_is_replaced_once_on_401(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    org = directory(google, http, account.key_json())
    await org.read_schedules([ANA], at(7, 9), at(7, 17), "UTC")
    google.state.expire_access_tokens()  # Google stopped accepting the cached token
    [ana] = await org.read_schedules([ANA], at(7, 9), at(7, 17), "UTC")
    assert ana.problem is None
    assert token_calls(google) == 2


async def test_the_token_url_comes_from_settings_not_from_the_key_file(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    key = {**account.key_json(), "token_uri": "http://127.0.0.1:9/steal-assertions"}
    org = directory(google, http, key)
    assert await org.verify() == account.client_email
    assert token_calls(google) == 1


async def test_refresh_runs_off_the_event_loop_one_at_a_time(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:

    org = directory(google, http, account.key_json())
    answers = await asyncio.gather(
        *(org.read_schedules([ANA], at(7, 9), at(7, 17), "UTC") for _ in range(5))
    )
    assert [a[0].problem for a in answers] == [None] * 5
    assert token_calls(google) == 1


async def test_delegation_not_granted_tells_the_admin_what_to_paste(
    google: RunningGoogle, http: httpx.AsyncClient
) -> None:
    account = google.state.create_service_account()
    org = directory(google, http, account.key_json())
    with pytest.raises(AccessDenied) as refused:
        await org.verify()
    assert account.client_id in str(refused.value)
    assert DELEGATION_SCOPES in str(refused.value)
    assert "Domain-wide delegation" in str(refused.value)
    # Only the freeBusy scope authorized: Google refuses the token for both scopes.
    google.state.grant_delegation(DOMAIN, account.client_id, DELEGATION_SCOPE_LIST[:1])
    with pytest.raises(AccessDenied):
        await org.verify()


async def test_a_deleted_key_or_a_foreign_signature_is_invalid_credentials(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    other = google.state.create_service_account("someone-else")
    forged = {**account.key_json(), "private_key": other.key_json()["private_key"]}
    with pytest.raises(InvalidCredentials) as refused:
        await directory(google, http, forged).verify()
    assert "PRIVATE KEY" not in str(refused.value)
    old = account.key_json()
    account.new_key()
    del account.keys[old["private_key_id"]]  # the admin deleted the uploaded key
    with pytest.raises(InvalidCredentials):
        await directory(google, http, old).verify()
    assert await directory(google, http, account.key_json()).verify() == account.client_email


async def test_an_unknown_subject_is_invalid_and_one_outside_the_domain_is_refused_early(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    with pytest.raises(InvalidCredentials):
        await directory(google, http, account.key_json(), act_as=f"nobody@{DOMAIN}").verify()
    with pytest.raises(ProviderMisconfigured):
        directory(google, http, account.key_json(), act_as="tandem@elsewhere.com")
    assert token_calls(google) == 1


async def test_token_endpoint_outage_is_provider_unavailable(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    google.state.fail_next("/token", 503, times=3)
    sleep = FakeSleep()
    org = directory(google, http, account.key_json(), retry=RetryPolicy(), sleep=sleep)
    with pytest.raises(ProviderUnavailable):
        await org.verify()
    assert token_calls(google) == 3
    assert len(sleep.delays) == 2  # our bounded retries, not google-auth's sleeping ones


def test_key_validation_gives_clear_errors_and_never_echoes_the_private_key(
    account: ServiceAccount,
) -> None:
    key = account.key_json()
    assert delegation_client_id(key) == account.client_id
    assert load_service_account_key(json.dumps(key).encode()) == key
    with pytest.raises(InvalidCredentials, match="not JSON"):
        load_service_account_key(b"\xff-----BEGIN PRIVATE KEY-----")
    assert key["client_id"].isdigit() and len(key["client_id"]) == 21
    cases: list[tuple[Any, str]] = [
        ([1, 2], "not a JSON object"),
        ({**key, "type": "authorized_user"}, "not a service account key"),
        ({k: v for k, v in key.items() if k != "private_key"}, "missing private_key"),
        ({k: v for k, v in key.items() if k != "client_id"}, "missing client_id"),
        ({**key, "client_id": "tandem"}, "not a numeric id"),
        ({**key, "client_email": "nobody"}, "not an address"),
        ({**key, "private_key": key["private_key"][:200]}, "cannot be read"),
    ]
    for bad, message in cases:
        with pytest.raises(InvalidCredentials) as refused:
            validate_service_account_key(bad)
        assert message in str(refused.value)
        assert "PRIVATE KEY" not in str(refused.value)
        assert key["private_key"][40:80] not in str(refused.value)


# --- free/busy -----------------------------------------------------------------------


async def test_120_people_take_3_free_busy_calls(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    people = [f"user{n}@{DOMAIN}" for n in range(120)]
    for email in people:
        google.state.add_account(email)
    google.state.add_event(people[77], _busy(at(7, 10), at(7, 11)))
    org = directory(google, http, account.key_json())
    answers: list[PersonSchedule] = []
    for first in range(0, len(people), org.max_people_per_call):
        batch = people[first : first + org.max_people_per_call]
        answers += await org.read_schedules(batch, at(7, 0), at(8, 0), "UTC")
    assert free_busy_calls(google) == 3
    assert [a.email for a in answers] == people
    assert all(a.problem is None for a in answers)
    assert answers[77].intervals == [BusyInterval(at(7, 10), at(7, 11))]
    with pytest.raises(ValueError, match="at most 50"):
        await org.read_schedules([*people[:51]], at(7, 0), at(8, 0), "UTC")
    assert free_busy_calls(google) == 3


async def test_per_calendar_errors_make_only_those_people_unknown(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    google.state.add_account(f"cleo@{DOMAIN}")
    google.state.add_account("dan@example.net")
    google.state.deny_free_busy(BEN)  # the domain's sharing policy hides Ben's calendar
    google.state.deny_free_busy(f"cleo@{DOMAIN}", "internalError")
    google.state.add_event(ANA, _busy(at(7, 9), at(7, 10)))
    org = directory(google, http, account.key_json())
    asked = [ANA, BEN, f"cleo@{DOMAIN}", f"gone@{DOMAIN}", "Dan@Example.net", "eve@gmail.com"]
    answers = await org.read_schedules(asked, at(7, 0), at(8, 0), "UTC")
    assert [(a.email, a.problem) for a in answers] == [
        (ANA, None),
        (BEN, UncoveredReason.ACCESS_DENIED),
        (f"cleo@{DOMAIN}", UncoveredReason.UNREADABLE),
        (f"gone@{DOMAIN}", UncoveredReason.NO_MAILBOX),
        ("dan@example.net", None),
        ("eve@gmail.com", UncoveredReason.NOT_IN_DOMAIN),
    ]
    assert answers[0].intervals == [BusyInterval(at(7, 9), at(7, 10))]
    assert all(a.intervals == [] for a in answers[1:])
    assert free_busy_calls(google) == 1
    assert await org.read_schedules(["eve@gmail.com"], at(7, 0), at(8, 0), "UTC") == [
        PersonSchedule("eve@gmail.com", problem=UncoveredReason.NOT_IN_DOMAIN)
    ]
    assert free_busy_calls(google) == 1  # nobody in the domain: no call


async def test_a_window_longer_than_60_days_is_refused_for_the_caller_to_split(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    org = directory(google, http, account.key_json())
    assert org.max_window_days == 60
    start = at(1, 0)
    with pytest.raises(ValueError, match="60 days"):
        await org.read_schedules([ANA], start, start + timedelta(days=60, seconds=1), "UTC")
    [ana] = await org.read_schedules([ANA], start, start + timedelta(days=60), "UTC")
    assert ana.problem is None
    with pytest.raises(ValueError, match="timezone-aware"):
        await org.read_schedules([ANA], datetime(2030, 1, 1), datetime(2030, 1, 2), "UTC")
    assert free_busy_calls(google) == 1


@pytest.mark.parametrize(
    ("status", "reason", "retry_after"),
    [
        (429, None, "30"),
        (403, "rateLimitExceeded", "12"),
        (403, "userRateLimitExceeded", None),
        (503, None, "45"),
    ],
)
async def test_rate_limits_raise_rate_limited_with_retry_after(
    google: RunningGoogle,
    account: ServiceAccount,
    http: httpx.AsyncClient,
    status: int,
    reason: str | None,
    retry_after: str | None,
) -> None:
    body = None
    if reason:
        error = {"domain": "usageLimits", "reason": reason, "message": "Rate Limit Exceeded"}
        body = {"error": {"errors": [error], "code": status, "message": "Rate Limit Exceeded"}}
    headers = {"Retry-After": retry_after} if retry_after else {}
    google.state.fail_next("/calendar/v3/freeBusy", status, body=body, headers=headers)
    org = directory(google, http, account.key_json())
    with pytest.raises(RateLimited) as limited:
        await org.read_schedules([ANA], at(7, 0), at(8, 0), "UTC")
    assert limited.value.retry_after == (float(retry_after) if retry_after else None)


async def test_read_schedules_returns_times_only(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    google.state.add_event(
        ANA,
        {
            **_busy(at(7, 9), at(7, 10)),
            "summary": SENTINEL,
            "location": SENTINEL,
            "description": SENTINEL,
            "attendees": [{"email": f"{SENTINEL.lower()}@example.com"}],
        },
    )
    org = directory(google, http, account.key_json())
    answers = await org.read_schedules([ANA, BEN], at(7, 0), at(8, 0), "UTC")
    assert answers[0].intervals == [BusyInterval(at(7, 9), at(7, 10))]
    assert SENTINEL.lower() not in repr(answers).lower()


# --- meetings ------------------------------------------------------------------------


async def test_meetings_go_in_the_acting_calendar_with_attendees_and_invitations(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    org = directory(google, http, account.key_json())
    event_id = await org.create_event(meeting())
    stored = google.state.events[ACT_AS][event_id].data
    assert stored["iCalUID"] == "meeting-1@tandem"
    assert [a["email"] for a in stored["attendees"]] == [ANA, BEN]
    assert stored["organizer"]["email"] == ACT_AS
    # A retry of an insert Google had carried out patches the same event.
    assert await org.create_event(meeting()) == event_id
    moved = dataclasses.replace(meeting(), start=at(8, 15), end=at(8, 16))
    await org.update_event(event_id, moved)
    assert (
        google.state.events[ACT_AS][event_id]
        .data["start"]["dateTime"]
        .startswith("2030-01-08T16:00")
    )
    await org.delete_event(event_id)
    await org.delete_event(event_id)  # already gone (410): fine
    assert google.state.events[ACT_AS][event_id].data["status"] == "cancelled"
    writes = [r for r in google.state.requests if r.method in ("POST", "PATCH", "DELETE")]
    writes = [r for r in writes if "/events" in r.path]
    assert len(writes) == 6
    assert {r.send_updates for r in writes} == {"all"}
    await org.aclose()


def _busy(start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": end.isoformat()},
    }


async def test_tokens_and_calls_use_the_shared_clients_tls_settings(tmp_path: Path) -> None:
    """google-auth's refresh goes through Tandem's httpx client, so an https emulator
    signed by a test CA works when (and only when) that client trusts the CA."""
    state = GoogleState()
    account = seed_workspace(state, DOMAIN, ["ana"], delegated_scopes=DELEGATION_SCOPE_LIST)
    ca_path, tls = make_test_ca(tmp_path)
    with BackgroundServer(create_google_emulator(state), tls=tls) as server:
        running = RunningGoogle(state, server)
        async with httpx.AsyncClient(verify=client_ssl_context(ca_path)) as trusting:
            org = directory(running, trusting, account.key_json())
            assert await org.verify() == account.client_email
        async with httpx.AsyncClient() as default_trust:
            org = directory(running, default_trust, account.key_json())
            with pytest.raises(ProviderUnavailable):
                await org.verify()


async def test_verify_refuses_when_the_acting_calendar_is_unreadable(
    google: RunningGoogle, account: ServiceAccount, http: httpx.AsyncClient
) -> None:
    google.state.set_unreadable(ACT_AS)
    with pytest.raises(ProviderMisconfigured, match=ACT_AS):
        await directory(google, http, account.key_json()).verify()
