"""CalDAVProvider against a real Radicale (htpasswd auth) started once for this module."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest
from caldav.davclient import DAVClient

from emulators.icloud import ICloudHosts, start_icloud_hosts
from emulators.radicale import RunningRadicale, start_radicale
from emulators.runner import free_port
from server.config import Settings
from server.providers.base import (
    AuthExpired,
    BusyInterval,
    BusyKind,
    CalendarProvider,
    Credentials,
    EventAttendee,
    ExternalEvent,
    InvalidCredentials,
    PasswordProvider,
    ProviderError,
    ProviderUnavailable,
    SyncTokenExpired,
)
from server.providers.caldav import (
    CalDAVProvider,
    NoEventCalendars,
    _CalendarInfo,
    is_icloud,
    organizer_address,
    own_addresses,
)
from server.providers.caldav_guard import CalDAVURLRejected

ALICE, ALICE_PW = "alice", "alice-app-pw-4821"
BOB, BOB_PW = "bob", "bob-app-pw-7733"
EMPTY, EMPTY_PW = "carol", "carol-app-pw-1190"
CANARY = "zq-canary-5be21c"
WINDOW = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 17, tzinfo=UTC))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def vcal(uid: str, *lines: str) -> str:
    props = "\n".join(lines)
    return (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\nBEGIN:VEVENT\n"
        f"UID:{uid}\nDTSTAMP:20260101T000000Z\n{props}\nEND:VEVENT\nEND:VCALENDAR\n"
    )


SEEDED = [
    vcal(
        "weekly-ny",
        "DTSTART;TZID=America/New_York:20260302T090000",
        "DTEND;TZID=America/New_York:20260302T100000",
        "RRULE:FREQ=WEEKLY;COUNT=3",
        f"SUMMARY:{CANARY} weekly",
        f"DESCRIPTION:{CANARY} notes",
        f"LOCATION:{CANARY} room",
        f"ATTENDEE;CN={CANARY}:mailto:{CANARY}@example.com",
    ),
    vcal("all-day", "DTSTART;VALUE=DATE:20260305", "DTEND;VALUE=DATE:20260306"),
    vcal("transparent", "DTSTART:20260306T100000Z", "DTEND:20260306T110000Z", "TRANSP:TRANSPARENT"),
    vcal("cancelled", "DTSTART:20260306T120000Z", "DTEND:20260306T130000Z", "STATUS:CANCELLED"),
    vcal("tentative", "DTSTART:20260306T130000Z", "DTEND:20260306T140000Z", "STATUS:TENTATIVE"),
    (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n"
        "BEGIN:VEVENT\nUID:daily\nDTSTAMP:20260101T000000Z\nDTSTART:20260310T200000Z\n"
        "DTEND:20260310T210000Z\nRRULE:FREQ=DAILY;COUNT=3\nEND:VEVENT\n"
        "BEGIN:VEVENT\nUID:daily\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID:20260311T200000Z\n"
        "DTSTART:20260311T200000Z\nDTEND:20260311T210000Z\nSTATUS:CANCELLED\nEND:VEVENT\n"
        "END:VCALENDAR\n"
    ),
]

EXPECTED_TOKYO = [
    BusyInterval(utc(2026, 3, 2, 14), utc(2026, 3, 2, 15), BusyKind.BUSY),
    BusyInterval(utc(2026, 3, 4, 15), utc(2026, 3, 5, 15), BusyKind.ALL_DAY),
    BusyInterval(utc(2026, 3, 6, 13), utc(2026, 3, 6, 14), BusyKind.TENTATIVE),
    BusyInterval(utc(2026, 3, 9, 13), utc(2026, 3, 9, 14), BusyKind.BUSY),  # after US DST
    BusyInterval(utc(2026, 3, 10, 20), utc(2026, 3, 10, 21), BusyKind.BUSY),
    BusyInterval(utc(2026, 3, 12, 20), utc(2026, 3, 12, 21), BusyKind.BUSY),
    BusyInterval(utc(2026, 3, 16, 13), utc(2026, 3, 16, 14), BusyKind.BUSY),
]


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRadicale]:
    server = start_radicale(
        tmp_path_factory.mktemp("radicale"),
        users={ALICE: ALICE_PW, BOB: BOB_PW, EMPTY: EMPTY_PW},
    )
    try:
        server.make_calendar(ALICE, ALICE_PW, "todos", components=("VTODO",))
        server.make_calendar(ALICE, ALICE_PW, "work")
        for text in SEEDED:
            server.add_event(ALICE, ALICE_PW, "work", text)
        server.add_todo(
            ALICE,
            ALICE_PW,
            "todos",
            "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\nBEGIN:VTODO\nUID:todo-1\n"
            "DTSTAMP:20260101T000000Z\nDTSTART:20260306T050000Z\nDUE:20260306T060000Z\n"
            f"SUMMARY:{CANARY} todo\nEND:VTODO\nEND:VCALENDAR\n",
        )
        server.make_calendar(BOB, BOB_PW, "main")
        server.make_calendar(EMPTY, EMPTY_PW, "chores", components=("VTODO",))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def provider() -> CalDAVProvider:
    return CalDAVProvider(Settings(caldav_allow_private_hosts=True, provider_timeout_seconds=5))


@pytest.fixture
async def alice(radicale: RunningRadicale, provider: CalDAVProvider) -> Credentials:
    account = await provider.connect_with_password(ALICE, ALICE_PW, radicale.url)
    return account.credentials


@pytest.fixture
async def bob(radicale: RunningRadicale, provider: CalDAVProvider) -> Credentials:
    account = await provider.connect_with_password(BOB, BOB_PW, radicale.url)
    return account.credentials


def meeting(uid: str, start: datetime, **overrides: object) -> ExternalEvent:
    event = ExternalEvent(
        uid=uid,
        title="Mentoring check-in",
        description="Agenda: goals",
        location=None,
        start=start,
        end=start + timedelta(minutes=45),
        time_zone="Europe/Berlin",
        organizer_email="alice@example.com",
        attendees=[EventAttendee("mentee@example.com", "Mentee")],
        sequence=0,
    )
    return replace(event, **overrides)  # type: ignore[arg-type]


def stored_calendar(url: str, user: str, password: str) -> icalendar.Calendar:
    with DAVClient(url=url, username=user, password=password) as client:
        response = client.request(url)
    return icalendar.Calendar.from_ical(response.raw)


def stored_vevent(url: str, user: str, password: str) -> Any:
    return stored_calendar(url, user, password).walk("VEVENT")[0]


def put_object(url: str, user: str, password: str, text: str) -> None:
    with DAVClient(url=url, username=user, password=password) as client:
        response = client.put(url, text, {"Content-Type": "text/calendar; charset=utf-8"})
    assert response.status in (201, 204)


# -- connect ------------------------------------------------------------------------------


async def test_connect_finds_event_calendars_and_skips_todo_lists(
    radicale: RunningRadicale, provider: CalDAVProvider
) -> None:
    typed: PasswordProvider = provider  # mypy checks the protocol is implemented
    assert isinstance(typed, CalendarProvider)
    account = await provider.connect_with_password(ALICE, ALICE_PW, radicale.url)
    secret = account.credentials.secret
    assert (account.label, account.account_email) == ("iCal", ALICE)
    assert secret["principal_url"] == f"{radicale.url}/alice/"
    assert secret["calendar_urls"] == [f"{radicale.url}/alice/work/"]
    assert secret["write_calendar_url"] == f"{radicale.url}/alice/work/"
    assert (secret["username"], secret["password"], secret["server_url"]) == (
        ALICE,
        ALICE_PW,
        radicale.url,
    )
    assert ALICE_PW not in repr(account)


async def test_wrong_password_is_invalid_credentials_without_the_password(
    radicale: RunningRadicale, provider: CalDAVProvider
) -> None:
    wrong = "wrong-pw-55120"
    with pytest.raises(InvalidCredentials, match="app-specific password") as caught:
        await provider.connect_with_password(ALICE, wrong, radicale.url)
    assert not isinstance(caught.value, CalDAVURLRejected)
    assert wrong not in str(caught.value)
    assert ALICE_PW not in str(caught.value)
    assert caught.value.__cause__ is None


async def test_account_with_only_todo_lists_is_refused_clearly(
    radicale: RunningRadicale, provider: CalDAVProvider
) -> None:
    with pytest.raises(NoEventCalendars, match="no calendar"):
        await provider.connect_with_password(EMPTY, EMPTY_PW, radicale.url)


async def test_unreachable_server_is_provider_unavailable(provider: CalDAVProvider) -> None:
    with pytest.raises(ProviderUnavailable):
        await provider.connect_with_password(ALICE, ALICE_PW, f"http://127.0.0.1:{free_port()}/")


@pytest.mark.parametrize(
    "url",
    [
        "RADICALE",  # plain http on loopback
        "https://127.0.0.1:8443/",
        "https://localhost/",
        "https://10.1.2.3/dav/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/",
        "https://[::ffff:192.168.0.1]/",
        "ftp://caldav.example.com/",
        "file:///etc/passwd",
        "https://user:pw@caldav.icloud.com/",
    ],
)
async def test_ssrf_guard_refuses_private_and_odd_urls_when_the_setting_is_off(
    radicale: RunningRadicale, url: str
) -> None:
    strict = CalDAVProvider(Settings(caldav_allow_private_hosts=False))
    with pytest.raises(CalDAVURLRejected):
        await strict.connect_with_password(
            ALICE, ALICE_PW, radicale.url if url == "RADICALE" else url
        )


async def test_ssrf_guard_also_applies_to_stored_credentials(
    alice: Credentials,
) -> None:
    strict = CalDAVProvider(Settings(caldav_allow_private_hosts=False))
    with pytest.raises(CalDAVURLRejected):
        await strict.fetch_busy(alice, *WINDOW, "UTC")


# -- busy ---------------------------------------------------------------------------------


async def test_fetch_busy_expands_recurrences_dst_all_day_and_skips_free_events(
    provider: CalDAVProvider, alice: Credentials
) -> None:
    fetched = await provider.fetch_busy(alice, *WINDOW, "Asia/Tokyo")
    assert fetched.readable
    assert fetched.intervals == EXPECTED_TOKYO
    assert not alice.changed


async def test_fetch_busy_clips_to_the_window(provider: CalDAVProvider, alice: Credentials) -> None:
    fetched = await provider.fetch_busy(
        alice, utc(2026, 3, 2, 14, 30), utc(2026, 3, 5, 0), "Asia/Tokyo"
    )
    assert fetched.intervals == [
        BusyInterval(utc(2026, 3, 2, 14, 30), utc(2026, 3, 2, 15), BusyKind.BUSY),
        BusyInterval(utc(2026, 3, 4, 15), utc(2026, 3, 5, 0), BusyKind.ALL_DAY),
    ]


async def test_revoked_app_password_is_auth_expired(
    provider: CalDAVProvider, alice: Credentials
) -> None:
    revoked = Credentials(alice.provider, dict(alice.secret, password="revoked-pw-0042"))
    with pytest.raises(AuthExpired) as caught:
        await provider.fetch_busy(revoked, *WINDOW, "UTC")
    assert "revoked-pw-0042" not in str(caught.value)


async def test_a_calendar_that_fails_to_read_makes_the_result_unreadable(
    radicale: RunningRadicale,
    provider: CalDAVProvider,
    alice: Credentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = CalDAVProvider._discover

    async def with_a_missing_calendar(self, client, server_url, principal_url):
        found = await real(self, client, server_url, principal_url)
        gone = _CalendarInfo(url=f"{radicale.url}/alice/gone/", writable=True)
        return replace(found, calendars=[*found.calendars, gone])

    monkeypatch.setattr(CalDAVProvider, "_discover", with_a_missing_calendar)
    fetched = await provider.fetch_busy(alice, *WINDOW, "Asia/Tokyo")
    assert not fetched.readable
    assert fetched.intervals == EXPECTED_TOKYO  # what could be read is still returned


async def test_a_calendar_created_after_connect_is_read_and_remembered(
    radicale: RunningRadicale, provider: CalDAVProvider, bob: Credentials
) -> None:
    radicale.make_calendar(BOB, BOB_PW, "later")
    radicale.add_event(
        BOB, BOB_PW, "later", vcal("later-1", "DTSTART:20260303T080000Z", "DTEND:20260303T090000Z")
    )
    fetched = await provider.fetch_busy(bob, *WINDOW, "UTC")
    assert fetched.intervals == [BusyInterval(utc(2026, 3, 3, 8), utc(2026, 3, 3, 9))]
    assert bob.changed
    assert f"{radicale.url}/bob/later/" in bob.secret["calendar_urls"]


# -- Tandem's own events ------------------------------------------------------------------


async def test_create_update_delete_an_event(provider: CalDAVProvider, alice: Credentials) -> None:
    start = utc(2026, 4, 14, 8)
    event = meeting("m-create@tandem", start)
    url = await provider.create_event(alice, event, send_invitations=True)
    assert url == f"{alice.secret['write_calendar_url']}m-create%40tandem.ics"

    stored = stored_vevent(url, ALICE, ALICE_PW)
    assert str(stored["UID"]) == "m-create@tandem"
    assert stored["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert stored["DTSTART"].dt == start
    assert str(stored["ORGANIZER"]) == "mailto:alice@example.com"
    assert str(stored["ATTENDEE"]) == "mailto:mentee@example.com"
    assert stored["ATTENDEE"].params["PARTSTAT"] == "NEEDS-ACTION"
    assert int(stored["SEQUENCE"]) == 0
    assert "DTSTAMP" in stored

    window = (utc(2026, 4, 14), utc(2026, 4, 15))
    busy = await provider.fetch_busy(alice, *window, "UTC")
    assert busy.intervals == [BusyInterval(start, start + timedelta(minutes=45))]

    moved = start + timedelta(hours=3)
    await provider.update_event(
        alice, url, meeting("m-create@tandem", moved, sequence=1), send_invitations=True
    )
    assert int(stored_vevent(url, ALICE, ALICE_PW)["SEQUENCE"]) == 1
    busy = await provider.fetch_busy(alice, *window, "UTC")
    assert busy.intervals == [BusyInterval(moved, moved + timedelta(minutes=45))]

    await provider.delete_event(alice, url, send_invitations=True)
    assert (await provider.fetch_busy(alice, *window, "UTC")).intervals == []
    await provider.delete_event(alice, url, send_invitations=True)  # already gone: fine


async def test_events_outside_the_account_are_not_touched(
    provider: CalDAVProvider, alice: Credentials, radicale: RunningRadicale
) -> None:
    with pytest.raises(ProviderError, match="does not belong"):
        await provider.delete_event(
            alice, f"{radicale.url}/bob/main/x%40tandem.ics", send_invitations=False
        )


async def test_read_changes_full_incremental_and_expired_token(
    radicale: RunningRadicale, provider: CalDAVProvider, bob: Credentials
) -> None:
    window = (utc(2026, 5, 1), utc(2026, 6, 1))
    radicale.add_event(
        BOB,
        BOB_PW,
        "main",
        vcal("not-ours@example.com", "DTSTART:20260505T090000Z", "DTEND:20260505T100000Z"),
    )
    inside = await provider.create_event(
        bob, meeting("m-in@tandem", utc(2026, 5, 6, 9)), send_invitations=False
    )
    await provider.create_event(
        bob, meeting("m-out@tandem", utc(2026, 8, 6, 9)), send_invitations=False
    )

    full = await provider.read_changes(bob, None, *window)
    assert [c.provider_event_id for c in full.changes] == [inside]
    first = full.changes[0]
    assert (first.deleted, first.title, first.description) == (
        False,
        "Mentoring check-in",
        "Agenda: goals",
    )
    assert (first.start, first.end) == (utc(2026, 5, 6, 9), utc(2026, 5, 6, 9, 45))
    assert first.attendee_responses == {"mentee@example.com": "needs_action"}
    assert full.sync_token

    unchanged = await provider.read_changes(bob, full.sync_token, *window)
    assert unchanged.changes == []

    # The owner edits the meeting in their calendar app; the mentee's RSVP arrives too.
    stored = stored_calendar(inside, BOB, BOB_PW)
    vevent = stored.walk("VEVENT")[0]
    vevent["SUMMARY"] = icalendar.vText("Check-in (moved)")
    vevent["ATTENDEE"].params["PARTSTAT"] = "ACCEPTED"
    vevent["DTSTART"] = icalendar.vDDDTypes(datetime(2026, 5, 6, 13, tzinfo=UTC))
    vevent["DTEND"] = icalendar.vDDDTypes(datetime(2026, 5, 6, 14, tzinfo=UTC))
    put_object(inside, BOB, BOB_PW, stored.to_ical().decode())
    radicale.add_event(
        BOB,
        BOB_PW,
        "main",
        vcal("also-not-ours", "DTSTART:20260507T090000Z", "DTEND:20260507T100000Z"),
    )

    edited = await provider.read_changes(bob, full.sync_token, *window)
    assert len(edited.changes) == 1
    change = edited.changes[0]
    assert (change.provider_event_id, change.title) == (inside, "Check-in (moved)")
    assert (change.start, change.end) == (utc(2026, 5, 6, 13), utc(2026, 5, 6, 14))
    assert change.attendee_responses == {"mentee@example.com": "accepted"}

    await provider.delete_event(bob, inside, send_invitations=False)
    removed = await provider.read_changes(bob, edited.sync_token, *window)
    assert [(c.provider_event_id, c.deleted) for c in removed.changes] == [(inside, True)]

    with pytest.raises(SyncTokenExpired):
        await provider.read_changes(bob, "http://radicale.org/ns/sync/" + "0" * 64, *window)


async def test_revoke_is_a_no_op(provider: CalDAVProvider, alice: Credentials) -> None:
    await provider.revoke(alice)
    fetched = await provider.fetch_busy(alice, *WINDOW, "Asia/Tokyo")
    assert fetched.intervals == EXPECTED_TOKYO


# -- privacy ------------------------------------------------------------------------------


async def test_no_event_text_or_password_reaches_results_or_logs(
    provider: CalDAVProvider,
    alice: Credentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        fetched = await provider.fetch_busy(alice, *WINDOW, "Asia/Tokyo")
        with pytest.raises(AuthExpired) as caught:
            await provider.fetch_busy(
                Credentials(alice.provider, dict(alice.secret, password="bad-pw-9981")),
                *WINDOW,
                "UTC",
            )
    assert fetched.intervals == EXPECTED_TOKYO
    assert CANARY not in repr(fetched)
    assert ALICE_PW not in repr(alice)
    assert "bad-pw-9981" not in str(caught.value)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert CANARY not in logged
    assert ALICE_PW not in logged
    assert "bad-pw-9981" not in logged


# -- declined invitations, iCloud hosts, broken sync tokens --------------------------------

DANA, DANA_PW = "dana@example.com", "dana-app-pw-5120"


@pytest.fixture(scope="module")
def dana_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRadicale]:
    server = start_radicale(tmp_path_factory.mktemp("radicale-dana"), users={DANA: DANA_PW})
    try:
        server.make_calendar(DANA, DANA_PW, "main")
        yield server
    finally:
        server.stop()


async def test_an_invitation_the_user_declined_is_not_busy(
    dana_server: RunningRadicale, provider: CalDAVProvider
) -> None:
    dana_server.add_event(
        DANA,
        DANA_PW,
        "main",
        vcal(
            "declined-invite@example.org",
            "DTSTART:20260302T090000Z",
            "DTEND:20260302T100000Z",
            "ORGANIZER:mailto:boss@example.org",
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:boss@example.org",
            "ATTENDEE;PARTSTAT=DECLINED:mailto:Dana@Example.com",
        ),
    )
    dana_server.add_event(
        DANA,
        DANA_PW,
        "main",
        vcal(
            "accepted-invite@example.org",
            "DTSTART:20260302T110000Z",
            "DTEND:20260302T120000Z",
            "ORGANIZER:mailto:boss@example.org",
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:dana@example.com",
        ),
    )
    account = await provider.connect_with_password(DANA, DANA_PW, dana_server.url)
    fetched = await provider.fetch_busy(account.credentials, *WINDOW, "UTC")
    assert fetched.intervals == [BusyInterval(utc(2026, 3, 2, 11), utc(2026, 3, 2, 12))]


@pytest.fixture(scope="module")
def icloud_hosts(dana_server: RunningRadicale) -> Iterator[ICloudHosts]:
    hosts = start_icloud_hosts(dana_server.url)
    yield hosts
    hosts.stop()


async def test_icloud_partition_host_hrefs_and_redirects_are_followed(
    icloud_hosts: ICloudHosts, dana_server: RunningRadicale, provider: CalDAVProvider
) -> None:
    """The principal on the entry host names a home on the partition host whose listing
    names calendars on the entry host, which redirects there: discovery, busy reads and
    writes all land on the partition host, with credentials."""
    dana_server.add_event(
        DANA,
        DANA_PW,
        "main",
        vcal("icloud-busy@example.org", "DTSTART:20260303T080000Z", "DTEND:20260303T090000Z"),
    )
    account = await provider.connect_with_password(DANA, DANA_PW, icloud_hosts.entry_url)
    secret = account.credentials.secret
    assert secret["calendar_urls"] == [f"{icloud_hosts.partition_url}/{DANA}/main/"]
    assert secret["write_calendar_url"].startswith(icloud_hosts.partition_url)
    assert icloud_hosts.redirects >= 1  # the principal was asked on the entry host

    fetched = await provider.fetch_busy(account.credentials, *WINDOW, "UTC")
    assert fetched.readable
    assert BusyInterval(utc(2026, 3, 3, 8), utc(2026, 3, 3, 9)) in fetched.intervals

    url = await provider.create_event(
        account.credentials,
        meeting("icloud-hosts@tandem", utc(2026, 4, 1, 9)),
        send_invitations=False,
    )
    assert url.startswith(icloud_hosts.partition_url)
    await provider.delete_event(account.credentials, url, send_invitations=False)


async def test_an_invalid_sync_token_with_an_undocumented_status_raises_a_provider_error(
    icloud_hosts: ICloudHosts, provider: CalDAVProvider
) -> None:
    account = await provider.connect_with_password(DANA, DANA_PW, icloud_hosts.entry_url)
    full = await provider.read_changes(account.credentials, None, *WINDOW)
    assert full.sync_token
    icloud_hosts.fail_sync_with_token(400)
    try:
        with pytest.raises(ProviderError):
            await provider.read_changes(account.credentials, full.sync_token, *WINDOW)
        again = await provider.read_changes(account.credentials, None, *WINDOW)
        assert again.sync_token  # a listing without a token still works
    finally:
        icloud_hosts.fail_sync_with_token(None)


def test_only_icloud_hosts_are_followed_for_an_icloud_account() -> None:
    assert is_icloud("https://caldav.icloud.com/")
    assert is_icloud("https://p42-caldav.icloud.com:443/123/calendars/")
    assert not is_icloud("https://icloud.com.evil.example/")
    assert not is_icloud("https://evilicloud.com/")


async def test_an_icloud_account_refuses_a_host_outside_icloud(provider: CalDAVProvider) -> None:
    with pytest.raises(CalDAVURLRejected, match=r"outside icloud\.com"):
        await provider._check("https://127.0.0.1/elsewhere/", "https://caldav.icloud.com/")
    assert await provider._check(
        "https://p07-caldav.icloud.com/1/calendars/", "https://caldav.icloud.com/"
    )


def test_the_organizer_is_one_of_the_accounts_calendar_addresses() -> None:
    secret = {"username": "apple-id@icloud.com", "user_addresses": ["dana@me.com", "dana@mac.com"]}
    assert organizer_address(secret, "apple-id@icloud.com") == "dana@me.com"
    assert organizer_address(secret, "Dana@Mac.com") == "Dana@Mac.com"
    assert organizer_address({"username": "x@icloud.com"}, "x@icloud.com") == "x@icloud.com"
    assert own_addresses(secret) == ["dana@me.com", "dana@mac.com", "apple-id@icloud.com"]


async def test_change_tag_changes_only_when_a_calendar_does(
    radicale: RunningRadicale, provider: CalDAVProvider, bob: Credentials
) -> None:
    """One cheap PROPFIND per calendar (Radicale answers getctag and sync-token): the tag
    stays put while nothing changes and moves when an event is added."""
    first = await provider.change_tag(bob)
    assert first is not None and len(first) == 64
    assert await provider.change_tag(bob) == first
    radicale.add_event(
        BOB, BOB_PW, "main", vcal("tag-probe", "DTSTART:20260401T100000Z", "DTEND:20260401T110000Z")
    )
    second = await provider.change_tag(bob)
    assert second is not None and second != first
    assert await provider.change_tag(bob) == second
