"""ExchangeOnlineDirectory end to end: admin consent, msal client credentials and Graph
``/users/{service account}`` against the HTTPS emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulators.microsoft import RunningMicrosoft, admin_consent, start_microsoft_emulator
from emulators.runner import client_ssl_context
from server.config import Settings
from server.providers.base import (
    AccessDenied,
    AuthorizationDeclined,
    EventAttendee,
    ExternalEvent,
    ProviderMisconfigured,
    RateLimited,
)
from server.providers.microsoft_org import (
    ExchangeOnlineDirectory,
    admin_consent_url,
    read_admin_consent,
)
from server.providers.org_base import OrgDirectory, UncoveredReason

DOMAIN = "contoso.example"
ADMIN = f"admin@{DOMAIN}"
SERVICE = f"tandem-mentoring@{DOMAIN}"
REDIRECT = "http://127.0.0.1:8000/admin/integrations/microsoft/callback"
SENTINEL = "CANARY-org-5d1c"
T0 = datetime(2030, 1, 7, tzinfo=UTC)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[RunningMicrosoft]:
    running = start_microsoft_emulator(tmp_path)
    state = running.state
    state.add_account(ADMIN, name="Admin")
    state.add_account(SERVICE, name="Tandem Mentoring")
    for index in range(25):
        state.add_account(f"p{index}@{DOMAIN}")
    state.add_tenant([DOMAIN], admin=ADMIN)
    yield running
    running.stop()


@pytest.fixture
async def http(emulator: RunningMicrosoft) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=client_ssl_context(emulator.ca_path)) as client:
        yield client


def _settings(emulator: RunningMicrosoft, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        k.removeprefix("TANDEM_").lower(): v for k, v in emulator.settings_overrides().items()
    }
    return Settings(**(values | extra))


@pytest.fixture
async def directory(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> AsyncIterator[ExchangeOnlineDirectory]:
    emulator.state.tenants[emulator.state.work_tenant_id].consented = True
    made = ExchangeOnlineDirectory(
        _settings(emulator),
        http,
        {"tenant": emulator.state.work_tenant_id, "service_account": SERVICE},
        max_retry_wait=0.0,
    )
    yield made
    await made.aclose()


async def test_admin_consent_names_the_tenant_and_unlocks_app_tokens(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    settings = _settings(emulator)
    config = {"tenant": emulator.state.work_tenant_id, "service_account": SERVICE}
    before = ExchangeOnlineDirectory(settings, http, config)
    with pytest.raises(AccessDenied):
        await before.verify()  # AADSTS700016: the tenant never consented
    await before.aclose()

    url = admin_consent_url(settings, DOMAIN, REDIRECT, "state-1")
    assert "/contoso.example/v2.0/adminconsent?" in url
    assert "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default" in url
    reply = await admin_consent(http, url, ADMIN)
    assert reply["state"] == "state-1"
    assert read_admin_consent(reply) == emulator.state.work_tenant_id

    after = ExchangeOnlineDirectory(settings, http, config)
    assert isinstance(after, OrgDirectory)
    assert await after.verify() == SERVICE
    await after.aclose()
    tokens = emulator.state.requests_to("/oauth2/v2.0/token", "POST")
    assert tokens, "msal asked the tenant's token endpoint"


async def test_declined_or_non_admin_consent_is_refused(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    settings = _settings(emulator)
    declined = await admin_consent(
        http, admin_consent_url(settings, DOMAIN, REDIRECT, "s"), ADMIN, accept=False
    )
    assert declined["error"] == "access_denied"
    with pytest.raises(AuthorizationDeclined):
        read_admin_consent(declined)
    with pytest.raises(ValueError, match="400"):
        await admin_consent(
            http, admin_consent_url(settings, DOMAIN, REDIRECT, "s"), f"p1@{DOMAIN}"
        )
    assert not emulator.state.tenants[emulator.state.work_tenant_id].consented
    with pytest.raises(AuthorizationDeclined):
        read_admin_consent({"admin_consent": "False", "tenant": "x"})


async def test_wrong_client_secret_is_tandems_problem(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    emulator.state.tenants[emulator.state.work_tenant_id].consented = True
    wrong = ExchangeOnlineDirectory(
        _settings(emulator, microsoft_client_secret="nope"),
        http,
        {"tenant": emulator.state.work_tenant_id, "service_account": SERVICE},
    )
    with pytest.raises(ProviderMisconfigured):
        await wrong.verify()  # AADSTS7000215 invalid_client
    await wrong.aclose()


async def test_twenty_people_in_one_call_with_per_person_problems(
    emulator: RunningMicrosoft, directory: ExchangeOnlineDirectory
) -> None:
    state = emulator.state
    state.add_event(
        f"p0@{DOMAIN}",
        subject=SENTINEL,
        location=SENTINEL,
        start=T0 + timedelta(hours=9),
        end=T0 + timedelta(hours=10),
    )
    state.add_event(
        f"p1@{DOMAIN}",
        subject=SENTINEL,
        start=T0 + timedelta(hours=11),
        end=T0 + timedelta(hours=12),
        show_as="tentative",
    )
    state.deny_app_access(f"p2@{DOMAIN}")
    asked = [f"p{i}@{DOMAIN}" for i in range(19)] + [f"ghost@{DOMAIN}"]
    before = len(state.requests_to("/calendar/getSchedule"))
    answer = await directory.read_schedules(asked, T0, T0 + timedelta(days=61), "UTC")
    assert len(state.requests_to(f"/users/{SERVICE}/calendar/getSchedule")) - before == 1
    by = {p.email: p for p in answer}
    assert [p.email for p in answer] == asked
    assert by[f"p0@{DOMAIN}"].intervals[0].start == T0 + timedelta(hours=9)
    assert by[f"p1@{DOMAIN}"].intervals[0].kind.value == "tentative"
    assert by[f"p2@{DOMAIN}"].problem == UncoveredReason.ACCESS_DENIED
    assert by[f"ghost@{DOMAIN}"].problem == UncoveredReason.NO_MAILBOX
    assert by[f"p3@{DOMAIN}"].problem is None and by[f"p3@{DOMAIN}"].intervals == []
    assert SENTINEL not in repr(answer)
    with pytest.raises(ValueError, match="20"):
        await directory.read_schedules([*asked, "x@y.z"], T0, T0 + timedelta(days=1), "UTC")
    with pytest.raises(ValueError, match="62"):
        await directory.read_schedules(asked[:1], T0, T0 + timedelta(days=62), "UTC")


async def test_throttling_raises_rate_limited_with_the_hint(
    emulator: RunningMicrosoft, directory: ExchangeOnlineDirectory
) -> None:
    emulator.state.fail_next("/calendar/getSchedule", 429, headers={"Retry-After": "7"}, times=3)
    with pytest.raises(RateLimited) as caught:
        await directory.read_schedules([f"p1@{DOMAIN}"], T0, T0 + timedelta(days=1), "UTC")
    assert caught.value.retry_after == 7.0


async def test_meeting_created_in_the_service_mailbox_with_every_attendee(
    emulator: RunningMicrosoft, directory: ExchangeOnlineDirectory
) -> None:
    event = ExternalEvent(
        uid="m-1@tandem",
        title="Mentoring",
        description="Talk",
        location=None,
        start=T0 + timedelta(hours=14),
        end=T0 + timedelta(hours=15),
        time_zone="UTC",
        organizer_email=SERVICE,
        attendees=[EventAttendee(f"p0@{DOMAIN}", "Owner"), EventAttendee(f"p1@{DOMAIN}", "Guest")],
    )
    emulator.state.fail_after_commit(f"/users/{SERVICE}/events", 503)
    event_id = await directory.create_event(event)  # found by transactionId, not repeated
    mailbox = emulator.state.account(SERVICE).events
    assert list(mailbox) == [event_id]
    invited = {a["emailAddress"]["address"] for a in mailbox[event_id].attendees}
    assert invited == {f"p0@{DOMAIN}", f"p1@{DOMAIN}"}
    await directory.update_event(event_id, event)
    await directory.delete_event(event_id)
    await directory.delete_event(event_id)  # already gone is fine
    assert mailbox[event_id].deleted


async def test_app_only_tokens_are_refused_on_me(
    emulator: RunningMicrosoft, http: httpx.AsyncClient
) -> None:
    emulator.state.tenants[emulator.state.work_tenant_id].consented = True
    token = emulator.state.issue_app_token(emulator.state.work_tenant_id)
    answer = await http.get(
        f"{emulator.graph_base}/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 400
    assert "delegated" in answer.json()["error"]["message"]
