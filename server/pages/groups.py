"""A group's page: its members, how many calendars are connected, its polls, and the
organizer's way into a new poll. Members only; everyone else gets the same 404 as for
a missing id."""

from __future__ import annotations

import uuid

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.models.base import utcnow
from server.models.enums import CalendarStatus
from server.pages.common import render, services, viewer
from server.services.calendars import status
from server.services.errors import NotFound
from server.services.people import mentoring
from server.services.polls import rules as poll_rules


def path_id(request: Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise HTTPException(404) from None


async def group_page(request: Request) -> Response:
    current = viewer(request)
    svc = services(request)
    group_id = path_id(request, "group_id")
    now = utcnow()
    async with svc.db.session() as db:
        try:
            group = await poll_rules.get_visible_group(db, current.user, group_id)
        except NotFound:
            raise HTTPException(404) from None
        members = (await mentoring.members_by_connection(db, [group.id]))[group.id]
        connections = await status.statuses(db, [user.id for user, _ in members])
        enabled = await poll_rules.polls_enabled(db, group)
        rows = await poll_rules.polls_for_group(db, current.user, group.id, now=now)
        details = await poll_rules.load_details(db, rows, now=now)
    connected = {uid for uid, row in connections.items() if row.status == CalendarStatus.CONNECTED}
    organizer = next((user for user, _ in members if user.id == group.organizer_id), None)
    return render(
        request,
        "pages/group.html",
        {
            "group": group,
            "members": [user for user, _ in members],
            "connected": connected,
            "organizer": organizer,
            "is_organizer": group.organizer_id == current.user.id,
            "polls_enabled": enabled,
            "polls_off_message": poll_rules.POLLS_OFF_MESSAGE,
            "polls": details,
        },
    )
