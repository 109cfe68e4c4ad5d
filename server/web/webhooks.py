"""``/webhooks/google`` and ``/webhooks/microsoft``: answer fast, trust nothing.

Both endpoints acknowledge every request the same way whether or not it was authentic,
so a prober learns nothing; authentic ones mark a calendar for a resync and queue that
sync at once (coalesced per calendar), so the change shows within seconds.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from server.models.enums import ProviderName
from server.services.calendars import push
from server.web.bounded_json import JSONRefused, loads_bounded, nesting_exceeds
from server.web.quiet_log import exception_summary
from server.wiring import AppServices

log = logging.getLogger("tandem.webhooks")

MAX_NOTIFICATION_BYTES = 256 * 1024
MAX_NOTIFICATION_DEPTH = 16


def _services(request: Request) -> AppServices:
    svc: AppServices = request.app.state.services
    return svc


async def _queue_syncs(svc: AppServices, outcome: push.PushOutcome) -> None:
    """A queue that cannot take the task loses nothing: ``sync_requested`` is committed
    and the polling job queues the sync within a minute."""
    for user_id in outcome.to_sync:
        try:
            await svc.tasks.sync_calendar(user_id)
        except Exception as exc:
            log.error(
                "could not queue a sync after a push notification: %s", exception_summary(exc)
            )


async def google(request: Request) -> Response:
    svc = _services(request)
    async with svc.db.session() as db:
        outcome = await push.handle_notifications(
            db, svc.calendar, ProviderName.GOOGLE, request.headers, None
        )
    await _queue_syncs(svc, outcome)
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
    # Graph posts `{"value": [...]}` a few levels deep; anything nested deeper, or any
    # JSON that is not an object, is not a notification.
    if nesting_exceeds(body, MAX_NOTIFICATION_DEPTH):
        return PlainTextResponse("notification nested too deeply", status_code=400)
    try:
        payload = loads_bounded(body or b"{}", MAX_NOTIFICATION_DEPTH)
    except JSONRefused:
        return Response(status_code=202)
    if not isinstance(payload, dict):
        return PlainTextResponse("a notification is a JSON object", status_code=400)
    svc = _services(request)
    async with svc.db.session() as db:
        outcome = await push.handle_notifications(
            db, svc.calendar, ProviderName.MICROSOFT, request.headers, payload
        )
    await _queue_syncs(svc, outcome)
    return Response(status_code=202)
