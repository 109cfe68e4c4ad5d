"""The admins' Pairs and groups page: create pairs and groups, add and remove group
members (after confirmation), with the services' rules, audit rows and clear errors."""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlmodel import select

from server.models import AuditEvent, ConnectionMember, MentoringConnection
from server.models.enums import ConnectionKind, ProgramRole
from server.services.people import accounts, mentoring, programs
from server.services.people.sessions import ADMIN_ON_BEHALF_MESSAGE
from server.wiring import AppServices
from tests.conftest import create_user, login, new_client


@dataclass
class Scene:
    program: uuid.UUID
    lead: uuid.UUID
    people: list[uuid.UUID]  # Ada (mentor), Ben (mentee), Cy, Di (participants)
    outsider: uuid.UUID
    csrf: str

    @property
    def base(self) -> str:
        return f"/admin/programs/{self.program}/connections"


async def _scene(client: httpx.AsyncClient, services: AppServices) -> Scene:
    root = await create_user(services, "root@example.org", global_admin=True, password="")
    lead = await create_user(services, "lead@example.org", name="Lee Lead")
    names = [("ada", ProgramRole.MENTOR), ("ben", ProgramRole.MENTEE)]
    names += [("cy", ProgramRole.PARTICIPANT), ("di", ProgramRole.PARTICIPANT)]
    people = [
        await create_user(
            services,
            f"{name}@example.org",
            name=name.capitalize(),
            password="correct horse battery" if name == "ada" else "",
        )
        for name, _role in names
    ]
    outsider = await create_user(services, "out@example.org", name="Otto", password="")
    async with services.db.session() as db:
        admin = await accounts.get_user(db, root)
        program = await programs.create_program(db, admin, "Mentoring")
        await programs.add_member(db, admin, program.id, lead, ProgramRole.ADMIN)
        for person, (_name, role) in zip(people, names, strict=True):
            await programs.add_member(db, admin, program.id, person, role)
        await db.commit()
    csrf = await login(client, "lead@example.org")
    return Scene(program.id, lead, people, outsider, csrf)


async def _connections(
    services: AppServices,
) -> list[tuple[MentoringConnection, dict[uuid.UUID, str]]]:
    async with services.db.session() as db:
        rows = (await db.exec(select(MentoringConnection))).all()
        found = []
        for row in rows:
            members = await db.exec(
                select(ConnectionMember.user_id, ConnectionMember.role).where(
                    ConnectionMember.connection_id == row.id
                )
            )
            found.append((row, dict(members.all())))
        return found


async def _actions(services: AppServices) -> list[str]:
    async with services.db.session() as db:
        return [e.action for e in (await db.exec(select(AuditEvent))).all()]


async def test_a_pair_is_created_with_its_mentor_and_mentee(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    scene = await _scene(client, services)
    ada, ben, cy, _di = scene.people
    page = await client.get(scene.base)
    assert page.status_code == 200 and "Create a pair" in page.text
    # Cy is a participant: the form says who mentors, whatever the program roles are.
    done = await client.post(
        f"{scene.base}/pairs",
        data={"mentor_id": str(cy), "mentee_id": str(ben), "csrf_token": scene.csrf},
    )
    assert done.status_code == 303
    [(pair, members)] = await _connections(services)
    assert pair.kind == ConnectionKind.PAIR and pair.name == "Cy & Ben"
    assert members == {cy: "mentor", ben: "mentee"}
    assert "connection.created" in await _actions(services)
    listed = html.unescape((await client.get(done.headers["location"])).text)
    assert "Cy & Ben" in listed and "The pair is created." in listed
    same = await client.post(
        f"{scene.base}/pairs",
        data={"mentor_id": str(ada), "mentee_id": str(ada), "csrf_token": scene.csrf},
    )
    assert same.status_code == 422 and "two different people" in same.text


async def test_a_pair_with_someone_outside_the_program_is_refused(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    scene = await _scene(client, services)
    done = await client.post(
        f"{scene.base}/pairs",
        data={
            "mentor_id": str(scene.people[0]),
            "mentee_id": str(scene.outsider),
            "csrf_token": scene.csrf,
        },
    )
    assert done.status_code == 422
    assert "Every member must belong to the program first." in done.text
    assert await _connections(services) == []
    async with services.db.session() as db:
        gone = await accounts.get_user(db, scene.people[1])
        gone.is_active = False
        db.add(gone)
        await db.commit()
    page = await client.get(scene.base)
    assert f'value="{scene.people[1]}"' not in page.text  # not offered
    inactive = await client.post(
        f"{scene.base}/pairs",
        data={
            "mentor_id": str(scene.people[0]),
            "mentee_id": str(scene.people[1]),
            "csrf_token": scene.csrf,
        },
    )
    assert inactive.status_code == 422 and "reactivate it first" in inactive.text
    assert await _connections(services) == []
    missing = await client.post(
        f"{scene.base}/pairs", data={"mentor_id": "", "mentee_id": "x", "csrf_token": scene.csrf}
    )
    assert missing.status_code == 422 and "Choose a person." in missing.text


async def test_groups_are_created_and_members_added_and_removed(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    scene = await _scene(client, services)
    ada, ben, cy, di = scene.people
    created = await client.post(
        f"{scene.base}/groups",
        data={
            "name": "Circle",
            "member_ids": [str(ada), str(ben)],
            "organizer_id": str(ada),
            "csrf_token": scene.csrf,
        },
    )
    assert created.status_code == 303
    [(group, members)] = await _connections(services)
    assert group.kind == ConnectionKind.GROUP and group.organizer_id == ada
    assert set(members) == {ada, ben}
    members_path = f"{scene.base}/{group.id}/members"
    for person in (cy, di):
        added = await client.post(
            members_path, data={"user_id": str(person), "csrf_token": scene.csrf}
        )
        assert added.status_code == 303
    outsider = await client.post(
        members_path, data={"user_id": str(scene.outsider), "csrf_token": scene.csrf}
    )
    assert outsider.status_code == 422 and "not in the program" in outsider.text
    twice = await client.post(members_path, data={"user_id": str(cy), "csrf_token": scene.csrf})
    assert twice.status_code == 422 and "already in the group" in twice.text
    remove = f"{members_path}/{cy}/remove"
    confirm = await client.get(remove)
    assert confirm.status_code == 200 and f'action="{remove}"' in confirm.text
    assert cy in (await _connections(services))[0][1]  # the confirmation changes nothing
    removed = await client.post(remove, data={"csrf_token": scene.csrf})
    assert removed.status_code == 303
    assert set((await _connections(services))[0][1]) == {ada, ben, di}
    organizer = await client.post(f"{members_path}/{ada}/remove", data={"csrf_token": scene.csrf})
    assert organizer.status_code == 422 and "organizes the group" in organizer.text
    await client.post(f"{members_path}/{di}/remove", data={"csrf_token": scene.csrf})
    last = await client.post(f"{members_path}/{ben}/remove", data={"csrf_token": scene.csrf})
    assert last.status_code == 422 and "at least two members" in last.text
    actions = await _actions(services)
    assert actions.count("connection.member_added") == 2
    assert actions.count("connection.member_removed") == 2


async def test_a_group_needs_a_name_and_two_members(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    scene = await _scene(client, services)
    alone = await client.post(
        f"{scene.base}/groups",
        data={"name": "Solo", "member_ids": [str(scene.people[0])], "csrf_token": scene.csrf},
    )
    assert alone.status_code == 422 and "between 2 and 50 members" in alone.text
    assert 'value="Solo"' in alone.text
    unnamed = await client.post(
        f"{scene.base}/groups",
        data={"name": " ", "member_ids": [str(p) for p in scene.people], "csrf_token": scene.csrf},
    )
    assert unnamed.status_code == 422 and "Give the group a name." in unnamed.text
    assert await _connections(services) == []


async def test_pairs_keep_their_two_members(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    scene = await _scene(client, services)
    ada, ben, cy, _di = scene.people
    async with services.db.session() as db:
        lead = await accounts.get_user(db, scene.lead)
        pair = await mentoring.create_connection(
            db,
            lead,
            program_id=scene.program,
            member_ids=[ada, ben],
            kind=ConnectionKind.PAIR,
            name=None,
        )
        await db.commit()
    added = await client.post(
        f"{scene.base}/{pair.id}/members", data={"user_id": str(cy), "csrf_token": scene.csrf}
    )
    assert added.status_code == 422 and "A pair always has two members" in added.text


async def test_participants_and_admins_on_behalf_are_refused(
    client: httpx.AsyncClient, services: AppServices, app: Any
) -> None:
    scene = await _scene(client, services)
    ada, ben, _cy, _di = scene.people
    async with await new_client(app) as participant:
        csrf = await login(participant, "ada@example.org")
        assert (await participant.get(scene.base)).status_code == 404
        refused = await participant.post(
            f"{scene.base}/pairs",
            data={"mentor_id": str(ada), "mentee_id": str(ben), "csrf_token": csrf},
        )
        assert refused.status_code == 404
    started = await client.post(
        "/admin/act-as", data={"user_id": str(ben), "reason": "Helping", "csrf_token": scene.csrf}
    )
    assert started.status_code == 303
    on_behalf = await client.post(
        f"{scene.base}/pairs",
        data={"mentor_id": str(ada), "mentee_id": str(ben), "csrf_token": scene.csrf},
    )
    assert on_behalf.status_code == 403
    assert ADMIN_ON_BEHALF_MESSAGE in html.unescape(on_behalf.text)
    assert await _connections(services) == []
