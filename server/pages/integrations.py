"""Manage → Integrations: organization-wide calendars (Microsoft Exchange, Google Calendar,
Exchange on-premises).

Thin: every rule (operator switch, global administrators only, single-use consent state,
never both Exchange kinds) lives in ``services.integrations.setup``; Exchange on-premises,
which operators configure, in ``services.integrations.onprem``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from server.models.enums import IntegrationKind
from server.pages.common import redirect, render, services, viewer
from server.services.errors import DomainError
from server.services.integrations import cover, onprem, setup
from server.services.integrations.directory import KIND_LABELS, REASON_TEXT

CARDS = (
    IntegrationKind.EXCHANGE_ONLINE,
    IntegrationKind.GOOGLE_WORKSPACE,
    IntegrationKind.EXCHANGE_ONPREM,
)
KEY_LIMIT = 20_000
CONFIRMATIONS = {
    "microsoft_on": "The Microsoft Exchange integration is on.",
    "google_on": "The Google Calendar integration is on.",
    "microsoft_off": "The Microsoft Exchange integration is off. Covered people's busy times "
    "and Tandem's access were deleted.",
    "google_off": "The Google Calendar integration is off. Covered people's busy times and "
    "the service account key were deleted.",
    "onprem_on": "The Exchange on-premises integration is on.",
    "onprem_off": "The Exchange on-premises integration is off. Covered people's busy times "
    "and the service account's password were deleted.",
    "switch_on": "Organization-wide calendar authorization is on.",
    "switch_off": "Organization-wide calendar authorization is off; every integration was "
    "disabled.",
}


def _status(exc: DomainError) -> int:
    return {"forbidden": 403, "not_found": 404}.get(exc.code, 422)


def _callback_uri(request: Request) -> str:
    return (
        f"{services(request).settings.base_url.rstrip('/')}/admin/integrations/microsoft/callback"
    )


async def _page(request: Request, **extra: Any) -> Response:
    current = viewer(request)
    actor = current.actor
    if not setup.may_manage(current):
        return render(
            request,
            "pages/error.html",
            {
                "heading": "Not allowed",
                "message": "Only global administrators and operators manage integrations.",
            },
            status_code=403,
        )
    svc = services(request)
    cards = []
    async with svc.db.session() as db:
        switch = await setup.switch_is_on(db)
        for kind in CARDS:
            integration = await setup.get(db, kind)
            report = await cover.report(db, integration) if integration is not None else None
            delegation = (
                setup.google_delegation(svc.calendar, integration)
                if integration is not None
                else None
            )
            onprem_extra: dict[str, Any] = {}
            if kind == IntegrationKind.EXCHANGE_ONPREM:
                onprem_extra = {
                    "service_user": await onprem.service_account(db, integration),
                    "form": onprem.stored_form(svc.calendar, integration)
                    if actor.is_operator
                    else {},
                }
            cards.append(
                {
                    **onprem_extra,
                    "kind": kind.value,
                    "label": KIND_LABELS[kind],
                    "integration": integration,
                    "report": report,
                    "delegation": delegation,
                }
            )
    status_code = extra.pop("status_code", 200)
    confirmation = CONFIRMATIONS.get(request.query_params.get("done", ""))
    return render(
        request,
        "pages/integrations.html",
        {
            "cards": cards,
            "switch_on": switch,
            "is_operator": actor.is_operator,
            "is_global_admin": actor.is_global_admin,
            "switch_off_message": setup.SWITCH_OFF_MESSAGE,
            "reason_text": REASON_TEXT,
            "confirmation": confirmation,
            "contact_support": onprem.CONTACT_SUPPORT,
            **extra,
        },
        status_code=status_code,
    )


async def integrations_page(request: Request) -> Response:
    return await _page(request)


async def switch(request: Request) -> Response:
    current = viewer(request)
    form = await request.form()
    enabled = str(form.get("enabled", "")) == "on"
    async with services(request).db.session() as db:
        try:
            await setup.set_switch(db, services(request).calendar, current, enabled)
        except DomainError as exc:
            return await _page(request, error=exc.message, status_code=_status(exc))
    return redirect(f"/admin/integrations?done=switch_{'on' if enabled else 'off'}")


async def start_microsoft(request: Request) -> Response:
    current = viewer(request)
    form = await request.form()
    async with services(request).db.session() as db:
        try:
            url = await setup.start_microsoft(
                db,
                services(request).calendar,
                current,
                service_account=str(form.get("service_account", ""))[:320],
                tenant=str(form.get("tenant", ""))[:255],
                extra_domains=str(form.get("domains", ""))[:2000],
                redirect_uri=_callback_uri(request),
            )
        except DomainError as exc:
            return await _page(request, error=exc.message, status_code=_status(exc))
    return RedirectResponse(url, status_code=303)


async def microsoft_callback(request: Request) -> Response:
    current = viewer(request)
    params = {k: v[:2000] for k, v in request.query_params.items()}
    async with services(request).db.session() as db:
        try:
            await setup.finish_microsoft(db, services(request).calendar, current, params)
        except DomainError as exc:
            return await _page(request, error=exc.message, status_code=_status(exc))
    return redirect("/admin/integrations?done=microsoft_on")


async def google_key(request: Request) -> Response:
    """The key arrives as text: pasted, or read from the chosen file by the page's script
    (the request guard refuses multipart bodies)."""
    current = viewer(request)
    form = await request.form()
    key_text = str(form.get("key", ""))
    if len(key_text) > KEY_LIMIT:
        return await _page(request, error="That key file is too large.", status_code=422)
    async with services(request).db.session() as db:
        try:
            await setup.start_google(
                db,
                services(request).calendar,
                current,
                key_text=key_text,
                domain=str(form.get("domain", ""))[:253],
                act_as=str(form.get("act_as", ""))[:320],
                extra_domains=str(form.get("domains", ""))[:2000],
            )
        except DomainError as exc:
            return await _page(request, error=exc.message, status_code=_status(exc))
    return await _page(request, google_next=True)


async def google_verify(request: Request) -> Response:
    current = viewer(request)
    async with services(request).db.session() as db:
        try:
            await setup.verify_google(db, services(request).calendar, current)
        except DomainError as exc:
            return await _page(request, error=exc.message, status_code=_status(exc))
    return redirect("/admin/integrations?done=google_on")


async def disable(request: Request) -> Response:
    current = viewer(request)
    try:
        kind = setup.parse_kind(request.path_params["kind"])
    except DomainError as exc:
        return await _page(request, error=exc.message, status_code=404)
    async with services(request).db.session() as db:
        try:
            await setup.disable(db, services(request).calendar, current, kind)
        except DomainError as exc:
            return await _page(request, error=exc.message, status_code=_status(exc))
    done = {
        IntegrationKind.EXCHANGE_ONLINE: "microsoft_off",
        IntegrationKind.GOOGLE_WORKSPACE: "google_off",
        IntegrationKind.EXCHANGE_ONPREM: "onprem_off",
    }[kind]
    return redirect(f"/admin/integrations?done={done}")


async def onprem_configure(request: Request) -> Response:
    """Operators: verify the EWS settings with a real call, then turn Exchange
    on-premises on. The password is never rendered back (only whether one is stored)."""
    current = viewer(request)
    form = await request.form()
    entered = {
        name: str(form.get(name, ""))[: limit + 1]
        for name, limit in onprem.LIMITS.items()
        if name != "password"
    }
    entered["domains"] = str(form.get("domains", ""))[:2000]
    async with services(request).db.session() as db:
        try:
            await onprem.configure(
                db,
                services(request).calendar,
                current,
                password=str(form.get("password", ""))[:257],
                ews_url=entered["ews_url"],
                username=entered["username"],
                auth_type=entered["auth_type"],
                service_account_email=entered["service_account_email"],
                domains=entered["domains"],
            )
        except DomainError as exc:
            await db.rollback()
            return await _page(
                request, error=exc.message, onprem_entered=entered, status_code=_status(exc)
            )
    return redirect("/admin/integrations?done=onprem_on")
