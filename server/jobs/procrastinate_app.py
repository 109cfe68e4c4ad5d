"""A procrastinate app for its command line, built from the ``TANDEM_*`` environment:
``procrastinate --app=server.jobs.procrastinate_app.app shell`` lists and retries jobs
of the database in ``TANDEM_DATABASE_URL``. Tandem's own processes never import this."""

from __future__ import annotations

from server.config import Settings
from server.jobs.pg_queue import build_app

app = build_app(Settings().resolved_database_url)
