"""Integrations → Your own OAuth apps: an organization's Google Cloud or Entra app.

Who may see and change it, validation, reconnection of existing grants and the audit
trail live in ``services.calendars.oauth_apps``; this page reads forms and shows results.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.pages.common import redirect, render, services, viewer
from server.services.calendars import oauth_apps
from server.services.errors import DomainError

PATH = "/admin/integrations/apps"


async def _page(
    request: Request,
    *,
    error: DomainError | None = None,
    error_provider: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    app_services = services(request)
    current = viewer(request)
    async with app_services.db.session() as db:
        try:
            saved = await oauth_apps.list_apps(db, current)
        except DomainError as exc:
            if not current.actor.is_global_admin:
                raise HTTPException(404) from None
            saved, error, status_code = {}, exc, 403  # a global admin working on behalf
    marked = request.query_params.get("reconnect", "")
    return render(
        request,
        "pages/oauth_apps.html",
        {
            "registrations": oauth_apps.registrations(app_services.calendar),
            "saved": {provider.value: view for provider, view in saved.items()},
            "names": {p.value: name for p, name in oauth_apps.APP_NAMES.items()},
            "error": error.message if error else None,
            "error_field": error.field if error else None,
            "error_provider": error_provider,
            "form": form or {},
            "reconnect": int(marked) if marked.isdigit() else None,
            "action": PATH,
        },
        status_code=status_code,
    )


async def apps_page(request: Request) -> Response:
    return await _page(request)


async def save_app(request: Request) -> Response:
    provider = str(request.path_params["provider"])
    form = await request.form()
    fields = {name: str(form.get(name, "")) for name in ("client_id", "client_secret", "tenant")}
    app_services = services(request)
    async with app_services.db.session() as db:
        try:
            marked = await oauth_apps.save_app(
                db,
                app_services.calendar,
                viewer(request),
                provider,
                client_id=fields["client_id"],
                client_secret=fields["client_secret"],
                tenant=fields["tenant"] or None,
            )
        except DomainError as exc:
            if exc.code == "forbidden" and not viewer(request).actor.is_global_admin:
                raise HTTPException(404) from None
            # The secret is never shown back, even after an error.
            shown = {"client_id": fields["client_id"], "tenant": fields["tenant"]}
            return await _page(
                request,
                error=exc,
                error_provider=provider,
                form=shown,
                status_code=403 if exc.code == "forbidden" else 422,
            )
    return redirect(f"{PATH}?notice=oauth_app_saved&reconnect={marked}", request=request)


async def remove_app(request: Request) -> Response:
    provider = str(request.path_params["provider"])
    form = await request.form()
    app_services = services(request)
    if form.get("confirm") != "yes":
        return await _page(
            request,
            error=DomainError("Tick the box to confirm that these calendars must be reconnected."),
            error_provider=provider,
            status_code=422,
        )
    async with app_services.db.session() as db:
        try:
            marked = await oauth_apps.remove_app(db, viewer(request), provider)
        except DomainError as exc:
            if exc.code == "forbidden" and not viewer(request).actor.is_global_admin:
                raise HTTPException(404) from None
            status = {"not_found": 404, "forbidden": 403}.get(exc.code, 422)
            return await _page(request, error=exc, error_provider=provider, status_code=status)
    return redirect(f"{PATH}?notice=oauth_app_removed&reconnect={marked}", request=request)
