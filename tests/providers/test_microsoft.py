"""MicrosoftProvider end to end: real msal and httpx against the HTTPS emulator."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from emulators.microsoft import RunningMicrosoft, start_microsoft_emulator
from emulators.runner import client_ssl_context
from server.config import Settings
from server.providers.base import (
    AccessDenied,
    AuthExpired,
    AuthorizationDeclined,
    BusyInterval,
    BusyKind,
    CalendarProvider,
    ConnectedAccount,
    Credentials,
    EventAttendee,
    ExternalEvent,
    InvalidCredentials,
    OAuthProvider,
    OutcomeUnknown,
    ProviderMisconfigured,
    ProviderName,
    ProviderUnavailable,
    RateLimited,
    SyncTokenExpired,
)
from server.providers.microsoft import MicrosoftProvider

WORK = "ada@contoso.example"
HOME = "grace@outlook.example"
REDIRECT = "http://127.0.0.1:8000/calendar/microsoft/callback"
SENTINEL = "CANARY-7f3e9b"
T0 = datetime(2030, 1, 7, tzinfo=UTC)  # a Monday


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[RunningMicrosoft]:
    running = start_microsoft_emulator(tmp_path)
    running.state.add_account(WORK, name="Ada Lovelace")
    running.state.add_account(HOME, name="Grace Hopper", personal=True)
    yield running
    running.stop()


@pytest.fixture
async def http(emulator: RunningMicrosoft) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=client_ssl_context(emulator.ca_path)) as client:
        yield client


MakeProvider = Callable[..., MicrosoftProvider]


@pytest.fixture
def make_provider(emulator: RunningMicrosoft) -> Iterator[MakeProvider]:
    """Providers on the emulator's settings; closed (msal's HTTP client) after the test."""
    made: list[MicrosoftProvider] = []
    overrides: dict[str, Any] = {
        k.removeprefix("TANDEM_").lower(): v for k, v in emulator.settings_overrides().items()
    }

    def make(http: httpx.AsyncClient, **kwargs: Any) -> MicrosoftProvider:
        made.append(MicrosoftProvider(Settings(**overrides), http, **kwargs))
        return made[-1]

    yield make
    for item in made:
        item.close()


@pytest.fixture
def provider(make_provider: MakeProvider, http: httpx.AsyncClient) -> MicrosoftProvider:
    return make_provider(http)


async def click_consent(
    http: httpx.AsyncClient, auth_url: str, email: str, action: str = "accept"
) -> dict[str, str]:
    """What a browser does: open the consent page, pick the account, press a button."""
    page = await http.get(auth_url)
    assert page.status_code == 200
    match = re.search(r"name='request' value='([^']+)'", page.text)
    assert match is not None
    answer = await http.post(
        auth_url, data={"request": match.group(1), "account": email, "action": action}
    )
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT)
    return dict(parse_qsl(urlsplit(location).query))


async def connect(
    provider: MicrosoftProvider, http: httpx.AsyncClient, email: str
) -> ConnectedAccount:
    start = provider.begin_authorization(REDIRECT)
    params = await click_consent(http, start.url, email)
    return await provider.finish_authorization(start.flow, params, REDIRECT)


def refresh_tokens_in(credentials: Credentials) -> list[str]:
    cache = json.loads(credentials.secret["token_cache"])
    return [entry["secret"] for entry in cache["RefreshToken"].values()]


# -- authorization ---------------------------------------------------------------------------
def test_provider_satisfies_protocol(provider: MicrosoftProvider) -> None:
    typed: OAuthProvider = provider  # mypy checks the protocol statically
    assert isinstance(typed, CalendarProvider)
    assert provider.name is ProviderName.MICROSOFT


async def test_work_account_connects_as_office_365(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    start = provider.begin_authorization(REDIRECT)
    assert start.url.startswith(emulator.authority + "/oauth2/v2.0/authorize?")
    assert "Calendars.ReadWrite" in start.url
    assert start.flow["state"] == start.state
    connected = await connect(provider, http, WORK)
    assert connected.label == "Office 365"
    assert connected.account_email == WORK
    secret = connected.credentials.secret
    assert secret["personal"] is False
    assert secret["email"] == WORK
    assert secret["home_account_id"].endswith(emulator.state.work_tenant_id)
    assert refresh_tokens_in(connected.credentials)
    assert "token_cache" not in repr(connected.credentials)
    assert secret["token_cache"] not in repr(connected)


async def test_personal_account_connects_as_outlook_com(
    provider: MicrosoftProvider, http: httpx.AsyncClient
) -> None:
    connected = await connect(provider, http, HOME)
    assert connected.label == "Outlook.com"
    assert connected.credentials.secret["personal"] is True
    assert connected.account_email == HOME


async def test_declined_consent_raises_declined(
    provider: MicrosoftProvider, http: httpx.AsyncClient
) -> None:
    start = provider.begin_authorization(REDIRECT)
    params = await click_consent(http, start.url, WORK, action="cancel")
    assert params["error"] == "access_denied"
    with pytest.raises(AuthorizationDeclined):
        await provider.finish_authorization(start.flow, params, REDIRECT)


async def test_state_mismatch_raises_declined(
    provider: MicrosoftProvider, http: httpx.AsyncClient
) -> None:
    start = provider.begin_authorization(REDIRECT)
    params = await click_consent(http, start.url, WORK)
    params["state"] = "forged"
    with pytest.raises(AuthorizationDeclined):
        await provider.finish_authorization(start.flow, params, REDIRECT)


async def test_reused_code_raises_invalid_credentials(
    provider: MicrosoftProvider, http: httpx.AsyncClient
) -> None:
    start = provider.begin_authorization(REDIRECT)
    params = await click_consent(http, start.url, WORK)
    await provider.finish_authorization(dict(start.flow), params, REDIRECT)
    with pytest.raises(InvalidCredentials) as caught:
        await provider.finish_authorization(dict(start.flow), params, REDIRECT)
    assert params["code"] not in str(caught.value)


# -- tokens ----------------------------------------------------------------------------------
async def test_expired_access_token_refreshes_with_rotation(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    old_refresh = refresh_tokens_in(credentials)
    emulator.state.expire_access_tokens()

    result = await provider.fetch_busy(credentials, T0, T0 + timedelta(days=1), "UTC")

    assert result.readable
    assert credentials.changed
    new_refresh = refresh_tokens_in(credentials)
    assert set(new_refresh).isdisjoint(old_refresh)
    refused = await http.post(
        emulator.authority + "/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": old_refresh[0],
            "client_id": emulator.state.client_id,
            "client_secret": emulator.state.client_secret,
        },
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert refused.json()["error_description"].startswith("AADSTS70008")
    emulator.state.expire_access_tokens()
    again = await provider.fetch_busy(credentials, T0, T0 + timedelta(days=1), "UTC")
    assert again.readable  # the rotated token persisted in the credentials works


async def test_racing_copies_of_credentials_survive_rotation(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    stored = (await connect(provider, http, WORK)).credentials
    first = Credentials(ProviderName.MICROSOFT, dict(stored.secret))
    second = Credentials(ProviderName.MICROSOFT, dict(stored.secret))
    emulator.state.expire_access_tokens()
    await provider.fetch_busy(first, T0, T0 + timedelta(hours=1), "UTC")
    emulator.state.expire_access_tokens()
    result = await provider.fetch_busy(second, T0, T0 + timedelta(hours=1), "UTC")
    assert result.readable
    assert second.changed


async def test_refused_token_goes_to_the_callers_renew_hook_not_a_refresh(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    """A caller that serialises refreshes across processes gets the 401 and hands back
    newer credentials; the provider then uses them without refreshing on its own."""
    stored = (await connect(provider, http, WORK)).credentials
    newer = Credentials(ProviderName.MICROSOFT, dict(stored.secret))
    emulator.state.expire_access_tokens()
    await provider.refresh_tokens(newer, force=True)  # "another node" refreshed
    assert newer.changed and refresh_tokens_in(newer) != refresh_tokens_in(stored)
    calls: list[list[str]] = []

    async def renew(refused: Credentials) -> None:
        calls.append(refresh_tokens_in(refused))
        refused.secret = dict(newer.secret)

    stored.renew = renew
    before = refresh_tokens_in(stored)
    result = await provider.fetch_busy(stored, T0, T0 + timedelta(hours=1), "UTC")
    assert result.readable
    assert calls == [before]
    assert refresh_tokens_in(stored) == refresh_tokens_in(newer)  # no refresh of its own
    assert not stored.changed


async def test_refresh_tokens_refreshes_ahead_only_near_expiry(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    before = refresh_tokens_in(credentials)
    await provider.refresh_tokens(credentials, min_valid_seconds=600)  # valid for an hour
    assert not credentials.changed and refresh_tokens_in(credentials) == before
    await provider.refresh_tokens(credentials, min_valid_seconds=2 * 3600)
    assert credentials.changed and set(refresh_tokens_in(credentials)).isdisjoint(before)


async def test_revoked_grant_raises_auth_expired(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    emulator.state.revoke_all(WORK)
    with pytest.raises(AuthExpired) as caught:
        await provider.fetch_busy(credentials, T0, T0 + timedelta(days=1), "UTC")
    for token in refresh_tokens_in(credentials):
        assert token not in str(caught.value)


async def test_revoke_is_a_no_op(provider: MicrosoftProvider, http: httpx.AsyncClient) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    before = dict(credentials.secret)
    await provider.revoke(credentials)
    assert credentials.secret == before
    assert not credentials.changed


# -- free/busy: work accounts ----------------------------------------------------------------
async def test_schedule_maps_statuses_and_drops_free(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    seed = emulator.state.add_event
    hour = timedelta(hours=1)
    seed(WORK, subject="Busy", start=T0 + 9 * hour, end=T0 + 10 * hour, show_as="busy")
    seed(WORK, subject="Maybe", start=T0 + 11 * hour, end=T0 + 12 * hour, show_as="tentative")
    seed(WORK, subject="Away", start=T0 + 13 * hour, end=T0 + 14 * hour, show_as="oof")
    seed(WORK, subject="Free", start=T0 + 15 * hour, end=T0 + 16 * hour, show_as="free")
    seed(
        WORK,
        subject="Home",
        start=T0 + 16 * hour,
        end=T0 + 17 * hour,
        show_as="workingElsewhere",
    )
    seed(WORK, subject="Late", start=T0 + 23 * hour, end=T0 + 26 * hour)

    result = await provider.fetch_busy(credentials, T0, T0 + 24 * hour, "Europe/Berlin")

    assert result.readable
    assert result.intervals == [
        BusyInterval(T0 + 9 * hour, T0 + 10 * hour, BusyKind.BUSY),
        BusyInterval(T0 + 11 * hour, T0 + 12 * hour, BusyKind.TENTATIVE),
        BusyInterval(T0 + 13 * hour, T0 + 14 * hour, BusyKind.OUT_OF_OFFICE),
        BusyInterval(T0 + 23 * hour, T0 + 24 * hour, BusyKind.BUSY),  # clipped
    ]
    (call,) = emulator.state.requests_to("/getSchedule")
    assert call.prefer == 'outlook.timezone="UTC"'


async def test_schedule_error_falls_back_to_own_calendar_and_unknown_is_unreadable(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    hour = timedelta(hours=1)
    emulator.state.add_event(WORK, subject="x", start=T0 + 2 * hour, end=T0 + 3 * hour)
    emulator.state.set_schedule_error(WORK, "Mailbox moving")
    fallback = await provider.fetch_busy(credentials, T0, T0 + timedelta(days=1), "UTC")
    assert fallback.readable  # read from the user's own calendarView instead
    assert fallback.intervals == [BusyInterval(T0 + 2 * hour, T0 + 3 * hour, BusyKind.BUSY)]
    assert len(emulator.state.requests_to("/calendarView")) == 1

    emulator.state.set_schedule_error(WORK, None)
    emulator.state.add_event(
        WORK, subject="?", start=T0, end=T0 + timedelta(hours=1), show_as="unknown"
    )
    unknown = await provider.fetch_busy(credentials, T0, T0 + timedelta(days=1), "UTC")
    assert not unknown.readable


async def test_long_window_is_split_under_62_days(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    hour = timedelta(hours=1)
    starts = [T0 + timedelta(days=d) for d in (3, 70, 125)]
    for start in starts:
        emulator.state.add_event(WORK, subject="x", start=start, end=start + hour)
    boundary = T0 + timedelta(days=61)
    emulator.state.add_event(WORK, subject="y", start=boundary - hour, end=boundary + hour)

    result = await provider.fetch_busy(credentials, T0, T0 + timedelta(days=130), "UTC")

    assert len(emulator.state.requests_to("/getSchedule")) == 3
    assert [i.start for i in result.intervals] == [starts[0], boundary - hour, *starts[1:]]
    assert result.intervals[1].end == boundary + hour  # one interval, not two pieces


# -- free/busy: personal accounts ------------------------------------------------------------
async def test_personal_account_reads_calendar_view(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, HOME)).credentials
    seed = emulator.state.add_event
    hour = timedelta(hours=1)
    seed(HOME, subject="Dentist", start=T0 + 9 * hour, end=T0 + 10 * hour)
    seed(HOME, subject="Off", start=T0 + 11 * hour, end=T0 + 12 * hour, is_cancelled=True)
    seed(HOME, subject="Free", start=T0 + 13 * hour, end=T0 + 14 * hour, show_as="free")
    seed(HOME, subject="Maybe", start=T0 + 15 * hour, end=T0 + 16 * hour, show_as="tentative")
    seed(
        HOME,
        subject="Home office",
        start=T0 + 17 * hour,
        end=T0 + 18 * hour,
        show_as="workingElsewhere",  # free, as on every provider
    )
    seed(
        HOME,
        subject="Holiday",
        start=date(2030, 1, 9),
        end=date(2030, 1, 10),
        is_all_day=True,
        time_zone="Asia/Tokyo",
    )

    result = await provider.fetch_busy(credentials, T0, T0 + timedelta(days=5), "America/New_York")

    assert result.readable
    assert result.intervals == [
        BusyInterval(T0 + 9 * hour, T0 + 10 * hour, BusyKind.BUSY),
        BusyInterval(T0 + 15 * hour, T0 + 16 * hour, BusyKind.TENTATIVE),
        # 2030-01-09 on the user's own calendar day in New York (UTC-5)
        BusyInterval(
            datetime(2030, 1, 9, 5, tzinfo=UTC),
            datetime(2030, 1, 10, 5, tzinfo=UTC),
            BusyKind.ALL_DAY,
        ),
    ]
    assert emulator.state.requests_to("/getSchedule") == []
    (call,) = emulator.state.requests_to("/calendarView")
    assert "$select" in call.params
    assert call.prefer == 'outlook.timezone="UTC"'


async def test_personal_calendar_view_follows_next_link(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, HOME)).credentials
    for index in range(205):
        start = T0 + timedelta(minutes=30 * index)
        emulator.state.add_event(HOME, subject="x", start=start, end=start + timedelta(minutes=15))
    result = await provider.fetch_busy(credentials, T0, T0 + timedelta(days=10), "UTC")
    assert len(result.intervals) == 205
    assert len(emulator.state.requests_to("/calendarView")) == 2


# -- retries and failures --------------------------------------------------------------------
async def test_429_is_retried_after_retry_after(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    emulator.state.fail_next("/getSchedule", 429, headers={"Retry-After": "0"})
    result = await provider.fetch_busy(credentials, T0, T0 + timedelta(days=1), "UTC")
    assert result.readable
    assert len(emulator.state.requests_to("/getSchedule")) == 2


async def test_persistent_throttling_raises_rate_limited(
    emulator: RunningMicrosoft, http: httpx.AsyncClient, make_provider: MakeProvider
) -> None:
    provider = make_provider(http, max_retry_wait=0.5)
    credentials = (await connect(provider, http, WORK)).credentials
    emulator.state.fail_next("/getSchedule", 429, headers={"Retry-After": "30"})
    with pytest.raises(RateLimited) as caught:
        await provider.fetch_busy(credentials, T0, T0 + timedelta(days=1), "UTC")
    assert caught.value.retry_after == 30
    assert len(emulator.state.requests_to("/getSchedule")) == 1  # 30 s is over budget

    emulator.state.fail_next("/getSchedule", 503, headers={"Retry-After": "0"}, times=5)
    with pytest.raises(ProviderUnavailable):
        await provider.fetch_busy(credentials, T0, T0 + timedelta(days=1), "UTC")
    assert len(emulator.state.requests_to("/getSchedule")) == 1 + 3


async def test_timeout_raises_unavailable(
    provider: MicrosoftProvider, http: httpx.AsyncClient, make_provider: MakeProvider
) -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    credentials = (await connect(provider, http, WORK)).credentials
    async with httpx.AsyncClient(transport=httpx.MockTransport(hang)) as slow:
        stalled = make_provider(slow)
        with pytest.raises(ProviderUnavailable):
            await stalled.fetch_busy(credentials, T0, T0 + timedelta(days=1), "UTC")


# -- events ----------------------------------------------------------------------------------
def meeting(uid: str = "m-1@tandem", title: str = "Mentoring") -> ExternalEvent:
    return ExternalEvent(
        uid=uid,
        title=title,
        description="Agenda",
        location=None,
        start=T0 + timedelta(hours=9),
        end=T0 + timedelta(hours=10),
        time_zone="Europe/Berlin",
        organizer_email=WORK,
        attendees=[EventAttendee(WORK, "Ada"), EventAttendee("bob@example.org", "Bob")],
    )


async def test_create_is_idempotent_then_update_and_delete(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    event_id = await provider.create_event(credentials, meeting(), send_invitations=True)
    assert "/" in event_id and "+" in event_id and event_id.endswith("=")  # like Exchange's
    again = await provider.create_event(credentials, meeting(), send_invitations=True)
    assert again == event_id  # Graph refused the repeat (400); the first was looked up
    assert len(emulator.state.requests_to("/me/events", "POST")) == 2
    stored = emulator.state.account(WORK).events[event_id]
    assert len(emulator.state.account(WORK).events) == 1
    assert stored.transaction_id == "m-1@tandem"
    assert stored.is_online_meeting is False
    assert [a["emailAddress"]["address"] for a in stored.attendees] == ["bob@example.org"]
    assert (stored.start, stored.end) == (T0 + timedelta(hours=9), T0 + timedelta(hours=10))

    await provider.update_event(
        credentials, event_id, meeting(title="Mentoring (moved)"), send_invitations=True
    )
    assert emulator.state.account(WORK).events[event_id].subject == "Mentoring (moved)"

    await provider.delete_event(credentials, event_id, send_invitations=True)
    assert emulator.state.account(WORK).events[event_id].deleted
    await provider.delete_event(credentials, event_id, send_invitations=True)  # gone is fine


async def test_read_changes_reports_only_tandem_events(
    emulator: RunningMicrosoft, http: httpx.AsyncClient, make_provider: MakeProvider
) -> None:
    provider = make_provider(http, owns_uid=lambda uid: uid.endswith("@tandem"))
    credentials = (await connect(provider, http, WORK)).credentials
    state = emulator.state
    window = (T0 - timedelta(days=1), T0 + timedelta(days=30))
    event_id = await provider.create_event(credentials, meeting(), send_invitations=True)
    state.add_event(
        WORK,
        subject=f"Private {SENTINEL}",
        start=T0,
        end=T0 + timedelta(hours=1),
        transaction_id="other-app-123",
    )
    state.add_event(WORK, subject=SENTINEL, start=T0, end=T0 + timedelta(hours=2))

    first = await provider.read_changes(credentials, None, *window)
    assert [c.provider_event_id for c in first.changes] == [event_id]
    assert first.changes[0].title == "Mentoring"
    assert first.changes[0].description == "Agenda"
    assert first.sync_token is not None
    assert SENTINEL not in repr(first)

    state.set_response(WORK, event_id, "bob@example.org", "tentativelyAccepted")
    state.update_event(WORK, event_id, subject="Renamed in Outlook")
    second = await provider.read_changes(credentials, first.sync_token, *window)
    (change,) = second.changes
    assert change.title == "Renamed in Outlook"
    assert change.attendee_responses == {"bob@example.org": "tentative"}
    assert change.start == T0 + timedelta(hours=9)

    state.remove_event(WORK, event_id)
    third = await provider.read_changes(credentials, second.sync_token, *window)
    assert [(c.provider_event_id, c.deleted) for c in third.changes] == [(event_id, True)]

    state.invalidate_delta_tokens()
    with pytest.raises(SyncTokenExpired):
        await provider.read_changes(credentials, third.sync_token, *window)


async def test_push_channel_open_renew_close(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    channel = await provider.open_push_channel(
        credentials, "https://tandem.example/hooks/microsoft", "s3cret-state"
    )
    stored = emulator.state.subscriptions[channel.channel_id]
    assert stored["resource"] == "/me/events"
    assert stored["clientState"] == "s3cret-state"
    assert channel.expires_at > datetime.now(UTC) + timedelta(days=2)
    renewed = await provider.renew_push_channel(
        credentials, channel, "https://tandem.example/hooks/microsoft", "unused"
    )
    assert renewed.expires_at >= channel.expires_at
    assert renewed.channel_id == channel.channel_id
    await provider.close_push_channel(credentials, channel)
    assert channel.channel_id not in emulator.state.subscriptions
    await provider.close_push_channel(credentials, channel)  # already gone is fine


# -- privacy ---------------------------------------------------------------------------------
async def test_event_details_never_leave_the_provider(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    work = (await connect(provider, http, WORK)).credentials
    home = (await connect(provider, http, HOME)).credentials
    for email in (WORK, HOME):
        for day in range(3):
            start = T0 + timedelta(days=day, hours=10)
            emulator.state.add_event(
                email,
                subject=f"Therapy {SENTINEL}",
                location=f"Clinic {SENTINEL}",
                body=f"Notes {SENTINEL}",
                start=start,
                end=start + timedelta(hours=1),
                attendees=[
                    {
                        "type": "required",
                        "status": {"response": "none"},
                        "emailAddress": {"address": f"{SENTINEL}@x.example", "name": SENTINEL},
                    }
                ],
            )
    busy = [
        await provider.fetch_busy(work, T0, T0 + timedelta(days=5), "UTC"),
        await provider.fetch_busy(home, T0, T0 + timedelta(days=5), "UTC"),
    ]
    changes = [
        await provider.read_changes(work, None, T0, T0 + timedelta(days=5)),
        await provider.read_changes(home, None, T0, T0 + timedelta(days=5)),
    ]
    assert [len(b.intervals) for b in busy] == [3, 3]
    text = repr(busy) + repr(changes) + repr(provider) + json.dumps([work.secret, home.secret])
    assert SENTINEL not in text
    assert SENTINEL not in repr(vars(provider))


# -- Graph as it really behaves: retried creates ------------------------------------------
async def test_create_answered_503_after_commit_keeps_the_first_event(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    emulator.state.fail_after_commit("/v1.0/me/events", 503)

    event_id = await provider.create_event(credentials, meeting(), send_invitations=True)

    events = emulator.state.account(WORK).events
    assert list(events) == [event_id]  # found, not created twice, no orphan
    assert len(emulator.state.requests_to("/me/events", "POST")) == 1  # no blind retry
    (lookup,) = emulator.state.requests_to("/calendarView")
    assert "$select" in lookup.params


async def test_create_that_timed_out_after_commit_keeps_the_first_event(
    emulator: RunningMicrosoft, http: httpx.AsyncClient, make_provider: MakeProvider
) -> None:
    provider = make_provider(http)
    provider._settings = provider._settings.model_copy(update={"provider_timeout_seconds": 0.5})
    credentials = (await connect(provider, http, WORK)).credentials
    emulator.state.fail_after_commit("/v1.0/me/events", 504, delay=2.0)

    event_id = await provider.create_event(credentials, meeting(), send_invitations=True)

    assert list(emulator.state.account(WORK).events) == [event_id]
    assert len(emulator.state.requests_to("/me/events", "POST")) == 1


async def test_create_whose_fate_is_unknown_raises_outcome_unknown(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    emulator.state.fail_after_commit("/v1.0/me/events", 503)
    emulator.state.fail_next("/calendarView", 503, headers={"Retry-After": "0"}, times=5)
    with pytest.raises(OutcomeUnknown):
        await provider.create_event(credentials, meeting(), send_invitations=True)
    # The later retry finds the event through the refused duplicate instead of making one.
    event_id = await provider.create_event(credentials, meeting(), send_invitations=True)
    assert list(emulator.state.account(WORK).events) == [event_id]


async def test_create_refused_before_commit_is_retried_by_the_caller_only(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    emulator.state.fail_next("/v1.0/me/events", 503, headers={"Retry-After": "0"})
    with pytest.raises(ProviderUnavailable) as caught:  # looked up: nothing was created
        await provider.create_event(credentials, meeting(), send_invitations=True)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert len(emulator.state.requests_to("/me/events", "POST")) == 1
    emulator.state.fail_next("/v1.0/me/events", 503, headers={"Retry-After": "0"})
    emulator.state.fail_next("/calendarView", 503, headers={"Retry-After": "0"}, times=5)
    with pytest.raises(OutcomeUnknown):  # and no lookup possible: the fate is unknown
        await provider.create_event(credentials, meeting(), send_invitations=True)
    assert len(emulator.state.requests_to("/me/events", "POST")) == 2
    assert emulator.state.account(WORK).events == {}


# -- Graph as it really behaves: ids that are not URL-safe ---------------------------------
async def test_events_with_slash_plus_and_equals_in_ids_update_delete_and_recheck(
    emulator: RunningMicrosoft, http: httpx.AsyncClient, make_provider: MakeProvider
) -> None:
    provider = make_provider(http, owns_uid=lambda uid: uid.endswith("@tandem"))
    credentials = (await connect(provider, http, WORK)).credentials
    event_id = await provider.create_event(credentials, meeting(), send_invitations=True)
    assert "/" in event_id and "+" in event_id

    await provider.update_event(
        credentials, event_id, meeting(title="Moved"), send_invitations=True
    )
    assert emulator.state.account(WORK).events[event_id].subject == "Moved"
    change = await provider.recheck_removed(credentials, event_id)
    assert (change.deleted, change.title) == (False, "Moved")

    await provider.delete_event(credentials, event_id, send_invitations=True)
    assert emulator.state.account(WORK).events[event_id].deleted
    gone = await provider.recheck_removed(credentials, event_id)
    assert gone.deleted


# -- Graph as it really behaves: getSchedule takes the mailbox address ---------------------
UPN = "ada.lovelace@contoso.onmicrosoft.example"
MAIL = "ada@contoso.example"


async def test_schedule_is_asked_for_the_mailbox_address_not_the_upn(
    emulator: RunningMicrosoft, http: httpx.AsyncClient, provider: MicrosoftProvider
) -> None:
    emulator.state.accounts.clear()
    emulator.state.add_account(UPN, name="Ada", mail=MAIL)
    connected = await connect(provider, http, UPN)
    assert connected.account_email == MAIL
    assert connected.credentials.secret["mailbox"] == MAIL
    emulator.state.add_event(UPN, subject="x", start=T0, end=T0 + timedelta(hours=1))

    result = await provider.fetch_busy(connected.credentials, T0, T0 + timedelta(days=1), "UTC")

    assert result.readable
    assert result.intervals == [BusyInterval(T0, T0 + timedelta(hours=1), BusyKind.BUSY)]
    assert emulator.state.requests_to("/calendarView") == []  # getSchedule answered


async def test_connection_stored_without_mailbox_reads_it_and_keeps_it(
    emulator: RunningMicrosoft, http: httpx.AsyncClient, provider: MicrosoftProvider
) -> None:
    emulator.state.accounts.clear()
    emulator.state.add_account(UPN, name="Ada", mail=MAIL)
    credentials = (await connect(provider, http, UPN)).credentials
    del credentials.secret["mailbox"]  # as stored before Tandem read ``mail``
    emulator.state.add_event(UPN, subject="x", start=T0, end=T0 + timedelta(hours=1))

    result = await provider.fetch_busy(credentials, T0, T0 + timedelta(days=1), "UTC")

    assert result.readable and len(result.intervals) == 1
    assert credentials.changed and credentials.secret["mailbox"] == MAIL
    assert emulator.state.requests_to("/calendarView") == []


# -- Graph as it really behaves: 403 and a refused client secret ---------------------------
async def test_access_policy_403_is_access_denied_not_a_lost_grant(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    emulator.state.deny_access(WORK)
    with pytest.raises(AccessDenied) as caught:
        await provider.fetch_busy(credentials, T0, T0 + timedelta(days=1), "UTC")
    assert not isinstance(caught.value, AuthExpired)
    assert caught.value.policy
    emulator.state.deny_access(WORK, None)
    emulator.state.fail_next("/getSchedule", 403)  # a passing refusal without a policy
    with pytest.raises(AccessDenied) as passing:
        await provider.fetch_busy(credentials, T0, T0 + timedelta(days=1), "UTC")
    assert not passing.value.policy
    assert (await provider.fetch_busy(credentials, T0, T0 + timedelta(days=1), "UTC")).readable


async def test_expired_client_secret_is_misconfiguration_logged_without_secrets(
    provider: MicrosoftProvider,
    http: httpx.AsyncClient,
    emulator: RunningMicrosoft,
    caplog: pytest.LogCaptureFixture,
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    emulator.state.expire_access_tokens()
    emulator.state.expire_client_secret()
    with (
        caplog.at_level("ERROR", logger="tandem.providers.microsoft"),
        pytest.raises(ProviderMisconfigured) as caught,
    ):
        await provider.fetch_busy(credentials, T0, T0 + timedelta(days=1), "UTC")
    assert not isinstance(caught.value, AuthExpired)
    assert "expired" in str(caught.value)
    assert "7000222" in caplog.text
    for secret in [emulator.state.client_secret, *refresh_tokens_in(credentials)]:
        assert secret not in caplog.text and secret not in str(caught.value)


async def test_optional_attendees_are_written_with_type_optional(
    provider: MicrosoftProvider, http: httpx.AsyncClient, emulator: RunningMicrosoft
) -> None:
    credentials = (await connect(provider, http, WORK)).credentials
    event = dataclasses.replace(
        meeting(uid="m-opt@tandem"),
        attendees=[
            EventAttendee(WORK, "Ada"),
            EventAttendee("bob@example.org", "Bob"),
            EventAttendee("cy@example.org", "Cy", optional=True),
        ],
    )
    event_id = await provider.create_event(credentials, event, send_invitations=True)
    stored = emulator.state.account(WORK).events[event_id]
    assert {a["emailAddress"]["address"]: a["type"] for a in stored.attendees} == {
        "bob@example.org": "required",
        "cy@example.org": "optional",
    }
