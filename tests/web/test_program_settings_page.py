"""Program Settings: admins change General and Features, operators alone flip their switches,
every change is audited, invalid forms change nothing, others see a 404."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlmodel import col, select

from server.models import AuditEvent, Program, User
from server.models.enums import ProgramRole
from server.services.people import programs
from server.wiring import AppServices
from tests.conftest import create_user, login

GENERAL = {
    "tab": "general",
    "allowed_providers": ["google", "icloud"],
    "allow_weekends": "on",
    "earliest_hour": "9",
    "latest_hour": "17",
    "minimum_notice_hours": "12",
    "buffer_minutes": "15",
}


async def _program(services: AppServices) -> uuid.UUID:
    """A program with an admin (Ada), a participant (Pat); Root is a global admin."""
    root_id = await create_user(services, "root@example.org", name="Root", global_admin=True)
    ada = await create_user(services, "ada@example.org", name="Ada")
    pat = await create_user(services, "pat@example.org", name="Pat")
    async with services.db.session() as db:
        root = await db.get(User, root_id)
        assert root is not None
        program = await programs.create_program(db, root, "Engineering")
        await programs.add_member(db, root, program.id, ada, ProgramRole.ADMIN)
        await programs.add_member(db, root, program.id, pat, ProgramRole.PARTICIPANT)
        await db.commit()
        return program.id


async def _settings(services: AppServices, program_id: uuid.UUID) -> programs.ProgramSettings:
    async with services.db.session() as db:
        return await programs.settings_for(db, program_id)


async def _audits(services: AppServices, program_id: uuid.UUID) -> list[AuditEvent]:
    async with services.db.session() as db:
        result = await db.exec(
            select(AuditEvent)
            .where(
                AuditEvent.action == "program.settings_updated",
                AuditEvent.target_id == str(program_id),
            )
            .order_by(col(AuditEvent.at))
        )
        return list(result.all())


def _url(program_id: uuid.UUID, tab: str = "general") -> str:
    return f"/admin/programs/{program_id}/settings?tab={tab}"


async def _post(
    client: httpx.AsyncClient, program_id: uuid.UUID, csrf: str, data: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        f"/admin/programs/{program_id}/settings", data={**data, "csrf_token": csrf}
    )


async def test_program_admin_changes_general_settings_and_it_is_audited(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    program_id = await _program(services)
    csrf = await login(client, "ada@example.org")

    page = await client.get(_url(program_id))
    assert page.status_code == 200
    assert "Program Settings: Engineering" in page.text
    assert '<option value="8" selected>08:00</option>' in page.text  # the default, inherited

    saved = await _post(client, program_id, csrf, GENERAL)

    assert saved.status_code == 303
    assert saved.headers["location"] == f"/admin/programs/{program_id}/settings?tab=general" + (
        "&notice=settings_saved"
    )
    settings = await _settings(services, program_id)
    assert [p.value for p in settings.allowed_providers] == ["google", "icloud"]
    assert (settings.allow_weekends, settings.earliest_hour, settings.latest_hour) == (True, 9, 17)
    assert (settings.minimum_notice_hours, settings.buffer_minutes) == (12, 15)
    audits = await _audits(services, program_id)
    assert len(audits) == 1
    assert audits[0].details["after"]["earliest_hour"] == 9
    assert audits[0].details["before"]["earliest_hour"] is None  # was the organization's

    again = await client.get(saved.headers["location"])
    assert "Program settings are saved." in again.text
    assert '<option value="9" selected>09:00</option>' in again.text
    assert 'id="provider-microsoft" name="allowed_providers" value="microsoft">' in again.text


async def test_unchanged_fields_stay_inherited_and_unaudited(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    program_id = await _program(services)
    csrf = await login(client, "ada@example.org")
    same = {
        "tab": "general",
        "allowed_providers": ["google", "microsoft", "icloud"],
        "earliest_hour": "8",
        "latest_hour": "18",
        "minimum_notice_hours": "0",
        "buffer_minutes": "0",
    }
    assert (await _post(client, program_id, csrf, same)).status_code == 303
    async with services.db.session() as db:
        program = await db.get(Program, program_id)
        assert program is not None
        assert (program.latest_hour, program.earliest_hour, program.allow_weekends) == (
            18,
            None,
            None,
        )
    (audit,) = await _audits(services, program_id)
    assert set(audit.details["after"]) == {"latest_hour"}


async def test_invalid_hours_rerender_with_422_and_change_nothing(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    program_id = await _program(services)
    csrf = await login(client, "ada@example.org")
    before = await _settings(services, program_id)

    wrong = await _post(
        client, program_id, csrf, {**GENERAL, "earliest_hour": "18", "latest_hour": "9"}
    )
    assert wrong.status_code == 422
    assert "The earliest meeting hour must be before the latest." in wrong.text
    assert 'id="earliest_hour" name="earliest_hour" aria-invalid="true"' in wrong.text
    assert '<option value="18" selected>18:00</option>' in wrong.text  # what was typed

    none = await _post(client, program_id, csrf, {**GENERAL, "allowed_providers": []})
    assert none.status_code == 422
    assert "Allow at least one calendar provider." in none.text

    garbage = await _post(client, program_id, csrf, {**GENERAL, "buffer_minutes": "lots"})
    assert garbage.status_code == 422
    assert "Buffer must be a whole number." in garbage.text

    assert await _settings(services, program_id) == before
    assert await _audits(services, program_id) == []


async def test_participants_and_strangers_get_404(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    program_id = await _program(services)
    csrf = await login(client, "pat@example.org")

    page = await client.get(_url(program_id))
    post = await _post(client, program_id, csrf, GENERAL)
    missing = await client.get(_url(uuid.uuid4()))

    assert page.status_code == post.status_code == missing.status_code == 404
    assert page.text == missing.text
    assert (await _settings(services, program_id)).earliest_hour == 8


async def test_features_tab_non_operator_changes_sync_and_sees_operator_switches_read_only(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    program_id = await _program(services)
    csrf = await login(client, "root@example.org")  # a global admin, not an operator

    page = await client.get(_url(program_id, "features"))
    assert "Only operators can change this." in page.text
    assert 'name="group_polls_enabled"' not in page.text
    assert 'name="two_way_sync_enabled"' in page.text

    saved = await _post(client, program_id, csrf, {"tab": "features", "two_way_sync_enabled": "on"})
    assert saved.status_code == 303
    settings = await _settings(services, program_id)
    assert settings.two_way_sync_enabled is True
    assert settings.scheduling_assistant_enabled is True  # untouched by the absent switch

    forged = await _post(
        client,
        program_id,
        csrf,
        {"tab": "features", "two_way_sync_enabled": "on", "group_polls_enabled": "on"},
    )
    assert forged.status_code == 403
    assert "Only operators can switch" in forged.text
    assert (await _settings(services, program_id)).group_polls_enabled is False


async def test_operator_admin_flips_operator_switches(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    program_id = await _program(services)
    await create_user(services, "op@example.org", name="Opal", global_admin=True, operator=True)
    csrf = await login(client, "op@example.org")

    page = await client.get(_url(program_id, "features"))
    assert 'name="group_polls_enabled"' in page.text
    assert "Only operators can change this." not in page.text

    saved = await _post(client, program_id, csrf, {"tab": "features", "group_polls_enabled": "on"})

    assert saved.status_code == 303
    settings = await _settings(services, program_id)
    assert settings.group_polls_enabled is True
    assert settings.scheduling_assistant_enabled is False  # its box was left unticked
    (audit,) = await _audits(services, program_id)
    assert audit.details["after"] == {
        "scheduling_assistant_enabled": False,
        "group_polls_enabled": True,
    }
