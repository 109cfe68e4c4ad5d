"""Sign in, sessions, CSRF and the security headers every page carries."""

from __future__ import annotations

import httpx
import pytest

from server.wiring import AppServices
from tests.conftest import TEST_PASSWORD, create_user, csrf_from, login, new_client


async def test_login_page_has_named_inputs_and_csp(client: httpx.AsyncClient) -> None:
    response = await client.get("/login")
    assert response.status_code == 200
    assert 'name="email"' in response.text and 'name="password"' in response.text
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_login_then_home_then_logout_ends_session(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await create_user(services, "ana@example.org", name="Ana")
    csrf = await login(client, "ana@example.org")
    home = await client.get("/")
    assert home.status_code == 200 and "Welcome, Ana" in home.text
    stolen = dict(client.cookies)
    out = await client.post("/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    # Replaying the old cookie after logout no longer works: the session is gone server-side.
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver", cookies=stolen
    ) as replay:
        again = await replay.get("/")
        assert again.status_code == 303 and again.headers["location"].startswith("/login")


async def test_session_cookie_is_httponly_samesite_and_fresh_on_login(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await create_user(services, "ben@example.org")
    page = await client.get("/login")
    first = await client.post(
        "/login",
        data={
            "email": "ben@example.org",
            "password": TEST_PASSWORD,
            "csrf_token": csrf_from(page.text),
        },
    )
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    token_one = client.cookies.get("tandem_session")
    page = await client.get("/login?next=/")  # signed in: redirected, so log in again via POST
    second = await client.post(
        "/login",
        data={
            "email": "ben@example.org",
            "password": TEST_PASSWORD,
            "csrf_token": await _csrf(client),
        },
    )
    assert second.status_code == 303
    assert client.cookies.get("tandem_session") not in (None, token_one)
    # The session of the first login ended: its token no longer opens anything.
    async with httpx.AsyncClient(
        transport=client._transport,
        base_url="http://testserver",
        cookies={"tandem_session": token_one or ""},
    ) as old:
        assert (await old.get("/")).status_code == 303


async def _csrf(client: httpx.AsyncClient) -> str:
    return csrf_from((await client.get("/profile/edit?tab=profile")).text)


async def test_wrong_password_is_refused_with_one_message(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await create_user(services, "cy@example.org")
    page = await client.get("/login")
    response = await client.post(
        "/login",
        data={
            "email": "cy@example.org",
            "password": "nope-nope-nope",
            "csrf_token": csrf_from(page.text),
        },
    )
    assert response.status_code == 401
    assert "Email or password is incorrect." in response.text
    unknown = await client.post(
        "/login",
        data={
            "email": "nobody@example.org",
            "password": "x" * 12,
            "csrf_token": csrf_from(page.text),
        },
    )
    assert unknown.status_code == 401 and "Email or password is incorrect." in unknown.text


async def test_login_attempts_are_rate_limited(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await create_user(services, "dee@example.org")
    token = csrf_from((await client.get("/login")).text)
    statuses = []
    for _ in range(6):
        response = await client.post(
            "/login",
            data={"email": "dee@example.org", "password": "wrong-password!", "csrf_token": token},
        )
        statuses.append(response.status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429
    # Even the right password is refused while throttled.
    blocked = await client.post(
        "/login", data={"email": "dee@example.org", "password": TEST_PASSWORD, "csrf_token": token}
    )
    assert blocked.status_code == 429


async def test_post_without_csrf_token_changes_nothing(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await create_user(services, "eve@example.org", name="Eve")
    await login(client, "eve@example.org")
    response = await client.post("/profile/edit", data={"name": "Mallory", "time_zone": "UTC"})
    assert response.status_code == 403
    page = await client.get("/profile/edit?tab=profile")
    assert 'value="Eve"' in page.text


async def test_cross_origin_post_is_refused_even_with_token(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await create_user(services, "fay@example.org", name="Fay")
    csrf = await login(client, "fay@example.org")
    response = await client.post(
        "/profile/edit",
        data={"name": "Evil", "time_zone": "UTC", "csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403


async def test_multipart_is_refused(client: httpx.AsyncClient, services: AppServices) -> None:
    await create_user(services, "gus@example.org")
    csrf = await login(client, "gus@example.org")
    response = await client.post(
        "/profile/edit", files={"name": ("a.txt", b"x")}, data={"csrf_token": csrf}
    )
    assert response.status_code == 415


async def test_login_form_itself_needs_csrf(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await create_user(services, "hal@example.org")
    response = await client.post(
        "/login", data={"email": "hal@example.org", "password": TEST_PASSWORD}
    )
    assert response.status_code == 403


async def test_password_change_ends_other_sessions(app: object, services: AppServices) -> None:
    await create_user(services, "ivy@example.org")
    laptop = await new_client(app)
    phone = await new_client(app)
    try:
        csrf = await login(laptop, "ivy@example.org")
        await login(phone, "ivy@example.org")
        changed = await laptop.post(
            "/profile/password",
            data={
                "current_password": TEST_PASSWORD,
                "new_password": "a brand new password",
                "csrf_token": csrf,
            },
        )
        assert changed.status_code == 303
        assert (await laptop.get("/")).status_code == 200
        assert (await phone.get("/")).status_code == 303
    finally:
        await laptop.aclose()
        await phone.aclose()


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil"])
async def test_next_parameter_cannot_redirect_off_site(
    client: httpx.AsyncClient, services: AppServices, target: str
) -> None:
    await create_user(services, "jo@example.org")
    page = await client.get(f"/login?next={target}")
    response = await client.post(
        "/login",
        data={
            "email": "jo@example.org",
            "password": TEST_PASSWORD,
            "csrf_token": csrf_from(page.text),
            "next": target,
        },
    )
    assert response.headers["location"] == "/"


async def test_https_deployments_use_host_prefixed_secure_cookies(tmp_path, sqlite_url) -> None:
    from server.app import create_app
    from server.wiring import build_services, close_services
    from tests.conftest import make_settings

    services = build_services(
        make_settings(tmp_path, sqlite_url, base_url="https://tandem.example")
    )
    try:
        await create_user(services, "tls@example.org")
        app = create_app(services=services)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://tandem.example"
        ) as c:
            page = await c.get("/login")
            assert "Secure" in page.headers["set-cookie"]
            assert page.headers["strict-transport-security"].startswith("max-age=")
            response = await c.post(
                "/login",
                data={
                    "email": "tls@example.org",
                    "password": TEST_PASSWORD,
                    "csrf_token": csrf_from(page.text),
                },
            )
            cookie = response.headers["set-cookie"]
            assert cookie.startswith("__Host-tandem_session=")
            assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie
    finally:
        await close_services(services)


async def test_graphiql_only_outside_production(tmp_path, sqlite_url) -> None:
    from server.app import create_app
    from server.wiring import build_services, close_services
    from tests.conftest import make_settings

    for env, expected in (("development", 200), ("production", 404)):
        services = build_services(make_settings(tmp_path / env, sqlite_url, env=env))
        try:
            app = create_app(services=services)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as c:
                response = await c.get("/graphql", headers={"Accept": "text/html"})
            assert response.status_code == expected, env
            if expected == 200:
                assert "graphiql" in response.text.lower()
        finally:
            await close_services(services)


async def test_chunked_bodies_are_capped(client: httpx.AsyncClient) -> None:
    async def chunks():  # no Content-Length: the size is only known while reading
        for _ in range(40):
            yield b"x" * 65536

    response = await client.post("/webhooks/microsoft", content=chunks())
    assert response.status_code == 413
