"""Rows read without the ORM, made into detached ORM objects (``services.core_reads``)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

from server.services.people import accounts, sessions
from server.wiring import AppServices
from tests.conftest import create_user
from tests.schema.test_graphql_programs import token_for

ROOT = Path(__file__).resolve().parents[2]


async def test_a_fresh_process_checks_a_token_and_a_session_before_any_orm_query(
    services: AppServices,
) -> None:
    """A new server's first request checks its token (or session) by reading rows; the
    ORM's mappers are not configured until a first ORM query, so the detached objects
    must configure them (a fresh ``tandem serve`` answered 500 to every request)."""
    user_id = await create_user(services, "fresh@example.org", name="Fay")
    token = await token_for(services, user_id)
    async with services.db.session() as db:
        user = await accounts.get_user(db, user_id)
        raw_session, _row = await sessions.start_session(db, user, lifetime=timedelta(hours=1))
        await db.commit()
    script = textwrap.dedent(
        """
        import asyncio, sys
        from server.db import Database
        from server.services.people import api_tokens, sessions

        async def main() -> None:
            database = Database.from_url(sys.argv[1])
            try:
                async with database.session() as db:
                    user = await api_tokens.user_for_token(db, sys.argv[2])
                    row, viewer = await sessions.signed_in(db, sys.argv[3])
                    print(user.name, viewer.user.name, row.user_id == user.id)
            finally:
                await database.dispose()

        asyncio.run(main())
        """
    )
    url = services.settings.resolved_database_url
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        url,
        token,
        raw_session,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0, err.decode()[-2000:]
    assert out.decode().split() == ["Fay", "Fay", "True"]
