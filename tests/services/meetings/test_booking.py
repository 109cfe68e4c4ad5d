"""The meetings service: booking rules, the race-safe re-check, invitations by email,
updates and cancellations with a growing SEQUENCE, answers in the app and by link."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from server.models import BusyBlock, CalendarConnection, Meeting, MeetingAttendee
from server.models.base import utcnow
from server.models.enums import (
    AttendeeResponse,
    BusyKind,
    CalendarStatus,
    MeetingStatus,
    ProviderName,
)
from server.services.availability.query import AvailabilityRequest, find_availability
from server.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from server.services.invites import MemoryMailer, make_rsvp_token
from server.services.meetings import booking as meeting_booking
from server.services.meetings.activity import program_activity
from server.services.meetings.booking import InvalidRsvpLink
from server.wiring import AppServices
from tests.conftest import create_user, use_mailer
from tests.meetings_support import World, event_of, make_world, viewer_of, weekday_slot


@pytest.fixture
def mailer(services: AppServices) -> MemoryMailer:
    memory = MemoryMailer()
    use_mailer(services, memory)
    return memory


@pytest.fixture
async def world(services: AppServices, mailer: MemoryMailer) -> World:
    return await make_world(services)


async def _book(
    services: AppServices, owner: uuid.UUID, connection: uuid.UUID, start: datetime, **kw: object
) -> Meeting:
    viewer = await viewer_of(services, owner)
    async with services.db.session() as db:
        return await meeting_booking.schedule_meeting(
            db,
            services.meetings,
            viewer,
            connection_id=connection,
            start=start,
            duration_minutes=int(kw.pop("duration", 60)),  # type: ignore[call-overload]
            title=str(kw.pop("title", "Check-in")),
            **kw,  # type: ignore[arg-type]
        )


async def _attendees(
    services: AppServices, meeting_id: uuid.UUID
) -> dict[uuid.UUID | None, MeetingAttendee]:
    async with services.db.session() as db:
        rows = (
            await db.exec(select(MeetingAttendee).where(MeetingAttendee.meeting_id == meeting_id))
        ).all()
        return {row.user_id: row for row in rows}


async def _connect_with_busy(
    services: AppServices, user_id: uuid.UUID, start: datetime, end: datetime
) -> None:
    async with services.db.session() as db:
        db.add(
            CalendarConnection(
                user_id=user_id,
                provider=ProviderName.GOOGLE,
                status=CalendarStatus.CONNECTED,
                label="Google",
                account_email="someone@gmail.test",
                last_synced_at=utcnow(),
            )
        )
        db.add(BusyBlock(user_id=user_id, start_at=start, end_at=end, kind=BusyKind.BUSY))
        await db.commit()


async def test_booking_saves_meeting_and_emails_each_attendee_but_the_owner(
    services: AppServices, world: World, mailer: MemoryMailer
) -> None:
    start = weekday_slot()
    meeting = await _book(
        services,
        world.mentor,
        world.connection,
        start,
        title="Career chat",
        location="https://meet.example/abc",
    )
    assert meeting.end_at == start + timedelta(hours=1)
    assert meeting.ical_uid.endswith("@tandem") and meeting.sequence == 0
    assert meeting.calendar_sync_state == "none" and meeting.invitations_by == "tandem"
    people = await _attendees(services, meeting.id)
    assert people[world.mentor].response == AttendeeResponse.ACCEPTED
    assert people[world.mentee].response == AttendeeResponse.NEEDS_ACTION
    assert len(mailer.sent) == 1
    message = mailer.sent[0]
    assert message["To"].addresses[0].addr_spec.startswith("mentee-")
    event = event_of(message)
    assert event == {
        "method": "REQUEST",
        "uid": meeting.ical_uid,
        "sequence": "0",
        "summary": "Career chat",
    }
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "http://testserver/rsvp/" in text
    # The mentee sees the time in their own zone (New York).
    assert "America/New_York" in text


async def test_busy_partner_and_rules_refuse_the_time(
    services: AppServices, world: World, mailer: MemoryMailer
) -> None:
    start = weekday_slot()
    await _connect_with_busy(
        services, world.mentee, start + timedelta(minutes=30), start + timedelta(hours=2)
    )
    with pytest.raises(Conflict) as busy:
        await _book(services, world.mentor, world.connection, start)
    assert "no longer available" in busy.value.message and "Manu Mentee" in busy.value.message
    night = weekday_slot(hour=3)
    with pytest.raises(Conflict):
        await _book(services, world.mentor, world.connection, night)
    with pytest.raises(ValidationFailed):
        await _book(services, world.mentor, world.connection, start - timedelta(days=30))
    with pytest.raises(ValidationFailed):
        await _book(services, world.mentor, world.connection, start + timedelta(minutes=7))
    with pytest.raises(ValidationFailed):
        await _book(services, world.mentor, world.connection, start, duration=1000)
    assert mailer.sent == []


async def test_a_tandem_meeting_blocks_its_attendees(services: AppServices, world: World) -> None:
    start = weekday_slot()
    await _connect_with_busy(
        services, world.mentee, start + timedelta(days=1), start + timedelta(days=1, hours=1)
    )
    await _book(services, world.mentor, world.connection, start)
    with pytest.raises(Conflict) as clash:
        await _book(services, world.mentee, world.connection, start + timedelta(minutes=30))
    assert (
        clash.value.message
        == "That time is taken: you already have a meeting then. Pick another time."
    )
    viewer = await viewer_of(services, world.mentor)
    async with services.db.session() as db:
        answer = await find_availability(
            db,
            services.calendar,
            viewer.user,
            AvailabilityRequest(
                participant_ids=[world.mentee],
                start=start - timedelta(hours=1),
                end=start + timedelta(hours=2),
                duration_minutes=60,
            ),
            refresh=False,
        )
    assert any(b.start == start and b.kind == BusyKind.BUSY for b in answer.busy)
    assert all(
        not (slot.start < start + timedelta(hours=1) and slot.end > start)
        for slot in answer.result.slots
    )


async def test_only_members_book_and_only_attendees_see(
    services: AppServices, world: World
) -> None:
    stranger = await create_user(services, f"s-{uuid.uuid4().hex[:6]}@example.org", name="Stranger")
    with pytest.raises(NotFound):
        await _book(services, stranger, world.connection, weekday_slot())
    meeting = await _book(services, world.mentor, world.connection, weekday_slot())
    viewer = await viewer_of(services, stranger)
    async with services.db.session() as db:
        with pytest.raises(NotFound):
            await meeting_booking.get_meeting(db, viewer.user, meeting.id)
        with pytest.raises(NotFound):
            await meeting_booking.respond_to_meeting(
                db, viewer, meeting.id, AttendeeResponse.ACCEPTED
            )
        assert await meeting_booking.meetings_for(db, viewer.user) == []


async def test_update_raises_sequence_resets_answers_and_reinvites(
    services: AppServices, world: World, mailer: MemoryMailer
) -> None:
    start = weekday_slot()
    meeting = await _book(services, world.mentor, world.connection, start)
    mentee = await viewer_of(services, world.mentee)
    async with services.db.session() as db:
        await meeting_booking.respond_to_meeting(db, mentee, meeting.id, AttendeeResponse.ACCEPTED)
        await db.commit()
    owner = await viewer_of(services, world.mentor)
    deps = services.meetings
    async with services.db.session() as db:
        unchanged = await meeting_booking.update_meeting(
            db, deps, owner, meeting.id, title="Check-in"
        )
        assert unchanged.sequence == 0 and len(mailer.sent) == 1
        moved = await meeting_booking.update_meeting(
            db, deps, owner, meeting.id, start=start + timedelta(hours=1), title="Moved"
        )
    assert moved.sequence == 1 and moved.start_at == start + timedelta(hours=1)
    assert (await _attendees(services, meeting.id))[
        world.mentee
    ].response == AttendeeResponse.NEEDS_ACTION
    assert event_of(mailer.sent[-1]) == {
        "method": "REQUEST",
        "uid": meeting.ical_uid,
        "sequence": "1",
        "summary": "Moved",
    }
    assert mailer.sent[-1]["Subject"].startswith("Updated invitation")
    async with services.db.session() as db:
        with pytest.raises(PermissionDenied):
            await meeting_booking.update_meeting(db, deps, mentee, meeting.id, title="Mine now")
        # Moving within its own old time does not clash with itself.
        await meeting_booking.update_meeting(
            db, deps, owner, meeting.id, start=start + timedelta(hours=1, minutes=30)
        )


async def test_cancel_sends_cancel_with_higher_sequence_once(
    services: AppServices, world: World, mailer: MemoryMailer
) -> None:
    meeting = await _book(services, world.mentor, world.connection, weekday_slot())
    owner, mentee = await viewer_of(services, world.mentor), await viewer_of(services, world.mentee)
    deps = services.meetings
    async with services.db.session() as db:
        with pytest.raises(PermissionDenied):
            await meeting_booking.cancel_meeting(db, deps, mentee, meeting.id)
        cancelled = await meeting_booking.cancel_meeting(db, deps, owner, meeting.id)
        again = await meeting_booking.cancel_meeting(db, deps, owner, meeting.id)
    assert cancelled.status == MeetingStatus.CANCELLED and again.sequence == 1
    assert [event_of(m)["method"] for m in mailer.sent] == ["REQUEST", "CANCEL"]
    assert event_of(mailer.sent[-1])["sequence"] == "1"
    # A cancelled meeting frees the time again.
    await _book(services, world.mentee, world.connection, meeting.start_at)


async def test_answers_in_the_app(services: AppServices, world: World) -> None:
    meeting = await _book(services, world.mentor, world.connection, weekday_slot())
    owner, mentee = await viewer_of(services, world.mentor), await viewer_of(services, world.mentee)
    async with services.db.session() as db:
        with pytest.raises(PermissionDenied):
            await meeting_booking.respond_to_meeting(
                db, owner, meeting.id, AttendeeResponse.DECLINED
            )
        with pytest.raises(ValidationFailed):
            await meeting_booking.respond_to_meeting(
                db, mentee, meeting.id, AttendeeResponse.NEEDS_ACTION
            )
        await db.rollback()
        row = await meeting_booking.respond_to_meeting(
            db, mentee, meeting.id, AttendeeResponse.TENTATIVE
        )
        await db.commit()
    assert row.response == AttendeeResponse.TENTATIVE
    assert (await _attendees(services, meeting.id))[world.mentee].responded_at is not None


async def test_rsvp_link_works_once_and_refuses_tampering_expiry_and_old_versions(
    services: AppServices, world: World
) -> None:
    meeting = await _book(services, world.mentor, world.connection, weekday_slot())
    deps = services.meetings
    email = (await _attendees(services, meeting.id))[world.mentee].email
    token = make_rsvp_token(
        deps.rsvp_key, meeting.id, email, AttendeeResponse.DECLINED, meeting.end_at, 0
    )
    async with services.db.session() as db:
        preview = await meeting_booking.preview_rsvp_link(db, deps, token)
        assert preview.response == AttendeeResponse.DECLINED
    assert (await _attendees(services, meeting.id))[
        world.mentee
    ].response == AttendeeResponse.NEEDS_ACTION
    async with services.db.session() as db:
        await meeting_booking.respond_with_link(db, deps, token)
    assert (await _attendees(services, meeting.id))[
        world.mentee
    ].response == AttendeeResponse.DECLINED
    async with services.db.session() as db:
        with pytest.raises(InvalidRsvpLink, match="already used"):
            await meeting_booking.respond_with_link(db, deps, token)
        payload, signature = token.split(".")
        forged = make_rsvp_token(
            b"k" * 32, meeting.id, email, AttendeeResponse.ACCEPTED, meeting.end_at, 0
        )
        for bad in (forged, f"{payload}.{signature[:-2]}AA", "garbage"):
            with pytest.raises(InvalidRsvpLink, match="not valid"):
                await meeting_booking.respond_with_link(db, deps, bad)
        expired = make_rsvp_token(
            deps.rsvp_key,
            meeting.id,
            email,
            AttendeeResponse.ACCEPTED,
            datetime.now(UTC) - timedelta(minutes=1),
            0,
        )
        with pytest.raises(InvalidRsvpLink, match="expired"):
            await meeting_booking.respond_with_link(db, deps, expired)
        owner = await viewer_of(services, world.mentor)
        await meeting_booking.update_meeting(db, deps, owner, meeting.id, title="New title")
        stale = make_rsvp_token(
            deps.rsvp_key, meeting.id, email, AttendeeResponse.ACCEPTED, meeting.end_at, 0
        )
        with pytest.raises(InvalidRsvpLink, match="changed"):
            await meeting_booking.respond_with_link(db, deps, stale)
    assert (await _attendees(services, meeting.id))[
        world.mentee
    ].response == AttendeeResponse.DECLINED


async def test_two_concurrent_bookings_of_one_partner_one_wins(
    services: AppServices, mailer: MemoryMailer
) -> None:
    """Two mentees book their shared mentor's same hour at the same moment."""
    first = await make_world(services)
    second = await make_world(services)
    # Put the same mentor in the second pair too.
    from server.models.enums import ConnectionKind, ProgramRole
    from server.services.people import accounts, mentoring, programs

    async with services.db.session() as db:
        admin = await accounts.get_user(db, first.admin)
        await programs.add_member(db, admin, first.program, second.mentee, ProgramRole.MENTEE)
        pair = await mentoring.create_connection(
            db,
            admin,
            program_id=first.program,
            member_ids=[first.mentor, second.mentee],
            kind=ConnectionKind.PAIR,
            name=None,
        )
        await db.commit()
    start = weekday_slot(days=4)
    results = await asyncio.gather(
        _book(services, first.mentee, first.connection, start),
        _book(services, second.mentee, pair.id, start + timedelta(minutes=30)),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, Meeting)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 1, results
    assert (
        isinstance(lost[0], Conflict)
        and "That time is taken: Mona Mentor already has a meeting then" in lost[0].message
    )
    async with services.db.session() as db:
        rows = (await db.exec(select(Meeting))).all()
    assert len(rows) == 1


async def test_program_activity_counts_per_connection(services: AppServices, world: World) -> None:
    kept = await _book(services, world.mentor, world.connection, weekday_slot(days=3))
    dropped = await _book(services, world.mentor, world.connection, weekday_slot(days=3, hour=16))
    owner = await viewer_of(services, world.mentor)
    async with services.db.session() as db:
        await meeting_booking.cancel_meeting(db, services.meetings, owner, dropped.id)
        past = await db.get(Meeting, kept.id)
        assert past is not None
        past.start_at, past.end_at = (
            utcnow() - timedelta(days=2, hours=1),
            utcnow() - timedelta(days=2),
        )
        db.add(past)
        await db.commit()
        admin = await viewer_of(services, world.admin)
        _program, rows = await program_activity(db, admin.user, world.program)
        with pytest.raises(NotFound):
            await program_activity(db, owner.user, world.program)
    (row,) = rows
    assert (row.scheduled, row.held, row.cancelled, row.upcoming) == (2, 1, 1, 0)
    assert row.last_meeting_at is not None and abs(row.last_meeting_at - past.start_at) < timedelta(
        seconds=1
    )


async def test_rsvp_links_survive_a_key_rotation(services: AppServices, world: World) -> None:
    """Links emailed before the newest key was put first still open (until they expire);
    a key that was never configured opens nothing."""
    import dataclasses

    meeting = await _book(services, world.mentor, world.connection, weekday_slot())
    before = services.meetings
    email = (await _attendees(services, meeting.id))[world.mentee].email
    token = make_rsvp_token(
        before.rsvp_key, meeting.id, email, AttendeeResponse.ACCEPTED, meeting.end_at, 0
    )
    rotated = dataclasses.replace(before, rsvp_key=b"n" * 32, older_rsvp_keys=(before.rsvp_key,))
    forgotten = dataclasses.replace(before, rsvp_key=b"n" * 32, older_rsvp_keys=())
    async with services.db.session() as db:
        with pytest.raises(InvalidRsvpLink, match="not valid"):
            await meeting_booking.preview_rsvp_link(db, forgotten, token)
        await meeting_booking.respond_with_link(db, rotated, token)
    assert (await _attendees(services, meeting.id))[
        world.mentee
    ].response == AttendeeResponse.ACCEPTED
