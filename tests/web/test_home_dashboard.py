"""The home dashboard: what needs my answer (one-click meeting answers, polls to open),
my next meetings with the partner's local time, and my calendar's health in one line."""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

import httpx
import pytest

from server.models import MeetingAttendee
from server.models.enums import AttendeeResponse
from server.services.invites import MemoryMailer
from server.services.meetings import booking
from server.wiring import AppServices
from tests.conftest import login, new_client, use_mailer
from tests.meetings_support import World, make_world, viewer_of, weekday_slot
from tests.polls_support import connect, make_circle, make_poll


@pytest.fixture
def mailer(services: AppServices) -> MemoryMailer:
    memory = MemoryMailer()
    use_mailer(services, memory)
    return memory


@pytest.fixture
async def world(services: AppServices, mailer: MemoryMailer) -> World:
    return await make_world(services, tag=uuid.uuid4().hex[:6])


async def _email(services: AppServices, user_id: uuid.UUID) -> str:
    from server.models import User

    async with services.db.session() as db:
        user = await db.get(User, user_id)
        assert user is not None
        return user.email


async def _book(services: AppServices, world: World, title: str = "Weekly sync") -> uuid.UUID:
    async with services.db.session() as db:
        meeting = await booking.schedule_meeting(
            db,
            services.meetings,
            await viewer_of(services, world.mentor),
            connection_id=world.connection,
            start=weekday_slot(),
            duration_minutes=30,
            title=title,
        )
        return meeting.id


def _section(html: str, section_id: str) -> str:
    return html.split(f'id="{section_id}"')[1].split("</section>")[0]


async def test_empty_dashboard_says_so_and_points_to_calendar_settings(
    client: httpx.AsyncClient, services: AppServices, world: World
) -> None:
    await login(client, await _email(services, world.mentee))
    page = await client.get("/")
    assert page.status_code == 200
    assert "Nothing waits for your answer." in _section(page.text, "needs-answer")
    assert "No meetings coming up." in _section(page.text, "next-meetings")
    health = _section(page.text, "calendar-health")
    assert "not connected" in health and 'href="/profile/edit?tab=settings#calendar"' in health


async def test_invitation_is_answered_in_one_click_and_leaves_the_list(
    client: httpx.AsyncClient, services: AppServices, world: World, app: object
) -> None:
    meeting_id = await _book(services, world)
    await connect(services, world.mentee)
    csrf = await login(client, await _email(services, world.mentee))
    page = await client.get("/")
    waiting = _section(page.text, "needs-answer")
    assert "Weekly sync" in waiting and "from Mona Mentor" in waiting
    assert f'action="/meetings/{meeting_id}/respond"' in waiting
    assert "America/New_York" in waiting  # the mentee's own zone, said
    assert "connected" in _section(page.text, "calendar-health")
    assert "needs attention" not in page.text

    answered = await client.post(
        f"/meetings/{meeting_id}/respond",
        data={"csrf_token": csrf, "response": "declined", "back": "home"},
    )
    assert answered.status_code == 303 and answered.headers["location"] == "/?notice=answer_saved"
    async with services.db.session() as db:
        from sqlmodel import select

        row = (
            await db.exec(
                select(MeetingAttendee)
                .where(MeetingAttendee.meeting_id == meeting_id)
                .where(MeetingAttendee.user_id == world.mentee)
            )
        ).one()
        assert row.response == AttendeeResponse.DECLINED
    again = await client.get(answered.headers["location"])
    assert "Your answer is saved." in again.text
    assert "Nothing waits for your answer." in _section(again.text, "needs-answer")

    # The organizer has nothing to answer, and sees the meeting next with the partner's time.
    async with await new_client(app) as organizer:
        await login(organizer, await _email(services, world.mentor))
        theirs = await organizer.get("/")
        assert "Nothing waits for your answer." in _section(theirs.text, "needs-answer")
        upcoming = _section(theirs.text, "next-meetings")
        assert "Weekly sync" in upcoming and "Europe/Paris" in upcoming
        ny = weekday_slot().astimezone(ZoneInfo("America/New_York"))
        assert f"Manu Mentee: {ny:%a %H:%M} (America/New_York)" in upcoming


async def test_open_poll_waits_until_answered_and_not_for_its_organizer(
    client: httpx.AsyncClient, services: AppServices, app: object
) -> None:
    circle = await make_circle(services, size=3)
    poll = await make_poll(services, circle, title="Kickoff poll")
    csrf = await login(client, circle.emails[circle.others[0]])
    waiting = _section((await client.get("/")).text, "needs-answer")
    assert "Kickoff poll" in waiting and f'href="/polls/{poll.id}"' in waiting

    page = await client.get(f"/polls/{poll.id}")
    slot_ids = [part.split('"')[0] for part in page.text.split('name="answer-')[1:]]
    assert slot_ids
    answers = {f"answer-{s}": "no" for s in dict.fromkeys(slot_ids)}
    saved = await client.post(f"/polls/{poll.id}/answers", data={"csrf_token": csrf, **answers})
    assert saved.status_code in (200, 303)
    assert "Kickoff poll" not in _section((await client.get("/")).text, "needs-answer")

    async with await new_client(app) as organizer:
        await login(organizer, circle.emails[circle.organizer])
        theirs = _section((await organizer.get("/")).text, "needs-answer")
        assert "Kickoff poll" not in theirs
