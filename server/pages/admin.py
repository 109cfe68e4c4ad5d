"""Administration: the programs I administer, their members, and working on behalf."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.pages.common import redirect, render, services, viewer
from server.services.calendars import status as calendar_status
from server.services.errors import DomainError
from server.services.people import access, programs, sessions


async def _admin_page(request: Request, **extra: Any) -> Response:
    current = viewer(request)
    actor = current.actor
    items = []
    async with services(request).db.session() as db:
        # Tandem's own provider configuration failing (an expired Microsoft client
        # secret) is for the people who run the installation, not for members.
        operator_problems = (
            await calendar_status.operator_problems(db)
            if actor.is_global_admin or actor.is_operator
            else {}
        )
        visible = await programs.programs_for(db, actor)
        for program in visible:
            if not await access.is_program_admin(db, actor, program.id):
                continue
            people = await programs.members(db, program.id)
            status = await calendar_status.statuses(db, [user.id for user, _ in people])
            actable = (
                set()
                if current.acting_on_behalf
                else await access.actable_user_ids(db, actor, [user.id for user, _ in people])
            )
            rows = []
            for user, role in people:
                connection = status.get(user.id)
                rows.append(
                    {
                        "user": user,
                        "role": role.value,
                        "calendar": connection.status.value.replace("_", " ")
                        if connection
                        else "not connected",
                        "can_act": user.id in actable,
                    }
                )
            items.append({"program": program, "members": rows})
    status_code = extra.pop("status_code", 200)
    problems = [
        {"provider": calendar_status.PROVIDER_LABELS[p.value], "count": n}
        for p, n in sorted(operator_problems.items())
    ]
    return render(
        request,
        "pages/admin.html",
        {"programs": items, "operator_problems": problems, **extra},
        status_code=status_code,
    )


async def admin_home(request: Request) -> Response:
    return await _admin_page(request)


async def act_as(request: Request) -> Response:
    current = viewer(request)
    form = await request.form()
    try:
        target_id = uuid.UUID(str(form.get("user_id", "")))
    except ValueError:
        return await _admin_page(request, error="User not found.", status_code=404)
    async with services(request).db.session() as db:
        try:
            await sessions.start_acting(db, current, target_id, str(form.get("reason", "")))
        except DomainError as exc:
            code = 404 if exc.code == "not_found" else 403 if exc.code == "forbidden" else 422
            return await _admin_page(request, error=exc.message, status_code=code)
        await db.commit()
    return redirect("/?notice=acting_started")


async def end_acting(request: Request) -> Response:
    current = viewer(request)
    async with services(request).db.session() as db:
        await sessions.stop_acting(db, current)
        await db.commit()
    return redirect("/admin?notice=acting_ended")
