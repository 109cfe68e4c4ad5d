"""Shared set-up for the meetings tests: a program with a mentoring pair (or group)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from icalendar import Calendar

from server.models.enums import ConnectionKind, ProgramRole
from server.services.people import accounts, mentoring, programs
from server.services.people.sessions import Viewer
from server.wiring import AppServices
from tests.conftest import create_user


@dataclass
class World:
    admin: uuid.UUID
    mentor: uuid.UUID
    mentee: uuid.UUID
    program: uuid.UUID
    connection: uuid.UUID
    extra: list[uuid.UUID]


async def make_world(
    services: AppServices,
    *,
    two_way_sync: bool = False,
    group_size: int = 0,
    mentor_email: str | None = None,
    tag: str | None = None,
) -> World:
    """An admin, a mentor and a mentee in one program, paired; ``group_size`` > 0 makes a
    group of mentor, mentee and that many more people instead."""
    tag = tag or uuid.uuid4().hex[:6]
    admin = await create_user(
        services, f"admin-{tag}@example.org", name="Ada Admin", global_admin=True
    )
    mentor = await create_user(
        services, mentor_email or f"mentor-{tag}@example.org", name="Mona Mentor"
    )
    mentee = await create_user(
        services, f"mentee-{tag}@example.org", name="Manu Mentee", time_zone="America/New_York"
    )
    extra = [
        await create_user(services, f"extra{i}-{tag}@example.org", name=f"Extra {i}")
        for i in range(group_size)
    ]
    async with services.db.session() as db:
        actor = await accounts.get_user(db, admin)
        program = await programs.create_program(db, actor, f"Program {tag}")
        await programs.add_member(db, actor, program.id, mentor, ProgramRole.MENTOR)
        await programs.add_member(db, actor, program.id, mentee, ProgramRole.MENTEE)
        for person in extra:
            await programs.add_member(db, actor, program.id, person, ProgramRole.PARTICIPANT)
        await programs.add_member(db, actor, program.id, admin, ProgramRole.ADMIN)
        if two_way_sync:
            await programs.update_settings(
                db, actor, program.id, programs.SettingsChange(two_way_sync_enabled=True)
            )
        connection = await mentoring.create_connection(
            db,
            actor,
            program_id=program.id,
            member_ids=[mentor, mentee, *extra],
            kind=ConnectionKind.GROUP if group_size else ConnectionKind.PAIR,
            name=None,
        )
        await db.commit()
        return World(admin, mentor, mentee, program.id, connection.id, extra)


async def viewer_of(services: AppServices, user_id: uuid.UUID) -> Viewer:
    async with services.db.session() as db:
        user = await accounts.get_user(db, user_id)
    return Viewer(user=user, actor=user)


def weekday_slot(days: int = 3, hour: int = 14, minute: int = 0) -> datetime:
    """A UTC time ``days`` ahead (moved to the next weekday) that suits Paris and New York
    working hours (14:00 UTC is 15:00/16:00 in Paris and 09:00/10:00 in New York)."""
    day = (datetime.now(UTC) + timedelta(days=days)).replace(
        hour=hour, minute=minute, second=0, microsecond=0
    )
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def calendar_of(message: EmailMessage) -> Calendar:
    """The iCalendar attachment of an invitation email."""
    for part in message.walk():
        if part.get_content_type() == "application/ics":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return Calendar.from_ical(payload)
    raise AssertionError("no iCalendar attachment")


def event_of(message: EmailMessage) -> dict[str, str]:
    cal = calendar_of(message)
    event = next(iter(cal.walk("VEVENT")))
    return {
        "method": str(cal["METHOD"]),
        "uid": str(event["UID"]),
        "sequence": str(event["SEQUENCE"]),
        "summary": str(event["SUMMARY"]),
    }
