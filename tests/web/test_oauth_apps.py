"""An organization's own OAuth apps: saved by global administrators on the Integrations
page, used for every new connection, carried by each grant for its refreshes, and
replaced or removed with the affected connections marked for reconnection."""

from __future__ import annotations

import logging
import ssl
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import select

from emulators.google import RunningGoogle, consent
from emulators.microsoft import RunningMicrosoft, start_microsoft_emulator
from emulators.microsoft_state import DEFAULT_WORK_TENANT_ID, MicrosoftState
from server.app import create_app
from server.models import AuditEvent, BusyBlock, CalendarConnection, OrganizationOAuthApp
from server.models.enums import CalendarStatus, ProviderName
from server.providers.base import APP_KEY, OAuthApp, app_of
from server.providers.microsoft import MicrosoftProvider
from server.services.calendars.deps import load_credentials
from server.wiring import AppServices, build_services, close_services
from tests.calendar_fixtures import microsoft_consent, provider_overrides
from tests.conftest import create_user, csrf_from, login, make_settings

pytestmark = pytest.mark.slow

PATH = "/admin/integrations/apps"


@pytest.fixture
async def app_services(
    tmp_path: Path, sqlite_url: str, google: RunningGoogle, microsoft: RunningMicrosoft
) -> AsyncIterator[AppServices]:
    svc = build_services(
        make_settings(tmp_path, sqlite_url, **provider_overrides(google, microsoft))
    )
    yield svc
    await close_services(svc)


def _client(services: AppServices) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services=services)),
        base_url="http://testserver",
    )


@pytest.fixture
async def admin_web(app_services: AppServices) -> AsyncIterator[httpx.AsyncClient]:
    await create_user(app_services, "root@example.org", global_admin=True)
    async with _client(app_services) as web:
        await login(web, "root@example.org")
        yield web


@pytest.fixture
async def person_web(app_services: AppServices) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app_services) as web:
        yield web


@pytest.fixture
async def browser(google: RunningGoogle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


def _soon(hours: int) -> datetime:
    day = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    return day + timedelta(hours=hours)


async def _connect_google(
    web: httpx.AsyncClient, browser: httpx.AsyncClient, email: str
) -> tuple[str, httpx.Response]:
    page = await web.get("/calendar/connect/google")
    start = await web.post("/calendar/connect/google", data={"csrf_token": csrf_from(page.text)})
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    params = await consent(browser, authorize, email)
    return authorize, await web.get("/calendar/callback/google", params=params)


async def _save(web: httpx.AsyncClient, provider: str, **fields: str) -> httpx.Response:
    page = await web.get(PATH)
    return await web.post(f"{PATH}/{provider}", data={"csrf_token": csrf_from(page.text), **fields})


async def _connection(services: AppServices, user_id: uuid.UUID) -> CalendarConnection:
    async with services.db.session() as db:
        row = (
            await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user_id))
        ).first()
    assert row is not None
    return row


async def _refresh_works(services: AppServices, connection: CalendarConnection) -> bool:
    """Force a token refresh through the provider with the stored grant: the emulator
    refuses a refresh token presented by any client but the one it was issued to."""
    credentials = load_credentials(services.secrets, connection)
    credentials.secret["expires_at"] = 0
    provider = services.registry.get(ProviderName.GOOGLE)
    try:
        await provider.fetch_busy(credentials, _soon(0), _soon(24), "UTC")
    except Exception:
        return False
    return True


async def test_participants_connect_through_the_saved_app_and_changes_ask_them_to_reconnect(
    app_services: AppServices,
    admin_web: httpx.AsyncClient,
    person_web: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    google: RunningGoogle,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    email = f"ana-{uuid.uuid4().hex[:6]}@gmail.test"
    google.state.add_account(email)
    google.state.add_event(
        email,
        {"start": {"dateTime": _soon(9).isoformat()}, "end": {"dateTime": _soon(10).isoformat()}},
    )
    user = await create_user(app_services, "ana@example.org")
    await login(person_web, "ana@example.org")
    _, done = await _connect_google(person_web, browser, email)
    assert done.status_code == 303
    assert (await _connection(app_services, user)).oauth_app_id is None

    client_id = f"org-{uuid.uuid4().hex[:8]}.apps.googleusercontent.com"
    secret = "org-secret-" + uuid.uuid4().hex
    google.state.register_client(client_id, secret, ["http://testserver/calendar/callback/google"])

    page = await admin_web.get(PATH)
    assert page.status_code == 200
    assert "http://testserver/calendar/callback/google" in page.text
    assert "https://www.googleapis.com/auth/calendar.freebusy" in page.text
    assert "Tandem&#39;s own Google app" in page.text or "Tandem's own Google app" in page.text

    saved = await _save(admin_web, "google", client_id=client_id, client_secret=secret)
    assert saved.status_code == 303
    assert "reconnect=1" in saved.headers["location"]
    shown = await admin_web.get(saved.headers["location"])
    assert "1 connected calendar must be reconnected" in shown.text
    assert "…" + secret[-4:] in shown.text and secret not in shown.text
    async with app_services.db.session() as db:
        row = (await db.exec(select(OrganizationOAuthApp))).one()
        audit = (
            await db.exec(
                select(AuditEvent).where(AuditEvent.action == "integration.oauth_app_saved")
            )
        ).all()
    assert secret.encode() not in row.encrypted_secret and len(audit) == 1

    marked = await _connection(app_services, user)
    assert marked.status == CalendarStatus.NEEDS_REAUTH and marked.error_code == "app_changed"
    settings = await person_web.get("/profile/edit?tab=settings")
    assert "Your organization changed the Google app Tandem connects through" in settings.text

    authorize, done = await _connect_google(person_web, browser, email)
    assert parse_qs(urlsplit(authorize).query)["client_id"] == [client_id]
    assert done.status_code == 303, done.text
    connection = await _connection(app_services, user)
    assert connection.status == CalendarStatus.CONNECTED and connection.oauth_app_id == row.id
    async with app_services.db.session() as db:
        blocks = (await db.exec(select(BusyBlock).where(BusyBlock.user_id == user))).all()
    assert [(b.start_at, b.end_at) for b in blocks] == [(_soon(9), _soon(10))]
    assert await _refresh_works(app_services, connection)

    # A rotated secret of the same app keeps every grant; the copies follow.
    rotated = "org-secret-" + uuid.uuid4().hex
    google.state.register_client(client_id, rotated, ["http://testserver/calendar/callback/google"])
    assert not await _refresh_works(app_services, connection)
    again = await _save(admin_web, "google", client_id=client_id, client_secret=rotated)
    assert "reconnect=0" in again.headers["location"]
    connection = await _connection(app_services, user)
    assert connection.status == CalendarStatus.CONNECTED
    carried = app_of(load_credentials(app_services.secrets, connection).secret)
    assert carried is not None and carried.client_secret == rotated
    assert await _refresh_works(app_services, connection)

    # Another client id: the grant belongs to the old one, so the person must reconnect.
    other = await _save(admin_web, "google", client_id="other-app-id", client_secret=rotated)
    assert "reconnect=1" in other.headers["location"]
    assert (await _connection(app_services, user)).status == CalendarStatus.NEEDS_REAUTH
    assert secret not in caplog.text and rotated not in caplog.text


async def test_a_flow_started_before_the_app_changed_is_refused(
    app_services: AppServices,
    admin_web: httpx.AsyncClient,
    person_web: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    google: RunningGoogle,
) -> None:
    email = f"bo-{uuid.uuid4().hex[:6]}@gmail.test"
    google.state.add_account(email)
    user = await create_user(app_services, "bo@example.org")
    await login(person_web, "bo@example.org")
    page = await person_web.get("/calendar/connect/google")
    start = await person_web.post(
        "/calendar/connect/google", data={"csrf_token": csrf_from(page.text)}
    )
    params = await consent(browser, start.headers["location"], email)
    google.state.register_client("late-app", "late-secret-123", [])
    assert (
        await _save(admin_web, "google", client_id="late-app", client_secret="late-secret-123")
    ).status_code == 303
    refused = await person_web.get("/calendar/callback/google", params=params)
    assert refused.status_code == 403
    assert (
        "changed the Google app Tandem connects through while you were signing in" in refused.text
    )
    async with app_services.db.session() as db:
        none = (
            await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == user))
        ).first()
    assert none is None


async def test_only_global_admins_manage_apps_and_bad_input_changes_nothing(
    app_services: AppServices, admin_web: httpx.AsyncClient, person_web: httpx.AsyncClient
) -> None:
    await create_user(app_services, "pat@example.org")
    await login(person_web, "pat@example.org")
    assert (await person_web.get(PATH)).status_code == 404
    home = await person_web.get("/")
    token = csrf_from(home.text)
    forged = await person_web.post(
        f"{PATH}/google",
        data={"csrf_token": token, "client_id": "mine-123", "client_secret": "secret-123456"},
    )
    assert forged.status_code == 404

    cases = [
        ("google", {"client_id": "", "client_secret": "long-enough-secret"}, "client id"),
        ("google", {"client_id": "abc-123", "client_secret": "short"}, "client secret"),
        ("microsoft", {"client_id": "abc-123", "client_secret": "long-enough-secret"}, "tenant"),
        (
            "microsoft",
            {"client_id": "abc-123", "client_secret": "long-enough-secret", "tenant": "common"},
            "tenant",
        ),
        (
            "icloud",
            {"client_id": "abc-123", "client_secret": "long-enough-secret"},
            "Google and Microsoft only",
        ),
    ]
    for provider, fields, words in cases:
        response = await _save(admin_web, provider, **fields)
        assert response.status_code == 422, (provider, fields)
        assert words in response.text
        assert fields["client_secret"] not in response.text or fields["client_secret"] == "short"
    page = await admin_web.get(PATH)
    removal = await admin_web.post(
        f"{PATH}/google/remove", data={"csrf_token": csrf_from(page.text)}
    )
    assert removal.status_code == 422
    async with app_services.db.session() as db:
        assert (await db.exec(select(OrganizationOAuthApp))).all() == []


async def test_removing_the_app_returns_to_tandems_and_marks_its_connections(
    app_services: AppServices,
    admin_web: httpx.AsyncClient,
    person_web: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    google: RunningGoogle,
) -> None:
    client_id, secret = f"rm-{uuid.uuid4().hex[:6]}", "rm-secret-" + uuid.uuid4().hex
    google.state.register_client(client_id, secret, ["http://testserver/calendar/callback/google"])
    await _save(admin_web, "google", client_id=client_id, client_secret=secret)
    email = f"cy-{uuid.uuid4().hex[:6]}@gmail.test"
    google.state.add_account(email)
    user = await create_user(app_services, "cy@example.org")
    await login(person_web, "cy@example.org")
    _, done = await _connect_google(person_web, browser, email)
    assert done.status_code == 303
    page = await admin_web.get(PATH)
    assert "Calendars connected through it</dt><dd>1" in page.text
    removed = await admin_web.post(
        f"{PATH}/google/remove", data={"csrf_token": csrf_from(page.text), "confirm": "yes"}
    )
    assert removed.status_code == 303 and "reconnect=1" in removed.headers["location"]
    assert (await _connection(app_services, user)).status == CalendarStatus.NEEDS_REAUTH
    authorize, done = await _connect_google(person_web, browser, email)
    assert parse_qs(urlsplit(authorize).query)["client_id"] != [client_id]
    assert done.status_code == 303


async def test_microsoft_signs_in_through_the_organizations_app_in_its_tenant(
    tmp_path: Path,
) -> None:
    """A single-tenant Entra app: the authorize URL, the token exchange and every refresh
    go to the app's tenant with its client id; Tandem's default client is not involved."""
    org_app = OAuthApp(
        str(uuid.uuid4()), "org-entra-app", "org-entra-secret", DEFAULT_WORK_TENANT_ID
    )
    state = MicrosoftState(client_id=org_app.client_id, client_secret=org_app.client_secret)
    running = start_microsoft_emulator(tmp_path, state)
    try:
        state.add_account("dee@contoso.test")
        overrides = provider_overrides(running)
        overrides.update(microsoft_client_id="tandem-default", microsoft_client_secret="unused")
        settings = make_settings(tmp_path, "sqlite+aiosqlite://", **overrides)
        context = ssl.create_default_context(cafile=str(running.ca_path))
        async with httpx.AsyncClient(verify=context) as http:
            provider = MicrosoftProvider(settings, http)
            redirect = "http://testserver/calendar/callback/microsoft"
            start = provider.begin_authorization(redirect, org_app)
            assert f"/{DEFAULT_WORK_TENANT_ID}/oauth2/v2.0/authorize" in start.url
            assert parse_qs(urlsplit(start.url).query)["client_id"] == ["org-entra-app"]
            async with httpx.AsyncClient(verify=context) as user_browser:
                params = await microsoft_consent(user_browser, start.url, "dee@contoso.test")
            account = await provider.finish_authorization(start.flow, params, redirect)
            assert app_of(account.credentials.secret) == org_app
            assert APP_KEY not in repr(account.credentials)
            fetched = await provider.fetch_busy(account.credentials, _soon(0), _soon(24), "UTC")
            assert fetched.readable
            # Tandem's own client is refused by this emulator: the refresh used the app's.
            await provider._token(account.credentials, force_refresh=True)
            provider.close()
    finally:
        running.stop()
