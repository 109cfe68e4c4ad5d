"""Invitations through a real SMTP server and the owner's calendar through the Google and
Microsoft emulators and Radicale: who sends invitations (never twice), and a provider
outage that leaves the meeting saved, the attendees invited and the write retried."""

from __future__ import annotations

import email
import email.policy
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from icalendar import Calendar
from sqlmodel import select

from emulators.google import RunningGoogle
from emulators.microsoft import RunningMicrosoft
from emulators.radicale import RunningRadicale
from emulators.runner import free_port
from server.models import CalendarConnection, Meeting
from server.models.base import utcnow
from server.models.enums import AttendeeResponse
from server.services.calendars import connect
from server.services.invites import SmtpMailer
from server.services.invites.queue import QueueingMailer
from server.services.meetings import booking
from server.services.meetings.delivery import retry_pending_calendar_writes
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import provider_overrides
from tests.conftest import make_settings
from tests.meetings_support import World, make_world, viewer_of, weekday_slot
from tests.services.calendars.test_sync import connect_google, connect_microsoft

pytestmark = pytest.mark.slow


@dataclass
class Inbox:
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
async def svc(
    tmp_path: Path,
    sqlite_url: str,
    smtp: tuple[Inbox, int],
    google: RunningGoogle,
    microsoft: RunningMicrosoft,
    radicale: RunningRadicale,
) -> AsyncIterator[AppServices]:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        smtp_starttls=False,
        mail_from="Tandem <tandem@example.org>",
        **provider_overrides(google, microsoft),
    )
    services = build_services(settings)
    assert isinstance(services.mailer, QueueingMailer)
    assert isinstance(services.mailer.inner, SmtpMailer)
    yield services
    await close_services(services)


def _event(message: EmailMessage) -> tuple[Calendar, Any]:
    calendar_parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    attachments = [p for p in message.walk() if p.get_content_type() == "application/ics"]
    assert len(calendar_parts) == 1 and len(attachments) == 1
    payload = attachments[0].get_payload(decode=True)
    assert isinstance(payload, bytes) and payload == calendar_parts[0].get_payload(decode=True)
    cal = Calendar.from_ical(payload)
    return cal, next(iter(cal.walk("VEVENT")))


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
            location="Room 2",
        )


async def _reload(services: AppServices, meeting_id: uuid.UUID) -> Meeting:
    async with services.db.session() as db:
        row = await db.get(Meeting, meeting_id)
        assert row is not None
        return row


async def _update_and_cancel(services: AppServices, world: World, meeting: Meeting) -> None:
    owner = await viewer_of(services, world.mentor)
    async with services.db.session() as db:
        await booking.update_meeting(
            db,
            services.meetings,
            owner,
            meeting.id,
            title="Mentoring session (new room)",
            location="Room 7",
        )
        await booking.cancel_meeting(db, services.meetings, owner, meeting.id)


async def _make_due(services: AppServices, meeting_id: uuid.UUID) -> None:
    async with services.db.session() as db:
        row = await db.get(Meeting, meeting_id)
        assert row is not None
        row.calendar_retry_at = utcnow() - timedelta(seconds=1)
        db.add(row)
        await db.commit()


async def test_smtp_receives_request_update_and_cancel_with_one_uid(
    svc: AppServices, smtp: tuple[Inbox, int]
) -> None:
    inbox = smtp[0]
    world = await make_world(svc)
    meeting = await _book(svc, world)
    await _update_and_cancel(svc, world, meeting)
    assert len(inbox.messages) == 3
    seen = []
    for recipients, message in inbox.messages:
        assert len(recipients) == 1
        assert recipients[0].startswith("mentee-")
        assert message["From"] == "Tandem <tandem@example.org>"
        assert {p.get_content_type() for p in message.walk()} >= {
            "text/plain",
            "text/html",
            "text/calendar",
            "application/ics",
        }
        cal, event = _event(message)
        seen.append((str(cal["METHOD"]), int(event["SEQUENCE"]), str(event["UID"])))
        assert str(event["ORGANIZER"]).startswith("mailto:mentor-")
        attendees = (
            event["ATTENDEE"] if isinstance(event["ATTENDEE"], list) else [event["ATTENDEE"]]
        )
        mentee = [a for a in attendees if str(a).startswith("mailto:mentee-")]
        assert mentee and mentee[0].params["RSVP"] == "TRUE"
        assert event["DTSTART"].params["TZID"] == "Europe/Paris"
        assert event["DTSTART"].dt.utcoffset() is not None
    assert seen == [
        ("REQUEST", 0, meeting.ical_uid),
        ("REQUEST", 1, meeting.ical_uid),
        ("CANCEL", 2, meeting.ical_uid),
    ]
    assert inbox.messages[1][1]["Subject"].startswith(
        "Updated invitation: Mentoring session (new room)"
    )
    text = inbox.messages[0][1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "http://testserver/rsvp/" in text
    assert "/rsvp/" not in inbox.messages[2][1].get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_google_owner_event_is_written_silently_and_tandem_invites(
    svc: AppServices, smtp: tuple[Inbox, int], google: RunningGoogle
) -> None:
    world = await make_world(svc, two_way_sync=True)
    account = f"g-{uuid.uuid4().hex[:6]}@gmail.test"
    google.state.add_account(account)
    await connect_google(svc, world.mentor, account)
    before = len(google.state.requests_to("/events"))
    meeting = await _book(svc, world)
    row = await _reload(svc, meeting.id)
    assert row.calendar_sync_state == "synced" and row.invitations_by == "tandem"
    assert row.provider_event_id is not None
    stored = google.state.events[account][row.provider_event_id].data
    assert stored["iCalUID"] == meeting.ical_uid
    assert stored["summary"] == "Mentoring session"
    assert [a["email"] for a in stored["attendees"]] == [next(iter(smtp[0].messages))[0][0]]
    # The attendee's answer in Tandem is mirrored into the owner's event by the job.
    mentee = await viewer_of(svc, world.mentee)
    async with svc.db.session() as db:
        await booking.respond_to_meeting(db, mentee, meeting.id, AttendeeResponse.ACCEPTED)
        await db.commit()
    assert (await _reload(svc, meeting.id)).calendar_sync_state == "pending"
    async with svc.db.session() as db:
        assert await retry_pending_calendar_writes(db, svc.meetings) == 1
    stored = google.state.events[account][row.provider_event_id].data
    assert [a["responseStatus"] for a in stored["attendees"]] == ["accepted"]
    await _update_and_cancel(svc, world, meeting)
    calls = google.state.requests_to("/events")[before:]
    assert [
        (c.method, c.send_updates) for c in calls if c.method in ("POST", "PATCH", "DELETE")
    ] == [
        ("POST", "none"),
        ("PATCH", "none"),
        ("PATCH", "none"),
        ("DELETE", "none"),
    ]
    # Google stays silent; the attendee hears from Tandem exactly once per change.
    assert [str(_event(m)[0]["METHOD"]) for _r, m in smtp[0].messages] == [
        "REQUEST",
        "REQUEST",
        "CANCEL",
    ]
    assert (await _reload(svc, meeting.id)).calendar_sync_state == "synced"


async def test_microsoft_owner_graph_invites_and_tandem_sends_nothing(
    svc: AppServices, smtp: tuple[Inbox, int], microsoft: RunningMicrosoft
) -> None:
    world = await make_world(svc, two_way_sync=True)
    account = f"m-{uuid.uuid4().hex[:6]}@contoso.test"
    microsoft.state.add_account(account)
    await connect_microsoft(svc, world.mentor, account, microsoft.ca_path)
    meeting = await _book(svc, world)
    row = await _reload(svc, meeting.id)
    assert row.calendar_sync_state == "synced" and row.invitations_by == "provider"
    assert row.provider_event_id is not None
    event = microsoft.state.account(account).events[row.provider_event_id]
    assert event.transaction_id == meeting.ical_uid
    assert [a["emailAddress"]["address"][:7] for a in event.attendees] == ["mentee-"]
    await _update_and_cancel(svc, world, meeting)
    assert smtp[0].messages == []
    assert microsoft.state.account(account).events[row.provider_event_id].deleted


async def test_caldav_owner_event_is_put_into_radicale_and_tandem_invites(
    svc: AppServices, smtp: tuple[Inbox, int], radicale: RunningRadicale
) -> None:
    world = await make_world(svc, two_way_sync=True)
    radicale.make_calendar("other", "other-pass", f"meet{uuid.uuid4().hex[:6]}")
    owner = await viewer_of(svc, world.mentor)
    async with svc.db.session() as db:
        await connect.connect_with_password(
            db,
            svc.calendar,
            owner,
            username="other",
            password="other-pass",
            server_url=radicale.url,
        )
        await db.commit()
    meeting = await _book(svc, world)
    row = await _reload(svc, meeting.id)
    assert row.calendar_sync_state == "synced" and row.invitations_by == "tandem"
    assert row.provider_event_id is not None and row.provider_event_id.endswith(".ics")
    async with httpx.AsyncClient(auth=("other", "other-pass")) as http:
        stored = await http.get(row.provider_event_id)
    assert stored.status_code == 200 and f"UID:{meeting.ical_uid}" in stored.text
    assert "mentee-" in stored.text and "SCHEDULE-AGENT=CLIENT" in stored.text.replace("\r\n ", "")
    assert len(smtp[0].messages) == 1
    await _update_and_cancel(svc, world, meeting)
    async with httpx.AsyncClient(auth=("other", "other-pass")) as http:
        gone = await http.get(row.provider_event_id)
    assert gone.status_code == 404
    assert len(smtp[0].messages) == 3


async def test_google_outage_keeps_meeting_invites_by_email_and_retries(
    svc: AppServices, smtp: tuple[Inbox, int], google: RunningGoogle
) -> None:
    world = await make_world(svc, two_way_sync=True)
    account = f"g-{uuid.uuid4().hex[:6]}@gmail.test"
    google.state.add_account(account)
    await connect_google(svc, world.mentor, account)
    google.state.fail_next("/calendars/primary/events", 503, headers={"Retry-After": "0"}, times=5)
    meeting = await _book(svc, world)
    row = await _reload(svc, meeting.id)
    assert row.status.value == "scheduled"
    assert row.calendar_sync_state == "pending" and row.calendar_attempts == 1
    assert row.calendar_retry_at is not None and row.calendar_retry_at > utcnow()
    assert row.provider_event_id is None and row.calendar_error
    assert len(smtp[0].messages) == 1  # attendees are invited all the same
    google.state.faults.clear()
    async with svc.db.session() as db:
        assert await retry_pending_calendar_writes(db, svc.meetings) == 0  # not due yet
    await _make_due(svc, meeting.id)
    async with svc.db.session() as db:
        assert await retry_pending_calendar_writes(db, svc.meetings) == 1
    row = await _reload(svc, meeting.id)
    assert row.calendar_sync_state == "synced" and row.calendar_error is None
    assert row.provider_event_id in google.state.events[account]
    assert google.state.requests_to("/events", "POST")[-1].send_updates == "none"
    assert len(smtp[0].messages) == 1


async def test_microsoft_outage_falls_back_to_tandem_mail_and_retry_lists_no_attendees(
    svc: AppServices, smtp: tuple[Inbox, int], microsoft: RunningMicrosoft
) -> None:
    world = await make_world(svc, two_way_sync=True)
    account = f"m-{uuid.uuid4().hex[:6]}@contoso.test"
    microsoft.state.add_account(account)
    await connect_microsoft(svc, world.mentor, account, microsoft.ca_path)
    microsoft.state.fail_next("/me/events", 503, headers={"Retry-After": "0"}, times=10)
    meeting = await _book(svc, world)
    row = await _reload(svc, meeting.id)
    assert row.calendar_sync_state == "pending" and row.invitations_by == "tandem"
    assert len(smtp[0].messages) == 1  # Graph never got the meeting, so Tandem invited
    microsoft.state.faults.clear()
    await _make_due(svc, meeting.id)
    async with svc.db.session() as db:
        assert await retry_pending_calendar_writes(db, svc.meetings) == 1
    row = await _reload(svc, meeting.id)
    assert row.calendar_sync_state == "synced" and row.provider_event_id is not None
    # Written without attendees, so Graph mails nobody a second invitation.
    assert microsoft.state.account(account).events[row.provider_event_id].attendees == []
    await _update_and_cancel(svc, world, meeting)
    assert [str(_event(m)[0]["METHOD"]) for _r, m in smtp[0].messages] == [
        "REQUEST",
        "REQUEST",
        "CANCEL",
    ]


async def test_sync_off_or_no_calendar_means_no_calendar_write(
    svc: AppServices, smtp: tuple[Inbox, int], google: RunningGoogle
) -> None:
    world = await make_world(svc, two_way_sync=False)
    account = f"g-{uuid.uuid4().hex[:6]}@gmail.test"
    google.state.add_account(account)
    await connect_google(svc, world.mentor, account)
    before = len(google.state.requests_to("/events", "POST"))
    meeting = await _book(svc, world)
    assert (await _reload(svc, meeting.id)).calendar_sync_state == "none"
    assert len(google.state.requests_to("/events", "POST")) == before
    synced_world = await make_world(svc, two_way_sync=True)
    unconnected = await _book(svc, synced_world)
    assert (await _reload(svc, unconnected.id)).calendar_sync_state == "none"
    async with svc.db.session() as db:
        connections = (
            await db.exec(
                select(CalendarConnection).where(CalendarConnection.user_id == synced_world.mentor)
            )
        ).all()
    assert connections == []
    assert len(smtp[0].messages) == 2


async def test_microsoft_create_answered_503_after_commit_keeps_the_event_and_graphs_invite(
    svc: AppServices, smtp: tuple[Inbox, int], microsoft: RunningMicrosoft
) -> None:
    world = await make_world(svc, two_way_sync=True)
    account = f"m-{uuid.uuid4().hex[:6]}@contoso.test"
    microsoft.state.add_account(account)
    await connect_microsoft(svc, world.mentor, account, microsoft.ca_path)
    microsoft.state.fail_after_commit("/v1.0/me/events", 503)  # stored, then the answer is lost
    meeting = await _book(svc, world)
    row = await _reload(svc, meeting.id)
    events = microsoft.state.account(account).events
    assert list(events) == [row.provider_event_id]  # the first event, no orphan, no second
    assert row.calendar_sync_state == "synced" and row.invitations_by == "provider"
    assert smtp[0].messages == []  # Graph invited; Tandem's own invitation would be a second


async def test_microsoft_create_of_unknown_fate_sends_no_mail_and_the_retry_finds_the_event(
    svc: AppServices, smtp: tuple[Inbox, int], microsoft: RunningMicrosoft
) -> None:
    world = await make_world(svc, two_way_sync=True)
    account = f"m-{uuid.uuid4().hex[:6]}@contoso.test"
    microsoft.state.add_account(account)
    await connect_microsoft(svc, world.mentor, account, microsoft.ca_path)
    microsoft.state.fail_after_commit("/v1.0/me/events", 503)
    microsoft.state.fail_next("/calendarView", 503, headers={"Retry-After": "0"}, times=5)
    meeting = await _book(svc, world)
    row = await _reload(svc, meeting.id)
    assert row.calendar_sync_state == "pending" and row.invitations_by == "provider"
    assert row.provider_event_id is None and smtp[0].messages == []
    microsoft.state.faults.clear()
    await _make_due(svc, meeting.id)
    async with svc.db.session() as db:
        assert await retry_pending_calendar_writes(db, svc.meetings) == 1
    row = await _reload(svc, meeting.id)
    events = microsoft.state.account(account).events
    assert row.calendar_sync_state == "synced" and list(events) == [row.provider_event_id]
    assert [a["emailAddress"]["address"][:7] for a in events[row.provider_event_id].attendees] == [
        "mentee-"
    ]
    assert smtp[0].messages == []
