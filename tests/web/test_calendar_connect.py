"""Connecting, replacing and disconnecting calendars through the pages, end to end against
the Google and Microsoft emulators and a real Radicale server."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from emulators.google import RunningGoogle, consent
from emulators.microsoft import RunningMicrosoft
from emulators.radicale import RunningRadicale
from server.app import create_app
from server.models import BusyBlock, CalendarConnection, OAuthFlow
from server.models.enums import CalendarStatus
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import (
    CALDAV_PASSWORD,
    CALDAV_USER,
    microsoft_consent,
    provider_overrides,
)
from tests.conftest import create_user, csrf_from, login, make_settings

pytestmark = pytest.mark.slow


@pytest.fixture
async def cal_services(
    tmp_path: Path, sqlite_url: str, google: RunningGoogle, microsoft: RunningMicrosoft
) -> AsyncIterator[AppServices]:
    svc = build_services(
        make_settings(tmp_path, sqlite_url, **provider_overrides(google, microsoft))
    )
    yield svc
    await close_services(svc)


@pytest.fixture
async def web(cal_services: AppServices) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=cal_services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


@pytest.fixture
async def emulator_http(microsoft: RunningMicrosoft) -> AsyncIterator[httpx.AsyncClient]:
    """The user's browser on the providers' consent pages."""
    context = ssl.create_default_context(cafile=str(microsoft.ca_path))
    async with httpx.AsyncClient(verify=context) as http:
        yield http


async def start_flow(web: httpx.AsyncClient, provider: str) -> httpx.Response:
    """Open the provider's connect page and press its button (a POST: it creates state)."""
    page = await web.get(f"/calendar/connect/{provider}")
    assert page.status_code == 200, page.text
    return await web.post(
        f"/calendar/connect/{provider}", data={"csrf_token": csrf_from(page.text)}
    )


def _soon(hours: int) -> datetime:
    return (datetime.now(UTC) + timedelta(days=1)).replace(
        minute=0, second=0, microsecond=0
    ) + timedelta(hours=hours)


async def _connection(services: AppServices, user_id: Any) -> CalendarConnection | None:
    async with services.db.session() as db:
        return (
            await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user_id))
        ).first()


async def _blocks(services: AppServices, user_id: Any) -> list[BusyBlock]:
    async with services.db.session() as db:
        return list((await db.exec(select(BusyBlock).where(BusyBlock.user_id == user_id))).all())


async def _connect_google(
    web: httpx.AsyncClient,
    http: httpx.AsyncClient,
    email: str,
    *,
    allow: bool = True,
    untick: tuple[str, ...] = (),
) -> httpx.Response:
    start = await start_flow(web, "google")
    assert start.status_code == 303
    params = await consent(http, start.headers["location"], email, allow=allow, untick=untick)
    return await web.get("/calendar/callback/google", params=params)


async def test_settings_page_says_not_connected_with_allowed_providers(
    web: httpx.AsyncClient, cal_services: AppServices
) -> None:
    await create_user(cal_services, "nc@example.org")
    await login(web, "nc@example.org")
    page = await web.get("/profile/edit?tab=settings")
    assert "Your calendar is not connected" in page.text
    assert 'href="/calendar/connect/icloud"' in page.text
    for provider in ("google", "microsoft"):
        assert f'action="/calendar/connect/{provider}"' in page.text


async def test_google_connect_syncs_busy_and_shows_connected(
    web: httpx.AsyncClient,
    cal_services: AppServices,
    google: RunningGoogle,
    emulator_http: httpx.AsyncClient,
) -> None:
    user = await create_user(cal_services, "gina@example.org", time_zone="Europe/Paris")
    google.state.add_account("gina@gmail.test")
    google.state.add_event(
        "gina@gmail.test",
        {
            "summary": "dentist",
            "start": {"dateTime": _soon(9).isoformat()},
            "end": {"dateTime": _soon(10).isoformat()},
        },
    )
    google.state.add_event(
        "gina@gmail.test",
        {
            "summary": "free time",
            "transparency": "transparent",
            "start": {"dateTime": _soon(12).isoformat()},
            "end": {"dateTime": _soon(13).isoformat()},
        },
    )
    await login(web, "gina@example.org")
    done = await _connect_google(web, emulator_http, "gina@gmail.test")
    assert done.status_code == 303 and done.headers["location"] == "/?notice=calendar_connected"
    home = await web.get(done.headers["location"])
    assert "Your calendar is connected." in home.text
    settings = await web.get("/profile/edit?tab=settings")
    assert "Your Google calendar is connected" in settings.text
    assert "Last synced:" in settings.text and "Disconnect" in settings.text
    blocks = await _blocks(cal_services, user)
    assert [(b.start_at, b.end_at) for b in blocks] == [(_soon(9), _soon(10))]
    connection = await _connection(cal_services, user)
    assert connection is not None and connection.status == CalendarStatus.CONNECTED
    assert connection.encrypted_secret is not None and b"refresh" not in connection.encrypted_secret


async def test_declined_consent_is_refused_clearly(
    web: httpx.AsyncClient,
    cal_services: AppServices,
    google: RunningGoogle,
    emulator_http: httpx.AsyncClient,
) -> None:
    user = await create_user(cal_services, "dec@example.org")
    google.state.add_account("dec@gmail.test")
    await login(web, "dec@example.org")
    response = await _connect_google(web, emulator_http, "dec@gmail.test", allow=False)
    assert response.status_code == 403
    assert "did not give Tandem access" in response.text
    assert await _connection(cal_services, user) is None


async def test_google_without_meeting_writes_connects_read_only_and_says_so(
    web: httpx.AsyncClient,
    cal_services: AppServices,
    google: RunningGoogle,
    emulator_http: httpx.AsyncClient,
) -> None:
    """Granular consent: the user unticked calendar.events. Busy times are read, Calendar
    Settings says the connection is read-only (never "connected", then "reconnect")."""
    user = await create_user(cal_services, "ro@example.org")
    google.state.add_account("ro@gmail.test")
    google.state.add_event(
        "ro@gmail.test",
        {"start": {"dateTime": _soon(9).isoformat()}, "end": {"dateTime": _soon(10).isoformat()}},
    )
    await login(web, "ro@example.org")
    done = await _connect_google(web, emulator_http, "ro@gmail.test", untick=("calendar.events",))
    assert done.status_code == 303
    connection = await _connection(cal_services, user)
    assert connection is not None and connection.status == CalendarStatus.CONNECTED
    assert connection.can_write_events is False
    assert [(b.start_at, b.end_at) for b in await _blocks(cal_services, user)] == [
        (_soon(9), _soon(10))
    ]
    settings = await web.get("/profile/edit?tab=settings")
    assert 'id="calendar-read-only"' in settings.text
    assert "Allow Tandem to add meetings" in settings.text


async def test_google_without_free_busy_is_refused_clearly(
    web: httpx.AsyncClient,
    cal_services: AppServices,
    google: RunningGoogle,
    emulator_http: httpx.AsyncClient,
) -> None:
    user = await create_user(cal_services, "nofb@example.org")
    google.state.add_account("nofb@gmail.test")
    await login(web, "nofb@example.org")
    response = await _connect_google(
        web, emulator_http, "nofb@gmail.test", untick=("calendar.freebusy",)
    )
    assert response.status_code == 403
    assert "needs to see when you are busy" in response.text
    assert await _connection(cal_services, user) is None


async def test_forged_and_replayed_state_are_refused(
    web: httpx.AsyncClient,
    cal_services: AppServices,
    google: RunningGoogle,
    emulator_http: httpx.AsyncClient,
) -> None:
    user = await create_user(cal_services, "st@example.org")
    google.state.add_account("st@gmail.test")
    await login(web, "st@example.org")
    forged = await web.get("/calendar/callback/google", params={"code": "abc", "state": "forged"})
    assert forged.status_code == 403 and "invalid or has expired" in forged.text
    start = await start_flow(web, "google")
    params = await consent(emulator_http, start.headers["location"], "st@gmail.test")
    wrong_provider = await web.get("/calendar/callback/microsoft", params=params)
    assert wrong_provider.status_code == 403  # a Google code at Microsoft's redirect URI
    assert await _connection(cal_services, user) is None
    start = await start_flow(web, "google")
    params = await consent(emulator_http, start.headers["location"], "st@gmail.test")
    first = await web.get("/calendar/callback/google", params=params)
    assert first.status_code == 303
    replay = await web.get("/calendar/callback/google", params=params)
    assert replay.status_code == 403
    async with cal_services.db.session() as db:
        assert (await db.exec(select(OAuthFlow))).all() == []


async def test_state_from_another_users_flow_is_refused(
    web: httpx.AsyncClient,
    cal_services: AppServices,
    google: RunningGoogle,
    emulator_http: httpx.AsyncClient,
) -> None:
    await create_user(cal_services, "victim@example.org")
    attacker = await create_user(cal_services, "attacker@example.org")
    google.state.add_account("attacker@gmail.test")
    app = create_app(services=cal_services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as evil:
        await login(evil, "attacker@example.org")
        start = await start_flow(evil, "google")
        params = await consent(emulator_http, start.headers["location"], "attacker@gmail.test")
    await login(web, "victim@example.org")
    landed = await web.get("/calendar/callback/google", params=params)
    assert landed.status_code == 403
    assert await _connection(cal_services, attacker) is None


async def test_microsoft_work_and_personal_labels(
    web: httpx.AsyncClient,
    cal_services: AppServices,
    microsoft: RunningMicrosoft,
    emulator_http: httpx.AsyncClient,
) -> None:
    await create_user(cal_services, "olga@example.org")
    microsoft.state.add_account("olga@contoso.test", name="Olga")
    microsoft.state.add_account("pat@outlook.test", name="Pat", personal=True)
    await login(web, "olga@example.org")
    start = await start_flow(web, "microsoft")
    assert start.status_code == 303
    params = await microsoft_consent(emulator_http, start.headers["location"], "olga@contoso.test")
    done = await web.get("/calendar/callback/microsoft", params=params)
    assert done.status_code == 303, done.text
    page = await web.get("/profile/edit?tab=settings")
    assert "Your Office 365 calendar is connected" in page.text
    # Connecting a personal account replaces the work one.
    start = await start_flow(web, "microsoft")
    params = await microsoft_consent(emulator_http, start.headers["location"], "pat@outlook.test")
    assert (await web.get("/calendar/callback/microsoft", params=params)).status_code == 303
    page = await web.get("/profile/edit?tab=settings")
    assert "Your Outlook.com calendar is connected" in page.text


async def test_replacing_google_revokes_old_grant_and_drops_old_blocks(
    web: httpx.AsyncClient,
    cal_services: AppServices,
    google: RunningGoogle,
    microsoft: RunningMicrosoft,
    emulator_http: httpx.AsyncClient,
) -> None:
    user = await create_user(cal_services, "rep@example.org")
    google.state.add_account("rep@gmail.test")
    google.state.add_event(
        "rep@gmail.test",
        {
            "summary": "x",
            "start": {"dateTime": _soon(9).isoformat()},
            "end": {"dateTime": _soon(10).isoformat()},
        },
    )
    microsoft.state.add_account("rep@contoso.test")
    await login(web, "rep@example.org")
    assert (await _connect_google(web, emulator_http, "rep@gmail.test")).status_code == 303
    assert len(await _blocks(cal_services, user)) == 1
    revokes_before = len(google.state.requests_to("/revoke"))
    start = await start_flow(web, "microsoft")
    params = await microsoft_consent(emulator_http, start.headers["location"], "rep@contoso.test")
    assert (await web.get("/calendar/callback/microsoft", params=params)).status_code == 303
    assert len(google.state.requests_to("/revoke")) == revokes_before + 1
    assert await _blocks(cal_services, user) == []
    connection = await _connection(cal_services, user)
    assert connection is not None and connection.provider.value == "microsoft"


async def test_disconnect_revokes_and_deletes_everything(
    web: httpx.AsyncClient,
    cal_services: AppServices,
    google: RunningGoogle,
    emulator_http: httpx.AsyncClient,
) -> None:
    user = await create_user(cal_services, "dis@example.org")
    google.state.add_account("dis@gmail.test")
    google.state.add_event(
        "dis@gmail.test",
        {
            "summary": "x",
            "start": {"dateTime": _soon(9).isoformat()},
            "end": {"dateTime": _soon(10).isoformat()},
        },
    )
    csrf = await login(web, "dis@example.org")
    assert (await _connect_google(web, emulator_http, "dis@gmail.test")).status_code == 303
    revokes_before = len(google.state.requests_to("/revoke"))
    out = await web.post("/calendar/disconnect", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert len(google.state.requests_to("/revoke")) == revokes_before + 1
    assert await _connection(cal_services, user) is None
    assert await _blocks(cal_services, user) == []
    page = await web.get(out.headers["location"])
    assert "Your calendar is not connected" in page.text


async def test_icloud_form_connects_to_caldav_and_refuses_wrong_password(
    web: httpx.AsyncClient, cal_services: AppServices, radicale: RunningRadicale
) -> None:
    user = await create_user(cal_services, "ical@example.org")
    radicale.make_calendar(CALDAV_USER, CALDAV_PASSWORD, "work")
    csrf = await login(web, "ical@example.org")
    form = await web.get("/calendar/connect/icloud")
    assert form.status_code == 200
    for name in ("username", "app_password", "server_url"):
        assert f'name="{name}"' in form.text
    assert "app-specific password" in form.text
    wrong = await web.post(
        "/calendar/connect/icloud",
        data={
            "username": CALDAV_USER,
            "app_password": "wrong-password-here",
            "server_url": radicale.url,
            "csrf_token": csrf,
        },
    )
    assert wrong.status_code == 422
    assert "wrong-password-here" not in wrong.text
    assert await _connection(cal_services, user) is None
    ok = await web.post(
        "/calendar/connect/icloud",
        data={
            "username": CALDAV_USER,
            "app_password": CALDAV_PASSWORD,
            "server_url": radicale.url,
            "csrf_token": csrf,
        },
    )
    assert ok.status_code == 303, ok.text
    page = await web.get("/profile/edit?tab=settings")
    assert "Your iCal calendar is connected" in page.text
    out = await web.post("/calendar/disconnect", data={"csrf_token": csrf})
    notice = await web.get(out.headers["location"])
    assert "account.apple.com" in notice.text


async def test_provider_not_allowed_by_program_is_refused(
    web: httpx.AsyncClient, cal_services: AppServices
) -> None:
    from server.models.enums import ProgramRole, ProviderName
    from server.services.people import accounts, programs

    admin_id = await create_user(cal_services, "adm@example.org", global_admin=True)
    user_id = await create_user(cal_services, "limited@example.org")
    async with cal_services.db.session() as db:
        admin = await accounts.get_user(db, admin_id)
        program = await programs.create_program(db, admin, "Only iCloud")
        await programs.add_member(db, admin, program.id, user_id, ProgramRole.MENTEE)
        await programs.update_settings(
            db, admin, program.id, programs.SettingsChange(allowed_providers=(ProviderName.ICLOUD,))
        )
        await db.commit()
    await login(web, "limited@example.org")
    page = await web.get("/profile/edit?tab=settings")
    assert (
        'href="/calendar/connect/icloud"' in page.text
        and "/calendar/connect/google" not in page.text
    )
    refused = await web.get("/calendar/connect/google")
    assert refused.status_code == 403 and "does not allow Google" in refused.text


async def test_admin_working_on_behalf_cannot_connect_or_disconnect(
    web: httpx.AsyncClient, cal_services: AppServices, radicale: RunningRadicale
) -> None:
    from server.models.enums import ProgramRole
    from server.services.people import accounts, programs

    admin_id = await create_user(cal_services, "boss@example.org", global_admin=True)
    mentee_id = await create_user(cal_services, "mentee2@example.org", name="Mina")
    async with cal_services.db.session() as db:
        admin = await accounts.get_user(db, admin_id)
        program = await programs.create_program(db, admin, "P")
        await programs.add_member(db, admin, program.id, mentee_id, ProgramRole.MENTEE)
        await db.commit()
    csrf = await login(web, "boss@example.org")
    admin_page = await web.get("/admin")
    acted = await web.post(
        "/admin/act-as",
        data={
            "user_id": str(mentee_id),
            "reason": "help with setup",
            "csrf_token": csrf_from(admin_page.text),
        },
    )
    assert acted.status_code == 303
    home = await web.get("/")
    assert "working on behalf of <strong>Mina</strong>" in home.text
    settings = await web.get("/profile/edit?tab=settings")
    assert "Only they can connect their own calendar" in settings.text
    assert "/calendar/connect/google" not in settings.text
    refused = await web.get("/calendar/connect/google")
    assert refused.status_code == 403 and "Only they can connect" in refused.text
    form_post = await web.post(
        "/calendar/connect/icloud",
        data={
            "username": CALDAV_USER,
            "app_password": CALDAV_PASSWORD,
            "server_url": radicale.url,
            "csrf_token": csrf,
        },
    )
    assert form_post.status_code == 403
    assert await _connection(cal_services, mentee_id) is None
    disconnect = await web.post("/calendar/disconnect", data={"csrf_token": csrf})
    assert disconnect.status_code == 403
    assert "Only they can connect" in disconnect.text


@pytest.mark.parametrize(
    ("status", "sentence"),
    [
        (CalendarStatus.NEEDS_REAUTH, "Your Google calendar needs to be reconnected."),
        (CalendarStatus.ERROR, "Tandem could not read your Google calendar."),
    ],
)
async def test_broken_connections_ask_to_reconnect_and_admins_see_status_only(
    web: httpx.AsyncClient, cal_services: AppServices, status: CalendarStatus, sentence: str
) -> None:
    from server.models.enums import ProviderName
    from server.services.people import accounts, api_tokens

    user = await create_user(cal_services, f"broken-{status.value}@example.org")
    admin = await create_user(cal_services, f"admin-{status.value}@example.org", global_admin=True)
    async with cal_services.db.session() as db:
        db.add(
            CalendarConnection(
                user_id=user,
                provider=ProviderName.GOOGLE,
                status=status,
                label="Google",
                account_email="b@gmail.test",
                last_error="Google no longer accepts Tandem's access.",
            )
        )
        admin_row = await accounts.get_user(db, admin)
        token, _ = await api_tokens.create_token(db, admin_row, "t")
        await db.commit()
    await login(web, f"broken-{status.value}@example.org")
    page = await web.get("/profile/edit?tab=settings")
    assert sentence in page.text
    assert "Reconnect with Google" in page.text
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services=cal_services)),
        base_url="http://testserver",
    ) as api:
        response = await api.post(
            "/graphql",
            json={
                "query": "query U($id: ID!) { user(id: $id) { calendar { status provider connectedAt } } }",
                "variables": {"id": str(user)},
            },
            headers={"Authorization": f"Bearer {token}"},
        )
    calendar = response.json()["data"]["user"]["calendar"]
    assert calendar["status"] == status.name and calendar["provider"] == "GOOGLE"
    assert "accepts" not in response.text  # the human reason stays on the user's own page
