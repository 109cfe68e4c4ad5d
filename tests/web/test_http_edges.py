"""Robust HTTP edges: malformed or hostile requests get a 4xx, never a 500; error pages
carry every security header and no CSRF token; disconnects and slow bodies are handled
quietly; and ``tandem serve``'s uvicorn settings bound headers, header time and keep-alive."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.app import create_app
from server.web.http_server import uvicorn_options
from server.web.quiet_log import bad_requests
from server.wiring import AppServices, build_services, close_services
from tests.conftest import create_user, csrf_from, login, make_settings

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options")


async def test_too_many_form_fields_is_413_not_500(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    fields = [("csrf_token", csrf_from(page.text)), ("email", "a@example.org")]
    fields += [(f"f{i}", "x") for i in range(250)]
    response = await client.post("/login", content=urlencode(fields), headers=FORM)
    assert response.status_code == 413
    assert "200 fields" in response.text


async def test_too_many_form_fields_with_csrf_header(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await create_user(services, "forms@example.org")
    csrf = await login(client, "forms@example.org")
    fields = [(f"f{i}", "x") for i in range(1500)]
    response = await client.post(
        "/profile/edit", content=urlencode(fields), headers={**FORM, "X-CSRF-Token": csrf}
    )
    assert response.status_code == 413


async def test_ordinary_forms_still_work(client: httpx.AsyncClient, services: AppServices) -> None:
    await create_user(services, "ok-form@example.org")
    csrf = await login(client, "ok-form@example.org")  # a form post through the guard
    fields = {"csrf_token": csrf, "name": "Within Limits", "time_zone": "Europe/Paris"}
    response = await client.post("/profile/edit", content=urlencode(fields), headers=FORM)
    assert response.status_code == 303
    assert "notice=profile_saved" in response.headers["location"]
    assert "Within Limits" in (await client.get("/profile/edit?tab=profile")).text


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"value": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b"{" * 100_000,
        b"42",
        b'"x"',
        b"null",
    ],
)
async def test_nested_or_non_object_json_to_microsoft_webhook_is_400(
    client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post(
        "/webhooks/microsoft", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


async def test_ordinary_microsoft_notification_still_acknowledged(
    client: httpx.AsyncClient,
) -> None:
    body = {"value": [{"subscriptionId": "nope", "clientState": "x"}]}
    assert (await client.post("/webhooks/microsoft", json=body)).status_code == 202


@pytest.fixture
def failing_app(app: Any) -> Any:
    async def boom(request: Request) -> Response:
        raise RuntimeError("secret-detail-in-exception")

    app.router.routes.append(Route("/boom", boom, methods=["GET", "POST"]))
    return app


async def test_500_page_has_security_headers_and_no_csrf_token(
    failing_app: Any, services: AppServices, caplog: pytest.LogCaptureFixture
) -> None:
    await create_user(services, "boom@example.org")
    transport = httpx.ASGITransport(app=failing_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        csrf = await login(client, "boom@example.org")
        with caplog.at_level(logging.ERROR):
            response = await client.get("/boom")
    assert response.status_code == 500
    for header in SECURITY_HEADERS:
        assert header in response.headers, header
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-request-id"]
    assert "Something went wrong" in response.text
    assert csrf not in response.text
    assert "RuntimeError" in caplog.text
    assert "secret-detail-in-exception" not in caplog.text


def _scope(path: str = "/graphql", method: str = "POST") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (
                b"content-type",
                b"application/x-www-form-urlencoded" if path == "/login" else b"application/json",
            ),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }


async def _run(app: Any, receive: Any, path: str = "/graphql") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(_scope(path), receive, send), timeout=10)
    return sent


def _aborted_body() -> Any:
    messages = [
        {"type": "http.request", "body": b'{"query": "{ me', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return receive


@pytest.mark.parametrize("path", ["/graphql", "/webhooks/microsoft", "/login"])
async def test_aborted_body_is_logged_once_at_info_without_traceback(
    app: Any, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    bad_requests.reset()
    with caplog.at_level(logging.DEBUG):
        await _run(app, _aborted_body(), path)
    mine = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(mine) == 1
    assert mine[0].levelno == logging.INFO and mine[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_bad_request_logging_is_rate_limited(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    bad_requests.reset()
    with caplog.at_level(logging.INFO, logger="tandem.requests"):
        for _ in range(200):
            await _run(app, _aborted_body())
    lines = [r for r in caplog.records if r.name == "tandem.requests"]
    assert 1 <= len(lines) <= bad_requests.per_window


async def test_slow_body_gets_408(tmp_path: Path, sqlite_url: str) -> None:
    svc = build_services(make_settings(tmp_path, sqlite_url, http_body_timeout_seconds=0.5))
    app = create_app(services=svc)
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b'{"query"', "more_body": True}
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    started = time.perf_counter()
    try:
        sent = await _run(app, receive)
    finally:
        await close_services(svc)
    assert time.perf_counter() - started < 5
    assert sent[0]["status"] == 408


# --- uvicorn settings, through a real server on a free port ---------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[int]:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        http_header_timeout_seconds=1.0,
        http_keep_alive_seconds=1,
        http_max_header_bytes=8 * 1024,
    )
    port = _free_port()
    options = {**uvicorn_options(settings), "log_level": "warning"}
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, **options)
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.started
    yield port
    running.should_exit = True
    thread.join(10)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection (reads EOF) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_served_app_answers(server: int) -> None:
    response = httpx.get(f"http://127.0.0.1:{server}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"


def test_slow_headers_are_cut_off(server: int) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    # One header byte every 0.3 s would hold the connection forever without a header timer.
    sock.settimeout(0.3)
    closed = False
    while time.monotonic() - started < 6:
        try:
            sock.sendall(b"X")
            if sock.recv(1) == b"":
                closed = True
                break
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
    sock.close()
    assert closed
    assert time.monotonic() - started < 4


def test_idle_keep_alive_connection_is_closed(server: int) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(5)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    assert _closed_within(sock, 5)
    assert time.monotonic() - started < 4
    sock.close()


def test_oversized_headers_are_refused(server: int) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 64 * 1024 + b"\r\n\r\n")
    sock.settimeout(5)
    answer = sock.recv(65536)
    sock.close()
    assert answer.split(b" ", 2)[1] in (b"400", b"431")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_access_log_omits_query_strings(server: int) -> None:
    access = logging.getLogger("uvicorn.access")
    collect = _Collect()
    access.addHandler(collect)
    previous = access.level
    access.setLevel(logging.INFO)
    try:
        httpx.get(f"http://127.0.0.1:{server}/calendar/callback/google?code=oauth-code-123")
        httpx.get(f"http://127.0.0.1:{server}/setup/setup-token-456.sig")
        deadline = time.monotonic() + 5
        while len(collect.lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        access.removeHandler(collect)
        access.setLevel(previous)
    assert any("/calendar/callback/google" in line for line in collect.lines), collect.lines
    assert not any("oauth-code-123" in line for line in collect.lines)
    assert any("/setup/[token]" in line for line in collect.lines), collect.lines
    assert not any("setup-token-456" in line for line in collect.lines)
