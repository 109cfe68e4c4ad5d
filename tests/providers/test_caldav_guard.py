"""The SSRF guard for user-supplied CalDAV URLs, including the per-connection check."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
from caldav.async_davclient import AsyncDAVClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators.runner import BackgroundServer
from server.providers.caldav_guard import (
    CalDAVURLRejected,
    check_server_url,
    install_address_hooks,
    is_forbidden_address,
)


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("127.0.0.1", True),
        ("10.0.0.8", True),
        ("172.16.5.4", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),  # cloud metadata
        ("100.64.0.1", True),  # carrier-grade NAT
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("::1", True),
        ("fe80::1", True),
        ("fd00:ec2::254", True),  # AWS metadata over IPv6
        ("::ffff:127.0.0.1", True),
        ("17.253.144.10", False),  # an Apple address
        ("2620:149:a44::1", False),
    ],
)
def test_forbidden_addresses(address: str, forbidden: bool) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address)) is forbidden


async def test_public_https_ip_literal_passes_and_private_host_is_allowed_by_the_setting() -> None:
    assert await check_server_url("https://17.253.144.10/", allow_private=False) == (
        "https://17.253.144.10/"
    )
    url = "http://127.0.0.1:5232/dav/"
    assert await check_server_url(url, allow_private=True) == url


@pytest.mark.parametrize(
    "url", ["gopher://127.0.0.1/", "https:///nohost", "https://a:b@c.example/"]
)
async def test_bad_urls_are_refused_even_when_private_hosts_are_allowed(url: str) -> None:
    with pytest.raises(CalDAVURLRejected):
        await check_server_url(url, allow_private=True)


async def _multistatus(request: Request) -> Response:
    return Response(status_code=207)


@pytest.fixture
def loopback_server() -> Iterator[BackgroundServer]:
    app = Starlette(routes=[Route("/", _multistatus, methods=["PROPFIND"])])
    with BackgroundServer(app) as server:
        yield server


async def test_connection_hook_refuses_a_connection_that_lands_on_loopback(
    loopback_server: BackgroundServer,
) -> None:
    """Simulates DNS rebinding: the URL passed the check, the connection went private."""
    client = AsyncDAVClient(url=loopback_server.url, username="u", password="p", timeout=5)
    install_address_hooks(client.session)
    try:
        with pytest.raises(CalDAVURLRejected):
            await client.propfind(loopback_server.url, props=["{DAV:}resourcetype"])
    finally:
        await client.close()


async def test_without_the_hook_the_same_request_goes_through(
    loopback_server: BackgroundServer,
) -> None:
    client = AsyncDAVClient(url=loopback_server.url, username="u", password="p", timeout=5)
    try:
        response = await client.propfind(loopback_server.url, props=["{DAV:}resourcetype"])
    finally:
        await client.close()
    assert response.status == 207


async def test_redirects_are_not_followed_when_private_hosts_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """niquests skips pre_send hooks on redirect hops, so a public server answering 307
    towards an internal address must not be followed at all."""
    from starlette.responses import RedirectResponse

    from server.config import Settings
    from server.providers import caldav as caldav_module
    from server.providers.base import ProviderUnavailable
    from server.providers.caldav import CalDAVProvider

    reached: list[str] = []

    async def internal(request: Request) -> Response:
        reached.append(request.method)
        return Response(status_code=207)

    with BackgroundServer(
        Starlette(routes=[Route("/{p:path}", internal, methods=["PROPFIND", "GET", "REPORT"])])
    ) as target:

        async def bounce(request: Request) -> Response:
            return RedirectResponse(f"{target.url}/admin", status_code=307)

        with BackgroundServer(
            Starlette(routes=[Route("/{p:path}", bounce, methods=["PROPFIND", "GET", "REPORT"])])
        ) as public:
            # Pretend loopback is public so only the redirect rule is under test.
            monkeypatch.setattr(caldav_module, "install_address_hooks", lambda session: None)
            provider = CalDAVProvider(
                Settings(caldav_allow_private_hosts=False, provider_timeout_seconds=5)
            )
            with pytest.raises(ProviderUnavailable, match="redirected"):
                async with provider._session(
                    public.url + "/", "u", "p", on_401=ProviderUnavailable
                ) as client:
                    await client.propfind(public.url + "/", props=["{DAV:}resourcetype"])
    assert reached == []
