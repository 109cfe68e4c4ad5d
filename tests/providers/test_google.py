"""GoogleProvider end to end against the Google emulator on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from emulators.google import RunningGoogle, consent, start_google_emulator
from emulators.runner import free_port
from server.config import Settings
from server.providers.base import (
    AuthExpired,
    AuthorizationDeclined,
    BusyInterval,
    CalendarProvider,
    ConnectedAccount,
    Credentials,
    EventAttendee,
    ExternalEvent,
    InvalidCredentials,
    NoticeKind,
    OAuthProvider,
    ProviderName,
    ProviderUnavailable,
    RateLimited,
    SyncTokenExpired,
)
from server.providers.google import GoogleProvider, tandem_event_id
from server.providers.http_errors import RetryPolicy

REDIRECT_URI = "http://127.0.0.1:8000/calendar/google/callback"
ALICE = "alice@example.com"
SENTINEL = "ZZ-private-sentinel-7f3a"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2030, 1, day, hour, minute, tzinfo=UTC)


class FakeSleep:
    """Records requested sleeps instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def settings_for(running: RunningGoogle, **changes: Any) -> Settings:
    overrides = running.settings_overrides().items()
    fields: dict[str, Any] = {k.removeprefix("TANDEM_").lower(): v for k, v in overrides}
    return Settings(**{**fields, **changes})


@pytest.fixture
def google() -> Iterator[RunningGoogle]:
    running = start_google_emulator(redirect_uris=[REDIRECT_URI])
    running.state.add_account(ALICE)
    yield running
    running.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def provider(google: RunningGoogle, http: httpx.AsyncClient, sleep: FakeSleep) -> GoogleProvider:
    return GoogleProvider(settings_for(google), http, sleep=sleep)


async def connect(
    provider: GoogleProvider, http: httpx.AsyncClient, email: str = ALICE
) -> ConnectedAccount:
    start = provider.begin_authorization(REDIRECT_URI)
    params = await consent(http, start.url, email)
    return await provider.finish_authorization(start.flow, params, REDIRECT_URI)


def meeting(**changes: object) -> ExternalEvent:
    values: dict[str, object] = {
        "uid": "meeting-1@tandem.example",
        "title": "Mentoring session",
        "description": "Agenda: goals",
        "location": None,
        "start": at(8, 9),
        "end": at(8, 10),
        "time_zone": "Europe/Zurich",
        "organizer_email": ALICE,
        "attendees": [EventAttendee(ALICE, response="accepted"), EventAttendee("bob@example.com")],
    }
    values.update(changes)
    return ExternalEvent(**values)  # type: ignore[arg-type]


# --- authorization ---------------------------------------------------------------------


def test_provider_satisfies_the_oauth_protocol(provider: GoogleProvider) -> None:
    typed: OAuthProvider = provider  # mypy checks the whole protocol here
    assert isinstance(typed, CalendarProvider)
    assert typed.name is ProviderName.GOOGLE


def test_authorization_url_has_pkce_offline_and_scopes_but_no_verifier(
    provider: GoogleProvider,
) -> None:
    start = provider.begin_authorization(REDIRECT_URI)
    query = {k: v[0] for k, v in parse_qs(urlsplit(start.url).query).items()}
    assert query["state"] == start.state
    assert query["code_challenge_method"] == "S256"
    assert query["access_type"] == "offline"
    assert query["prompt"] == "consent"
    assert query["include_granted_scopes"] == "true"
    scopes = query["scope"].split()
    assert {"openid", "email"} <= set(scopes)
    assert "https://www.googleapis.com/auth/calendar.freebusy" in scopes
    assert "https://www.googleapis.com/auth/calendar.events" in scopes
    assert start.flow["code_verifier"] not in start.url
    assert provider.begin_authorization(REDIRECT_URI).state != start.state


async def test_full_consent_flow_connects_the_account(
    provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    account = await connect(provider, http)
    assert account.account_email == ALICE
    assert account.label == "Google"
    secret = account.credentials.secret
    assert set(secret) == {"access_token", "refresh_token", "expires_at", "scope"}
    assert secret["expires_at"] > datetime.now(UTC).timestamp() + 3000
    assert secret["access_token"] not in repr(account)
    result = await provider.fetch_busy(account.credentials, at(7, 0), at(8, 0), "UTC")
    assert result.readable
    assert result.intervals == []


async def test_declined_consent_raises_declined(
    provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    start = provider.begin_authorization(REDIRECT_URI)
    params = await consent(http, start.url, ALICE, allow=False)
    assert params == {"error": "access_denied", "state": start.state}
    with pytest.raises(AuthorizationDeclined, match="declined"):
        await provider.finish_authorization(start.flow, params, REDIRECT_URI)


async def test_forged_state_is_declined_without_exchanging_the_code(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    start = provider.begin_authorization(REDIRECT_URI)
    params = await consent(http, start.url, ALICE)
    with pytest.raises(AuthorizationDeclined):
        await provider.finish_authorization(start.flow, {**params, "state": "forged"}, REDIRECT_URI)
    assert google.state.requests_to("/token") == []


async def test_wrong_pkce_verifier_is_refused_by_google(
    provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    start = provider.begin_authorization(REDIRECT_URI)
    params = await consent(http, start.url, ALICE)
    flow = {**start.flow, "code_verifier": "x" * 64}
    with pytest.raises(InvalidCredentials):
        await provider.finish_authorization(flow, params, REDIRECT_URI)


async def test_an_authorization_code_works_once(
    provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    start = provider.begin_authorization(REDIRECT_URI)
    params = await consent(http, start.url, ALICE)
    await provider.finish_authorization(start.flow, params, REDIRECT_URI)
    with pytest.raises(InvalidCredentials):
        await provider.finish_authorization(start.flow, params, REDIRECT_URI)


# --- tokens ---------------------------------------------------------------------------


async def test_token_is_refreshed_ahead_of_expiry(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    credentials = (await connect(provider, http)).credentials
    old_token = credentials.secret["access_token"]
    credentials.secret["expires_at"] = int(datetime.now(UTC).timestamp()) + 10
    await provider.fetch_busy(credentials, at(7, 0), at(8, 0), "UTC")
    assert credentials.changed
    assert credentials.secret["access_token"] != old_token
    assert credentials.secret["expires_at"] > datetime.now(UTC).timestamp() + 3000
    assert len(google.state.requests_to("/token")) == 2  # the code exchange, one refresh
    assert len(google.state.requests_to("/freeBusy")) == 1


async def test_401_refreshes_once_and_retries(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    credentials = (await connect(provider, http)).credentials
    google.state.expire_access_tokens()
    result = await provider.fetch_busy(credentials, at(7, 0), at(8, 0), "UTC")
    assert result.readable
    assert credentials.changed
    assert len(google.state.requests_to("/freeBusy")) == 2
    assert len(google.state.requests_to("/token")) == 2


async def test_revoked_grant_raises_auth_expired(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    credentials = (await connect(provider, http)).credentials
    google.state.revoke_all(ALICE)
    with pytest.raises(AuthExpired) as caught:
        await provider.fetch_busy(credentials, at(7, 0), at(8, 0), "UTC")
    assert credentials.secret["refresh_token"] not in str(caught.value)
    assert credentials.secret["access_token"] not in str(caught.value)


async def test_revoke_kills_the_refresh_token_and_is_repeatable(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    credentials = (await connect(provider, http)).credentials
    await provider.revoke(credentials)
    answer = await http.post(
        f"{google.base_url}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": credentials.secret["refresh_token"],
            "client_id": google.client_id,
            "client_secret": google.client_secret,
        },
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    await provider.revoke(credentials)  # already revoked: no error
    assert [r.method for r in google.state.requests_to("/revoke")] == ["POST", "POST"]


# --- free/busy ------------------------------------------------------------------------


def timed(start: datetime, end: datetime, **extra: object) -> dict[str, object]:
    return {
        "summary": SENTINEL,
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": end.isoformat()},
        **extra,
    }


async def test_busy_follows_googles_rules(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    state = google.state
    state.add_account("zoe@example.com", time_zone="Europe/Zurich")
    state.add_event("zoe@example.com", timed(at(7, 9), at(7, 10)))  # opaque by default
    state.add_event("zoe@example.com", timed(at(7, 11), at(7, 12), transparency="transparent"))
    state.add_event("zoe@example.com", timed(at(7, 13), at(7, 14), status="cancelled"))
    declined = [{"email": "zoe@example.com", "responseStatus": "declined"}]
    state.add_event("zoe@example.com", timed(at(7, 15), at(7, 16), attendees=declined))
    state.add_event("zoe@example.com", timed(at(6, 23), at(7, 1)))  # crosses the window start
    state.add_event("zoe@example.com", timed(at(7, 9, 30), at(7, 10, 30)))  # overlaps the first
    state.add_event(
        "zoe@example.com", {"start": {"date": "2030-01-08"}, "end": {"date": "2030-01-09"}}
    )
    credentials = (await connect(provider, http, "zoe@example.com")).credentials
    result = await provider.fetch_busy(credentials, at(7, 0), at(9, 0), "Europe/Zurich")
    assert result.readable
    assert result.intervals == [
        BusyInterval(at(7, 0), at(7, 1)),
        BusyInterval(at(7, 9), at(7, 10, 30)),
        # the all-day event blocks Zurich's 8 January (UTC+1)
        BusyInterval(at(7, 23), at(8, 23)),
    ]
    assert all(i.start.tzinfo is UTC for i in result.intervals)


async def test_long_windows_are_split_and_rejoined(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    boundary = start + timedelta(days=60)
    google.state.add_event(
        ALICE, timed(boundary - timedelta(hours=1), boundary + timedelta(hours=1))
    )
    credentials = (await connect(provider, http)).credentials
    result = await provider.fetch_busy(credentials, start, start + timedelta(days=150), "UTC")
    assert len(google.state.requests_to("/freeBusy")) == 3
    assert result.intervals == [
        BusyInterval(boundary - timedelta(hours=1), boundary + timedelta(hours=1))
    ]


async def test_unreadable_calendar_is_unknown_not_free(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    google.state.add_event(ALICE, timed(at(7, 9), at(7, 10)))
    credentials = (await connect(provider, http)).credentials
    google.state.set_unreadable(ALICE)
    result = await provider.fetch_busy(credentials, at(7, 0), at(8, 0), "UTC")
    assert result.readable is False
    assert result.intervals == []


# --- transient failures -----------------------------------------------------------------


async def test_429_with_short_retry_after_is_retried(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient, sleep: FakeSleep
) -> None:
    credentials = (await connect(provider, http)).credentials
    google.state.fail_next("/freeBusy", 429, headers={"Retry-After": "1"})
    result = await provider.fetch_busy(credentials, at(7, 0), at(8, 0), "UTC")
    assert result.readable
    assert sleep.delays == [1.0]


async def test_long_retry_after_is_left_to_the_caller(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient, sleep: FakeSleep
) -> None:
    credentials = (await connect(provider, http)).credentials
    google.state.fail_next("/freeBusy", 429, headers={"Retry-After": "120"})
    with pytest.raises(RateLimited) as caught:
        await provider.fetch_busy(credentials, at(7, 0), at(8, 0), "UTC")
    assert caught.value.retry_after == 120.0
    assert sleep.delays == []


async def test_403_user_rate_limit_is_rate_limited(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient, sleep: FakeSleep
) -> None:
    credentials = (await connect(provider, http)).credentials
    body = {
        "error": {
            "errors": [
                {
                    "domain": "usageLimits",
                    "reason": "userRateLimitExceeded",
                    "message": "User Rate Limit Exceeded",
                }
            ],
            "code": 403,
            "message": "User Rate Limit Exceeded",
        }
    }
    google.state.fail_next("/freeBusy", 403, body=body, times=3)
    with pytest.raises(RateLimited):
        await provider.fetch_busy(credentials, at(7, 0), at(8, 0), "UTC")
    assert len(sleep.delays) == 2
    assert all(0 <= d <= RetryPolicy().max_delay for d in sleep.delays)


async def test_persistent_503_is_unavailable(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    credentials = (await connect(provider, http)).credentials
    google.state.fail_next("/freeBusy", 503, times=5)
    with pytest.raises(ProviderUnavailable, match="503"):
        await provider.fetch_busy(credentials, at(7, 0), at(8, 0), "UTC")
    assert len(google.state.requests_to("/freeBusy")) == 3


async def test_unreachable_google_is_unavailable(
    google: RunningGoogle, http: httpx.AsyncClient, sleep: FakeSleep
) -> None:
    settings = settings_for(google, google_api_base=f"http://127.0.0.1:{free_port()}/calendar/v3")
    provider = GoogleProvider(settings, http, sleep=sleep)
    credentials = (await connect(provider, http)).credentials
    with pytest.raises(ProviderUnavailable, match="unreachable"):
        await provider.fetch_busy(credentials, at(7, 0), at(8, 0), "UTC")


# --- Tandem's own events ----------------------------------------------------------------


async def test_create_event_is_idempotent_and_records_send_updates(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    credentials = (await connect(provider, http)).credentials
    first = await provider.create_event(credentials, meeting(), send_invitations=True)
    again = await provider.create_event(
        credentials, meeting(title="Renamed"), send_invitations=False
    )
    assert first == again
    stored = google.state.events[ALICE]
    assert list(stored) == [first]
    assert stored[first].data["summary"] == "Renamed"
    # The owner's event carries the meeting's own UID, so guests see one event.
    assert stored[first].data["iCalUID"] == "meeting-1@tandem.example"
    assert stored[first].data["extendedProperties"]["private"]["tandem_uid"] == (
        "meeting-1@tandem.example"
    )
    calls = [(r.method, r.send_updates) for r in google.state.requests_to("/events")]
    assert calls == [("GET", None), ("POST", "all"), ("GET", None), ("PATCH", "none")]
    inserted = google.state.requests_to("/events", "POST")[0]
    assert "iCalUID" in inserted.param_names and "id" not in inserted.param_names


async def test_a_retried_create_after_a_lost_answer_patches_the_first_event(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    """The insert landed but its answer was lost: the retry finds the event by UID (and a
    race that loses the insert to a 409 does too) instead of making a second one."""
    credentials = (await connect(provider, http)).credentials
    first = await provider.create_event(credentials, meeting(), send_invitations=False)
    google.state.fail_next("/calendar/v3/calendars/primary/events", 200, {"items": []})
    again = await provider.create_event(credentials, meeting(title="Again"), send_invitations=False)
    assert again == first
    assert [e.data["summary"] for e in google.state.events[ALICE].values()] == ["Again"]


async def test_events_made_with_the_old_client_ids_are_still_tandems(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    credentials = (await connect(provider, http)).credentials
    legacy = tandem_event_id("old-1@tandem.example")
    google.state.add_event(
        ALICE,
        {
            "id": legacy,
            "summary": "Old meeting",
            "start": {"dateTime": "2030-01-08T10:00:00Z"},
            "end": {"dateTime": "2030-01-08T11:00:00Z"},
            "extendedProperties": {"private": {"tandem_uid": "old-1@tandem.example"}},
        },
    )
    batch = await provider.read_changes(credentials, None, at(7, 0), at(9, 0))
    assert [(c.provider_event_id, c.title) for c in batch.changes] == [(legacy, "Old meeting")]


async def test_update_and_delete_event(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    credentials = (await connect(provider, http)).credentials
    event_id = await provider.create_event(credentials, meeting(), send_invitations=False)
    await provider.update_event(
        credentials, event_id, meeting(start=at(8, 11), end=at(8, 12)), send_invitations=True
    )
    data = google.state.events[ALICE][event_id].data
    assert data["start"] == {"dateTime": "2030-01-08T12:00:00+01:00", "timeZone": "Europe/Zurich"}
    await provider.delete_event(credentials, event_id, send_invitations=True)
    assert google.state.events[ALICE][event_id].data["status"] == "cancelled"
    await provider.delete_event(credentials, event_id, send_invitations=True)  # 410: fine
    assert [r.send_updates for r in google.state.requests_to(event_id)] == ["all", "all", "all"]


async def test_read_changes_full_incremental_and_expired_token(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    state = google.state
    state.add_event(ALICE, timed(at(8, 13), at(8, 14), description=SENTINEL))
    credentials = (await connect(provider, http)).credentials
    event_id = await provider.create_event(credentials, meeting(), send_invitations=False)

    full = await provider.read_changes(credentials, None, at(1, 0), at(20, 0))
    assert [c.provider_event_id for c in full.changes] == [event_id]
    change = full.changes[0]
    assert (change.title, change.start, change.end) == ("Mentoring session", at(8, 9), at(8, 10))
    assert change.attendee_responses == {ALICE: "accepted", "bob@example.com": "needs_action"}
    assert full.sync_token

    stored = state.events[ALICE][event_id].data
    stored["attendees"][1]["responseStatus"] = "declined"
    state.put_event(ALICE, stored)  # Bob declines in his calendar
    state.add_event(ALICE, timed(at(9, 8), at(9, 9)))  # not Tandem's
    incremental = await provider.read_changes(credentials, full.sync_token, at(1, 0), at(20, 0))
    assert [c.attendee_responses.get("bob@example.com") for c in incremental.changes] == [
        "declined"
    ]

    await provider.delete_event(credentials, event_id, send_invitations=False)
    deleted = await provider.read_changes(credentials, incremental.sync_token, at(1, 0), at(20, 0))
    assert [(c.provider_event_id, c.deleted) for c in deleted.changes] == [(event_id, True)]

    state.invalidate_sync_tokens()
    with pytest.raises(SyncTokenExpired):
        await provider.read_changes(credentials, deleted.sync_token, at(1, 0), at(20, 0))


async def test_read_changes_follows_pages(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    credentials = (await connect(provider, http)).credentials
    for index in range(260):
        google.state.add_event(ALICE, timed(at(10, 8), at(10, 9), id=f"other{index:04d}"))
    event_id = await provider.create_event(
        credentials, meeting(start=at(11, 9), end=at(11, 10)), send_invitations=False
    )
    batch = await provider.read_changes(credentials, None, at(1, 0), at(20, 0))
    assert [c.provider_event_id for c in batch.changes] == [event_id]
    listings = [
        r for r in google.state.requests_to("/events", "GET") if "iCalUID" not in r.param_names
    ]
    assert len(listings) == 2
    assert batch.sync_token


async def test_push_channel_open_and_close(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    credentials = (await connect(provider, http)).credentials
    channel = await provider.open_push_channel(
        credentials, "https://tandem.example/webhooks/google", "verify-me"
    )
    assert channel.resource_id
    assert timedelta(days=6) < channel.expires_at - datetime.now(UTC) <= timedelta(days=7)
    stored = google.state.channels[channel.channel_id]
    assert (stored.token, stored.email) == ("verify-me", ALICE)
    await provider.close_push_channel(credentials, channel)
    assert google.state.channels == {}
    await provider.close_push_channel(credentials, channel)  # already gone: fine


async def test_push_channel_renewal_replaces_the_channel(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    """Google cannot extend a channel: renewal opens a new one with the new secret and
    stops the old one."""
    credentials = (await connect(provider, http)).credentials
    address = "https://tandem.example/webhooks/google"
    old = await provider.open_push_channel(credentials, address, "first")
    new = await provider.renew_push_channel(credentials, old, address, "second")
    assert new.channel_id != old.channel_id
    assert list(google.state.channels) == [new.channel_id]
    assert google.state.channels[new.channel_id].token == "second"


def test_notifications_are_read_from_headers(provider: GoogleProvider) -> None:
    headers = {
        "x-goog-channel-id": "chan-1",
        "x-goog-channel-token": "secret",
        "x-goog-resource-id": "res-1",
        "x-goog-resource-state": "exists",
    }
    (notice,) = provider.read_notifications(headers, None)
    assert (notice.channel_id, notice.secret, notice.resource_id) == ("chan-1", "secret", "res-1")
    assert notice.kind == NoticeKind.CHANGED
    (hello,) = provider.read_notifications({**headers, "x-goog-resource-state": "sync"}, None)
    assert hello.kind == NoticeKind.HELLO
    assert provider.read_notifications({}, None) == []


# --- privacy ----------------------------------------------------------------------------


async def test_private_event_details_never_leave_the_provider(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    details = {
        "description": SENTINEL,
        "location": SENTINEL,
        "attendees": [{"email": f"{SENTINEL}@example.com"}],
    }
    google.state.add_event(ALICE, timed(at(7, 9), at(7, 10), **details))
    google.state.add_event(ALICE, timed(at(7, 11), at(7, 12), id="tandemlookalike0", **details))
    credentials = (await connect(provider, http)).credentials
    busy = await provider.fetch_busy(credentials, at(7, 0), at(8, 0), "UTC")
    changes = await provider.read_changes(credentials, None, at(7, 0), at(8, 0))
    google.state.revoke_all(ALICE)
    with pytest.raises(AuthExpired) as caught:
        await provider.fetch_busy(credentials, at(7, 0), at(8, 0), "UTC")
    assert busy.intervals == [BusyInterval(at(7, 9), at(7, 10)), BusyInterval(at(7, 11), at(7, 12))]
    assert changes.changes == []
    for value in (busy, changes, caught.value, credentials):
        assert SENTINEL not in repr(value)
        assert SENTINEL not in str(value)


def test_credentials_repr_hides_tokens() -> None:
    credentials = Credentials(ProviderName.GOOGLE, {"access_token": "ya29.secret"})
    assert "ya29.secret" not in repr(credentials)


async def test_optional_attendees_are_written_optional(
    google: RunningGoogle, provider: GoogleProvider, http: httpx.AsyncClient
) -> None:
    credentials = (await connect(provider, http)).credentials
    attendees = [
        EventAttendee(ALICE, response="accepted"),
        EventAttendee("bob@example.com"),
        EventAttendee("cy@example.com", optional=True),
    ]
    event_id = await provider.create_event(
        credentials, meeting(attendees=attendees), send_invitations=False
    )
    stored = google.state.events[ALICE][event_id].data["attendees"]
    assert {a["email"]: a.get("optional", False) for a in stored} == {
        ALICE: False,
        "bob@example.com": False,
        "cy@example.com": True,
    }
