"""The dashboard service: what waits for an answer, and what no longer does."""

from __future__ import annotations

from datetime import timedelta

from server.models.base import utcnow
from server.models.enums import AttendeeResponse
from server.services.meetings import booking
from server.services.polls import dashboard
from server.wiring import AppServices
from tests.meetings_support import make_world, viewer_of, weekday_slot
from tests.polls_support import make_circle, make_poll, user


async def test_closed_polls_and_cancelled_meetings_do_not_wait(services: AppServices) -> None:
    circle = await make_circle(services, size=3)
    open_poll = await make_poll(services, circle, title="Open one")
    soon = utcnow() + timedelta(hours=1)
    await make_poll(services, circle, title="Closing one", deadline=soon)
    member = await user(services, circle.others[0])
    async with services.db.session() as db:
        now_board = await dashboard.dashboard_for(db, member)
        later = await dashboard.dashboard_for(db, member, now=soon + timedelta(minutes=1))
    assert [p.title for p in now_board.polls] == ["Closing one", "Open one"]  # deadline first
    assert [p.poll_id for p in later.polls] == [open_poll.id]  # past its deadline: closed

    world = await make_world(services)
    mentor = await viewer_of(services, world.mentor)
    mentee = await viewer_of(services, world.mentee)
    async with services.db.session() as db:
        kept = await booking.schedule_meeting(
            db,
            services.meetings,
            mentor,
            connection_id=world.connection,
            start=weekday_slot(),
            duration_minutes=30,
            title="Kept",
        )
        dropped = await booking.schedule_meeting(
            db,
            services.meetings,
            mentor,
            connection_id=world.connection,
            start=weekday_slot(hour=15),
            duration_minutes=30,
            title="Dropped",
        )
        await booking.cancel_meeting(db, services.meetings, mentor, dropped.id)
    async with services.db.session() as db:
        board = await dashboard.dashboard_for(db, mentee.user)
        assert [i.meeting.id for i in board.invitations] == [kept.id]
        assert [m.meeting.id for m in board.next_meetings] == [kept.id]
        assert board.next_meetings[0].others[0].time_zone == "Europe/Paris"
        await booking.respond_to_meeting(db, mentee, kept.id, AttendeeResponse.TENTATIVE)
        await db.commit()
    async with services.db.session() as db:
        board = await dashboard.dashboard_for(db, mentee.user)
    assert board.invitations == () and board.waiting_count == 0
    assert board.next_meetings[0].my_response == AttendeeResponse.TENTATIVE
