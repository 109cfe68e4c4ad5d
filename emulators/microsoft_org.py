"""Organization-wide (app-only) access in the Microsoft emulator.

* Admin consent: ``GET /{tenant}/v2.0/adminconsent`` shows a page where a tenant's global
  administrator grants the app's application permissions; the redirect carries
  ``admin_consent=True&tenant=...&state=...&scope=...`` or ``error=access_denied``
  (https://learn.microsoft.com/en-us/entra/identity-platform/v2-admin-consent).
* The client-credentials grant on ``/{tenant}/oauth2/v2.0/token``
  (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow):
  a wrong secret is refused with AADSTS7000215 ``invalid_client`` (checked first, in
  ``microsoft_identity.token``); a tenant that never consented with AADSTS700016
  ``unauthorized_client`` ("Application ... was not found in the directory", the answer
  for an app without a service principal in the tenant: Entra's error-code list and
  https://learn.microsoft.com/en-us/azure/developer/java/sdk/troubleshooting-authentication-service-principal);
  a scope other than ``https://graph.microsoft.com/.default`` with AADSTS1002012.
* ``/v1.0/users/{id | userPrincipalName}/...``: getSchedule with up to 20 schedules and
  per-schedule errors, calendarView and events, reachable only with an app-only token of
  the mailbox's own tenant. An application access policy
  (https://learn.microsoft.com/en-us/graph/auth-limit-mailbox-access) answers 403
  ``ErrorAccessDenied`` "Access to OData is disabled." for a denied mailbox in the path
  and, inside getSchedule, an ``error`` for that schedule only (its ``responseCode`` there
  is not documented; ``ErrorAccessDenied`` is assumed).
* App-only tokens on ``/me`` get 400 "/me request is only valid with delegated
  authentication flow." (the answer Graph gives; see ``microsoft_graph``).
"""

from __future__ import annotations

import html
import secrets
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from emulators.microsoft_state import Account, MicrosoftState, Tenant

APP_SCOPE = "https://graph.microsoft.com/.default"


def _aad_error(status: int, error: str, code: int, text: str) -> JSONResponse:
    from emulators.microsoft_identity import _aad_error as shaped

    return shaped(status, error, code, text)


def client_credentials(state: MicrosoftState, tenant_name: str, form: dict[str, str]) -> Response:
    """The client-credentials grant; the client id and secret were checked already."""
    tenant = state.tenant_for(tenant_name)
    if tenant is None or not tenant.consented:
        return _aad_error(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{state.client_id}' was not found in the directory "
            f"'{tenant_name}'. This can happen if the application has not been installed by "
            "the administrator of the tenant or consented to by any user in the tenant.",
        )
    if form.get("scope", "").split() != [APP_SCOPE]:
        return _aad_error(
            400,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid. Client credential flows must have a "
            "scope value with /.default suffixed to the resource identifier.",
        )
    return JSONResponse(
        {
            "token_type": "Bearer",
            "expires_in": state.access_token_lifetime,
            "ext_expires_in": state.access_token_lifetime,
            "access_token": state.issue_app_token(tenant.id),
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _error_page(message: str, status: int = 400) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><title>Sign in to your account</title></head><body>"
        f"<h1>Sorry, but we're having trouble signing you in.</h1><p>{html.escape(message)}</p>"
        "</body></html>",
        status_code=status,
    )


def admin_consent_routes(state: MicrosoftState) -> list[Route]:
    async def page(request: Request) -> Response:
        params = dict(request.query_params)
        tenant_name = request.path_params["tenant"]
        if params.get("client_id") != state.client_id:
            return _error_page(
                "AADSTS700016: Application with identifier was not found in the directory."
            )
        if not params.get("redirect_uri", "").startswith(("https://", "http://")):
            return _error_page("AADSTS900144: The request body must contain redirect_uri.")
        if params.get("scope") != APP_SCOPE:
            return _error_page("AADSTS70011: The provided value for scope is not valid.")
        request_id = secrets.token_urlsafe(16)
        with state.lock:
            state.pending_admin_consents[request_id] = dict(params, tenant=tenant_name)
        return HTMLResponse(
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<title>Permissions requested (admin consent)</title></head><body>"
            "<h1>Permissions requested: accept for your organization</h1>"
            f"<p>Application <code>{html.escape(state.client_id)}</code> wants to read and "
            "write calendars in all mailboxes (application permission).</p>"
            "<form method='post'>"
            f"<input type='hidden' name='request' value='{html.escape(request_id, quote=True)}'>"
            "<label>Administrator <input name='account'></label>"
            "<button type='submit' name='action' value='accept'>Accept</button> "
            "<button type='submit' name='action' value='cancel'>Cancel</button>"
            "</form></body></html>",
            headers={"Cache-Control": "no-store"},
        )

    async def answer(request: Request) -> Response:
        form = await request.form()
        with state.lock:
            params = state.pending_admin_consents.pop(str(form.get("request", "")), None)
            if params is None:
                return _error_page("AADSTS90014: The sign-in request expired; start again.")
            reply: dict[str, str]
            if form.get("action") != "accept":
                reply = {
                    "error": "access_denied",
                    "error_description": "AADSTS65004: User declined to consent to access the app.",
                }
            else:
                account = state.accounts.get(str(form.get("account", "")).lower())
                if account is None:
                    return _error_page("AADSTS50034: The user account does not exist.")
                tenant = state.tenants.get(account.tenant_id)
                wanted = params["tenant"].lower()
                if tenant is None or (
                    wanted not in ("common", "organizations")
                    and state.tenant_for(wanted) is not tenant
                ):
                    return _error_page(
                        "AADSTS50020: User account from identity provider does not exist in tenant."
                    )
                if account.email.lower() not in tenant.admins:
                    return _error_page(
                        "AADSTS90094: An administrator of your organization must grant "
                        "permission to this app."
                    )
                tenant.consented = True
                reply = {"admin_consent": "True", "tenant": tenant.id, "scope": APP_SCOPE}
            if "state" in params:
                reply["state"] = params["state"]
        separator = "&" if "?" in params["redirect_uri"] else "?"
        return RedirectResponse(
            params["redirect_uri"] + separator + urlencode(reply), status_code=302
        )

    return [
        Route("/{tenant}/v2.0/adminconsent", page, methods=["GET"]),
        Route("/{tenant}/v2.0/adminconsent", answer, methods=["POST"]),
        Route("/{tenant}/adminconsent", page, methods=["GET"]),
        Route("/{tenant}/adminconsent", answer, methods=["POST"]),
    ]


def users_routes(state: MicrosoftState) -> list[Route]:
    """``/v1.0/users/{user}/...`` for app-only callers."""
    from emulators import microsoft_graph as graph

    handlers = graph.mailbox_handlers(state)

    def resolve(request: Request) -> tuple[Tenant, Account] | Response:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token:
            return graph.graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        tenant = state.tenant_for_app_token(token)
        if tenant is None:
            if state.user_for_token(token) is not None:
                # A delegated token may reach only its own mailbox in Tandem's use; the
                # emulator keeps /users for app-only tokens.
                return graph.graph_error(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
            return graph.graph_error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )
        wanted = request.path_params["user"].lower()
        with state.lock:
            account = state.accounts.get(wanted) or state.mailbox(wanted)
            if account is None:
                account = next((a for a in state.accounts.values() if a.oid == wanted), None)
            if account is None or account.tenant_id != tenant.id:
                return graph.graph_error(
                    404,
                    "ErrorInvalidUser",
                    f"The requested user '{request.path_params['user'][:80]}' is invalid.",
                )
            if (account.mail or account.email).lower() in tenant.policy_denied:
                return graph.graph_error(403, "ErrorAccessDenied", "Access to OData is disabled.")
        return tenant, account

    async def get_schedule(request: Request) -> Response:
        who = resolve(request)
        if isinstance(who, Response):
            return who
        tenant, _account = who
        try:
            body = await request.json()
        except ValueError:
            return graph.graph_error(400, "BadRequest", "Unable to read JSON request payload.")
        schedules = body.get("schedules") if isinstance(body, dict) else None
        if not isinstance(schedules, list) or not schedules:
            return graph.graph_error(400, "ErrorInvalidParameter", "schedules is required.")
        if len(schedules) > graph.MAX_SCHEDULES:
            return graph.graph_error(
                400,
                "ErrorMailboxDataArrayTooBig",
                f"The allowed size = {graph.MAX_SCHEDULES}; the actual size = {len(schedules)}.",
            )
        try:
            start, end = (
                graph._parse_dtz(body.get("startTime")),
                graph._parse_dtz(body.get("endTime")),
            )
        except graph._BadRequest as exc:
            return graph.graph_error(400, exc.code, exc.message)
        if end <= start:
            return graph.graph_error(
                400, "ErrorInvalidTimeInterval", "The end time must be after the start time."
            )
        if end - start > graph.MAX_SCHEDULE_SPAN:
            return graph.graph_error(
                400,
                "ErrorTimeIntervalTooBig",
                "The requested time interval is too big. The allowed limit = 62 days.",
            )
        interval = int(body.get("availabilityViewInterval", 30))
        zone_name = graph._prefer(request).get("outlook.timezone", "UTC")
        value: list[dict[str, Any]] = []
        with state.lock:
            for sid in schedules:
                address = str(sid).lower()
                mailbox = state.mailbox(address)
                if mailbox is not None and mailbox.tenant_id != tenant.id:
                    mailbox = None  # another organization's mailbox: not found from here
                if mailbox is not None and address in tenant.policy_denied:
                    value.append(
                        {
                            "scheduleId": str(sid),
                            "availabilityView": "",
                            "error": {
                                "message": "Access is denied. Check credentials and try again.",
                                "responseCode": "ErrorAccessDenied",
                            },
                            "scheduleItems": [],
                        }
                    )
                    continue
                value.append(graph._schedule(mailbox, str(sid), start, end, interval, zone_name))
        return JSONResponse({"value": value})

    async def calendar_view(request: Request) -> Response:
        who = resolve(request)
        if isinstance(who, Response):
            return who
        _tenant, account = who
        params = request.query_params
        try:
            start = graph._parse_query_dt(params.get("startDateTime"), "startDateTime")
            end = graph._parse_query_dt(params.get("endDateTime"), "endDateTime")
        except graph._BadRequest as exc:
            return graph.graph_error(400, exc.code, exc.message)
        select = [s.strip() for s in params.get("$select", "").split(",") if s.strip()]
        with state.lock:
            items = []
            for event in sorted(account.events.values(), key=lambda e: (e.start, e.id)):
                if event.deleted or not graph._overlaps(event, start, end):
                    continue
                full = graph.event_json(event)
                if select:
                    full = {k: v for k, v in full.items() if k in select or k == "id"}
                items.append(full)
        return JSONResponse({"value": items})

    async def create_event(request: Request) -> Response:
        who = resolve(request)
        if isinstance(who, Response):
            return who
        _tenant, account = who
        # The delegated handler does the work; it only needs the mailbox.
        return await _delegate(graph, handlers, "create_event", request, account)

    async def one_event(request: Request) -> Response:
        who = resolve(request)
        if isinstance(who, Response):
            return who
        _tenant, account = who
        return await _delegate(graph, handlers, "one_event", request, account)

    return [
        Route("/v1.0/users/{user}/calendar/getSchedule", get_schedule, methods=["POST"]),
        Route("/v1.0/users/{user}/calendarView", calendar_view),
        Route("/v1.0/users/{user}/events", create_event, methods=["POST"]),
        Route(
            "/v1.0/users/{user}/events/{event_path:path}",
            one_event,
            methods=["GET", "PATCH", "DELETE"],
        ),
    ]


async def _delegate(
    graph: Any, handlers: dict[str, Any], name: str, request: Request, account: Account
) -> Response:
    """Run the ``/me`` handler of the same name on ``account``'s mailbox."""
    if name == "one_event":
        # The id sits after ``/users/{user}/events/``; rewrite the raw path the handler
        # parses so the same double-decoding rules apply.
        raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
        _head, sep, tail = raw.partition(b"/events/")
        request.scope["raw_path"] = b"/v1.0/me/events/" + tail if sep else raw
    try:
        response: Response = await handlers[name](request, account)
    except graph._BadRequest as exc:
        failed: Response = graph.graph_error(400, exc.code, exc.message)
        return failed
    return response


__all__ = [
    "APP_SCOPE",
    "admin_consent_routes",
    "client_credentials",
    "users_routes",
]
