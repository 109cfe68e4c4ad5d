"""Test data for scheduling pages: a program with a mentor/mentee pair, connected calendars
(rows written directly, as if a sync had just run) and busy blocks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from server.models import BusyBlock, CalendarConnection, Meeting, MeetingAttendee, User
from server.models.base import utcnow
from server.models.enums import (
    AttendeeResponse,
    BusyKind,
    CalendarStatus,
    ConnectionKind,
    MeetingStatus,
    ProgramRole,
    ProviderName,
)
from server.services.people import mentoring, programs
from server.wiring import AppServices
from tests.conftest import create_user


@dataclass(frozen=True, slots=True)
class Pair:
    admin: uuid.UUID  # a global admin
    program: uuid.UUID
    connection: uuid.UUID
    mentor: uuid.UUID  # Ana, Europe/Paris, ana@example.org
    mentee: uuid.UUID  # Maya, America/New_York, maya@example.org
    stranger: uuid.UUID  # Stan, in the program but not in the pair, stan@example.org


async def make_pair(services: AppServices) -> Pair:
    admin = await create_user(services, "root@example.org", name="Root", global_admin=True)
    ana = await create_user(services, "ana@example.org", name="Ana", time_zone="Europe/Paris")
    maya = await create_user(
        services, "maya@example.org", name="Maya", time_zone="America/New_York"
    )
    stan = await create_user(services, "stan@example.org", name="Stan")
    async with services.db.session() as db:
        root = await db.get(User, admin)
        assert root is not None
        program = await programs.create_program(db, root, "Engineering")
        for user_id, role in (
            (ana, ProgramRole.MENTOR),
            (maya, ProgramRole.MENTEE),
            (stan, ProgramRole.PARTICIPANT),
        ):
            await programs.add_member(db, root, program.id, user_id, role)
        connection = await mentoring.create_connection(
            db,
            root,
            program_id=program.id,
            member_ids=[ana, maya],
            kind=ConnectionKind.PAIR,
            name=None,
        )
        await db.commit()
        return Pair(admin, program.id, connection.id, ana, maya, stan)


async def connect_calendar(services: AppServices, user_id: uuid.UUID) -> None:
    """A connected calendar synced just now, so no refresh is attempted."""
    async with services.db.session() as db:
        db.add(
            CalendarConnection(
                user_id=user_id,
                provider=ProviderName.GOOGLE,
                status=CalendarStatus.CONNECTED,
                label="Google",
                account_email=f"{user_id.hex[:8]}@gmail.test",
                last_synced_at=utcnow(),
            )
        )
        await db.commit()


async def add_busy(
    services: AppServices, user_id: uuid.UUID, start: datetime, end: datetime
) -> None:
    async with services.db.session() as db:
        db.add(BusyBlock(user_id=user_id, start_at=start, end_at=end, kind=BusyKind.BUSY))
        await db.commit()


def next_monday(zone: str, weeks: int = 1) -> date:
    """The Monday ``weeks`` weeks after this week's, on ``zone``'s calendar."""
    today = datetime.now(UTC).astimezone(ZoneInfo(zone)).date()
    return today - timedelta(days=today.weekday()) + timedelta(weeks=weeks)


def local(day: date, hour: int, minute: int, zone: str) -> datetime:
    """``hour:minute`` on ``day`` in ``zone``, as a UTC instant."""
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(zone)).astimezone(UTC)


async def book_meeting(
    services: AppServices, attendees: list[uuid.UUID], start: datetime, end: datetime
) -> uuid.UUID:
    """A scheduled Tandem meeting of ``attendees`` (the first one owns it), all accepted,
    written straight into the database."""
    async with services.db.session() as db:
        meeting = Meeting(
            owner_id=attendees[0],
            title="Sync",
            start_at=start,
            end_at=end,
            time_zone="UTC",
            ical_uid=f"{uuid.uuid4()}@tandem.test",
            status=MeetingStatus.SCHEDULED,
        )
        db.add(meeting)
        await db.flush()
        for attendee in attendees:
            db.add(
                MeetingAttendee(
                    meeting_id=meeting.id,
                    user_id=attendee,
                    email=f"{attendee.hex[:8]}@example.org",
                    name="Someone",
                    response=AttendeeResponse.ACCEPTED,
                )
            )
        await db.commit()
        return meeting.id
