"""One-time account setup links: they work once, expire, and die with deactivation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from server.models.base import utcnow
from server.services.errors import NotFound
from server.services.people import accounts, setup
from server.wiring import AppServices
from tests.conftest import TEST_PASSWORD, create_user

KEY = setup.setup_key(b"k" * 32)


def _token(link: str) -> str:
    return link.rsplit("/", 1)[1]


async def test_a_link_works_once(services: AppServices) -> None:
    user_id = await create_user(services, "new@example.org", password="")
    async with services.db.session() as db:
        user = await accounts.get_user(db, user_id)
        token = _token(setup.make_setup_link(KEY, "https://t.example", user))
        assert (await setup.read_setup_link(db, KEY, token)).id == user_id
        await setup.complete_setup(db, KEY, token, TEST_PASSWORD, TEST_PASSWORD)
        await db.commit()
    async with services.db.session() as db:
        with pytest.raises(NotFound):
            await setup.read_setup_link(db, KEY, token)
        with pytest.raises(NotFound):
            await setup.complete_setup(db, KEY, token, "another password!", "another password!")


async def test_expired_forged_and_deactivated_links_are_refused(services: AppServices) -> None:
    user_id = await create_user(services, "new@example.org", password="")
    async with services.db.session() as db:
        user = await accounts.get_user(db, user_id)
        token = _token(setup.make_setup_link(KEY, "https://t.example", user))
        later = utcnow() + setup.SETUP_LINK_LIFETIME + timedelta(minutes=1)
        with pytest.raises(NotFound):
            await setup.read_setup_link(db, KEY, token, now=later)
        with pytest.raises(NotFound):
            await setup.read_setup_link(db, setup.setup_key(b"x" * 32), token)
        with pytest.raises(NotFound):
            await setup.read_setup_link(db, KEY, token[:-1] + ("B" if token[-1] == "A" else "A"))
        user.is_active = False
        db.add(user)
        await db.flush()
        with pytest.raises(NotFound):
            await setup.read_setup_link(db, KEY, token)
