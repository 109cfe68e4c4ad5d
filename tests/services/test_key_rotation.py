"""Secrets at rest: rotation to a new key, the old key's retirement, and the binding that
stops a ciphertext copied into another user's row from opening there."""

from __future__ import annotations

import uuid

import pytest
from cryptography.fernet import Fernet
from sqlmodel import select

from server.models import CalendarConnection
from server.models.enums import CalendarStatus, ProviderName
from server.providers.secrets import SecretBox, SecretError
from server.services.calendars.deps import load_credentials, secret_binding
from server.services.key_rotation import rotate_all
from server.wiring import AppServices
from tests.conftest import create_user

SECRET = {"refresh_token": "r-" + uuid.uuid4().hex, "access_token": "a-" + uuid.uuid4().hex}


async def _store(services: AppServices, box: SecretBox, user_id: uuid.UUID) -> None:
    async with services.db.session() as db:
        db.add(
            CalendarConnection(
                user_id=user_id,
                provider=ProviderName.GOOGLE,
                status=CalendarStatus.CONNECTED,
                label="Google",
                account_email="x@example.org",
                encrypted_secret=box.encrypt(SECRET, binding=secret_binding(user_id)),
            )
        )
        await db.commit()


async def _rows(services: AppServices) -> list[CalendarConnection]:
    async with services.db.session() as db:
        return list((await db.exec(select(CalendarConnection))).all())


async def test_rotate_then_retire_the_old_key(services: AppServices) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    users = [await create_user(services) for _ in range(3)]
    for user in users:
        await _store(services, SecretBox([old]), user)
    before = {row.user_id: row.encrypted_secret for row in await _rows(services)}
    async with services.db.session() as db:
        assert await rotate_all(db, SecretBox([new, old])) == 3
    rows = await _rows(services)
    only_new = SecretBox([new])
    for row in rows:
        assert row.encrypted_secret != before[row.user_id]
        assert load_credentials(only_new, row).secret == SECRET
        assert SECRET["refresh_token"].encode() not in (row.encrypted_secret or b"")
    with pytest.raises(SecretError):
        load_credentials(SecretBox([old]), rows[0])


async def test_rotation_fails_closed_without_the_old_key(services: AppServices) -> None:
    old = Fernet.generate_key().decode()
    user = await create_user(services)
    await _store(services, SecretBox([old]), user)
    async with services.db.session() as db:
        with pytest.raises(SecretError):
            await rotate_all(db, SecretBox([Fernet.generate_key().decode()]))
    (row,) = await _rows(services)
    assert load_credentials(SecretBox([old]), row).secret == SECRET  # nothing was lost


async def test_ciphertext_copied_to_another_user_does_not_open(services: AppServices) -> None:
    key = Fernet.generate_key().decode()
    box = SecretBox([key])
    victim, thief = await create_user(services), await create_user(services)
    await _store(services, box, victim)
    (row,) = await _rows(services)
    stolen = CalendarConnection(
        user_id=thief,
        provider=ProviderName.GOOGLE,
        status=CalendarStatus.CONNECTED,
        label="Google",
        account_email="t@example.org",
        encrypted_secret=row.encrypted_secret,
    )
    with pytest.raises(SecretError, match="another record"):
        load_credentials(box, stolen)


def test_missing_or_bad_keys_fail_closed() -> None:
    with pytest.raises(SecretError):
        SecretBox([])
    with pytest.raises(SecretError):
        SecretBox(["not-a-fernet-key"])


def test_every_encrypted_column_is_rotated() -> None:
    """A new ciphertext column must join the rotation, or retiring a key would strand it."""
    from sqlalchemy import LargeBinary

    from server.models import metadata
    from server.services.key_rotation import _ENCRYPTED

    binary = {
        (table.name, column.name)
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, LargeBinary)
    }
    rotated = {(model.__tablename__, column) for model, column in _ENCRYPTED}
    assert binary == rotated
