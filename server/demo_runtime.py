"""``tandem demo``: everything on one machine, with demo data, printed logins and URL."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from server.config import Settings


def run_demo(*, host: str, port: int) -> None:
    import uvicorn

    from server.app import create_app
    from server.db import Database, migrate
    from server.services import demo

    data_dir = Path(os.environ.get("TANDEM_DATA_DIR", "./var"))
    overrides: dict[str, str] = {
        "env": "demo",
        "data_dir": str(data_dir),
        "base_url": f"http://{host}:{port}",
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]

    async def prepare() -> list[demo.DemoLogin]:
        database = Database.from_url(settings.resolved_database_url)
        try:
            await migrate(database.engine)
            async with database.session() as session:
                return await demo.seed(session)
        finally:
            await database.dispose()

    logins = asyncio.run(prepare())
    print(f"Tandem demo: {settings.base_url}")
    print(f"Sign in with any of these (password: {demo.DEMO_PASSWORD}):")
    for login in logins:
        print(f"  {login.email:<36} {login.role}")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
