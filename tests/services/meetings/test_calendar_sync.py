"""Two-way sync of Tandem's meetings against the Google and Microsoft emulators and
Radicale: the owner's edits and deletions in their own calendar and attendees' answers
flow back, attendees hear of a change exactly once, replays change nothing, other
users' meetings are never touched and a stale change token recovers."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from caldav.calendarobjectresource import Event as DavEvent
from caldav.collection import Calendar as DavCalendar
from caldav.davclient import DAVClient
from sqlmodel import col, select

from emulators.google import RunningGoogle
from emulators.icloud import start_icloud_hosts
from emulators.microsoft import RunningMicrosoft
from emulators.radicale import RunningRadicale
from server.jobs.runner import pull_meeting_changes
from server.models import AuditEvent, CalendarConnection, Meeting, MeetingAttendee
from server.models.base import utcnow
from server.models.enums import AttendeeResponse, MeetingStatus
from server.services.calendars import connect
from server.services.invites import MemoryMailer
from server.services.meetings import booking
from server.services.meetings.calendar_sync import sync_meeting_changes
from server.services.meetings.delivery import retry_pending_calendar_writes
from server.services.people import accounts, programs
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import provider_overrides
from tests.conftest import make_settings, use_mailer
from tests.meetings_support import World, event_of, make_world, viewer_of, weekday_slot
from tests.services.calendars.test_sync import connect_google, connect_microsoft

pytestmark = pytest.mark.slow

DAV_USER, DAV_PASSWORD = "other", "other-pass"


@pytest.fixture
async def svc(
    tmp_path: Path,
    database_url: str,
    google: RunningGoogle,
    microsoft: RunningMicrosoft,
    radicale: RunningRadicale,
) -> AsyncIterator[AppServices]:
    services = build_services(
        make_settings(tmp_path, database_url, **provider_overrides(google, microsoft))
    )
    use_mailer(services, MemoryMailer())
    yield services
    await close_services(services)


@pytest.fixture
def dav_objects(radicale: RunningRadicale) -> Iterator[list[str]]:
    """URLs of meetings written to the shared Radicale account, removed afterwards so
    later tests do not find their owners busy."""
    urls: list[str] = []
    yield urls
    with httpx.Client(auth=(DAV_USER, DAV_PASSWORD)) as http:
        for url in urls:
            http.delete(url)


# --- helpers -------------------------------------------------------------------------------


def _sent(services: AppServices) -> list[dict[str, str]]:
    assert isinstance(services.mailer, MemoryMailer)
    return [event_of(message) for message in services.mailer.sent]


async def _sync(services: AppServices, user_ids: list[uuid.UUID] | None = None) -> int:
    async with services.db.session() as db:
        return await sync_meeting_changes(db, services.meetings, user_ids)


async def _book(services: AppServices, world: World, hours: int = 0) -> Meeting:
    viewer = await viewer_of(services, world.mentor)
    async with services.db.session() as db:
        return await booking.schedule_meeting(
            db,
            services.meetings,
            viewer,
            connection_id=world.connection,
            start=weekday_slot(days=3, hour=13) + timedelta(hours=hours),
            duration_minutes=30,
            title="Mentoring session",
            description="Agenda: goals",
        )


async def _reload(services: AppServices, meeting_id: uuid.UUID) -> Meeting:
    async with services.db.session() as db:
        row = await db.get(Meeting, meeting_id)
        assert row is not None
        return row


async def _answers(services: AppServices, meeting_id: uuid.UUID) -> dict[str, AttendeeResponse]:
    async with services.db.session() as db:
        rows = (
            await db.exec(select(MeetingAttendee).where(MeetingAttendee.meeting_id == meeting_id))
        ).all()
        return {row.email.split("-")[0]: row.response for row in rows}


async def _connection(services: AppServices, user_id: uuid.UUID) -> CalendarConnection:
    async with services.db.session() as db:
        return (
            await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user_id))
        ).one()


async def _google_world(services: AppServices, google: RunningGoogle) -> tuple[World, str]:
    world = await make_world(services, two_way_sync=True)
    account = f"g-{uuid.uuid4().hex[:6]}@gmail.test"
    google.state.add_account(account)
    await connect_google(services, world.mentor, account)
    return world, account


def _edit_google(
    google: RunningGoogle, account: str, event_id: str, change: Callable[[dict[str, Any]], None]
) -> None:
    """An edit made in Google Calendar by the account's owner."""
    with google.state.lock:
        data = copy.deepcopy(google.state.events[account][event_id].data)
        change(data)
        google.state.put_event(account, data)


def _google_times(start: datetime, end: datetime) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["start"] = {"dateTime": start.isoformat(), "timeZone": "UTC"}
        data["end"] = {"dateTime": end.isoformat(), "timeZone": "UTC"}

    return change


def _provider_writes(google: RunningGoogle) -> int:
    return sum(len(google.state.requests_to("/events", m)) for m in ("POST", "PATCH", "DELETE"))


# --- Google --------------------------------------------------------------------------------


async def test_google_owner_edit_flows_back_with_one_updated_request(
    svc: AppServices, google: RunningGoogle
) -> None:
    world, account = await _google_world(svc, google)
    meeting = await _book(svc, world)
    event_id = (await _reload(svc, meeting.id)).provider_event_id
    assert event_id is not None
    assert await _sync(svc) == 0  # the first listing only sees Tandem's own write
    writes = _provider_writes(google)
    new_start = meeting.start_at + timedelta(hours=1)

    def edit(data: dict[str, Any]) -> None:
        _google_times(new_start, new_start + timedelta(minutes=45))(data)
        data["summary"] = "Mentoring session (moved)"
        data["description"] = "New agenda"

    _edit_google(google, account, event_id, edit)
    assert await _sync(svc) == 1
    row = await _reload(svc, meeting.id)
    assert (row.title, row.description) == ("Mentoring session (moved)", "New agenda")
    assert (row.start_at, row.end_at) == (new_start, new_start + timedelta(minutes=45))
    assert row.sequence == 1 and row.calendar_sync_state == "synced"
    assert (await _answers(svc, meeting.id))["mentee"] == AttendeeResponse.NEEDS_ACTION
    sent = _sent(svc)
    assert [(m["method"], m["sequence"], m["uid"]) for m in sent] == [
        ("REQUEST", "0", meeting.ical_uid),
        ("REQUEST", "1", meeting.ical_uid),
    ]
    assert sent[1]["summary"] == "Mentoring session (moved)"
    assert _provider_writes(google) == writes  # nothing was written back
    # Replays change nothing and send nothing.
    assert await _sync(svc) == 0
    assert len(_sent(svc)) == 2
    async with svc.db.session() as db:
        events = (
            await db.exec(
                select(AuditEvent).where(AuditEvent.action == "meeting.updated_from_calendar")
            )
        ).all()
    assert len(events) == 1 and events[0].target_id == str(meeting.id)
    assert events[0].details["fields"] == ["title", "description", "time"]
    assert "moved" in str(events[0].details) and "Mentoring" not in str(events[0].details)


async def test_google_ui_html_description_is_kept_as_text_and_markup_alone_sends_nothing(
    svc: AppServices, google: RunningGoogle
) -> None:
    """Google's editor re-saves the description as HTML on any edit: when only the markup
    differs nothing is updated or emailed; a real edit is kept as converted plain text."""
    world, account = await _google_world(svc, google)
    viewer = await viewer_of(svc, world.mentor)
    async with svc.db.session() as db:
        meeting = await booking.schedule_meeting(
            db,
            svc.meetings,
            viewer,
            connection_id=world.connection,
            start=weekday_slot(days=3, hour=13),
            duration_minutes=30,
            title="Mentoring session",
            description="Agenda:  goals\nBring notes & questions <3\nhttps://example.org/doc?a=1&b=2",
        )
    event_id = (await _reload(svc, meeting.id)).provider_event_id
    assert event_id is not None
    assert await _sync(svc) == 0
    stored = google.state.edit_in_google_ui(account, event_id)  # opened and saved, no change
    assert "<br>" in stored["description"] and "&amp;" in stored["description"]
    assert await _sync(svc) == 0
    row = await _reload(svc, meeting.id)
    assert row.sequence == 0 and row.description == meeting.description
    assert len(_sent(svc)) == 1  # the original invitation only

    google.state.edit_in_google_ui(
        account,
        event_id,
        description_html=(
            "<b>New</b> agenda&nbsp;for <i>Q3</i><br><ul><li>goals &amp; risks</li>"
            '<li>see <a href="https://example.org/plan">the plan</a></li></ul>'
        ),
    )
    assert await _sync(svc) == 1
    row = await _reload(svc, meeting.id)
    assert row.description == (
        "New agenda for Q3\n- goals & risks\n- see the plan (https://example.org/plan)"
    )
    assert row.sequence == 1
    assert [m["sequence"] for m in _sent(svc)] == ["0", "1"]


async def test_google_read_only_owner_gets_meetings_by_email_and_no_calendar_write(
    svc: AppServices, google: RunningGoogle
) -> None:
    """Connected without calendar.events: Tandem never tries (and fails) to write the
    owner's calendar, emails the invitation and reads no changes back."""
    world = await make_world(svc, two_way_sync=True)
    account = f"ro-{uuid.uuid4().hex[:6]}@gmail.test"
    google.state.add_account(account)
    await connect_google(svc, world.mentor, account, untick=("calendar.events",))
    inserts = len(google.state.requests_to("/events", "POST"))
    meeting = await _book(svc, world)
    row = await _reload(svc, meeting.id)
    assert (row.provider_event_id, row.calendar_sync_state, row.calendar_error) == (
        None,
        "none",
        None,
    )
    assert len(google.state.requests_to("/events", "POST")) == inserts
    assert [(m["method"], m["uid"]) for m in _sent(svc)] == [("REQUEST", meeting.ical_uid)]
    assert await _sync(svc) == 0


async def test_gmail_guest_never_holds_two_uids_for_one_meeting(
    svc: AppServices, google: RunningGoogle
) -> None:
    """The guest is a Google account: Google puts the owner's event on their calendar and
    Tandem emails them. Both carry the meeting's UID, on booking and after a change, and
    Google is never asked to email (sendUpdates=none), so one event and one invitation."""
    world, _ = await _google_world(svc, google)
    async with svc.db.session() as db:
        guest = (await accounts.get_user(db, world.mentee)).email
    google.state.add_account(guest)
    # The emulator is shared by the session: look only at this test's requests.
    seen = len(google.state.requests)
    meeting = await _book(svc, world)
    viewer = await viewer_of(svc, world.mentor)
    async with svc.db.session() as db:
        await booking.update_meeting(
            db, svc.meetings, viewer, meeting.id, title="Mentoring session (renamed)"
        )
    copies = google.state.guest_copies(guest)
    emailed = [m for m in _sent(svc) if m["method"] == "REQUEST"]
    assert len(copies) == 1 and len(emailed) == 2
    assert {c["iCalUID"] for c in copies} | {m["uid"] for m in emailed} == {meeting.ical_uid}
    writes = [r for r in google.state.requests[seen:] if r.method in ("POST", "PATCH")]
    event_writes = [r for r in writes if "/events" in r.path and not r.path.endswith("/watch")]
    assert event_writes and {r.send_updates for r in event_writes} == {"none"}


async def test_google_owner_edit_with_hostile_text_or_a_far_time_is_cleaned(
    svc: AppServices, google: RunningGoogle
) -> None:
    """What comes back from a calendar obeys the rules of what Tandem accepts: control and
    bidi characters go, and a time moved to year 9999 is left as Tandem has it."""
    world, account = await _google_world(svc, google)
    meeting = await _book(svc, world)
    event_id = (await _reload(svc, meeting.id)).provider_event_id
    assert event_id is not None
    await _sync(svc)
    far = datetime(9999, 12, 31, 10, tzinfo=UTC)

    def edit(data: dict[str, Any]) -> None:
        _google_times(far, far + timedelta(hours=1))(data)
        data["summary"] = "Sync\x00 \u202eup\x1b"
        data["description"] = "Line\x00 one\nline \u2066two"

    _edit_google(google, account, event_id, edit)
    await _sync(svc)
    row = await _reload(svc, meeting.id)
    assert (row.title, row.description) == ("Sync up", "Line one\nline two")
    assert (row.start_at, row.end_at) == (meeting.start_at, meeting.end_at)


async def test_google_answers_flow_back_for_invited_attendees_only(
    svc: AppServices, google: RunningGoogle
) -> None:
    world, account = await _google_world(svc, google)
    meeting = await _book(svc, world)
    event_id = (await _reload(svc, meeting.id)).provider_event_id
    assert event_id is not None
    await _sync(svc)
    async with svc.db.session() as db:
        mentor = await accounts.get_user(db, world.mentor)
        mentee = await accounts.get_user(db, world.mentee)

    def answer(data: dict[str, Any]) -> None:
        data["attendees"] = [
            {"email": mentee.email, "responseStatus": "accepted"},
            # The owner's own row is never set from the calendar's data,
            {"email": mentor.email, "responseStatus": "declined"},
            # and nobody Tandem did not invite is added.
            {"email": "stranger@example.org", "responseStatus": "accepted"},
        ]

    _edit_google(google, account, event_id, answer)
    assert await _sync(svc) == 1
    assert await _answers(svc, meeting.id) == {
        "mentor": AttendeeResponse.ACCEPTED,
        "mentee": AttendeeResponse.ACCEPTED,
    }
    assert len(_sent(svc)) == 1  # an answer emails nobody
    assert (await _reload(svc, meeting.id)).sequence == 0
    # The owner moves the meeting: answers start over, and the calendar's old "accepted"
    # is not taken as a new answer later on.
    start = meeting.start_at + timedelta(days=1)
    _edit_google(google, account, event_id, _google_times(start, start + timedelta(minutes=30)))
    assert await _sync(svc) == 1
    assert (await _answers(svc, meeting.id))["mentee"] == AttendeeResponse.NEEDS_ACTION
    _edit_google(google, account, event_id, lambda data: data.update(summary="Renamed"))
    assert await _sync(svc) == 1
    assert (await _answers(svc, meeting.id))["mentee"] == AttendeeResponse.NEEDS_ACTION
    assert [m["sequence"] for m in _sent(svc)] == ["0", "1", "2"]


async def test_google_deleted_event_cancels_the_meeting_once(
    svc: AppServices, google: RunningGoogle
) -> None:
    world, account = await _google_world(svc, google)
    meeting = await _book(svc, world)
    event_id = (await _reload(svc, meeting.id)).provider_event_id
    assert event_id is not None
    await _sync(svc)
    writes = _provider_writes(google)
    _edit_google(google, account, event_id, lambda data: data.update(status="cancelled"))
    assert await _sync(svc) == 1
    row = await _reload(svc, meeting.id)
    assert row.status == MeetingStatus.CANCELLED and row.sequence == 1
    assert [(m["method"], m["sequence"]) for m in _sent(svc)] == [("REQUEST", "0"), ("CANCEL", "1")]
    assert _provider_writes(google) == writes
    assert await _sync(svc) == 0
    assert len(_sent(svc)) == 2


async def test_google_copy_of_another_users_event_never_touches_their_meeting(
    svc: AppServices, google: RunningGoogle
) -> None:
    world_a, account_a = await _google_world(svc, google)
    world_b, account_b = await _google_world(svc, google)
    mine = await _book(svc, world_a)
    theirs = await _book(svc, world_b, hours=2)
    their_id = (await _reload(svc, theirs.id)).provider_event_id
    assert their_id is not None
    await _sync(svc)
    # Owner A's calendar gets a copy of B's event (same id, same Tandem UID), edited.
    copied = copy.deepcopy(google.state.events[account_b][their_id].data)
    copied["summary"] = "Hijacked"
    google.state.add_event(account_a, copied)
    assert await _sync(svc, [world_a.mentor]) == 0
    _edit_google(google, account_a, their_id, lambda data: data.update(status="cancelled"))
    assert await _sync(svc, [world_a.mentor]) == 0
    row = await _reload(svc, theirs.id)
    assert (row.title, row.status, row.sequence) == ("Mentoring session", "scheduled", 0)
    assert (await _reload(svc, mine.id)).sequence == 0
    assert len(_sent(svc)) == 2  # the two original invitations


async def test_google_stale_token_recovers_with_a_full_listing(
    svc: AppServices, google: RunningGoogle
) -> None:
    world, account = await _google_world(svc, google)
    meeting = await _book(svc, world)
    event_id = (await _reload(svc, meeting.id)).provider_event_id
    assert event_id is not None
    await _sync(svc)
    old_token = (await _connection(svc, world.mentor)).changes_token
    assert old_token is not None
    google.state.invalidate_sync_tokens()
    _edit_google(google, account, event_id, lambda data: data.update(summary="After 410"))
    assert await _sync(svc) == 1
    assert (await _reload(svc, meeting.id)).title == "After 410"
    new_token = (await _connection(svc, world.mentor)).changes_token
    assert new_token is not None and new_token != old_token
    assert await _sync(svc) == 0
    assert len(_sent(svc)) == 2


async def test_two_workers_reading_at_once_apply_the_change_once(
    svc: AppServices, google: RunningGoogle
) -> None:
    world, account = await _google_world(svc, google)
    meeting = await _book(svc, world)
    event_id = (await _reload(svc, meeting.id)).provider_event_id
    assert event_id is not None
    await _sync(svc)
    _edit_google(google, account, event_id, lambda data: data.update(summary="Once"))
    assert sorted(await asyncio.gather(_sync(svc), _sync(svc))) == [0, 1]
    assert (await _reload(svc, meeting.id)).sequence == 1
    assert [m["summary"] for m in _sent(svc)] == ["Mentoring session", "Once"]


async def test_calendar_copy_never_overrides_a_change_still_being_written(
    svc: AppServices, google: RunningGoogle
) -> None:
    """While Tandem's own write is pending, the calendar holds an older version."""
    world, account = await _google_world(svc, google)
    meeting = await _book(svc, world)
    event_id = (await _reload(svc, meeting.id)).provider_event_id
    assert event_id is not None
    await _sync(svc)
    async with svc.db.session() as db:
        row = await db.get(Meeting, meeting.id)
        assert row is not None
        row.calendar_sync_state = "pending"
        row.calendar_retry_at = utcnow() + timedelta(hours=1)
        db.add(row)
        await db.commit()
    _edit_google(google, account, event_id, lambda data: data.update(summary="Older copy"))
    assert await _sync(svc) == 0
    assert (await _reload(svc, meeting.id)).title == "Mentoring session"


async def test_program_without_two_way_sync_is_not_read(
    svc: AppServices, google: RunningGoogle
) -> None:
    world, account = await _google_world(svc, google)
    meeting = await _book(svc, world)
    event_id = (await _reload(svc, meeting.id)).provider_event_id
    assert event_id is not None
    async with svc.db.session() as db:
        admin = await accounts.get_user(db, world.admin)
        await programs.update_settings(
            db, admin, world.program, programs.SettingsChange(two_way_sync_enabled=False)
        )
        await db.commit()
    reads = len(google.state.requests_to("/events", "GET"))
    _edit_google(google, account, event_id, lambda data: data.update(summary="Ignored"))
    assert await _sync(svc) == 0
    assert len(google.state.requests_to("/events", "GET")) == reads
    assert (await _reload(svc, meeting.id)).title == "Mentoring session"


async def test_job_reads_when_a_push_asks_or_the_last_read_is_old(
    svc: AppServices, google: RunningGoogle
) -> None:
    world, account = await _google_world(svc, google)
    meeting = await _book(svc, world)
    event_id = (await _reload(svc, meeting.id)).provider_event_id
    assert event_id is not None
    await pull_meeting_changes(svc)  # never read before: reads
    assert (await _connection(svc, world.mentor)).changes_read_at is not None
    _edit_google(google, account, event_id, lambda data: data.update(summary="Via push"))
    await pull_meeting_changes(svc)  # read moments ago, nothing asked: waits
    assert (await _reload(svc, meeting.id)).title == "Mentoring session"
    async with svc.db.session() as db:
        connection = (
            await db.exec(
                select(CalendarConnection).where(CalendarConnection.user_id == world.mentor)
            )
        ).one()
        connection.sync_requested = True  # what a push notification does
        db.add(connection)
        await db.commit()
    await pull_meeting_changes(svc)
    assert (await _reload(svc, meeting.id)).title == "Via push"


# --- Microsoft -----------------------------------------------------------------------------


async def _microsoft_world(services: AppServices, microsoft: RunningMicrosoft) -> tuple[World, str]:
    world = await make_world(services, two_way_sync=True)
    account = f"m-{uuid.uuid4().hex[:6]}@contoso.test"
    microsoft.state.add_account(account)
    await connect_microsoft(services, world.mentor, account, microsoft.ca_path)
    return world, account


async def test_microsoft_owner_edits_answers_and_deletion_flow_back(
    svc: AppServices, microsoft: RunningMicrosoft
) -> None:
    world, account = await _microsoft_world(svc, microsoft)
    meeting = await _book(svc, world)
    row = await _reload(svc, meeting.id)
    event_id = row.provider_event_id
    assert event_id is not None and row.invitations_by == "provider"
    assert await _sync(svc) == 0
    patches = len(microsoft.state.requests_to("/me/events", "PATCH"))
    start = meeting.start_at + timedelta(hours=1)
    microsoft.state.update_event(
        account, event_id, subject="Renamed in Outlook", start=start, end=start + timedelta(hours=1)
    )
    assert await _sync(svc) == 1
    row = await _reload(svc, meeting.id)
    assert (row.title, row.start_at, row.end_at) == (
        "Renamed in Outlook",
        start,
        start + timedelta(hours=1),
    )
    assert row.sequence == 1 and row.description == "Agenda: goals"
    async with svc.db.session() as db:
        mentee = await accounts.get_user(db, world.mentee)
    microsoft.state.set_response(account, event_id, mentee.email, "tentativelyAccepted")
    assert await _sync(svc) == 1
    assert (await _answers(svc, meeting.id))["mentee"] == AttendeeResponse.TENTATIVE
    assert await _sync(svc) == 0  # replay
    microsoft.state.invalidate_delta_tokens()
    assert await _sync(svc) == 0  # a forgotten token: listed again, nothing new
    assert (await _connection(svc, world.mentor)).changes_token is not None
    microsoft.state.remove_event(account, event_id)
    assert await _sync(svc) == 1
    assert (await _reload(svc, meeting.id)).status == MeetingStatus.CANCELLED
    # Graph emailed the attendees of its event itself; Tandem never writes back or mails.
    assert _sent(svc) == []
    assert len(microsoft.state.requests_to("/me/events", "PATCH")) == patches


async def test_microsoft_delta_window_is_listed_again_before_it_runs_short(
    svc: AppServices, microsoft: RunningMicrosoft
) -> None:
    world, account = await _microsoft_world(svc, microsoft)
    meeting = await _book(svc, world)
    event_id = (await _reload(svc, meeting.id)).provider_event_id
    assert event_id is not None
    await _sync(svc)
    async with svc.db.session() as db:
        connection = (
            await db.exec(
                select(CalendarConnection).where(CalendarConnection.user_id == world.mentor)
            )
        ).one()
        connection.changes_until = utcnow() + timedelta(days=2)
        db.add(connection)
        await db.commit()
    microsoft.state.update_event(account, event_id, subject="Seen before relisting")
    listings = len(microsoft.state.requests_to("/calendarView/delta"))
    assert await _sync(svc) == 1
    # The change comes from the delta round; the fresh listing then finds nothing new.
    assert len(microsoft.state.requests_to("/calendarView/delta")) == listings + 2
    renewed = (await _connection(svc, world.mentor)).changes_until
    horizon = timedelta(days=svc.calendar.horizon_days)
    assert renewed is not None and renewed > utcnow() + horizon - timedelta(hours=1)
    assert (await _reload(svc, meeting.id)).title == "Seen before relisting"


async def test_microsoft_meeting_tandem_invites_for_gets_one_request_per_change(
    svc: AppServices, microsoft: RunningMicrosoft
) -> None:
    world, account = await _microsoft_world(svc, microsoft)
    microsoft.state.fail_next("/me/events", 503, headers={"Retry-After": "0"}, times=10)
    meeting = await _book(svc, world)
    microsoft.state.faults.clear()
    async with svc.db.session() as db:
        row = await db.get(Meeting, meeting.id)
        assert row is not None and row.invitations_by == "tandem"
        row.calendar_retry_at = utcnow() - timedelta(seconds=1)
        db.add(row)
        await db.commit()
        assert await retry_pending_calendar_writes(db, svc.meetings) == 1
    event_id = (await _reload(svc, meeting.id)).provider_event_id
    assert event_id is not None
    assert await _sync(svc) == 0
    microsoft.state.update_event(account, event_id, subject="Retitled", body="New notes")
    assert await _sync(svc) == 1
    assert (await _reload(svc, meeting.id)).description == "New notes"
    microsoft.state.remove_event(account, event_id)
    assert await _sync(svc) == 1
    assert await _sync(svc) == 0
    assert [(m["method"], m["sequence"], m["summary"]) for m in _sent(svc)] == [
        ("REQUEST", "0", "Mentoring session"),
        ("REQUEST", "1", "Retitled"),
        ("CANCEL", "2", "Retitled"),
    ]


# --- CalDAV (Radicale) ---------------------------------------------------------------------


async def _caldav_world(services: AppServices, radicale: RunningRadicale) -> World:
    world = await make_world(services, two_way_sync=True)
    radicale.make_calendar(DAV_USER, DAV_PASSWORD, f"sync{uuid.uuid4().hex[:6]}")
    await _connect_caldav(services, world.mentor, radicale)
    return world


async def _connect_caldav(
    services: AppServices, user_id: uuid.UUID, radicale: RunningRadicale
) -> None:
    viewer = await viewer_of(services, user_id)
    async with services.db.session() as db:
        await connect.connect_with_password(
            db,
            services.calendar,
            viewer,
            username=DAV_USER,
            password=DAV_PASSWORD,
            server_url=radicale.url,
        )
        await db.commit()


async def _book_caldav(
    services: AppServices, world: World, objects: list[str], hours: int = 0
) -> tuple[Meeting, str]:
    meeting = await _book(services, world, hours)
    url = (await _reload(services, meeting.id)).provider_event_id
    assert url is not None
    objects.append(url)
    assert url.endswith("%40tandem.ics")
    return meeting, url


async def _edit_caldav(
    radicale: RunningRadicale, url: str, change: Callable[[Any], None] | None
) -> None:
    """Save a changed VEVENT (or delete it, ``change=None``) with the caldav library, as a
    calendar app writing the owner's calendar would."""

    def run() -> None:
        with DAVClient(
            url=radicale.url, username=DAV_USER, password=DAV_PASSWORD, timeout=10
        ) as client:
            calendar = DavCalendar(client=client, url=url.rsplit("/", 1)[0] + "/")
            # caldav types its sync methods as maybe-async: use them untyped.
            event: Any = DavEvent(client=client, url=url, parent=calendar)
            event.load()
            if change is None:
                event.delete()
                return
            with event.edit_icalendar_component() as component:
                change(component)
                component["SEQUENCE"] = int(component.get("SEQUENCE", 0)) + 1
            event.save()

    await asyncio.to_thread(run)


def _set_partstat(email: str, partstat: str) -> Callable[[Any], None]:
    def change(component: Any) -> None:
        attendees = component.get("ATTENDEE")
        for attendee in attendees if isinstance(attendees, list) else [attendees]:
            if str(attendee).lower() == f"mailto:{email}".lower():
                attendee.params["PARTSTAT"] = partstat

    return change


def _move_and_retitle(start: datetime, title: str) -> Callable[[Any], None]:
    def change(component: Any) -> None:
        duration = component["DTEND"].dt - component["DTSTART"].dt
        for name in ("DTSTART", "DTEND", "SUMMARY"):
            del component[name]
        component.add("DTSTART", start)
        component.add("DTEND", start + duration)
        component.add("SUMMARY", title)

    return change


async def test_caldav_owner_edit_answer_and_deletion_flow_back(
    svc: AppServices, radicale: RunningRadicale, dav_objects: list[str]
) -> None:
    world = await _caldav_world(svc, radicale)
    meeting, url = await _book_caldav(svc, world, dav_objects)
    assert await _sync(svc, [world.mentor]) == 0
    async with svc.db.session() as db:
        mentee = await accounts.get_user(db, world.mentee)
    await _edit_caldav(radicale, url, _set_partstat(mentee.email, "DECLINED"))
    assert await _sync(svc, [world.mentor]) == 1
    assert (await _answers(svc, meeting.id))["mentee"] == AttendeeResponse.DECLINED
    start = meeting.start_at + timedelta(hours=2)
    await _edit_caldav(radicale, url, _move_and_retitle(start, "Moved in Calendar.app"))
    assert await _sync(svc, [world.mentor]) == 1
    row = await _reload(svc, meeting.id)
    assert (row.title, row.start_at, row.sequence) == ("Moved in Calendar.app", start, 1)
    assert row.description == "Agenda: goals"
    assert (await _answers(svc, meeting.id))["mentee"] == AttendeeResponse.NEEDS_ACTION
    assert await _sync(svc, [world.mentor]) == 0
    # A token the server no longer knows: listed again, nothing new.
    async with svc.db.session() as db:
        connection = (
            await db.exec(
                select(CalendarConnection).where(CalendarConnection.user_id == world.mentor)
            )
        ).one()
        connection.changes_token = "http://radicale.org/ns/sync/" + "0" * 64
        db.add(connection)
        await db.commit()
    assert await _sync(svc, [world.mentor]) == 0
    token = (await _connection(svc, world.mentor)).changes_token
    assert token is not None and not token.endswith("0" * 64)
    await _edit_caldav(radicale, url, None)
    assert await _sync(svc, [world.mentor]) == 1
    assert (await _reload(svc, meeting.id)).status == MeetingStatus.CANCELLED
    assert [(m["method"], m["sequence"], m["summary"]) for m in _sent(svc)] == [
        ("REQUEST", "0", "Mentoring session"),
        ("REQUEST", "1", "Moved in Calendar.app"),
        ("CANCEL", "2", "Moved in Calendar.app"),
    ]


async def test_caldav_shared_calendar_changes_only_its_owners_meeting(
    svc: AppServices, radicale: RunningRadicale, dav_objects: list[str]
) -> None:
    """Two people connected to one CalDAV account: each one's read sees the other's
    meeting, and applies only to its own."""
    world_a = await _caldav_world(svc, radicale)
    world_b = await make_world(svc, two_way_sync=True)
    await _connect_caldav(svc, world_b.mentor, radicale)
    mine, _url = await _book_caldav(svc, world_a, dav_objects)
    theirs, their_url = await _book_caldav(svc, world_b, dav_objects, hours=2)
    await _sync(svc)
    start = theirs.start_at + timedelta(hours=1)
    await _edit_caldav(radicale, their_url, _move_and_retitle(start, "Edited"))
    assert await _sync(svc, [world_a.mentor]) == 0
    assert (await _reload(svc, theirs.id)).title == "Mentoring session"
    assert await _sync(svc, [world_b.mentor]) == 1
    assert (await _reload(svc, theirs.id)).title == "Edited"
    assert (await _reload(svc, mine.id)).sequence == 0
    async with svc.db.session() as db:
        changed = (
            await db.exec(
                select(AuditEvent.target_id).where(
                    AuditEvent.action == "meeting.updated_from_calendar"
                )
            )
        ).all()
        cancelled = (
            await db.exec(select(Meeting.id).where(col(Meeting.status) == "cancelled"))
        ).all()
    assert changed == [str(theirs.id)] and cancelled == []


async def test_microsoft_meeting_moved_past_the_feed_window_is_moved_not_cancelled(
    svc: AppServices, microsoft: RunningMicrosoft
) -> None:
    """Graph's delta reports an event moved outside its window like a deleted one."""
    world, account = await _microsoft_world(svc, microsoft)
    meeting = await _book(svc, world)
    event_id = (await _reload(svc, meeting.id)).provider_event_id
    assert event_id is not None
    await _sync(svc)
    far = meeting.start_at + timedelta(days=120)
    microsoft.state.update_event(account, event_id, start=far, end=far + timedelta(hours=1))
    assert await _sync(svc) == 1
    row = await _reload(svc, meeting.id)
    assert row.status == MeetingStatus.SCHEDULED
    assert (row.start_at, row.end_at) == (far, far + timedelta(hours=1))
    microsoft.state.remove_event(account, event_id)
    assert await _sync(svc) == 1
    assert (await _reload(svc, meeting.id)).status == MeetingStatus.CANCELLED


async def test_caldav_token_failing_with_an_undocumented_status_is_dropped_after_three_tries(
    svc: AppServices, radicale: RunningRadicale, dav_objects: list[str]
) -> None:
    """iCloud does not document its answer to a bad sync token: a token that keeps failing
    with another status (here 500) is given up for a full listing on the third failure,
    instead of being retried forever."""
    hosts = start_icloud_hosts(radicale.url)
    try:
        world = await make_world(svc, two_way_sync=True)
        radicale.make_calendar(DAV_USER, DAV_PASSWORD, f"sync{uuid.uuid4().hex[:6]}")
        viewer = await viewer_of(svc, world.mentor)
        async with svc.db.session() as db:
            await connect.connect_with_password(
                db,
                svc.calendar,
                viewer,
                username=DAV_USER,
                password=DAV_PASSWORD,
                server_url=hosts.entry_url,
            )
            await db.commit()
        meeting, url = await _book_caldav(svc, world, dav_objects)
        assert url.startswith(hosts.partition_url)
        direct = url.replace(hosts.partition_url, radicale.url)
        dav_objects[-1] = direct  # cleaned up after the proxy has stopped
        assert await _sync(svc, [world.mentor]) == 0
        token = (await _connection(svc, world.mentor)).changes_token
        assert token is not None

        hosts.fail_sync_with_token(500)
        for failures in (1, 2):
            assert await _sync(svc, [world.mentor]) == 0
            connection = await _connection(svc, world.mentor)
            assert (connection.changes_token, connection.changes_failures) == (token, failures)
        await _edit_caldav(
            radicale,
            direct,
            _move_and_retitle(meeting.start_at, "Seen after relisting"),
        )
        assert await _sync(svc, [world.mentor]) == 1  # third failure: listed without the token
        connection = await _connection(svc, world.mentor)
        assert connection.changes_token not in (None, token)
        assert connection.changes_failures == 0
        assert (await _reload(svc, meeting.id)).title == "Seen after relisting"
    finally:
        hosts.fail_sync_with_token(None)
        hosts.stop()
