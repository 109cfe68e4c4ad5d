"""The admins' People page: create a person (setup link shown or emailed), add someone
existing, give and take roles, deactivate and reactivate, with the services' rules,
audit rows, clear errors and confirmation steps."""

from __future__ import annotations

import dataclasses
import html
import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from server.app import create_app
from server.models import AuditEvent, ProgramMembership, User
from server.models.enums import ProgramRole
from server.services.invites import MemoryMailer
from server.services.people import accounts, programs
from server.services.people.sessions import ADMIN_ON_BEHALF_MESSAGE
from server.wiring import AppServices
from tests.conftest import TEST_PASSWORD, create_user, csrf_from, gql, login, new_client, use_mailer
from tests.schema.test_graphql_programs import token_for

LINK = re.compile(r"http://testserver/setup/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")


@dataclass
class Program:
    id: uuid.UUID
    other: uuid.UUID
    lead: uuid.UUID
    pat: uuid.UUID
    csrf: str

    @property
    def base(self) -> str:
        return f"/admin/programs/{self.id}/people"


async def _setup(client: httpx.AsyncClient, services: AppServices) -> Program:
    """A program led by a program admin (signed in), with Pat as a participant, and a
    second program the lead does not run."""
    root = await create_user(services, "root@example.org", global_admin=True, password="")
    lead = await create_user(services, "lead@example.org", name="Lee Lead")
    pat = await create_user(services, "pat@example.org", name="Pat Participant")
    async with services.db.session() as db:
        admin = await accounts.get_user(db, root)
        program = await programs.create_program(db, admin, "Mentoring")
        other = await programs.create_program(db, admin, "Elsewhere")
        await programs.add_member(db, admin, program.id, lead, ProgramRole.ADMIN)
        await programs.add_member(db, admin, program.id, pat, ProgramRole.PARTICIPANT)
        await db.commit()
    csrf = await login(client, "lead@example.org")
    return Program(program.id, other.id, lead, pat, csrf)


async def _audit(services: AppServices, action: str) -> list[AuditEvent]:
    async with services.db.session() as db:
        rows = await db.exec(select(AuditEvent).where(AuditEvent.action == action))
        return list(rows.all())


async def _user(services: AppServices, email: str) -> User | None:
    async with services.db.session() as db:
        return await accounts.get_by_email(db, email)


async def _roles(services: AppServices, program_id: uuid.UUID, user_id: uuid.UUID) -> set[str]:
    async with services.db.session() as db:
        rows = await db.exec(
            select(ProgramMembership.role).where(
                ProgramMembership.program_id == program_id, ProgramMembership.user_id == user_id
            )
        )
        return {ProgramRole(r).value for r in rows.all()}


def _person(**values: str) -> dict[str, str]:
    form = {
        "name": "Nia New",
        "email": "nia@example.org",
        "time_zone": "Asia/Tokyo",
        "role": "mentee",
    }
    form.update(values)
    return form


async def test_admin_page_links_to_people_and_lists_them(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    scene = await _setup(client, services)
    admin = await client.get("/admin")
    assert f'href="{scene.base}"' in admin.text
    assert f'href="/admin/programs/{scene.id}/connections"' in admin.text
    page = await client.get(scene.base)
    assert page.status_code == 200
    assert "Pat Participant" in page.text and "pat@example.org" in page.text
    assert "Program admin" in page.text and "Participant" in page.text


async def test_creating_a_person_shows_a_one_time_setup_link_without_mail(
    client: httpx.AsyncClient, services: AppServices, app: Any
) -> None:
    scene = await _setup(client, services)
    done = await client.post(scene.base, data={**_person(), "csrf_token": scene.csrf})
    assert done.status_code == 200
    assert "It works once, for 7 days" in done.text
    link = LINK.search(done.text)
    assert link is not None
    user = await _user(services, "nia@example.org")
    assert user is not None and user.password_hash is None and user.time_zone == "Asia/Tokyo"
    assert await _roles(services, scene.id, user.id) == {"mentee"}
    created = await _audit(services, "user.created")
    assert [(e.actor_id, e.subject_id) for e in created] == [(scene.lead, user.id)]
    assert [e.subject_id for e in await _audit(services, "program.member_added")][-1] == user.id
    # The newcomer opens the link, chooses a password and lands on onboarding, signed in.
    async with await new_client(app) as newcomer:
        path = link.group(0).removeprefix("http://testserver")
        form = await newcomer.get(path)
        assert form.status_code == 200 and "Welcome, Nia New" in form.text
        mismatch = await newcomer.post(
            path,
            data={
                "password": TEST_PASSWORD,
                "confirm": "something else",
                "csrf_token": csrf_from(form.text),
            },
        )
        assert mismatch.status_code == 422 and "The two passwords differ." in mismatch.text
        chosen = await newcomer.post(
            path,
            data={
                "password": TEST_PASSWORD,
                "confirm": TEST_PASSWORD,
                "csrf_token": csrf_from(form.text),
            },
        )
        assert chosen.status_code == 303 and chosen.headers["location"] == "/onboarding"
        assert (await newcomer.get("/onboarding")).status_code == 200
        again = await newcomer.get(path)
        assert again.status_code == 404 and "has been used, has expired" in again.text
    async with await new_client(app) as later:
        await login(later, "nia@example.org")


async def test_with_mail_configured_the_link_is_emailed_not_shown(
    services: AppServices, settings: Any
) -> None:
    mailer = MemoryMailer()
    mailing = dataclasses.replace(
        services, settings=settings.model_copy(update={"smtp_host": "mail.example.org"})
    )
    use_mailer(mailing, mailer)
    async with await new_client(create_app(services=mailing)) as web:
        scene = await _setup(web, mailing)
        done = await web.post(scene.base, data={**_person(), "csrf_token": scene.csrf})
        assert done.status_code == 303 and done.headers["location"].endswith("notice=person_mailed")
        page = await web.get(done.headers["location"])
        assert "was emailed a link" in page.text and "/setup/" not in page.text
    assert len(mailer.sent) == 1 and mailer.sent[0]["To"] == "nia@example.org"
    assert LINK.search(mailer.sent[0].get_body().get_content()) is not None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"email": "pat@example.org"}, "A user with email pat@example.org already exists."),
        ({"time_zone": "Mars/Olympus"}, "time zone"),
        ({"role": "overlord"}, "Choose a role."),
    ],
)
async def test_bad_input_is_refused_clearly_and_creates_nothing(
    client: httpx.AsyncClient, services: AppServices, values: dict[str, str], message: str
) -> None:
    scene = await _setup(client, services)
    done = await client.post(scene.base, data={**_person(**values), "csrf_token": scene.csrf})
    assert done.status_code == 422
    assert message in html.unescape(done.text)
    assert 'value="Nia New"' in done.text  # the form keeps what was typed
    assert await _user(services, "nia@example.org") is None
    assert await _audit(services, "user.created") == []


async def test_outsiders_get_nothing(
    client: httpx.AsyncClient, services: AppServices, app: Any
) -> None:
    scene = await _setup(client, services)
    async with await new_client(app) as pat:
        csrf = await login(pat, "pat@example.org")
        assert (await pat.get(scene.base)).status_code == 404
        refused = await pat.post(scene.base, data={**_person(), "csrf_token": csrf})
        assert refused.status_code == 404
    other = await client.get(f"/admin/programs/{scene.other}/people")
    assert other.status_code == 404
    refused = await client.post(
        f"/admin/programs/{scene.other}/people", data={**_person(), "csrf_token": scene.csrf}
    )
    assert refused.status_code == 404
    assert await _user(services, "nia@example.org") is None
    no_csrf = await client.post(scene.base, data=_person())
    assert no_csrf.status_code == 403
    assert await _user(services, "nia@example.org") is None


async def test_no_admin_change_while_working_on_behalf(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    scene = await _setup(client, services)
    started = await client.post(
        "/admin/act-as",
        data={"user_id": str(scene.pat), "reason": "Helping", "csrf_token": scene.csrf},
    )
    assert started.status_code == 303
    refused = await client.post(scene.base, data={**_person(), "csrf_token": scene.csrf})
    assert refused.status_code == 403
    assert ADMIN_ON_BEHALF_MESSAGE in html.unescape(refused.text)
    deactivate = await client.post(
        f"{scene.base}/{scene.pat}/deactivate", data={"csrf_token": scene.csrf}
    )
    assert deactivate.status_code == 403
    assert await _user(services, "nia@example.org") is None
    pat = await _user(services, "pat@example.org")
    assert pat is not None and pat.is_active


async def test_roles_are_added_and_removed_after_confirmation(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    scene = await _setup(client, services)
    added = await client.post(
        f"{scene.base}/{scene.pat}/roles", data={"role": "mentor", "csrf_token": scene.csrf}
    )
    assert added.status_code == 303
    assert await _roles(services, scene.id, scene.pat) == {"participant", "mentor"}
    confirm_path = f"{scene.base}/{scene.pat}/roles/remove"
    listed = await client.get(scene.base)
    assert f'href="{confirm_path}?role=mentor"' in listed.text
    confirm = await client.get(f"{confirm_path}?role=mentor")
    assert confirm.status_code == 200
    assert f'action="{confirm_path}"' in confirm.text and "Remove the role" in confirm.text
    assert 'value="mentor" required checked' in confirm.text
    assert 'value="participant" required>' in confirm.text
    assert await _roles(services, scene.id, scene.pat) == {"participant", "mentor"}  # not yet
    removed = await client.post(confirm_path, data={"role": "mentor", "csrf_token": scene.csrf})
    assert removed.status_code == 303
    assert await _roles(services, scene.id, scene.pat) == {"participant"}
    rows = await _audit(services, "program.member_removed")
    assert [(e.actor_id, e.subject_id, e.details["role"]) for e in rows] == [
        (scene.lead, scene.pat, "mentor")
    ]
    own = await client.post(
        f"{scene.base}/{scene.lead}/roles/remove", data={"role": "admin", "csrf_token": scene.csrf}
    )
    assert own.status_code == 403 and "your own admin role" in html.unescape(own.text)
    stranger = await client.post(
        f"{scene.base}/{uuid.uuid4()}/roles", data={"role": "mentor", "csrf_token": scene.csrf}
    )
    assert stranger.status_code == 422 and "not in the program" in stranger.text


async def test_existing_accounts_are_added_by_email(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    scene = await _setup(client, services)
    loner = await create_user(services, "loner@example.org", name="Lone", password="")
    added = await client.post(
        f"{scene.base}/add",
        data={"email": "Loner@Example.org", "role": "mentor", "csrf_token": scene.csrf},
    )
    assert added.status_code == 303
    assert await _roles(services, scene.id, loner) == {"mentor"}
    unknown = await client.post(
        f"{scene.base}/add",
        data={"email": "ghost@example.org", "role": "mentor", "csrf_token": scene.csrf},
    )
    assert unknown.status_code == 422 and "create the person instead" in unknown.text


async def test_deactivation_ends_sessions_tokens_and_sign_in(
    client: httpx.AsyncClient, services: AppServices, app: Any
) -> None:
    scene = await _setup(client, services)
    token = await token_for(services, scene.pat)
    pat = await new_client(app)
    await login(pat, "pat@example.org")
    assert (await pat.get("/profile/edit")).status_code == 200
    async with await new_client(app) as integrator:
        works = await gql(integrator, "query { me { id } }", token=token)
    assert works["data"]["me"]["id"] == str(scene.pat)
    path = f"{scene.base}/{scene.pat}/deactivate"
    confirm = await client.get(path)
    assert confirm.status_code == 200 and "Deactivate the account" in confirm.text
    still = await _user(services, "pat@example.org")
    assert still is not None and still.is_active  # the confirmation page changes nothing
    done = await client.post(path, data={"csrf_token": scene.csrf})
    assert done.status_code == 303
    page = await client.get(done.headers["location"])
    assert "Deactivated" in page.text and "Reactivate" in page.text
    gone = await pat.get("/profile/edit")
    assert gone.status_code == 303 and gone.headers["location"].startswith("/login")
    async with await new_client(app) as integrator:
        api = await gql(integrator, "query { me { id } }", token=token, allow_errors=True)
    assert api.get("data") is None and api["errors"]
    form = await pat.get("/login")
    refused = await pat.post(
        "/login",
        data={
            "email": "pat@example.org",
            "password": TEST_PASSWORD,
            "csrf_token": csrf_from(form.text),
        },
    )
    assert refused.status_code == 401
    await pat.aclose()
    rows = await _audit(services, "user.deactivated")
    assert [(e.actor_id, e.subject_id, e.details["tokens_revoked"]) for e in rows] == [
        (scene.lead, scene.pat, 1)
    ]
    back = await client.post(
        f"{scene.base}/{scene.pat}/reactivate", data={"csrf_token": scene.csrf}
    )
    assert back.status_code == 303
    assert [e.subject_id for e in await _audit(services, "user.reactivated")] == [scene.pat]
    async with await new_client(app) as again:
        await login(again, "pat@example.org")


async def test_program_admins_cannot_deactivate_people_of_other_programs(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    scene = await _setup(client, services)
    async with services.db.session() as db:
        root = (await db.exec(select(User).where(col(User.is_global_admin).is_(True)))).one()
        await programs.add_member(db, root, scene.other, scene.pat, ProgramRole.MENTEE)
        await db.commit()
    refused = await client.post(
        f"{scene.base}/{scene.pat}/deactivate", data={"csrf_token": scene.csrf}
    )
    assert refused.status_code == 403
    assert "ask a global administrator" in refused.text
    self_refused = await client.post(
        f"{scene.base}/{scene.lead}/deactivate", data={"csrf_token": scene.csrf}
    )
    assert self_refused.status_code == 403
    pat = await _user(services, "pat@example.org")
    assert pat is not None and pat.is_active
    assert await _audit(services, "user.deactivated") == []
