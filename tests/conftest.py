"""Shared fixtures: a migrated database per test (SQLite, and PostgreSQL when configured),
the app with its services, and an HTTP client speaking ASGI to it."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from cryptography.fernet import Fernet
from sqlalchemy import event, make_url, text

from server.app import create_app
from server.config import Settings
from server.db import create_engine, migrate
from server.models import metadata
from server.services.invites import Mailer
from server.services.people import accounts
from server.wiring import AppServices, build_services, close_services

pytest_plugins = ["tests.calendar_fixtures"]

POSTGRES_URL = os.environ.get("TANDEM_TEST_POSTGRES_URL")
TEST_PASSWORD = "correct horse battery"

# argon2's default cost (64 MiB, three passes) is the point in production and about
# 150 ms of CPU per hash here; tests create and sign in thousands of people, so they
# hash with the cheapest parameters. Processes the tests start keep the real cost.
accounts._hasher = PasswordHasher.from_parameters(CHEAPEST)
accounts._DUMMY_HASH = accounts._hasher.hash("tandem-dummy-password")


def run_in_thread(make: Any) -> None:
    """Run a coroutine to completion on its own loop, even when a loop is running here."""
    import asyncio
    import threading

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(make())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once by ``alembic upgrade head``; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.db"

    async def build() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await migrate(engine)
        await engine.dispose()

    run_in_thread(build)
    return path


def _worker_database_url(base_url: str) -> str:
    """Under pytest-xdist each worker gets its own database next to the configured one, so
    workers never truncate each other's tables. Without xdist: the configured database."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return base_url
    url = make_url(base_url)
    return url.set(database=f"{url.database}_{worker}").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_ready() -> str:
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need TANDEM_TEST_POSTGRES_URL (set by .ci/run)")
    url = _worker_database_url(POSTGRES_URL)

    async def build() -> None:
        if url != POSTGRES_URL:
            admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
            name = make_url(url).database
            async with admin.connect() as conn:
                exists = await conn.scalar(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                )
                if not exists:
                    await conn.execute(text(f'CREATE DATABASE "{name}"'))
            await admin.dispose()
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await migrate(engine)
        await engine.dispose()

    run_in_thread(build)
    return url


async def _truncate(url: str) -> None:
    engine = create_engine(url)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} CASCADE"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> AsyncIterator[str]:
    """Each test runs once on a fresh SQLite copy and once on PostgreSQL (when available)."""
    if request.param == "sqlite":
        path = tmp_path / "tandem.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_ready")
        await _truncate(url)
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only, for tests whose subject is not the database."""
    path = tmp_path / "tandem.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "secret_keys": Fernet.generate_key().decode(),
        "base_url": "http://testserver",
        "login_attempts_per_window": 5,
        # Tests drive tasks through the in-process queue (``run_once`` drains it).
        "task_queue": "embedded",
        # Most tests count the attendees' mail; the organizer's copy has its own tests.
        "organizer_copy": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[AppServices]:
    svc = build_services(settings)
    yield svc
    await close_services(svc)


@pytest.fixture
def app(services: AppServices) -> Any:
    return create_app(services=services)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def new_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def create_user(
    services: AppServices,
    email: str | None = None,
    *,
    name: str = "Test User",
    password: str = TEST_PASSWORD,
    time_zone: str = "Europe/Paris",
    global_admin: bool = False,
    operator: bool = False,
    profile_completed: bool = True,
) -> uuid.UUID:
    async with services.db.session() as db:
        user = await accounts.create_user(
            db,
            email=email or f"user-{uuid.uuid4().hex[:8]}@example.org",
            name=name,
            password=password,
            time_zone=time_zone,
            global_admin=global_admin,
            operator=operator,
            profile_completed=profile_completed,
        )
        await db.commit()
        return user.id


CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


async def login(client: httpx.AsyncClient, email: str, password: str = TEST_PASSWORD) -> str:
    """Signs in through the real form; returns the session's CSRF token."""
    page = await client.get("/login")
    response = await client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_from(page.text)},
    )
    assert response.status_code == 303, response.text
    home = await client.get("/profile/edit?tab=profile")
    return csrf_from(home.text)


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    csrf: str | None = None,
    allow_errors: bool = False,
) -> dict[str, Any]:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if csrf:
        headers["X-CSRF-Token"] = csrf
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    body: dict[str, Any] = response.json()
    if not allow_errors:
        assert "errors" not in body, body.get("errors")
    return body


def use_mailer(services: AppServices, mailer: Mailer) -> None:
    """Send this process's mail through ``mailer`` (every service dependency that mails)."""
    services.mailer = mailer
    services.meetings = dataclasses.replace(services.meetings, mailer=mailer)
    services.polls = dataclasses.replace(services.polls, mailer=mailer)


@contextmanager
def statements_run(services: AppServices) -> Iterator[list[str]]:
    """The SQL of every statement the services' engine runs inside the block. While
    this listens, every read goes through SQLAlchemy (``server.direct_reads`` steps
    aside for a watched engine), so nothing escapes the count."""
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    engine = services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
