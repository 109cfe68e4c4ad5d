"""The pair scheduling page: seven days of common free time, in the viewer's time zone,
starting today (or on the asked day; never in the past).

The same handler answers the full page and, for htmx requests (previous/next week,
meeting length), only the week partial. Members of the connection and the program's
administrators may open it; everyone else gets the same 404 as for a missing id.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.models.base import utcnow
from server.models.enums import ConnectionKind
from server.pages.common import is_htmx, render, services, viewer
from server.services.availability import query as availability_query
from server.services.availability import week as availability_week
from server.services.errors import DomainError
from server.services.people import mentoring
from server.services.validation import day_in_range
from server.web.guard import request_session

DEFAULT_DURATION = 30
# The answer depends on these request headers (see ``_wants_fragment``) and the session.
VARY = "HX-Request, HX-Request-Type, HX-History-Restore-Request, Cookie"


def _wants_fragment(request: Request) -> bool:
    """htmx swaps of the week region; history restores and full-page targets get the page."""
    return (
        is_htmx(request)
        and request.headers.get("hx-history-restore-request") != "true"
        and request.headers.get("hx-request-type", "partial") != "full"
    )


def _connection_id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["connection_id"])
    except ValueError:
        raise HTTPException(404) from None


def _duration(raw: str | None) -> int:
    try:
        value = int(raw or DEFAULT_DURATION)
    except ValueError:
        return DEFAULT_DURATION
    return value if value in availability_week.DURATIONS else DEFAULT_DURATION


def _first_day(raw: str | None, zone: str, now: datetime) -> date:
    """The first of the seven days shown: the asked day, today when absent, odd or past."""
    today = _today(zone, now)
    try:
        asked = date.fromisoformat(raw) if raw else today
    except ValueError:
        asked = today
    if not day_in_range(asked, today, span_days=7):  # the whole week must be askable
        asked = today
    return max(asked, today)


def _today(zone: str, now: datetime) -> date:
    return now.astimezone(ZoneInfo(zone)).date()


async def schedule(request: Request) -> Response:
    current = viewer(request)
    user = current.user
    svc = services(request)
    connection_id = _connection_id(request)
    now = utcnow()
    zone = user.time_zone
    first_day = _first_day(request.query_params.get("week"), zone, now)
    duration = _duration(request.query_params.get("duration"))
    async with request_session(request) as db:
        try:
            connection, members = await mentoring.visible_connection_with_members(
                db, user, connection_id
            )
        except DomainError:
            raise HTTPException(404) from None
        if connection.kind == ConnectionKind.GROUP:
            page = render(request, "pages/schedule.html", {"connection": connection, "group": True})
            page.headers["Vary"] = VARY
            return page
        start, end = availability_week.week_window(first_day, zone)
        step = availability_week.step_for(duration)
        try:
            answer = await availability_query.find_availability(
                db,
                svc.calendar,
                user,
                availability_query.AvailabilityRequest(
                    participant_ids=[member.id for member, _role in members],
                    start=start,
                    end=end,
                    duration_minutes=duration,
                    step_minutes=step,
                    program_id=connection.program_id,
                ),
                now=now,
                known_visible=[member.id for member, _role in members],
            )
        except DomainError:
            raise HTTPException(404) from None
        if db.new or db.dirty or db.deleted:
            # The question commits what it fetches itself; nothing else is left to write
            # on a plain read, whose COMMIT would be one more round trip per page.
            await db.commit()
    week = availability_week.build_week(
        answer,
        viewer_id=user.id,
        viewer_zone=zone,
        first_day=first_day,
        duration_minutes=duration,
        now=now,
        step_minutes=step,
    )
    context: dict[str, Any] = {
        "connection": connection,
        "group": False,
        "week": week,
        "viewer_person": next((p for p in week.people if p.is_viewer), None),
        "others": [p for p in week.people if not p.is_viewer],
        "notes": answer.notes,
        "empty_reason": answer.result.empty_reason,
        "durations": availability_week.DURATIONS,
        "base_path": f"/connections/{connection.id}/schedule",
        "today": _today(zone, now),
        "previous_start": max(week.previous_start, _today(zone, now)),
    }
    template = "partials/schedule_week.html" if _wants_fragment(request) else "pages/schedule.html"
    response = render(request, template, context)
    response.headers["Vary"] = VARY
    return response
