"""Calendar API v3 routes: freeBusy, events (insert/get/patch/update/delete/list/watch),
channels.stop. Shapes and error reasons follow Google's documented ones."""

from __future__ import annotations

import copy
import re
import secrets
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.google_events import (
    BadTime,
    busy_periods,
    event_bounds,
    format_rfc3339,
    parse_rfc3339,
)
from emulators.google_http import api_error, unauthorized
from emulators.google_state import (
    GOOGLE_SCOPE_PREFIX,
    Channel,
    GoogleState,
    Grant,
    PageCursor,
    StoredEvent,
    new_event_id,
)

_P = GOOGLE_SCOPE_PREFIX
FREEBUSY_SCOPES = {
    _P + s
    for s in ("calendar", "calendar.readonly", "calendar.events.freebusy", "calendar.freebusy")
}
OTHERS_FREEBUSY_SCOPES = {
    _P + s for s in ("calendar", "calendar.readonly", "calendar.events.freebusy")
}
EVENTS_READ_SCOPES = {
    _P + s
    for s in (
        "calendar",
        "calendar.readonly",
        "calendar.events",
        "calendar.events.readonly",
        "calendar.events.owned",
        "calendar.events.owned.readonly",
    )
}
EVENTS_WRITE_SCOPES = {_P + s for s in ("calendar", "calendar.events", "calendar.events.owned")}

FREEBUSY_MAX_CALENDARS = 50
_EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
_READ_ONLY_FIELDS = {"id", "kind", "etag", "created", "updated", "iCalUID", "organizer", "creator"}
_NOT_WITH_SYNC_TOKEN = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)
_DEFAULT_TTL_SECONDS = 604800


class _ApiError(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def calendar_routes(state: GoogleState) -> list[Route]:
    api = _CalendarApi(state)

    def endpoint(handler: Any, scopes: set[str]) -> Any:
        async def run(request: Request) -> Response:
            try:
                grant = api.authenticate(request, scopes)
                result: Response = await handler(request, grant)
                return result
            except _ApiError as error:
                return error.response

        return run

    base = "/calendar/v3"
    events = base + "/calendars/{calendarId}/events"
    return [
        Route(base + "/freeBusy", endpoint(api.free_busy, FREEBUSY_SCOPES), methods=["POST"]),
        Route(events + "/watch", endpoint(api.watch, EVENTS_READ_SCOPES), methods=["POST"]),
        Route(events, endpoint(api.list_events, EVENTS_READ_SCOPES), methods=["GET"]),
        Route(events, endpoint(api.insert, EVENTS_WRITE_SCOPES), methods=["POST"]),
        Route(events + "/{eventId}", endpoint(api.get, EVENTS_READ_SCOPES), methods=["GET"]),
        Route(events + "/{eventId}", endpoint(api.patch, EVENTS_WRITE_SCOPES), methods=["PATCH"]),
        Route(events + "/{eventId}", endpoint(api.update, EVENTS_WRITE_SCOPES), methods=["PUT"]),
        Route(events + "/{eventId}", endpoint(api.delete, EVENTS_WRITE_SCOPES), methods=["DELETE"]),
        Route(
            base + "/channels/stop",
            endpoint(api.stop_channel, EVENTS_READ_SCOPES),
            methods=["POST"],
        ),
    ]


class _CalendarApi:
    def __init__(self, state: GoogleState) -> None:
        self.state = state

    # --- plumbing --------------------------------------------------------------------

    def authenticate(self, request: Request, scopes: set[str]) -> Grant:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise _ApiError(unauthorized())
        grant = self.state.grant_for_access_token(header[7:].strip())
        if grant is None:
            raise _ApiError(unauthorized())
        if not scopes & set(grant.scopes):
            raise _ApiError(
                api_error(
                    403,
                    "insufficientPermissions",
                    "Request had insufficient authentication scopes.",
                    domain="global",
                )
            )
        return grant

    def own_calendar(self, request: Request, grant: Grant) -> str:
        """Only the signed-in user's own calendar is reachable through the events API."""
        calendar_id = request.path_params["calendarId"].lower()
        if calendar_id in ("primary", grant.email):
            return grant.email
        raise _ApiError(api_error(404, "notFound", "Not Found"))

    async def json_body(self, request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise _ApiError(api_error(400, "parseError", "Parse Error")) from None
        if not isinstance(body, dict):
            raise _ApiError(api_error(400, "parseError", "Parse Error"))
        return body

    def stored(self, email: str, event_id: str) -> StoredEvent:
        stored = self.state.events[email].get(event_id)
        if stored is None:
            raise _ApiError(api_error(404, "notFound", "Not Found"))
        return stored

    def check_times(self, email: str, data: dict[str, Any]) -> None:
        if "start" not in data:
            raise _ApiError(api_error(400, "required", "Missing start time."))
        if "end" not in data:
            raise _ApiError(api_error(400, "required", "Missing end time."))
        try:
            start, end = event_bounds(data, self.state.accounts[email].time_zone)
        except BadTime:
            raise _ApiError(api_error(400, "invalid", "Invalid start or end time.")) from None
        if end < start:
            raise _ApiError(api_error(400, "timeRangeEmpty", "The specified time range is empty."))

    # --- freeBusy --------------------------------------------------------------------

    async def free_busy(self, request: Request, grant: Grant) -> Response:
        body = await self.json_body(request)
        for name in ("timeMin", "timeMax"):
            if not body.get(name):
                raise _ApiError(api_error(400, "required", f"Missing {name} parameter."))
        try:
            low, high = parse_rfc3339(body["timeMin"]), parse_rfc3339(body["timeMax"])
            zone = ZoneInfo(body.get("timeZone") or "UTC")
        except (BadTime, ZoneInfoNotFoundError, ValueError):
            raise _ApiError(api_error(400, "invalid", "Invalid Value")) from None
        if low >= high:
            raise _ApiError(api_error(400, "timeRangeEmpty", "The specified time range is empty."))
        if high - low > timedelta(days=self.state.freebusy_max_days):
            raise _ApiError(
                api_error(400, "timeRangeTooLong", "The requested time range is too long.")
            )
        calendars: dict[str, Any] = {}
        for index, item in enumerate(body.get("items") or []):
            calendar_id = str(item.get("id", "")) if isinstance(item, dict) else ""
            if index >= FREEBUSY_MAX_CALENDARS:
                calendars[calendar_id] = _fb_error("tooManyCalendarsRequested")
                continue
            email = grant.email if calendar_id == "primary" else calendar_id.lower()
            with self.state.lock:
                account = self.state.accounts.get(email)
                denied = self.state.workspace.denied_free_busy.get(email)
                if account is None or account.unreadable or not self._may_see(grant, email):
                    calendars[calendar_id] = _fb_error("notFound")
                    continue
                if denied is not None and email != grant.email:
                    calendars[calendar_id] = _fb_error(denied)
                    continue
                events = [s.data for s in self.state.events[email].values()]
            periods = busy_periods(events, email, account.time_zone, (low, high))
            calendars[calendar_id] = {
                "busy": [
                    {"start": format_rfc3339(s, zone), "end": format_rfc3339(e, zone)}
                    for s, e in periods
                ]
            }
        return JSONResponse(
            {
                "kind": "calendar#freeBusy",
                "timeMin": format_rfc3339(low, zone),
                "timeMax": format_rfc3339(high, zone),
                "calendars": calendars,
            }
        )

    def _may_see(self, grant: Grant, email: str) -> bool:
        """Whether the token may read ``email``'s free/busy (the caller holds the lock).

        Its own calendar: any freeBusy scope. Someone else's needs a scope that reaches
        other calendars: ``calendar.freebusy`` is described as the user's *own* calendars'
        availability, ``calendar.events.freebusy`` as "the availability on Google calendars
        you have access to" (scopes table, providers.md 1.7); the stricter reading of an
        UNVERIFIED point. And the two must be in the same Workspace (where the domain's
        sharing default lets users see each other's free/busy, support.google.com/a/answer/
        60765), or both plain accounts as before; a service account acting as itself sees
        no one. A calendar the token may not see answers ``notFound``, as an unshared one
        does (providers.md 1.1)."""
        if email == grant.email:
            return True
        if not OTHERS_FREEBUSY_SCOPES & set(grant.scopes):
            return False
        directory = self.state.workspace
        if grant.email in directory.service_accounts:
            return False
        return directory.workspace_of(grant.email) is directory.workspace_of(email)

    # --- events ----------------------------------------------------------------------

    async def insert(self, request: Request, grant: Grant) -> Response:
        """events.insert. ``id`` and ``iCalUID``: "the icalUID and the id are not identical
        and only one of them should be supplied at event creation time" (events resource).
        An insert with only ``id`` gets a Google-made iCalUID (``<id>@google.com``); one
        with ``iCalUID`` keeps it and gets a Google-made id. Whether Google rejects or
        ignores an insert with both is not documented (UNVERIFIED): the emulator rejects
        it, the stricter reading, so no client can depend on either. A second insert
        with an iCalUID the calendar already holds is refused with 409 like a reused id
        (UNVERIFIED for iCalUID; documented for ids, providers.md 1.2).
        """
        email = self.own_calendar(request, grant)
        body = await self.json_body(request)
        data = {k: v for k, v in body.items() if k not in _READ_ONLY_FIELDS}
        event_id = body.get("id")
        ical_uid = body.get("iCalUID")
        if event_id is not None and not (isinstance(event_id, str) and _EVENT_ID.match(event_id)):
            raise _ApiError(api_error(400, "invalid", "Invalid resource id value."))
        if ical_uid is not None and not (isinstance(ical_uid, str) and 0 < len(ical_uid) <= 1024):
            raise _ApiError(api_error(400, "invalid", "Invalid iCalUID value."))
        if event_id is not None and ical_uid is not None:
            raise _ApiError(
                api_error(400, "invalid", "Only one of id and iCalUID may be supplied.")
            )
        self.check_times(email, data)
        with self.state.lock:
            if event_id in self.state.events[email] or (
                ical_uid is not None
                and any(
                    s.data.get("iCalUID") == ical_uid for s in self.state.events[email].values()
                )
            ):
                raise _ApiError(
                    api_error(409, "duplicate", "The requested identifier already exists.")
                )
            data["id"] = event_id or new_event_id()
            if ical_uid is not None:
                data["iCalUID"] = ical_uid
            saved = self.state.put_event(email, self.state.complete_event(email, data))
        return JSONResponse(saved)

    async def get(self, request: Request, grant: Grant) -> Response:
        email = self.own_calendar(request, grant)
        with self.state.lock:
            data = copy.deepcopy(self.stored(email, request.path_params["eventId"]).data)
        return JSONResponse(data)

    async def patch(self, request: Request, grant: Grant) -> Response:
        return await self._change(request, grant, replace=False)

    async def update(self, request: Request, grant: Grant) -> Response:
        return await self._change(request, grant, replace=True)

    async def _change(self, request: Request, grant: Grant, *, replace: bool) -> Response:
        email = self.own_calendar(request, grant)
        body = await self.json_body(request)
        with self.state.lock:
            current = self.stored(email, request.path_params["eventId"]).data
            kept = {k: v for k, v in current.items() if k in _READ_ONLY_FIELDS}
            data = kept if replace else copy.deepcopy(current)
            for key, value in body.items():
                if key in _READ_ONLY_FIELDS:
                    continue
                if key == "extendedProperties" and not replace and isinstance(value, dict):
                    merged = data.setdefault("extendedProperties", {})
                    for scope, props in value.items():
                        merged.setdefault(scope, {}).update(props or {})
                else:
                    data[key] = copy.deepcopy(value)
            if replace:
                data.pop("status", None)
            self.check_times(email, data)
            saved = self.state.put_event(email, self.state.complete_event(email, data))
        return JSONResponse(saved)

    async def delete(self, request: Request, grant: Grant) -> Response:
        email = self.own_calendar(request, grant)
        with self.state.lock:
            stored = self.stored(email, request.path_params["eventId"])
            if stored.data.get("status") == "cancelled":
                raise _ApiError(api_error(410, "deleted", "Resource has been deleted"))
            data = copy.deepcopy(stored.data)
            data["status"] = "cancelled"
            self.state.put_event(email, data)
        return Response(status_code=204)

    async def list_events(self, request: Request, grant: Grant) -> Response:
        email = self.own_calendar(request, grant)
        query = request.query_params
        max_results = _int_param(query.get("maxResults"), 250, 1, 2500)
        sync_token = query.get("syncToken")
        if sync_token and (
            any(name in query for name in _NOT_WITH_SYNC_TOKEN)
            or query.get("showDeleted") == "false"
        ):
            raise _ApiError(api_error(400, "invalid", "Invalid parameters with syncToken."))
        key = (
            email,
            tuple(sorted((k, v) for k, v in query.multi_items() if k != "pageToken")),
        )
        with self.state.lock:
            cursor = self._cursor(query.get("pageToken"), key)
            if sync_token:
                items = self._changed_since(email, sync_token, cursor.snapshot)
            else:
                items = self._full_listing(email, request, cursor.snapshot)
            page = items[cursor.offset : cursor.offset + max_results]
            account = self.state.accounts[email]
            body: dict[str, Any] = {
                "kind": "calendar#events",
                "etag": f'"{cursor.snapshot}"',
                "summary": email,
                "timeZone": account.time_zone,
                "accessRole": "owner",
                "defaultReminders": [],
                "items": [_present(s.data) for s in page],
            }
            if cursor.offset + max_results < len(items):
                token = secrets.token_urlsafe(12)
                self.state.page_cursors[token] = PageCursor(
                    key, cursor.offset + max_results, cursor.snapshot
                )
                body["nextPageToken"] = token
            else:
                body["nextSyncToken"] = self.state.new_sync_token(email, cursor.snapshot)
        return JSONResponse(body)

    def _cursor(self, page_token: str | None, key: tuple[Any, ...]) -> PageCursor:
        if page_token is None:
            return PageCursor(key, 0, self.state.current_seq)
        cursor = self.state.page_cursors.get(page_token)
        if cursor is None or cursor.key != key:
            raise _ApiError(api_error(400, "invalid", "Invalid page token value."))
        return cursor

    def _changed_since(self, email: str, sync_token: str, snapshot: int) -> list[StoredEvent]:
        entry = self.state.sync_tokens.get(sync_token)
        if entry is None or entry[0] != email:
            raise _ApiError(
                api_error(
                    410,
                    "fullSyncRequired",
                    "Sync token is no longer valid, a full sync is required.",
                )
            )
        since = entry[1]
        changed = [s for s in self.state.events[email].values() if since < s.seq <= snapshot]
        return sorted(changed, key=lambda s: s.seq)

    def _full_listing(self, email: str, request: Request, snapshot: int) -> list[StoredEvent]:
        query = request.query_params
        show_deleted = query.get("showDeleted") == "true"
        try:
            low = parse_rfc3339(query["timeMin"]) if "timeMin" in query else None
            high = parse_rfc3339(query["timeMax"]) if "timeMax" in query else None
        except BadTime:
            raise _ApiError(api_error(400, "invalid", "Bad Request")) from None
        wanted = [p.partition("=") for p in query.getlist("privateExtendedProperty")]
        ical_uid = query.get("iCalUID")  # "an event ID in the iCalendar format" (events.list)
        zone = self.state.accounts[email].time_zone
        chosen = []
        for stored in self.state.events[email].values():
            data = stored.data
            if stored.seq > snapshot or (data["status"] == "cancelled" and not show_deleted):
                continue
            if ical_uid is not None and data.get("iCalUID") != ical_uid:
                continue
            private = data.get("extendedProperties", {}).get("private", {})
            if any(private.get(name) != value for name, _, value in wanted):
                continue
            try:
                start, end = event_bounds(data, zone)
            except BadTime:
                continue
            if (low is not None and end <= low) or (high is not None and start >= high):
                continue
            chosen.append((start, data["id"], stored))
        return [stored for _, _, stored in sorted(chosen, key=lambda c: (c[0], c[1]))]

    # --- push channels ---------------------------------------------------------------

    async def watch(self, request: Request, grant: Grant) -> Response:
        email = self.own_calendar(request, grant)
        body = await self.json_body(request)
        channel_id, address = body.get("id"), body.get("address")
        if not isinstance(channel_id, str) or not channel_id or len(channel_id) > 64:
            raise _ApiError(api_error(400, "required", "Missing or invalid channel id."))
        if body.get("type") not in ("web_hook", "webhook"):
            raise _ApiError(api_error(400, "invalid", "Invalid channel type."))
        if not isinstance(address, str) or not address.startswith(("https://", "http://")):
            raise _ApiError(api_error(400, "invalid", "Invalid channel address."))
        ttl = _int_param((body.get("params") or {}).get("ttl"), _DEFAULT_TTL_SECONDS, 1, 10**8)
        expiration = int(self.state.clock() * 1000) + ttl * 1000
        if body.get("expiration"):
            expiration = min(expiration, int(body["expiration"]))
        with self.state.lock:
            if channel_id in self.state.channels:
                raise _ApiError(api_error(400, "channelIdNotUnique", "Channel id not unique."))
            resource_uri = request.url.replace(path=request.url.path.removesuffix("/watch"))
            channel = Channel(
                channel_id,
                secrets.token_urlsafe(18),
                email,
                f"{resource_uri}?alt=json",
                address,
                body.get("token"),
                expiration,
            )
            self.state.channels[channel_id] = channel
        answer = {
            "kind": "api#channel",
            "id": channel.channel_id,
            "resourceId": channel.resource_id,
            "resourceUri": channel.resource_uri,
            "expiration": str(channel.expiration_ms),
        }
        if channel.token is not None:
            answer["token"] = channel.token
        return JSONResponse(answer)

    async def stop_channel(self, request: Request, grant: Grant) -> Response:
        body = await self.json_body(request)
        with self.state.lock:
            channel = self.state.channels.get(str(body.get("id")))
            if (
                channel is None
                or channel.resource_id != body.get("resourceId")
                or channel.email != grant.email
            ):
                raise _ApiError(api_error(404, "notFound", "Channel not found."))
            del self.state.channels[channel.channel_id]
        return Response(status_code=204)


def _present(data: dict[str, Any]) -> dict[str, Any]:
    """A listed deleted event carries only its identity, as in Google's sync results."""
    if data.get("status") == "cancelled":
        keep = ("kind", "etag", "id", "status", "updated")
        return {k: data[k] for k in keep if k in data}
    return copy.deepcopy(data)


def _fb_error(reason: str) -> dict[str, Any]:
    return {"errors": [{"domain": "global", "reason": reason}]}


def _int_param(raw: Any, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise _ApiError(api_error(400, "invalid", "Invalid Value")) from None
    return max(low, min(high, value))
