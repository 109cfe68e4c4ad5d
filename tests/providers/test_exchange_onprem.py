"""ExchangeOnPremDirectory against the EWS emulator, through the real exchangelib."""

from __future__ import annotations

import base64
import gc
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from emulators.ews import EwsState, MailboxEvent, RunningEws, start_ews_emulator
from server.config import Settings
from server.providers import exchange_onprem
from server.providers.base import (
    BusyInterval,
    BusyKind,
    EventAttendee,
    ExternalEvent,
    InvalidCredentials,
    OutcomeUnknown,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
    SyncTokenExpired,
)
from server.providers.exchange_onprem import ExchangeOnPremDirectory
from server.providers.org_base import OrgDirectory, UncoveredReason

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ANN = "ann@contoso.example"
BOB = "bob@contoso.example"
CAROL = "carol@contoso.example"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[RunningEws]:
    running = start_ews_emulator(tmp_path)
    yield running
    running.stop()


def make_settings(tmp_path: Path, emulator: RunningEws | None, **overrides: Any) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp_path,
        ews_ca_bundle=emulator.ca_path if emulator else None,
        provider_timeout_seconds=overrides.pop("provider_timeout_seconds", 5.0),
        **overrides,
    )


@pytest.fixture
async def directory(tmp_path: Path, emulator: RunningEws) -> AsyncIterator[ExchangeOnPremDirectory]:
    async with httpx.AsyncClient() as http:
        found = ExchangeOnPremDirectory(make_settings(tmp_path, emulator), http, emulator.config())
        yield found
        await found.aclose()


def availability_requests(state: EwsState) -> list[str]:
    return [r.body for r in state.received if r.operation == "GetUserAvailabilityRequest"]


def meeting(
    uid: str = "m-1@tandem",
    *attendees: str,
    title: str = "Planning",
    organizer: str = "tandem@contoso.example",
) -> ExternalEvent:
    start = datetime(2026, 3, 30, 9, tzinfo=UTC)
    return ExternalEvent(
        uid=uid,
        title=title,
        description="Agenda",
        location="Room 1",
        start=start,
        end=start + timedelta(hours=1),
        time_zone="Europe/Berlin",
        organizer_email=organizer,
        attendees=[EventAttendee(email) for email in attendees],
    )


def test_it_is_an_org_directory_with_the_ews_limits(directory: ExchangeOnPremDirectory) -> None:
    assert isinstance(directory, OrgDirectory)
    assert (directory.max_people_per_call, directory.max_window_days) == (100, 42)
    assert "password" not in repr(directory) and "battery" not in repr(directory)


async def test_busy_times_across_berlin_spring_forward(
    directory: ExchangeOnPremDirectory, emulator: RunningEws
) -> None:
    # Central Europe moves from CET to CEST at 02:00 on 29 March 2026.
    truth = [
        MailboxEvent(
            datetime(2026, 3, 28, 9, tzinfo=BERLIN), datetime(2026, 3, 28, 10, tzinfo=BERLIN)
        ),
        MailboxEvent(
            datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN),
            datetime(2026, 3, 29, 4, tzinfo=BERLIN),
            "Tentative",
        ),
        MailboxEvent(
            datetime(2026, 3, 30, 9, tzinfo=BERLIN), datetime(2026, 3, 30, 17, tzinfo=BERLIN), "OOF"
        ),
    ]
    emulator.state.add_mailbox(ANN, *truth)
    start = datetime(2026, 3, 27, tzinfo=BERLIN)
    [ann] = await directory.read_schedules([ANN], start, start + timedelta(days=5), "Europe/Berlin")
    assert ann.problem is None
    assert ann.intervals == [
        BusyInterval(e.start.astimezone(UTC), e.end.astimezone(UTC), kind)
        for e, kind in zip(
            truth, [BusyKind.BUSY, BusyKind.TENTATIVE, BusyKind.OUT_OF_OFFICE], strict=True
        )
    ]
    # The same wall-clock 09:00 is 08:00Z before the change and 07:00Z after it.
    assert ann.intervals[0].start == datetime(2026, 3, 28, 8, tzinfo=UTC)
    assert ann.intervals[2].start == datetime(2026, 3, 30, 7, tzinfo=UTC)
    assert ann.intervals[1].end - ann.intervals[1].start == timedelta(hours=1, minutes=30)
    assert all(i.start.tzinfo is UTC for i in ann.intervals)


async def test_busy_times_across_new_york_fall_back(
    directory: ExchangeOnPremDirectory, emulator: RunningEws
) -> None:
    # New York repeats 01:00-02:00 on 1 November 2026: both 01:30s are distinct instants.
    # (Aware arithmetic keeps the wall clock and drops ``fold``, so add in UTC.)
    first = datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK).astimezone(UTC)  # EDT
    second = datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=NEW_YORK).astimezone(UTC)  # EST
    emulator.state.add_mailbox(
        BOB,
        MailboxEvent(first, first + timedelta(minutes=20)),
        MailboxEvent(second, second + timedelta(minutes=20)),
        MailboxEvent(
            datetime(2026, 11, 2, 9, tzinfo=NEW_YORK), datetime(2026, 11, 2, 10, tzinfo=NEW_YORK)
        ),
    )
    start = datetime(2026, 10, 31, tzinfo=NEW_YORK)
    [bob] = await directory.read_schedules(
        [BOB], start, start + timedelta(days=3), "America/New_York"
    )
    assert [i.start for i in bob.intervals] == [
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        datetime(2026, 11, 2, 14, tzinfo=UTC),
    ]


async def test_free_and_working_elsewhere_are_not_busy_and_times_are_clipped(
    directory: ExchangeOnPremDirectory, emulator: RunningEws
) -> None:
    day = datetime(2026, 5, 4, tzinfo=UTC)
    emulator.state.add_mailbox(
        ANN,
        MailboxEvent(day + timedelta(hours=8), day + timedelta(hours=9), "Free"),
        MailboxEvent(day + timedelta(hours=10), day + timedelta(hours=11), "WorkingElsewhere"),
        MailboxEvent(day - timedelta(hours=2), day + timedelta(hours=1), "Busy"),
    )
    [ann] = await directory.read_schedules([ANN], day, day + timedelta(days=1), "UTC")
    assert ann.intervals == [BusyInterval(day, day + timedelta(hours=1), BusyKind.BUSY)]


async def test_250_mailboxes_take_three_calls(
    directory: ExchangeOnPremDirectory, emulator: RunningEws
) -> None:
    day = datetime(2026, 5, 4, tzinfo=UTC)
    people = [f"p{i:03}@contoso.example" for i in range(250)]
    for i, email in enumerate(people):
        hour = day + timedelta(hours=i % 24)
        emulator.state.add_mailbox(email, MailboxEvent(hour, hour + timedelta(minutes=30)))
    found = await directory.read_schedules(
        [e.upper() for e in people], day, day + timedelta(days=1), "UTC"
    )
    bodies = availability_requests(emulator.state)
    assert [b.count("<t:MailboxData>") for b in bodies] == [100, 100, 50]
    assert [p.email for p in found] == people
    assert found[30].intervals[0].start == day + timedelta(hours=6)


async def test_a_window_longer_than_42_days_is_split(
    directory: ExchangeOnPremDirectory, emulator: RunningEws
) -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)
    late = start + timedelta(days=50)
    emulator.state.add_mailbox(ANN, MailboxEvent(late, late + timedelta(hours=1)))
    [ann] = await directory.read_schedules([ANN], start, start + timedelta(days=60), "UTC")
    assert len(availability_requests(emulator.state)) == 2
    assert ann.intervals == [BusyInterval(late, late + timedelta(hours=1))]


async def test_per_person_problems_stay_with_that_person(
    directory: ExchangeOnPremDirectory, emulator: RunningEws
) -> None:
    day = datetime(2026, 5, 4, tzinfo=UTC)
    emulator.state.add_mailbox(ANN, MailboxEvent(day, day + timedelta(hours=1)))
    emulator.state.add_mailbox(BOB, MailboxEvent(day, day + timedelta(hours=1)))
    emulator.state.no_data.add(BOB)
    emulator.state.add_mailbox(CAROL)
    emulator.state.denied.add(CAROL)
    found = await directory.read_schedules(
        [ANN, BOB, "ghost@contoso.example", CAROL, "ann at contoso"],
        day,
        day + timedelta(days=1),
        "UTC",
    )
    assert [(p.email, p.problem) for p in found] == [
        (ANN, None),
        (BOB, UncoveredReason.UNREADABLE),
        ("ghost@contoso.example", UncoveredReason.NO_MAILBOX),
        (CAROL, UncoveredReason.ACCESS_DENIED),
        ("ann at contoso", UncoveredReason.NO_MAILBOX),
    ]
    assert found[0].intervals and not any(p.intervals for p in found[1:])
    [body] = availability_requests(emulator.state)
    assert body.count("<t:MailboxData>") == 4 and "ann at contoso" not in body


async def test_server_busy_is_rate_limited_with_its_back_off(
    directory: ExchangeOnPremDirectory, emulator: RunningEws
) -> None:
    emulator.state.add_mailbox(ANN)
    emulator.state.server_busy(back_off_ms=2500)
    day = datetime(2026, 5, 4, tzinfo=UTC)
    began = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        await directory.read_schedules([ANN], day, day + timedelta(days=1), "UTC")
    assert caught.value.retry_after == 2.5
    assert time.monotonic() - began < 2  # no sleeping inside exchangelib (FailFast)
    # The first request is exchangelib's version probe; busy there is busy all the same.
    assert emulator.state.operations() == ["ConvertId"]
    [ann] = await directory.read_schedules([ANN], day, day + timedelta(days=1), "UTC")
    assert ann.problem is None
    emulator.state.server_busy(back_off_ms=1000)
    with pytest.raises(RateLimited) as again:
        await directory.read_schedules([ANN], day, day + timedelta(days=1), "UTC")
    assert again.value.retry_after == 1.0
    assert emulator.state.operations().count("GetUserAvailabilityRequest") == 2


async def test_wrong_password_is_invalid_credentials_without_the_password(
    tmp_path: Path, emulator: RunningEws
) -> None:
    config = emulator.config(password="Tr0ub4dor&3-wrong")
    async with httpx.AsyncClient() as http:
        directory = ExchangeOnPremDirectory(make_settings(tmp_path, emulator), http, config)
        try:
            with pytest.raises(InvalidCredentials) as caught:
                await directory.verify()
        finally:
            await directory.aclose()
    assert str(caught.value) == "Exchange refused the service account's user name or password"
    assert "Tr0ub4dor" not in str(caught.value) and "Tr0ub4dor" not in repr(caught.value)
    assert "Tr0ub4dor" not in str(caught.value.__cause__)


# requests_ntlm leaves the handshake's first socket to the garbage collector; collect it
# here (ignoring its ResourceWarning) so that it neither holds the emulator's shutdown nor
# warns inside a later test.
@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
async def test_ntlm_works_and_a_wrong_ntlm_password_is_refused(
    tmp_path: Path, emulator: RunningEws
) -> None:
    day = datetime(2026, 5, 4, tzinfo=UTC)
    emulator.state.add_mailbox(ANN, MailboxEvent(day, day + timedelta(hours=1)))
    async with httpx.AsyncClient() as http:
        settings = make_settings(tmp_path, emulator)
        good = ExchangeOnPremDirectory(settings, http, emulator.config(auth_type="ntlm"))
        assert await good.verify() == "tandem@contoso.example"
        [ann] = await good.read_schedules([ANN], day, day + timedelta(days=1), "UTC")
        await good.aclose()
        bad_config = emulator.config(auth_type="NTLM", password="Tr0ub4dor&3-wrong")
        bad = ExchangeOnPremDirectory(settings, http, bad_config)
        with pytest.raises(InvalidCredentials) as caught:
            await bad.verify()
        await bad.aclose()
    message = str(caught.value)
    del caught  # its traceback holds the handshake's sockets
    gc.collect()
    assert ann.intervals == [BusyInterval(day, day + timedelta(hours=1))]
    assert message == "Exchange refused the service account's user name or password"
    # Nothing reached the handlers before each handshake completed.
    assert emulator.state.operations() == [
        "ConvertId",
        "GetUserAvailabilityRequest",
        "GetUserAvailabilityRequest",
    ]


async def test_only_free_busy_views_are_asked_and_nothing_private_comes_back(
    directory: ExchangeOnPremDirectory, emulator: RunningEws
) -> None:
    day = datetime(2026, 5, 4, tzinfo=UTC)
    emulator.state.add_mailbox(
        ANN,
        MailboxEvent(
            day, day + timedelta(hours=1), subject="Oncology follow-up", location="Clinic B"
        ),
    )
    found = await directory.read_schedules([ANN], day, day + timedelta(days=1), "UTC")
    await directory.verify()
    bodies = availability_requests(emulator.state)
    assert len(bodies) == 2
    for body in bodies:
        assert re.search(r"<t:RequestedView>FreeBusyMerged</t:RequestedView>", body)
        assert "Detailed" not in body
    text = repr(found)
    assert found[0].intervals and "Oncology" not in text and "Clinic" not in text


async def test_logs_carry_neither_event_details_nor_credentials(
    directory: ExchangeOnPremDirectory, emulator: RunningEws, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    day = datetime(2026, 5, 4, tzinfo=UTC)
    emulator.state.add_mailbox(ANN, MailboxEvent(day, day + timedelta(hours=1), subject="Oncology"))
    emulator.state.add_mailbox(BOB)
    emulator.state.server_busy(back_off_ms=10)
    with pytest.raises(RateLimited):
        await directory.verify()
    await directory.read_schedules(
        [ANN, BOB, "ghost@contoso.example"], day, day + timedelta(days=1), "UTC"
    )
    state = emulator.state
    basic = base64.b64encode(f"{state.username}:{state.password}".encode()).decode()
    assert caplog.records  # exchangelib did log (at INFO and above)
    for secret in ("Oncology", "Private room", state.password, basic):
        assert secret not in caplog.text


async def test_verify_is_one_real_call_returning_the_service_account(
    directory: ExchangeOnPremDirectory, emulator: RunningEws
) -> None:
    assert await directory.verify() == "tandem@contoso.example"
    assert emulator.state.operations().count("GetUserAvailabilityRequest") == 1
    assert (
        "<t:Address>tandem@contoso.example</t:Address>" in availability_requests(emulator.state)[0]
    )


async def test_verify_without_a_service_mailbox_is_misconfigured(
    tmp_path: Path, emulator: RunningEws
) -> None:
    config = emulator.config(service_account_email="nobody@contoso.example")
    async with httpx.AsyncClient() as http:
        directory = ExchangeOnPremDirectory(make_settings(tmp_path, emulator), http, config)
        with pytest.raises(ProviderMisconfigured, match="no mailbox for the service account"):
            await directory.verify()
        await directory.aclose()


async def test_an_untrusted_certificate_is_misconfigured_not_ignored(
    tmp_path: Path, emulator: RunningEws
) -> None:
    async with httpx.AsyncClient() as http:
        directory = ExchangeOnPremDirectory(make_settings(tmp_path, None), http, emulator.config())
        with pytest.raises(ProviderMisconfigured, match="TLS certificate"):
            await directory.verify()
        await directory.aclose()
    assert emulator.state.received == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"auth_type": "kerberos"}, "must be one of: NTLM, basic, digest"),
        ({"ews_url": "http://mail.contoso.example/EWS/Exchange.asmx"}, "https://"),
        ({"password": ""}, "no password"),
        ({"service_account_email": "tandem"}, "email address"),
    ],
)
async def test_bad_configuration_is_refused_plainly(
    tmp_path: Path, emulator: RunningEws, change: dict[str, str], message: str
) -> None:
    config = {**emulator.config(), **change}
    async with httpx.AsyncClient() as http:
        with pytest.raises(ProviderMisconfigured, match=re.escape(message)) as caught:
            ExchangeOnPremDirectory(make_settings(tmp_path, emulator), http, config)
    assert emulator.state.password not in str(caught.value)
    assert emulator.state.received == []


async def test_meetings_send_invitations_updates_and_cancellations_per_attendee(
    directory: ExchangeOnPremDirectory, emulator: RunningEws
) -> None:
    state = emulator.state
    event = meeting("m-1@tandem", ANN, BOB, "Tandem@Contoso.example")
    item_id = await directory.create_event(event)
    item = state.items[item_id]
    assert (item.uid, item.subject, item.location) == ("m-1@tandem", "Planning", "Room 1")
    assert (item.start, item.end) == (event.start, event.end)
    assert [a.email for a in item.required] == [ANN, BOB]  # the organizer is not invited
    assert [(m.kind, m.to) for m in state.outbox] == [("invitation", ANN), ("invitation", BOB)]
    [create] = [r.body for r in state.received if r.operation == "CreateItem"]
    assert 'SendMeetingInvitations="SendToAllAndSaveCopy"' in create

    state.outbox.clear()
    moved = meeting("m-1@tandem", ANN, CAROL, title="Planning (moved)")
    await directory.update_event(item_id, moved)
    assert state.items[item_id].subject == "Planning (moved)"
    assert [a.email for a in state.items[item_id].required] == [ANN, CAROL]
    assert sorted((m.kind, m.to) for m in state.outbox) == [
        ("cancellation", BOB),
        ("invitation", CAROL),
        ("update", ANN),
    ]
    [update] = [r.body for r in state.received if r.operation == "UpdateItem"]
    assert 'SendMeetingInvitationsOrCancellations="SendToAllAndSaveCopy"' in update

    state.outbox.clear()
    await directory.delete_event(item_id)
    assert item_id not in state.items
    assert sorted((m.kind, m.to) for m in state.outbox) == [
        ("cancellation", ANN),
        ("cancellation", CAROL),
    ]
    [delete] = [r.body for r in state.received if r.operation == "DeleteItem"]
    assert 'SendMeetingCancellations="SendToAllAndSaveCopy"' in delete
    await directory.delete_event(item_id)  # already gone: fine, and nobody is told twice
    assert len(state.outbox) == 2


async def test_a_create_retried_after_a_lost_answer_makes_no_second_meeting(
    tmp_path: Path, emulator: RunningEws
) -> None:
    state = emulator.state
    settings = make_settings(tmp_path, emulator, provider_timeout_seconds=0.3)
    async with httpx.AsyncClient() as http:
        directory = ExchangeOnPremDirectory(settings, http, emulator.config())
        await directory.verify()
        state.late_after_commit["CreateItem"] = 1.0
        with pytest.raises(OutcomeUnknown):
            await directory.create_event(meeting("m-6@tandem", ANN))
        [item_id] = state.items  # Exchange did create it and invite Ann
        again = await directory.create_event(meeting("m-6@tandem", ANN))
        other = await directory.create_event(meeting("m-7@tandem", ANN))
        await directory.aclose()
    assert again == item_id and other != item_id
    assert [(m.to, m.uid) for m in state.outbox] == [(ANN, "m-6@tandem"), (ANN, "m-7@tandem")]
    assert state.operations().count("CreateItem") == 2


async def test_the_owner_is_invited_to_a_meeting_held_in_the_service_calendar(
    directory: ExchangeOnPremDirectory, emulator: RunningEws
) -> None:
    item_id = await directory.create_event(
        meeting("m-4@tandem", BOB, ANN, organizer="Ann@contoso.example")
    )
    assert [a.email for a in emulator.state.items[item_id].required] == [ANN, BOB]
    assert sorted(m.to for m in emulator.state.outbox) == [ANN, BOB]


async def test_the_same_person_asked_twice_is_asked_once(
    directory: ExchangeOnPremDirectory, emulator: RunningEws
) -> None:
    day = datetime(2026, 5, 4, tzinfo=UTC)
    emulator.state.add_mailbox(ANN, MailboxEvent(day, day + timedelta(hours=1)))
    found = await directory.read_schedules([ANN, ANN.upper()], day, day + timedelta(days=1), "UTC")
    assert [p.email for p in found] == [ANN, ANN]
    assert found[0] == found[1] and found[0].intervals
    [body] = availability_requests(emulator.state)
    assert body.count("<t:MailboxData>") == 1


async def test_read_changes_sees_an_acceptance_and_never_reads_foreign_items(
    directory: ExchangeOnPremDirectory, emulator: RunningEws
) -> None:
    state = emulator.state
    foreign = state.seed_item(
        "040000008200E00074C5B7101A82E008@exchange",
        "Board dinner",
        datetime(2026, 3, 31, 18, tzinfo=UTC),
        datetime(2026, 3, 31, 21, tzinfo=UTC),
        location="Chez Nous",
    )
    item_id = await directory.create_event(meeting("m-2@tandem", ANN))
    other_id = await directory.create_event(meeting("m-5@tandem", BOB))
    sent_before = len(state.received)
    first = await directory.read_changes(None)
    assert [c.provider_event_id for c in first.changes] == [item_id, other_id]
    assert first.changes[0].attendee_responses == {ANN: "needs_action"}
    assert first.changes[0].start == datetime(2026, 3, 30, 9, tzinfo=UTC)
    assert first.sync_token
    assert state.operations()[sent_before:].count("GetItem") == 1  # both in one call

    state.respond(item_id, ANN, "Accept")
    state.items[foreign.item_id].subject = "Board dinner (moved)"
    state.touch(foreign.item_id)
    second = await directory.read_changes(first.sync_token)
    [change] = second.changes
    assert (change.provider_event_id, change.deleted) == (item_id, False)
    assert change.attendee_responses == {ANN: "accepted"}
    assert change.title == "Planning" and change.description == "Agenda"
    assert "Board dinner" not in repr(second) and "Chez Nous" not in repr(second)
    gets = [r.body for r in state.received[sent_before:] if r.operation == "GetItem"]
    assert gets and all(foreign.item_id not in body for body in gets)
    syncs = [r.body for r in state.received if r.operation == "SyncFolderItems"]
    assert all('FieldURI="item:Subject"' not in body for body in syncs)

    await directory.delete_event(item_id)
    third = await directory.read_changes(second.sync_token)
    assert [(c.provider_event_id, c.deleted) for c in third.changes] == [(item_id, True)]
    assert (await directory.read_changes(third.sync_token)).changes == []


async def test_a_long_change_feed_is_read_over_several_calls(
    directory: ExchangeOnPremDirectory, emulator: RunningEws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exchange_onprem, "SYNC_PAGE_SIZE", 2)
    monkeypatch.setattr(exchange_onprem, "SYNC_PAGES", 2)
    day = datetime(2026, 6, 1, 9, tzinfo=UTC)
    made = [
        emulator.state.seed_item(
            f"s-{i}@tandem", f"Meeting {i}", day, day + timedelta(hours=1)
        ).item_id
        for i in range(5)
    ]
    first = await directory.read_changes(None)
    assert [c.provider_event_id for c in first.changes] == made[:4]
    second = await directory.read_changes(first.sync_token)
    assert [c.provider_event_id for c in second.changes] == made[4:]
    assert (await directory.read_changes(second.sync_token)).changes == []
    syncs = [r.body for r in emulator.state.received if r.operation == "SyncFolderItems"]
    assert all("<m:MaxChangesReturned>2</m:MaxChangesReturned>" in body for body in syncs)


async def test_an_unknown_sync_state_asks_for_a_full_resync(
    directory: ExchangeOnPremDirectory,
) -> None:
    with pytest.raises(SyncTokenExpired):
        await directory.read_changes("bm90LW91cnM=")


async def test_a_stalled_server_times_out_and_a_write_is_outcome_unknown(
    tmp_path: Path, emulator: RunningEws
) -> None:
    emulator.state.add_mailbox(ANN)
    async with httpx.AsyncClient() as http:
        directory = ExchangeOnPremDirectory(
            make_settings(tmp_path, emulator, provider_timeout_seconds=0.3),
            http,
            emulator.config(),
        )
        await directory.verify()
        emulator.state.stall_seconds = 1.0
        day = datetime(2026, 5, 4, tzinfo=UTC)
        began = time.monotonic()
        with pytest.raises(ProviderUnavailable) as read:
            await directory.read_schedules([ANN], day, day + timedelta(days=1), "UTC")
        assert not isinstance(read.value, OutcomeUnknown)
        with pytest.raises(OutcomeUnknown):
            await directory.create_event(meeting("m-3@tandem", ANN))
        assert time.monotonic() - began < 2.5
        emulator.state.stall_seconds = 0
        await directory.aclose()
