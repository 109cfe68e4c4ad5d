"""An optional poll invitee stays optional in the meeting the poll becomes: the attendee
row, the iCalendar ATTENDEE (ROLE=OPT-PARTICIPANT) and the provider attendee type."""

from __future__ import annotations

from datetime import UTC, datetime

from server.providers.base import EventAttendee, ExternalEvent
from server.providers.caldav_ics import event_to_ics
from server.services.invites import MemoryMailer
from server.services.meetings import booking
from server.services.people import sessions
from server.services.polls import rules as poll_rules
from server.wiring import AppServices
from tests.conftest import use_mailer
from tests.meetings_support import calendar_of
from tests.polls_support import make_circle, make_poll, user


async def test_finalized_meeting_keeps_optional_invitees_optional(services: AppServices) -> None:
    mailer = MemoryMailer()
    use_mailer(services, mailer)
    circle = await make_circle(services, size=3)
    maybe = circle.others[1]
    poll = await make_poll(services, circle, optional=[maybe])
    organizer = await user(services, circle.organizer)
    async with services.db.session() as db:
        details = await poll_rules.poll_details(db, organizer, poll.id)
        meeting = await poll_rules.finalize_poll(
            db,
            services.meetings,
            sessions.Viewer(organizer, organizer),
            poll.id,
            details.slots[0].id,
        )
        await db.commit()
        rows = (await booking.attendees_by_meeting(db, [meeting.id]))[meeting.id]
    assert {r.user_id: r.optional for r in rows} == {
        circle.organizer: False,
        circle.others[0]: False,
        maybe: True,
    }
    roles: dict[str, str] = {}
    event = next(iter(calendar_of(mailer.sent[0]).walk("VEVENT")))
    for attendee in event.get("ATTENDEE"):
        roles[str(attendee).removeprefix("mailto:")] = attendee.params["ROLE"]
    assert roles == {
        circle.emails[circle.organizer]: "REQ-PARTICIPANT",
        circle.emails[circle.others[0]]: "REQ-PARTICIPANT",
        circle.emails[maybe]: "OPT-PARTICIPANT",
    }


def test_caldav_event_marks_optional_attendees() -> None:
    event = ExternalEvent(
        uid="u1@tandem",
        title="Kickoff",
        description="",
        location=None,
        start=datetime(2026, 12, 7, 9, tzinfo=UTC),
        end=datetime(2026, 12, 7, 10, tzinfo=UTC),
        time_zone="UTC",
        organizer_email="o@example.org",
        attendees=[
            EventAttendee("a@example.org", "A"),
            EventAttendee("b@example.org", "B", optional=True),
        ],
    )
    text = event_to_ics(event)
    unfolded = text.replace("\r\n ", "")
    lines = [line for line in unfolded.splitlines() if line.startswith("ATTENDEE")]
    assert any("ROLE=OPT-PARTICIPANT" in line and "b@example.org" in line for line in lines)
    assert any("ROLE=REQ-PARTICIPANT" in line and "a@example.org" in line for line in lines)
