"""The ``tandem`` command: what it prints, and one-line errors (never a traceback)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest


def run(
    tmp_path: Path, *args: str, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TANDEM_DATA_DIR": str(tmp_path / "data"),
        "TANDEM_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
    }
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_user_and_token_create(tmp_path: Path) -> None:
    created = run(
        tmp_path,
        "user",
        "create",
        "--email",
        "Ada@Example.org",
        "--name",
        "Ada",
        "--time-zone",
        "Europe/London",
        "--password",
        "long enough password",
    )
    assert created.returncode == 0, created.stderr
    uuid.UUID(created.stdout.strip())
    token = run(tmp_path, "token", "create", "--email", "ada@example.org", "--name", "ci")
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip().startswith("tdm_") and len(token.stdout.strip()) > 40


def test_user_setup_link(tmp_path: Path) -> None:
    created = run(tmp_path, "user", "create", "--email", "new@example.org", "--name", "New")
    assert created.returncode == 0, created.stderr
    link = run(tmp_path, "user", "setup-link", "--email", "New@Example.org")
    assert link.returncode == 0, link.stderr
    assert re.fullmatch(r"https?://\S+/setup/[\w-]+\.[\w-]+\n", link.stdout), link.stdout
    missing = run(tmp_path, "user", "setup-link", "--email", "ghost@example.org")
    assert one_line_error(missing) == "tandem: no user with email ghost@example.org"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            [
                "user",
                "create",
                "--email",
                "x@example.org",
                "--name",
                "X",
                "--time-zone",
                "Mars/Olympus",
            ],
            "Unknown time zone",
        ),
        (["user", "create", "--email", "not-an-email", "--name", "X"], "not a valid email"),
        (["token", "create", "--email", "ghost@example.org"], "no user with email"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    assert expected in one_line_error(run(tmp_path, *args))


def test_duplicate_email(tmp_path: Path) -> None:
    assert (
        run(tmp_path, "user", "create", "--email", "d@example.org", "--name", "D").returncode == 0
    )
    assert "already exists" in one_line_error(
        run(tmp_path, "user", "create", "--email", "D@example.org", "--name", "D")
    )


def test_unreachable_database(tmp_path: Path) -> None:
    line = one_line_error(
        run(tmp_path, "migrate", database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    )
    assert "cannot reach the database" in line


def test_secrets_rotate(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    env = {**os.environ, "TANDEM_SECRET_KEYS": f"{new},{old}"}
    os_env_backup = dict(os.environ)
    try:
        os.environ.update(env)
        result = run(tmp_path, "secrets", "rotate")
    finally:
        os.environ.clear()
        os.environ.update(os_env_backup)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "re-encrypted 0 secrets with the newest key"
