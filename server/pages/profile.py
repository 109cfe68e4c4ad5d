"""Edit Profile (Profile, Settings, Security tabs), first-time onboarding and API tokens."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.pages.auth import set_session_cookie
from server.pages.common import redirect, render, services, viewer
from server.services.calendars import health as calendar_health
from server.services.calendars import status as calendar_status
from server.services.errors import DomainError
from server.services.integrations import cover
from server.services.integrations.directory import KIND_LABELS
from server.services.people import accounts, api_tokens, programs, sessions
from server.services.validation import time_zone_names

TABS = ("profile", "settings", "security")


def _status(exc: DomainError) -> int:
    return {"forbidden": 403, "not_found": 404}.get(exc.code, 422)


async def _page(request: Request, tab: str, **extra: Any) -> Response:
    current = viewer(request)
    async with services(request).db.session() as db:
        tokens = await api_tokens.list_tokens(db, current.user) if tab == "settings" else []
        calendar = await calendar_status.connection_for(db, current.user.id)
        push_paused = calendar is not None and await calendar_status.push_paused(
            db, current.user.id
        )
        settings = await programs.settings_for_user(db, current.user.id)
        managed = await cover.managing_kind(db, calendar)
        health = (
            (
                await calendar_health.health_for(db, services(request).calendar, [current.user.id])
            ).get(current.user.id)
            if tab == "settings"
            else None
        )
    context: dict[str, Any] = {
        "managed_by": KIND_LABELS[managed] if managed else None,
        "replaced_label": calendar_status.PROVIDER_LABELS.get(calendar.replaced_provider or "")
        if calendar is not None and managed
        else None,
        "tab": tab,
        "tokens": tokens,
        "calendar": calendar,
        "push_paused": push_paused,
        "health": health,
        "allowed_providers": settings.allowed_providers,
        "provider_labels": calendar_status.PROVIDER_LABELS,
        "zones": time_zone_names(),
        "form_name": current.user.name,
        "form_zone": current.user.time_zone,
    }
    context.update(extra)
    status = context.pop("status_code", 200)
    return render(request, "pages/profile_edit.html", context, status_code=status)


async def settings_page(request: Request, *, error: str, status_code: int) -> Response:
    """The Settings tab showing an error (used by the calendar pages)."""
    return await _page(request, "settings", error=error, status_code=status_code)


async def edit(request: Request) -> Response:
    tab = request.query_params.get("tab", "profile")
    return await _page(request, tab if tab in TABS else "profile")


async def save_profile(request: Request) -> Response:
    current = viewer(request)
    form = await request.form()
    name, zone = str(form.get("name", "")), str(form.get("time_zone", ""))
    async with services(request).db.session() as db:
        try:
            user = await accounts.get_user(db, current.user.id)
            await accounts.update_profile(db, user, name=name, time_zone=zone, actor=current.actor)
        except DomainError as exc:
            return await _page(
                request,
                "profile",
                error=exc.message,
                form_name=name,
                form_zone=zone,
                status_code=422,
            )
        await db.commit()
    return redirect("/profile/edit?tab=profile&notice=profile_saved", request=request)


async def change_password(request: Request) -> Response:
    current = viewer(request)
    form = await request.form()
    svc = services(request)
    async with svc.db.session() as db:
        user = await accounts.get_user(db, current.user.id)
        try:
            await accounts.change_password(
                db,
                user,
                str(form.get("current_password", "")),
                str(form.get("new_password", "")),
                actor=current.actor,
                revoke_tokens=form.get("revoke_everything") == "on",
            )
        except DomainError as exc:
            return await _page(request, "security", error=exc.message, status_code=_status(exc))
        raw, _row = await sessions.start_session(
            db, user, lifetime=timedelta(seconds=svc.settings.session_max_age_seconds)
        )
        await db.commit()
    notice = "password_changed_everywhere" if form.get("revoke_everything") == "on" else None
    response = redirect(f"/profile/edit?tab=security&notice={notice or 'password_changed'}")
    set_session_cookie(response, raw, request)
    return response


async def create_token(request: Request) -> Response:
    current = viewer(request)
    form = await request.form()
    async with services(request).db.session() as db:
        try:
            raw, _token = await api_tokens.create_token(
                db, current.user, str(form.get("name", "")), actor=current.actor
            )
        except DomainError as exc:
            return await _page(request, "settings", error=exc.message, status_code=_status(exc))
        await db.commit()
    return await _page(request, "settings", new_token=raw)


async def revoke_token(request: Request) -> Response:
    current = viewer(request)
    try:
        token_id = uuid.UUID(request.path_params["token_id"])
    except ValueError:
        token_id = uuid.uuid4()
    async with services(request).db.session() as db:
        try:
            await api_tokens.revoke_token(db, current.user, token_id, actor=current.actor)
        except DomainError as exc:
            return await _page(request, "settings", error=exc.message, status_code=_status(exc))
        await db.commit()
    return redirect("/profile/edit?tab=settings&notice=token_revoked#api-tokens", request=request)


async def onboarding(request: Request) -> Response:
    current = viewer(request)
    step = "calendar" if current.user.profile_completed else "profile"
    return render(
        request,
        "pages/onboarding.html",
        {
            "step": step,
            "zones": time_zone_names(),
            "form_name": current.user.name,
            "form_zone": current.user.time_zone,
            "profile_action": "/onboarding",
            "submit_label": "Continue",
            # A small script puts the browser's zone in the field; without JavaScript
            # the stored zone stays the default.
            "browser_zone": True,
        },
    )


async def complete_onboarding(request: Request) -> Response:
    current = viewer(request)
    form = await request.form()
    name, zone = str(form.get("name", "")), str(form.get("time_zone", ""))
    async with services(request).db.session() as db:
        try:
            user = await accounts.get_user(db, current.user.id)
            await accounts.update_profile(
                db, user, name=name, time_zone=zone, complete=True, actor=current.actor
            )
        except DomainError as exc:
            return render(
                request,
                "pages/onboarding.html",
                {
                    "step": "profile",
                    "error": exc.message,
                    "zones": time_zone_names(),
                    "form_name": name,
                    "form_zone": zone,
                    "profile_action": "/onboarding",
                    "submit_label": "Continue",
                },
                status_code=422,
            )
        await db.commit()
        # A first sign-in in a covered domain is connected here, and then has nothing
        # to connect: the calendar step is skipped.
        await cover.reconcile_user(db, services(request).calendar, current.user.id)
        calendar = await calendar_status.connection_for(db, current.user.id)
    if calendar is not None and calendar.integration_id is not None:
        return redirect("/", request=request)
    return redirect("/onboarding", request=request)
