"""What people see when a provider refuses Tandem for a reason reconnecting cannot fix: an
organization's access policy (the user is told why, not asked to reconnect), Tandem's own
expired client secret (administrators are told; the user is only informed), and push
renewals that keep failing (the user is told Tandem is polling meanwhile)."""

from __future__ import annotations

import html
import uuid
from datetime import timedelta

import httpx

from server.models import CalendarConnection, PushSubscription
from server.models.base import utcnow
from server.models.enums import CalendarStatus, ProviderName
from server.services.calendars import sync
from server.wiring import AppServices
from tests.conftest import create_user, login


async def _connection(
    services: AppServices, email: str, status: CalendarStatus, code: str, error: str
) -> uuid.UUID:
    user = await create_user(services, email)
    async with services.db.session() as db:
        db.add(
            CalendarConnection(
                user_id=user,
                provider=ProviderName.MICROSOFT,
                status=status,
                label="Office 365",
                account_email="p@contoso.test",
                last_synced_at=utcnow() - timedelta(hours=1),
                last_error=error,
                error_code=code,
            )
        )
        await db.commit()
    return user


async def test_access_policy_shows_its_reason_and_no_reconnect_prompt(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    reason = "Microsoft says your organization's policy does not let Tandem read this calendar."
    await _connection(
        services, "policy@example.org", CalendarStatus.ERROR, sync.PROBLEM_ACCESS_POLICY, reason
    )
    await login(client, "policy@example.org")
    page = await client.get("/profile/edit?tab=settings")
    assert reason in html.unescape(page.text)
    assert "Reconnect with" not in page.text
    assert "Reconnecting would not change this" in page.text


NOTE = "Tandem cannot reach Microsoft right now because of a configuration problem."


async def test_expired_client_secret_informs_the_user_without_a_reconnect_prompt(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await _connection(
        services, "secret@example.org", CalendarStatus.CONNECTED, sync.PROBLEM_PROVIDER_CONFIG, NOTE
    )
    await login(client, "secret@example.org")
    page = await client.get("/profile/edit?tab=settings")
    assert NOTE in html.unescape(page.text) and "Reconnect with" not in page.text


async def test_expired_client_secret_is_shown_to_global_admins(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await _connection(
        services,
        "secret2@example.org",
        CalendarStatus.CONNECTED,
        sync.PROBLEM_PROVIDER_CONFIG,
        NOTE,
    )
    await create_user(services, "root-cfg@example.org", global_admin=True)
    await login(client, "root-cfg@example.org")
    admin = html.unescape((await client.get("/admin")).text)
    assert "Office 365 / Outlook.com refuses Tandem's app credentials" in admin
    assert "TANDEM_MICROSOFT_CLIENT_SECRET" in admin


async def test_failing_push_renewal_says_tandem_polls_meanwhile(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await _connection(services, "push@example.org", CalendarStatus.CONNECTED, "", "")
    async with services.db.session() as db:
        db.add(
            PushSubscription(
                user_id=user,
                provider=ProviderName.MICROSOFT,
                channel_id=str(uuid.uuid4()),
                secret_hash="0" * 64,
                expires_at=utcnow() + timedelta(hours=1),
                renew_failures=2,
            )
        )
        await db.commit()
    await login(client, "push@example.org")
    page = await client.get("/profile/edit?tab=settings")
    assert "Live updates from Office 365 are paused" in page.text
