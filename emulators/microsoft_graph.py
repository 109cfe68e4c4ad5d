"""Microsoft Graph v1.0 calendar endpoints, as far as Tandem uses them.

Shapes follow Microsoft's documentation, including the parts that bite a client:
getSchedule returns ``subject``/``location`` of items (the provider must drop them) and
refuses more than 20 schedules or 62 days; calendarView pages with ``@odata.nextLink``
(10 items by default); all-day events come back as midnight of their own date even when
``Prefer: outlook.timezone`` asks for another zone; delta returns whole events and
``@removed`` entries and answers 410 for a forgotten token.

Found after the first release (each cited where it is modelled):

* A second ``POST /me/events`` with a used ``transactionId`` is refused (400
  ``ErrorDuplicateTransactionId``), not answered with the first event.
* Event ids contain ``/``, ``+`` and ``=``; a raw ``/`` or a ``%2F`` in the id's path
  segment is refused (400 ``RequestBroker--ParseUri``); ``%252F`` works.
* getSchedule resolves ``schedules`` by the mailbox's SMTP address (``mail``) only.
* A mailbox under an access policy answers 403 ``ErrorAccessDenied``.
* Subscriptions renew with ``PATCH /subscriptions/{id}``.
"""

from __future__ import annotations

import dataclasses
import html
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import unquote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.microsoft_state import Account, DeltaCursor, Event, MicrosoftState, new_id

MAX_SCHEDULES = 20
MAX_SCHEDULE_SPAN = timedelta(days=62)
MAX_SUBSCRIPTION_MINUTES = 4230
_DEFAULT_PAGE = 10
_WINDOWS_ZONES = {
    "Pacific Standard Time": "America/Los_Angeles",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "GMT Standard Time": "Europe/London",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Tokyo Standard Time": "Asia/Tokyo",
}
_AVAILABILITY_DIGIT = {"free": 0, "tentative": 1, "busy": 2, "oof": 3, "workingElsewhere": 4}
_PRECEDENCE = ["free", "workingElsewhere", "tentative", "busy", "oof"]


def graph_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return JSONResponse(
        {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": now,
                    "request-id": str(uuid.uuid4()),
                    "client-request-id": str(uuid.uuid4()),
                },
            }
        },
        status_code=status,
        headers=headers,
    )


class _BadRequest(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _zone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "Z", "COORDINATED UNIVERSAL TIME"):
        return UTC
    try:
        return ZoneInfo(_WINDOWS_ZONES.get(name, name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _BadRequest(
            "TimeZoneNotSupportedException",
            f"The following TimeZone value is not supported: '{name}'.",
        ) from exc


def _prefer(request: Request) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for match in re.finditer(r'([\w.\-]+)\s*=\s*("([^"]*)"|[^,\s]+)', header):
            found[match.group(1).lower()] = (
                match.group(3) if match.group(3) is not None else match.group(2)
            )
    return found


def _format(value: datetime, zone_name: str) -> dict[str, str]:
    local = value.astimezone(_zone(zone_name))
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": zone_name}


def _parse_dtz(value: Any) -> datetime:
    """A dateTimeTimeZone object from a request body, as an aware UTC instant."""
    if not isinstance(value, dict) or "dateTime" not in value:
        raise _BadRequest("ErrorInvalidRequest", "dateTimeTimeZone object expected.")
    try:
        parsed = datetime.fromisoformat(str(value["dateTime"]))
    except ValueError as exc:
        raise _BadRequest("ErrorInvalidRequest", "Cannot parse dateTime.") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_zone(str(value.get("timeZone") or "UTC")))
    return parsed.astimezone(UTC)


def _parse_query_dt(raw: str | None, name: str) -> datetime:
    if not raw:
        raise _BadRequest(
            "ErrorInvalidParameter",
            f"This request requires a time window specified by the query string parameters {name}.",
        )
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise _BadRequest("ErrorInvalidParameter", f"Cannot parse {name}.") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _overlaps(event: Event, start: datetime, end: datetime) -> bool:
    return event.start < end and event.end > start


def _strip_tags(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def event_json(event: Event, *, zone_name: str = "UTC", body_type: str = "html") -> dict[str, Any]:
    """An event as Graph serializes it (all properties)."""
    if event.is_all_day:
        # Graph's quirk: all-day events keep midnight of their own date, whatever zone
        # the client asked for; only the label changes.
        local_zone = _zone(event.time_zone)
        start = {
            "dateTime": event.start.astimezone(local_zone).strftime("%Y-%m-%dT00:00:00.0000000"),
            "timeZone": zone_name,
        }
        end = {
            "dateTime": event.end.astimezone(local_zone).strftime("%Y-%m-%dT00:00:00.0000000"),
            "timeZone": zone_name,
        }
    else:
        start, end = _format(event.start, zone_name), _format(event.end, zone_name)
    content = (
        event.body
        if body_type == "text"
        else f"<html><body>{html.escape(event.body)}</body></html>"
    )
    serialized: dict[str, Any] = {
        "@odata.etag": f'W/"{event.change_key}"',
        "id": event.id,
        "createdDateTime": event.created.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
        "lastModifiedDateTime": event.modified.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
        "changeKey": event.change_key,
        "iCalUId": event.ical_uid,
        "subject": event.subject,
        "bodyPreview": event.body[:255],
        "body": {"contentType": body_type, "content": content},
        "start": start,
        "end": end,
        "originalStartTimeZone": event.time_zone,
        "originalEndTimeZone": event.time_zone,
        "isAllDay": event.is_all_day,
        "isCancelled": event.is_cancelled,
        "isOrganizer": True,
        "showAs": event.show_as,
        "type": "singleInstance",
        "sensitivity": "normal",
        "importance": "normal",
        "isOnlineMeeting": event.is_online_meeting,
        "location": {"displayName": event.location, "locationType": "default"},
        "attendees": [dict(a) for a in event.attendees],
        "organizer": {"emailAddress": {"name": event.organizer, "address": event.organizer}},
        "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        "webLink": f"https://outlook.office365.com/owa/?itemid={event.id}",
    }
    if event.transaction_id:
        # "This property is only returned in a response payload if an app has set it."
        # (event resource doc, transactionId)
        serialized["transactionId"] = event.transaction_id
    return serialized


def _attendees(raw: Any, previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise _BadRequest("ErrorInvalidRequest", "attendees must be a collection.")
    old = {a["emailAddress"]["address"].lower(): a for a in previous}
    result = []
    for item in raw:
        address = str(item.get("emailAddress", {}).get("address", ""))
        if "@" not in address:
            raise _BadRequest("ErrorInvalidRecipients", "At least one recipient is not valid.")
        keep = old.get(address.lower())
        result.append(
            {
                "type": item.get("type", "required"),
                "status": keep["status"]
                if keep
                else {"response": "none", "time": "0001-01-01T00:00:00Z"},
                "emailAddress": {
                    "name": item["emailAddress"].get("name") or address,
                    "address": address,
                },
            }
        )
    return result


def _apply_fields(event: Event, body: dict[str, Any]) -> None:
    if "subject" in body:
        event.subject = str(body["subject"] or "")
    if "body" in body and isinstance(body["body"], dict):
        content = str(body["body"].get("content") or "")
        event.body = (
            _strip_tags(content)
            if body["body"].get("contentType", "").lower() == "html"
            else content
        )
    if "start" in body:
        event.start = _parse_dtz(body["start"])
        event.time_zone = str(body["start"].get("timeZone") or "UTC")
    if "end" in body:
        event.end = _parse_dtz(body["end"])
    if "location" in body and isinstance(body["location"], dict):
        event.location = str(body["location"].get("displayName") or "")
    if "attendees" in body:
        event.attendees = _attendees(body["attendees"], event.attendees)
    if "showAs" in body:
        event.show_as = str(body["showAs"])
    if "isAllDay" in body:
        event.is_all_day = bool(body["isAllDay"])
    if "isOnlineMeeting" in body:
        event.is_online_meeting = bool(body["isOnlineMeeting"])
    if event.end <= event.start:
        raise _BadRequest("ErrorInvalidRequest", "The end time must be after the start time.")


def _page(items: list[dict[str, Any]], request: Request, size: int, skip: int) -> dict[str, Any]:
    chunk = items[skip : skip + size]
    payload: dict[str, Any] = {"value": chunk}
    if skip + size < len(items):
        params = dict(request.query_params)
        params["$skip"] = str(skip + size)
        payload["@odata.nextLink"] = (
            f"{request.url.scheme}://{request.url.netloc}{request.url.path}?{urlencode(params)}"
        )
    return payload


def graph_routes(state: MicrosoftState) -> list[Route]:
    """Routes under ``/v1.0``."""
    return _build(state)[0]


def mailbox_handlers(state: MicrosoftState) -> dict[str, Any]:
    """The event handlers taking ``(request, account)``, for ``/users/{id}`` routes."""
    return _build(state)[1]


def _build(state: MicrosoftState) -> tuple[list[Route], dict[str, Any]]:

    def caller(request: Request) -> Account | Response:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        if header[7:].strip() in state.app_tokens:
            # An app-only token has no signed-in user: Graph answers 400 "/me request is
            # only valid with delegated authentication flow." (as quoted in
            # microsoftgraph/msgraph-sdk-dotnet issues; the v2-oauth2-client-creds-grant
            # doc says app-only calls name the user: /users/{id}).
            return graph_error(
                400, "BadRequest", "/me request is only valid with delegated authentication flow."
            )
        account = state.user_for_token(header[7:].strip())
        if account is None:
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                headers={"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
            )
        if account.access_denied:
            # An Exchange Online application access policy (or a mailbox-level REST
            # block) refuses the call while the token stays valid: "ErrorAccessDenied",
            # "Access to OData is disabled." (auth-limit-mailbox-access doc). The doc
            # names app-only access; Tandem treats the delegated case alike.
            return graph_error(403, "ErrorAccessDenied", account.access_denied)
        return account

    async def json_body(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError as exc:
            raise _BadRequest("BadRequest", "Unable to read JSON request payload.") from exc
        if not isinstance(body, dict):
            raise _BadRequest("BadRequest", "Unable to read JSON request payload.")
        return body

    def endpoint(handler: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            who = caller(request)
            if isinstance(who, Response):
                return who
            try:
                response: Response = await handler(request, who)
            except _BadRequest as exc:
                return graph_error(400, exc.code, exc.message)
            return response

        return wrapped

    async def me(request: Request, account: Account) -> Response:
        """The signed-in user. ``mail`` is the mailbox address (may differ from the UPN,
        null for personal accounts); ``$select`` narrows the answer (user-get doc)."""
        user = {
            "id": account.oid,
            "displayName": account.name,
            "mail": account.mail,
            "userPrincipalName": account.email,
        }
        select = [s.strip() for s in request.query_params.get("$select", "").split(",")]
        if any(select):
            user = {k: v for k, v in user.items() if k in select}
        return JSONResponse(user)

    async def get_schedule(request: Request, account: Account) -> Response:
        if account.personal:
            return graph_error(
                403,
                "ErrorAccessDenied",
                "getSchedule is not supported for personal Microsoft accounts.",
            )
        body = await json_body(request)
        schedules = body.get("schedules")
        if not isinstance(schedules, list) or not schedules:
            raise _BadRequest("ErrorInvalidParameter", "schedules is required.")
        if len(schedules) > MAX_SCHEDULES:
            raise _BadRequest(
                "ErrorMailboxDataArrayTooBig",
                f"The allowed size = {MAX_SCHEDULES}; the actual size = {len(schedules)}.",
            )
        start, end = _parse_dtz(body.get("startTime")), _parse_dtz(body.get("endTime"))
        if end <= start:
            raise _BadRequest(
                "ErrorInvalidTimeInterval", "The end time must be after the start time."
            )
        if end - start > MAX_SCHEDULE_SPAN:
            raise _BadRequest(
                "ErrorTimeIntervalTooBig",
                "The requested time interval is too big. The allowed limit = 62 days.",
            )
        interval = int(body.get("availabilityViewInterval", 30))
        if not 5 <= interval <= 1440:
            raise _BadRequest("ErrorInvalidParameter", "availabilityViewInterval must be 5..1440.")
        zone_name = _prefer(request).get("outlook.timezone", "UTC")
        _zone(zone_name)
        with state.lock:
            # "schedules: A collection of SMTP addresses of users, distribution lists, or
            # resources" (calendar-getschedule doc): resolved by ``mail``, never by UPN.
            value = [
                _schedule(state.mailbox(str(sid)), str(sid), start, end, interval, zone_name)
                for sid in schedules
            ]
        return JSONResponse({"value": value})

    async def calendar_view(request: Request, account: Account) -> Response:
        params = request.query_params
        start = _parse_query_dt(params.get("startDateTime"), "startDateTime")
        end = _parse_query_dt(params.get("endDateTime"), "endDateTime")
        prefer = _prefer(request)
        zone_name = prefer.get("outlook.timezone", "UTC")
        _zone(zone_name)
        body_type = "text" if prefer.get("outlook.body-content-type") == "text" else "html"
        select = [s.strip() for s in params.get("$select", "").split(",") if s.strip()]
        size = min(int(params.get("$top", prefer.get("odata.maxpagesize", _DEFAULT_PAGE))), 1000)
        skip = int(params.get("$skip", "0"))
        with state.lock:
            events = sorted(
                (e for e in account.events.values() if not e.deleted and _overlaps(e, start, end)),
                key=lambda e: (e.start, e.id),
            )
            items = []
            for event in events:
                full = event_json(event, zone_name=zone_name, body_type=body_type)
                if select:
                    full = {
                        k: v for k, v in full.items() if k in select or k in ("id", "@odata.etag")
                    }
                items.append(full)
        headers = (
            {"Preference-Applied": f'outlook.timezone="{zone_name}"'}
            if "outlook.timezone" in prefer
            else None
        )
        return JSONResponse(_page(items, request, size, skip), headers=headers)

    async def delta(request: Request, account: Account) -> Response:
        params = request.query_params
        prefer = _prefer(request)
        zone_name = prefer.get("outlook.timezone", "UTC")
        body_type = "text" if prefer.get("outlook.body-content-type") == "text" else "html"
        size = int(prefer.get("odata.maxpagesize", _DEFAULT_PAGE))
        base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        with state.lock:
            if "$skiptoken" in params:
                page = state.delta_pages.pop(params["$skiptoken"], None)
                if page is None:
                    return _sync_gone()
                items, token = page
            else:
                if "$deltatoken" in params:
                    cursor = state.delta_tokens.get(params["$deltatoken"])
                    if cursor is None or cursor.email.lower() != account.email.lower():
                        return _sync_gone()
                    items = _changes_since(account, cursor, zone_name, body_type)
                    window = (cursor.start, cursor.end)
                else:
                    window = (
                        _parse_query_dt(params.get("startDateTime"), "startDateTime"),
                        _parse_query_dt(params.get("endDateTime"), "endDateTime"),
                    )
                    items = [
                        event_json(e, zone_name=zone_name, body_type=body_type)
                        for e in sorted(account.events.values(), key=lambda e: (e.start, e.id))
                        if not e.deleted and _overlaps(e, *window)
                    ]
                token = secrets.token_urlsafe(24)
                state.delta_tokens[token] = DeltaCursor(account.email, state.current_seq, *window)
            payload: dict[str, Any] = {"value": items[:size]}
            if len(items) > size:
                skiptoken = secrets.token_urlsafe(24)
                state.delta_pages[skiptoken] = (items[size:], token)
                payload["@odata.nextLink"] = f"{base}?{urlencode({'$skiptoken': skiptoken})}"
            else:
                payload["@odata.deltaLink"] = f"{base}?{urlencode({'$deltatoken': token})}"
        return JSONResponse(payload)

    async def create_event(request: Request, account: Account) -> Response:
        body = await json_body(request)
        with state.lock:
            transaction_id = body.get("transactionId")
            if transaction_id and any(
                e.transaction_id == transaction_id for e in account.events.values()
            ):
                # Graph does not hand back the first event: it refuses the retry. Reported
                # in public clients (e.g. alcionai/corso#2490); message as they quote it.
                # Whether a deleted event's transactionId frees up again is undocumented;
                # the emulator keeps it used (the stricter choice).
                raise _BadRequest(
                    "ErrorDuplicateTransactionId",
                    "Your request can't be completed. The TransactionId specified in the "
                    "request has already been used to create a different event.",
                )
            if "start" not in body or "end" not in body:
                raise _BadRequest("ErrorInvalidRequest", "start and end are required.")
            now = datetime.now(UTC)
            event = Event(id=new_id(), subject="", start=now, end=now, organizer=account.email)
            _apply_fields(event, body)
            event.transaction_id = str(transaction_id) if transaction_id else None
            event.seq = state.next_seq()
            account.events[event.id] = event
            return JSONResponse(event_json(event), status_code=201)

    def find(account: Account, event_id: str) -> Event:
        event = account.events.get(event_id)
        if event is None or event.deleted:
            raise _NotFound
        return event

    async def one_event(request: Request, account: Account) -> Response:
        event_id = _event_id_from_raw_path(request)
        prefer = _prefer(request)
        zone_name = prefer.get("outlook.timezone", "UTC")
        body_type = "text" if prefer.get("outlook.body-content-type") == "text" else "html"
        body = await json_body(request) if request.method == "PATCH" else {}
        with state.lock:
            try:
                event = find(account, event_id)
            except _NotFound:
                return graph_error(
                    404, "ErrorItemNotFound", "The specified object was not found in the store."
                )
            if request.method == "GET":
                return JSONResponse(event_json(event, zone_name=zone_name, body_type=body_type))
            if request.method == "DELETE":
                event.deleted = True
                state.touch(event)
                return Response(status_code=204)
            draft = dataclasses.replace(event, attendees=list(event.attendees))
            _apply_fields(draft, body)  # validates before anything changes
            account.events[event.id] = draft
            state.touch(draft)
            return JSONResponse(event_json(draft, zone_name=zone_name, body_type=body_type))

    async def create_subscription(request: Request, account: Account) -> Response:
        body = await json_body(request)
        for name in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if not body.get(name):
                raise _BadRequest("InvalidRequest", f"{name} is required.")
        expires = _expiration(body["expirationDateTime"])
        client_state = body.get("clientState")
        if client_state is not None and len(str(client_state)) > 128:
            raise _BadRequest("InvalidRequest", "clientState must be at most 128 characters.")
        if state.validate_notification_urls:
            for url in {body["notificationUrl"], body.get("lifecycleNotificationUrl")} - {None}:
                if not await _validated(state, str(url)):
                    raise _BadRequest(
                        "ValidationError",
                        "Subscription validation request failed. Notification endpoint must "
                        "respond with 200 OK to validation request.",
                    )
        subscription = {
            "id": str(uuid.uuid4()),
            "resource": body["resource"],
            "applicationId": state.client_id,
            "changeType": body["changeType"],
            "clientState": client_state,
            "notificationUrl": body["notificationUrl"],
            "lifecycleNotificationUrl": body.get("lifecycleNotificationUrl"),
            "expirationDateTime": expires.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
            "creatorId": account.oid,
        }
        with state.lock:
            state.subscriptions[subscription["id"]] = dict(subscription, owner=account.email)
        return JSONResponse(subscription, status_code=201)

    async def one_subscription(request: Request, account: Account) -> Response:
        sub_id = request.path_params["sub_id"]
        with state.lock:
            subscription = state.subscriptions.get(sub_id)
            if subscription is None or subscription["owner"].lower() != account.email.lower():
                return graph_error(404, "ResourceNotFound", "The object was not found.")
            if request.method == "DELETE":
                del state.subscriptions[sub_id]
                return Response(status_code=204)
        body = await json_body(request)
        expires = _expiration(body.get("expirationDateTime"))
        with state.lock:
            subscription["expirationDateTime"] = expires.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
            return JSONResponse({k: v for k, v in subscription.items() if k != "owner"})

    routes = [
        Route("/v1.0/me", endpoint(me)),
        Route("/v1.0/me/calendar/getSchedule", endpoint(get_schedule), methods=["POST"]),
        Route("/v1.0/me/calendarView", endpoint(calendar_view)),
        Route("/v1.0/me/calendarView/delta", endpoint(delta)),
        Route("/v1.0/me/events", endpoint(create_event), methods=["POST"]),
        Route(
            "/v1.0/me/events/{event_path:path}",
            endpoint(one_event),
            methods=["GET", "PATCH", "DELETE"],
        ),
        Route("/v1.0/subscriptions", endpoint(create_subscription), methods=["POST"]),
        Route(
            "/v1.0/subscriptions/{sub_id}", endpoint(one_subscription), methods=["PATCH", "DELETE"]
        ),
    ]
    return routes, {"create_event": create_event, "one_event": one_event}


class _NotFound(Exception):
    pass


_EVENTS_PREFIX = b"/v1.0/me/events/"


def _event_id_from_raw_path(request: Request) -> str:
    """The event id as Graph reads it from the request line.

    Ids contain ``/``, ``+`` and ``=``. A raw ``/`` splits the segment and Graph answers
    400 (microsoft-graph-docs #3598, "Get event id includes '/' get 400 bad request"); a
    ``%2F`` is decoded before routing and refused the same way, "RequestBroker--ParseUri",
    "Resource not found for the segment ..." (#10167, also #2674 in -contrib); what works
    is ``%252F``, which Graph decodes twice (#10167). The emulator therefore refuses a
    ``/`` or ``%2F`` in the segment and otherwise decodes twice. Whether single-encoded
    ``+`` and ``=`` (``%2B``, ``%3D``) survive is not documented; decoded twice they do.
    """
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    raw = raw.split(b"?", 1)[0]
    segment = raw[len(_EVENTS_PREFIX) :] if raw.startswith(_EVENTS_PREFIX) else b""
    text = segment.decode("latin-1")
    if not text or "/" in text or "%2f" in text.lower():
        piece = text.replace("%2F", "/").replace("%2f", "/").split("/")
        rest = piece[1] if len(piece) > 1 else ""
        raise _BadRequest(
            "RequestBroker--ParseUri", f"Resource not found for the segment '{rest[:20]}'."
        )
    return unquote(unquote(text))


async def _validated(state: MicrosoftState, url: str) -> bool:
    """Graph's handshake before it creates a subscription: POST the URL with an opaque
    ``validationToken`` query parameter (text/plain) and expect, within 10 seconds, 200
    with ``Content-Type: text/plain`` and the URL-decoded token as the body; both the
    notification and the lifecycle URL are checked (change-notifications delivery doc,
    notificationUrl validation). The token has spaces and colons like the real one, so
    an endpoint that echoes it still encoded fails."""
    token = (
        "Validation: Testing client application reachability for subscription "
        f"Request-Id: {uuid.uuid4()}"
    )
    try:
        async with httpx.AsyncClient(verify=state.validation_verify, timeout=10.0) as client:
            answer = await client.post(
                url, params={"validationToken": token}, headers={"Content-Type": "text/plain"}
            )
    except httpx.HTTPError:
        return False
    content_type = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    return answer.status_code == 200 and content_type == "text/plain" and answer.text == token


def _sync_gone() -> JSONResponse:
    return graph_error(
        410, "syncStateNotFound", "The sync state generation is not found. Start a new sync."
    )


def _expiration(raw: Any) -> datetime:
    try:
        expires = datetime.fromisoformat(str(raw))
    except ValueError as exc:
        raise _BadRequest("InvalidRequest", "expirationDateTime is not a valid date.") from exc
    expires = expires.replace(tzinfo=UTC) if expires.tzinfo is None else expires.astimezone(UTC)
    now = datetime.now(UTC)
    if expires <= now:
        raise _BadRequest("InvalidRequest", "Subscription expiration can only be in the future.")
    if expires > now + timedelta(minutes=MAX_SUBSCRIPTION_MINUTES):
        raise _BadRequest(
            "InvalidRequest",
            f"Subscription expiration can be at most {MAX_SUBSCRIPTION_MINUTES} minutes away.",
        )
    return expires


def _changes_since(
    account: Account, cursor: DeltaCursor, zone_name: str, body_type: str
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for event in sorted(account.events.values(), key=lambda e: e.seq):
        if event.seq <= cursor.seq:
            continue
        if event.deleted or not _overlaps(event, cursor.start, cursor.end):
            items.append(
                {
                    "@odata.type": "#microsoft.graph.event",
                    "id": event.id,
                    "@removed": {"reason": "deleted"},
                }
            )
        else:
            items.append(event_json(event, zone_name=zone_name, body_type=body_type))
    return items


def _schedule(
    account: Account | None,
    schedule_id: str,
    start: datetime,
    end: datetime,
    interval: int,
    zone_name: str,
) -> dict[str, Any]:
    if account is None or account.personal or account.schedule_error:
        message = (
            account.schedule_error
            if account and account.schedule_error
            else "The specified mailbox could not be found."
        )
        return {
            "scheduleId": schedule_id,
            "availabilityView": "",
            "error": {
                "message": message,
                "responseCode": "ErrorMailboxNotFound"
                if account is None
                else "ErrorMailboxFailover",
            },
            "scheduleItems": [],
        }
    events = sorted(
        (
            e
            for e in account.events.values()
            if not e.deleted and not e.is_cancelled and _overlaps(e, start, end)
        ),
        key=lambda e: (e.start, e.id),
    )
    items = [
        {
            "isPrivate": False,
            "status": e.show_as,
            "subject": e.subject,
            "location": e.location,
            "start": _format(e.start, zone_name),
            "end": _format(e.end, zone_name),
        }
        for e in events
    ]
    # Each slot shows the strongest status of the events overlapping it; events are
    # painted onto the slots they touch (a slot-by-slot scan is slow for long windows).
    step = timedelta(minutes=interval)
    count = -(-(end - start) // step)
    best = ["free"] * count
    for e in events:
        if e.show_as not in _AVAILABILITY_DIGIT:
            continue
        first = max(0, (e.start - start) // step)
        last = min(count, -(-(e.end - start) // step))
        for index in range(first, last):
            if _PRECEDENCE.index(e.show_as) > _PRECEDENCE.index(best[index]):
                best[index] = e.show_as
    digits = [str(_AVAILABILITY_DIGIT[status]) for status in best]
    return {
        "scheduleId": schedule_id,
        "availabilityView": "".join(digits),
        "scheduleItems": items,
        "workingHours": {
            "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "startTime": "08:00:00.0000000",
            "endTime": "17:00:00.0000000",
            "timeZone": {"name": "UTC"},
        },
    }
