"""The home page: what needs my answer, my next meetings, my calendar's health, then my
programs, mentoring connections and groups."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.models.enums import ConnectionKind
from server.pages.common import redirect, render, services, viewer
from server.services.people import mentoring, programs
from server.services.polls import dashboard as home_dashboard


async def home(request: Request) -> Response:
    current = viewer(request)
    if not current.user.profile_completed and not current.acting_on_behalf:
        return redirect("/onboarding")
    async with services(request).db.session() as db:
        my_programs = await programs.programs_for(db, current.user)
        connections = await mentoring.connections_for(db, current.user)
        members = await mentoring.members_by_connection(db, [c.id for c in connections])
        board = await home_dashboard.dashboard_for(db, current.user)
    program_names = {p.id: p.name for p in my_programs}
    pairs: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    for connection in connections:
        people = members[connection.id]
        others = [user.name for user, _role in people if user.id != current.user.id]
        item = {
            "connection": connection,
            "others": others,
            "count": len(people),
            "program_name": program_names.get(connection.program_id, ""),
        }
        (pairs if connection.kind == ConnectionKind.PAIR else groups).append(item)
    return render(
        request,
        "pages/home.html",
        {
            "programs": my_programs,
            "pairs": pairs,
            "groups": groups,
            "board": board,
            "calendar_status": board.calendar_status,
        },
    )
