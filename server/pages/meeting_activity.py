"""Administration: how often each mentoring connection of a program meets."""

from __future__ import annotations

import uuid

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.pages.common import render, services, viewer
from server.services.errors import NotFound
from server.services.meetings.activity import program_activity


async def activity(request: Request) -> Response:
    """Counts and dates only; program admins never see what a meeting was about."""
    current = viewer(request)
    try:
        program_id = uuid.UUID(request.path_params["program_id"])
    except ValueError:
        raise HTTPException(404) from None
    async with services(request).db.session() as db:
        try:
            program, rows = await program_activity(db, current.actor, program_id)
        except NotFound:
            raise HTTPException(404) from None
    return render(request, "pages/admin_activity.html", {"program": program, "rows": rows})
