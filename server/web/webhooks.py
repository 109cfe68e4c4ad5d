"""``/webhooks/google`` and ``/webhooks/microsoft``: answer fast, trust nothing.

Both endpoints acknowledge every request the same way whether or not it was authentic,
so a prober learns nothing; authentic ones only mark a calendar for a resync.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from server.models.enums import ProviderName
from server.services.calendars import push
from server.wiring import AppServices

MAX_NOTIFICATION_BYTES = 256 * 1024


def _services(request: Request) -> AppServices:
    svc: AppServices = request.app.state.services
    return svc


async def google(request: Request) -> Response:
    svc = _services(request)
    async with svc.db.session() as db:
        await push.handle_notifications(
            db, svc.calendar, ProviderName.GOOGLE, request.headers, None
        )
    return Response(status_code=200)


async def microsoft(request: Request) -> Response:
    token = request.query_params.get("validationToken")
    if token is not None:
        echo = push.validation_echo(token)
        if echo is None:
            return PlainTextResponse("invalid validation token", status_code=400)
        return PlainTextResponse(echo, headers={"X-Content-Type-Options": "nosniff"})
    body = await request.body()
    if len(body) > MAX_NOTIFICATION_BYTES:
        return Response(status_code=413)
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return Response(status_code=202)
    svc = _services(request)
    async with svc.db.session() as db:
        await push.handle_notifications(
            db, svc.calendar, ProviderName.MICROSOFT, request.headers, payload
        )
    return Response(status_code=202)
