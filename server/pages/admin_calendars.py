"""Administration: a program's calendar health (who is connected, who needs attention
and why), with a way to work on behalf of a person to help. Status only, never details."""

from __future__ import annotations

import uuid

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.pages.common import render, services, viewer
from server.services.calendars import health
from server.services.errors import NotFound
from server.services.people import access


async def program_calendars(request: Request) -> Response:
    current = viewer(request)
    try:
        program_id = uuid.UUID(request.path_params["program_id"])
    except ValueError:
        raise HTTPException(404) from None
    reason = request.query_params.get("reason") or None
    svc = services(request)
    async with svc.db.session() as db:
        try:
            summary = await health.program_health(
                db, svc.calendar, current.actor, program_id, reason=reason
            )
        except NotFound:
            raise HTTPException(404) from None
        actable = (
            set()
            if current.acting_on_behalf
            else await access.actable_user_ids(
                db, current.actor, [m.user.id for m in summary.members]
            )
        )
    return render(
        request,
        "pages/admin_calendars.html",
        {"summary": summary, "actable": actable, "reason_labels": health.REASON_LABELS},
    )
