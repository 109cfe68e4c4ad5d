"""Working on behalf: admin changes are refused by the services, so the pages refuse them
exactly as the API does; every change made on behalf (poll answers, comments, profile)
leaves an audit record naming the admin as actor and the participant as subject."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest
from sqlmodel import col, select

from server.models import AuditEvent, Poll
from server.models.enums import ConnectionKind, ProgramRole
from server.services.errors import PermissionDenied
from server.services.people import accounts, mentoring, programs
from server.services.people.sessions import ADMIN_ON_BEHALF_MESSAGE, Viewer
from server.services.polls import rules as poll_rules
from server.wiring import AppServices
from tests.conftest import create_user, csrf_from, gql, login
from tests.polls_support import Circle, make_circle, make_poll
from tests.schema.test_graphql_polls import ANSWER, COMMENT

SETTINGS = """
mutation S($input: UpdateProgramSettingsInput!) {
  updateProgramSettings(input: $input) { program { id } errors { code message } }
}"""


@dataclass
class Scene:
    circle: Circle
    coordinator: uuid.UUID
    ward: uuid.UUID  # the participant the coordinator works on behalf of
    poll: Poll
    csrf: str


@pytest.fixture
async def scene(client: httpx.AsyncClient, services: AppServices) -> Scene:
    """A program admin (not a global admin) signed in and working on behalf of Ana."""
    circle = await make_circle(services, size=3)
    tag = uuid.uuid4().hex[:6]
    root_id = await create_user(services, f"boss-{tag}@example.org", global_admin=True)
    coordinator = await create_user(services, f"coord-{tag}@example.org", name="Cora")
    async with services.db.session() as db:
        root = await accounts.get_user(db, root_id)
        await programs.add_member(db, root, circle.program, coordinator, ProgramRole.ADMIN)
        await db.commit()
    poll = await make_poll(services, circle)
    await login(client, f"coord-{tag}@example.org")
    page = await client.get("/admin")
    ward = circle.members[1]
    started = await client.post(
        "/admin/act-as",
        data={"user_id": str(ward), "reason": "Helping Ana", "csrf_token": csrf_from(page.text)},
    )
    assert started.status_code == 303
    csrf = csrf_from((await client.get("/profile/edit?tab=profile")).text)
    return Scene(circle, coordinator, ward, poll, csrf)


async def _audit(services: AppServices, action: str) -> list[AuditEvent]:
    async with services.db.session() as db:
        result = await db.exec(
            select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.at))
        )
        return list(result.all())


async def _slot_ids(services: AppServices, poll: Poll) -> list[uuid.UUID]:
    async with services.db.session() as db:
        details = (await poll_rules.load_details(db, [poll]))[0]
    return [s.id for s in details.slots]


async def test_program_settings_page_refuses_changes_while_working_on_behalf(
    client: httpx.AsyncClient, services: AppServices, scene: Scene
) -> None:
    before = await _settings(services, scene.circle.program)
    audited = len(await _audit(services, "program.settings_updated"))
    saved = await client.post(
        f"/admin/programs/{scene.circle.program}/settings",
        data={
            "tab": "general",
            "allowed_providers": ["google"],
            "earliest_hour": "6",
            "latest_hour": "22",
            "minimum_notice_hours": "1",
            "buffer_minutes": "0",
            "csrf_token": scene.csrf,
        },
    )
    assert saved.status_code == 403
    assert ADMIN_ON_BEHALF_MESSAGE in saved.text
    assert await _settings(services, scene.circle.program) == before
    assert len(await _audit(services, "program.settings_updated")) == audited
    # The API refuses the same change in the same words.
    refused = await gql(
        client,
        SETTINGS,
        {"input": {"programId": str(scene.circle.program), "earliestHour": 6}},
        csrf=scene.csrf,
        allow_errors=True,
    )
    assert refused["data"] is None
    assert refused["errors"][0]["message"] == ADMIN_ON_BEHALF_MESSAGE
    assert await _settings(services, scene.circle.program) == before


async def _settings(services: AppServices, program_id: uuid.UUID) -> programs.ProgramSettings:
    async with services.db.session() as db:
        return await programs.settings_for(db, program_id)


async def test_every_admin_service_refuses_a_viewer_working_on_behalf(
    services: AppServices, scene: Scene
) -> None:
    """Whatever page or resolver calls them: settings, programs, members, connections."""
    async with services.db.session() as db:
        acting = Viewer(
            user=await accounts.get_user(db, scene.ward),
            actor=await accounts.get_user(db, scene.coordinator),
        )
        program_id, others = scene.circle.program, scene.circle.members
        attempts = [
            programs.update_settings(
                db, acting, program_id, programs.SettingsChange(allow_weekends=False)
            ),
            programs.create_program(db, acting, "Shadow program"),
            programs.add_member(db, acting, program_id, scene.ward, ProgramRole.ADMIN),
            mentoring.create_connection(
                db,
                acting,
                program_id=program_id,
                member_ids=others[:2],
                kind=ConnectionKind.PAIR,
                name=None,
            ),
        ]
        for attempt in attempts:
            with pytest.raises(PermissionDenied, match="End working on behalf"):
                await attempt
        as_self = Viewer(user=acting.actor, actor=acting.actor)
        await programs.update_settings(
            db, as_self, program_id, programs.SettingsChange(allow_weekends=False)
        )


async def test_answers_and_comments_on_behalf_name_the_admin_via_pages(
    client: httpx.AsyncClient, services: AppServices, scene: Scene
) -> None:
    slots = await _slot_ids(services, scene.poll)
    answered = await client.post(
        f"/polls/{scene.poll.id}/answers",
        data={"csrf_token": scene.csrf, **{f"answer-{s}": "yes" for s in slots}},
    )
    assert answered.status_code == 303
    commented = await client.post(
        f"/polls/{scene.poll.id}/comments",
        data={"csrf_token": scene.csrf, "body": "Ana prefers mornings"},
    )
    assert commented.status_code == 303
    for action in ("poll.answered", "poll.commented"):
        events = await _audit(services, action)
        assert [(e.actor_id, e.subject_id) for e in events] == [(scene.coordinator, scene.ward)]


async def test_answers_and_comments_on_behalf_name_the_admin_via_graphql(
    client: httpx.AsyncClient, services: AppServices, scene: Scene
) -> None:
    slots = await _slot_ids(services, scene.poll)
    answers = [{"slotId": str(s), "answer": "IF_NEED_BE"} for s in slots]
    answered = await gql(
        client,
        ANSWER,
        {"input": {"pollId": str(scene.poll.id), "answers": answers}},
        csrf=scene.csrf,
    )
    assert answered["data"]["answerPoll"]["errors"] == []
    commented = await gql(
        client,
        COMMENT,
        {"input": {"pollId": str(scene.poll.id), "body": "Evenings are hard"}},
        csrf=scene.csrf,
    )
    assert commented["data"]["addPollComment"]["errors"] == []
    for action in ("poll.answered", "poll.commented"):
        events = await _audit(services, action)
        assert [(e.actor_id, e.subject_id) for e in events] == [(scene.coordinator, scene.ward)]


async def test_profile_edit_on_behalf_names_the_admin(
    client: httpx.AsyncClient, services: AppServices, scene: Scene
) -> None:
    saved = await client.post(
        "/profile/edit",
        data={"name": "Ana Lima", "time_zone": "Europe/Lisbon", "csrf_token": scene.csrf},
    )
    assert saved.status_code == 303
    events = await _audit(services, "user.profile_updated")
    assert [(e.actor_id, e.subject_id, e.details["fields"]) for e in events] == [
        (scene.coordinator, scene.ward, ["name", "time_zone"])
    ]
