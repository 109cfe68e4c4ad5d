"""Working on behalf (who may, what it records, how it ends) and escaping of user text."""

from __future__ import annotations

import uuid

import httpx
from sqlmodel import select

from server.models import AuditEvent
from server.models.enums import ConnectionKind, ProgramRole
from server.services.people import accounts, api_tokens, mentoring, programs
from server.wiring import AppServices
from tests.conftest import create_user, csrf_from, login, new_client

XSS_NAME = '<script>alert(1)</script><img src=x onerror=alert(2)> <b hx-get="/admin" hx-trigger="load">x</b>'


async def _program_with(
    services: AppServices, admin_email: str, member_ids: list[uuid.UUID]
) -> uuid.UUID:
    admin_id = await create_user(services, admin_email, name="Coordinator")
    root_id = await create_user(
        services, f"root-{uuid.uuid4().hex[:6]}@example.org", global_admin=True
    )
    async with services.db.session() as db:
        root = await accounts.get_user(db, root_id)
        program = await programs.create_program(db, root, f"Program {uuid.uuid4().hex[:4]}")
        await programs.add_member(db, root, program.id, admin_id, ProgramRole.ADMIN)
        for member in member_ids:
            await programs.add_member(db, root, program.id, member, ProgramRole.MENTEE)
        await db.commit()
        return program.id


async def test_program_admin_works_on_behalf_and_ends_it(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    mentee = await create_user(services, "ward@example.org", name="Wanda")
    await _program_with(services, "coord@example.org", [mentee])
    await login(client, "coord@example.org")
    page = await client.get("/admin")
    assert "Work on behalf" in page.text
    no_reason = await client.post(
        "/admin/act-as",
        data={"user_id": str(mentee), "reason": " ", "csrf_token": csrf_from(page.text)},
    )
    assert no_reason.status_code == 422
    started = await client.post(
        "/admin/act-as",
        data={
            "user_id": str(mentee),
            "reason": "Helping with onboarding",
            "csrf_token": csrf_from(page.text),
        },
    )
    assert started.status_code == 303
    home = await client.get("/")
    assert "working on behalf of <strong>Wanda</strong>" in home.text
    assert "Welcome, Wanda" in home.text
    ended = await client.post("/admin/act-as/end", data={"csrf_token": csrf_from(home.text)})
    assert ended.status_code == 303
    assert "working on behalf" not in (await client.get("/")).text
    async with services.db.session() as db:
        actions = [
            (e.action, e.subject_id, e.details.get("reason"))
            for e in (await db.exec(select(AuditEvent).order_by(AuditEvent.at))).all()
            if e.action.startswith("act_on_behalf")
        ]
    assert actions == [
        ("act_on_behalf.started", mentee, "Helping with onboarding"),
        ("act_on_behalf.ended", mentee, None),
    ]


async def test_cannot_act_for_people_outside_my_programs(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    outsider = await create_user(services, "outside@example.org")
    other_admin = await create_user(services, "otheradmin@example.org", global_admin=True)
    await _program_with(services, "coord2@example.org", [])
    await login(client, "coord2@example.org")
    page = await client.get("/admin")
    for target in (outsider, other_admin, uuid.uuid4()):
        refused = await client.post(
            "/admin/act-as",
            data={"user_id": str(target), "reason": "curious", "csrf_token": csrf_from(page.text)},
        )
        assert refused.status_code == 404
        assert "User not found." in refused.text


async def test_participant_cannot_act_on_behalf(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    me = await create_user(services, "plain@example.org")
    other = await create_user(services, "plain2@example.org")
    await _program_with(services, "coord3@example.org", [me, other])
    await login(client, "plain@example.org")
    page = await client.get("/profile/edit?tab=profile")
    refused = await client.post(
        "/admin/act-as",
        data={"user_id": str(other), "reason": "x", "csrf_token": csrf_from(page.text)},
    )
    assert refused.status_code == 404


async def test_user_text_is_inert_everywhere_it_shows(
    client: httpx.AsyncClient, services: AppServices, app: object
) -> None:
    evil = await create_user(services, "evil@example.org", name=XSS_NAME)
    me = await create_user(services, "viewer@example.org", name="Viewer")
    program_id = await _program_with(services, "coord4@example.org", [evil, me])
    root_id = await create_user(services, "root-xss@example.org", global_admin=True)
    async with services.db.session() as db:
        root = await accounts.get_user(db, root_id)
        await mentoring.create_connection(
            db,
            root,
            program_id=program_id,
            member_ids=[me, evil],
            kind=ConnectionKind.GROUP,
            name=XSS_NAME,
        )
        await db.commit()
    await login(client, "viewer@example.org")
    home = (await client.get("/")).text
    assert "<script>alert(1)</script>" not in home
    assert 'hx-get="/admin"' not in home
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in home
    coordinator = await new_client(app)
    await login(coordinator, "coord4@example.org")
    admin = (await coordinator.get("/admin")).text
    await coordinator.aclose()
    assert "<script>alert(1)</script>" not in admin and "onerror=alert(2)>" not in admin


async def test_api_tokens_are_long_random_and_hashed(services: AppServices) -> None:
    user_id = await create_user(services, "tok@example.org")
    async with services.db.session() as db:
        user = await accounts.get_user(db, user_id)
        raws = [(await api_tokens.create_token(db, user, f"t{i}"))[0] for i in range(5)]
        await db.commit()
        stored = await api_tokens.list_tokens(db, user)
    assert len(set(raws)) == 5
    assert all(len(raw) >= 4 + 43 for raw in raws)  # 32 random bytes, base64url: 256 bits
    assert not any(raw in repr(row) or row.token_hash == raw for row in stored for raw in raws)


async def test_tokens_created_and_revoked_on_settings_page(
    client: httpx.AsyncClient, services: AppServices, app: object
) -> None:
    await create_user(services, "tp@example.org")
    csrf = await login(client, "tp@example.org")
    created = await client.post("/profile/tokens", data={"name": "HR sync", "csrf_token": csrf})
    assert created.status_code == 200
    token = created.text.split('<code class="token">', 1)[1].split("</code>", 1)[0]
    api = await new_client(app)
    ok = await api.post(
        "/graphql", json={"query": "{ me { email } }"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert ok.json()["data"]["me"]["email"] == "tp@example.org"
    page = await client.get("/profile/edit?tab=settings")
    assert "HR sync" in page.text and token not in page.text  # shown once only
    revoke_path = page.text.split('action="/profile/tokens/', 1)[1].split('"', 1)[0]
    revoked = await client.post(f"/profile/tokens/{revoke_path}", data={"csrf_token": csrf})
    assert revoked.status_code == 303
    denied = await api.post(
        "/graphql", json={"query": "{ me { email } }"}, headers={"Authorization": f"Bearer {token}"}
    )
    await api.aclose()
    assert denied.json()["data"] is None


async def test_working_on_behalf_ends_by_itself(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    from datetime import timedelta

    from server.models import UserSession
    from server.models.base import utcnow

    mentee = await create_user(services, "ward2@example.org", name="Walt")
    await _program_with(services, "coord5@example.org", [mentee])
    await login(client, "coord5@example.org")
    page = await client.get("/admin")
    await client.post(
        "/admin/act-as",
        data={"user_id": str(mentee), "reason": "setup", "csrf_token": csrf_from(page.text)},
    )
    home = await client.get("/")
    assert "This ends by itself at" in home.text
    async with services.db.session() as db:
        for row in (await db.exec(select(UserSession))).all():
            if row.acting_since is not None:
                row.acting_since = utcnow() - timedelta(minutes=31)
                db.add(row)
        await db.commit()
    later = await client.get("/")
    assert "working on behalf" not in later.text
    assert "Welcome, Coordinator" in later.text
    async with services.db.session() as db:
        actions = [e.action for e in (await db.exec(select(AuditEvent))).all()]
    assert "act_on_behalf.expired" in actions


async def test_cannot_borrow_another_programs_admin_rights(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    """A program admin must not act as someone who administers another program, nor
    provision anything while acting, nor pull members of other programs into theirs."""
    from tests.conftest import gql

    other_admin = await create_user(services, "padmin@example.org", name="Pat")
    mentee = await create_user(services, "plainmentee@example.org", name="Pia")
    program_a = await _program_with(services, "coordA@example.org", [other_admin, mentee])
    root_id = await create_user(services, "root-b@example.org", global_admin=True)
    outsider = await create_user(services, "inb@example.org")
    async with services.db.session() as db:
        root = await accounts.get_user(db, root_id)
        program_b = await programs.create_program(db, root, "Program B")
        await programs.add_member(db, root, program_b.id, other_admin, ProgramRole.ADMIN)
        await programs.add_member(db, root, program_b.id, outsider, ProgramRole.MENTEE)
        await db.commit()
    csrf = await login(client, "coordA@example.org")
    page = await client.get("/admin")
    refused = await client.post(
        "/admin/act-as",
        data={"user_id": str(other_admin), "reason": "x", "csrf_token": csrf_from(page.text)},
    )
    assert refused.status_code == 404
    poach = await gql(
        client,
        "mutation M($p: ID!, $u: ID!) { addProgramMember(input: {programId: $p, userId: $u, role: MENTEE}) { member { role } errors { code } } }",
        {"p": str(program_a), "u": str(outsider)},
        csrf=csrf,
    )
    assert poach["data"]["addProgramMember"] == {"member": None, "errors": [{"code": "NOT_FOUND"}]}
    acted = await client.post(
        "/admin/act-as",
        data={"user_id": str(mentee), "reason": "help", "csrf_token": csrf_from(page.text)},
    )
    assert acted.status_code == 303
    while_acting = await gql(
        client,
        "mutation M($p: ID!, $u: ID!) { addProgramMember(input: {programId: $p, userId: $u, role: ADMIN}) { member { role } } }",
        {"p": str(program_a), "u": str(mentee)},
        csrf=csrf,
        allow_errors=True,
    )
    assert while_acting["data"] is None
    assert "End working on behalf" in while_acting["errors"][0]["message"]


async def test_no_credential_changes_while_working_on_behalf(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    mentee = await create_user(services, "ward3@example.org", name="Wim")
    await _program_with(services, "coord6@example.org", [mentee])
    await login(client, "coord6@example.org")
    page = await client.get("/admin")
    await client.post(
        "/admin/act-as",
        data={"user_id": str(mentee), "reason": "help", "csrf_token": csrf_from(page.text)},
    )
    csrf = csrf_from((await client.get("/profile/edit?tab=settings")).text)
    token = await client.post("/profile/tokens", data={"name": "mine", "csrf_token": csrf})
    assert (
        token.status_code == 403 and "Only the user can create their own API tokens." in token.text
    )
    password = await client.post(
        "/profile/password",
        data={"current_password": "x" * 12, "new_password": "y" * 12, "csrf_token": csrf},
    )
    assert (
        password.status_code == 403
        and "Only the user can change their own password." in password.text
    )
    async with services.db.session() as db:
        ward = await accounts.get_user(db, mentee)
        assert await api_tokens.list_tokens(db, ward) == []
