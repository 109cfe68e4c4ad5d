"""Calendar connect, callback, the iCloud/CalDAV form, and disconnect."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from server.models.enums import ProviderName
from server.pages.common import redirect, render, services, viewer
from server.pages.profile import settings_page
from server.services.calendars import connect as calendar_connect
from server.services.errors import DomainError

APPLE_APP_PASSWORD_HELP = "https://support.apple.com/102654"  # noqa: S105 - a help URL


async def _settings_error(request: Request, message: str, status_code: int) -> Response:
    return await settings_page(request, error=message, status_code=status_code)


def _icloud_form(request: Request, **extra: Any) -> Response:
    svc = services(request)
    context: dict[str, Any] = {
        "apple_help": APPLE_APP_PASSWORD_HELP,
        "default_url": svc.settings.caldav_default_url,
        "username": "",
        "server_url": "",
    }
    status = extra.pop("status_code", 200)
    context.update(extra)
    return render(request, "pages/connect_icloud.html", context, status_code=status)


async def connect_page(request: Request) -> Response:
    """GET: the iCloud form, or a page whose button starts the Google/Microsoft consent.
    Starting a flow writes state, so it happens only on POST (``start``)."""
    current = viewer(request)
    svc = services(request)
    try:
        provider = calendar_connect.parse_provider(request.path_params["provider"])
    except DomainError as exc:
        return await _settings_error(request, exc.message, 404)
    async with svc.db.session() as db:
        try:
            calendar_connect.require_self(current)
            await calendar_connect.require_allowed(db, current.user, provider)
        except DomainError as exc:
            return await _settings_error(request, exc.message, 403)
    if provider == ProviderName.ICLOUD:
        return _icloud_form(request)
    return render(
        request,
        "pages/connect_oauth.html",
        {"provider": provider.value, "label": calendar_connect.PROVIDER_NAMES[provider]},
    )


async def start(request: Request) -> Response:
    """POST: begin consent with Google or Microsoft and send the browser there."""
    current = viewer(request)
    svc = services(request)
    try:
        provider = calendar_connect.parse_provider(request.path_params["provider"])
    except DomainError as exc:
        return await _settings_error(request, exc.message, 404)
    async with svc.db.session() as db:
        try:
            url = await calendar_connect.start_oauth(db, svc.calendar, current, provider)
            await db.commit()
        except DomainError as exc:
            return await _settings_error(
                request, exc.message, 403 if exc.code == "forbidden" else 422
            )
    return RedirectResponse(url, status_code=303)


async def connect_icloud(request: Request) -> Response:
    current = viewer(request)
    svc = services(request)
    form = await request.form()
    username = str(form.get("username", ""))[:320]
    server_url = str(form.get("server_url", ""))[:500]
    async with svc.db.session() as db:
        try:
            await calendar_connect.connect_with_password(
                db,
                svc.calendar,
                current,
                username=username,
                password=str(form.get("app_password", ""))[:200],
                server_url=server_url,
            )
        except DomainError as exc:
            status = 403 if exc.code == "forbidden" else 422
            return _icloud_form(
                request,
                error=exc.message,
                username=username,
                server_url=server_url,
                status_code=status,
            )
    return redirect("/?notice=calendar_connected", request=request)


async def callback(request: Request) -> Response:
    current = viewer(request)
    svc = services(request)
    params = {key: value[:4096] for key, value in request.query_params.items()}
    async with svc.db.session() as db:
        try:
            provider = calendar_connect.parse_provider(request.path_params["provider"])
            await calendar_connect.finish_oauth(db, svc.calendar, current, provider, params)
        except DomainError as exc:
            return await _settings_error(
                request, exc.message, 403 if exc.code == "forbidden" else 400
            )
    return redirect("/?notice=calendar_connected")


async def disconnect(request: Request) -> Response:
    current = viewer(request)
    svc = services(request)
    async with svc.db.session() as db:
        try:
            provider = await calendar_connect.disconnect(db, svc.calendar, current)
        except DomainError as exc:
            return await _settings_error(request, exc.message, 403)
    notice = (
        "calendar_disconnected_icloud"
        if provider == ProviderName.ICLOUD
        else "calendar_disconnected"
    )
    return redirect(f"/profile/edit?tab=settings&notice={notice}#calendar", request=request)
