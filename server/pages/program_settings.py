"""Program Settings (General and Features tabs) for program and global administrators.

Rules (who may change what, valid ranges, the audit trail) live in
``programs.update_settings``; this page only reads the form, sends the fields that
differ from the current settings, and shows what the service says.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.models import Program
from server.models.enums import ProviderName
from server.pages.common import redirect, render, services, viewer
from server.services.calendars import status as calendar_status
from server.services.errors import DomainError, NotFound, ValidationFailed
from server.services.people import programs

TABS = ("general", "features")
HOURS_EARLIEST = tuple(range(0, 24))
HOURS_LATEST = tuple(range(1, 25))
# Service field names (camelCase, as the API reports them) -> form input ids.
FIELD_INPUTS = {
    "allowedProviders": "provider-google",
    "earliestHour": "earliest_hour",
    "latestHour": "latest_hour",
    "minimumNoticeHours": "minimum_notice_hours",
    "bufferMinutes": "buffer_minutes",
}


def _program_id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["program_id"])
    except ValueError:
        raise HTTPException(404) from None


def _tab(raw: object) -> str:
    return raw if isinstance(raw, str) and raw in TABS else "general"


async def _load(request: Request) -> tuple[Program, programs.ProgramSettings]:
    """The program and its settings, or 404 for anyone who does not administer it."""
    actor = viewer(request).actor
    program_id = _program_id(request)
    async with services(request).db.session() as db:
        try:
            program = await programs.get_administered_program(db, actor, program_id)
        except NotFound:
            raise HTTPException(404) from None
        return program, await programs.settings_for(db, program_id)


def _page(
    request: Request,
    program: Program,
    settings: programs.ProgramSettings,
    tab: str,
    *,
    form: dict[str, Any] | None = None,
    error: DomainError | None = None,
    status_code: int = 200,
) -> Response:
    values: dict[str, Any] = {
        "allowed_providers": [p.value for p in settings.allowed_providers],
        "allow_weekends": settings.allow_weekends,
        "earliest_hour": settings.earliest_hour,
        "latest_hour": settings.latest_hour,
        "minimum_notice_hours": settings.minimum_notice_hours,
        "buffer_minutes": settings.buffer_minutes,
        "two_way_sync_enabled": settings.two_way_sync_enabled,
        "scheduling_assistant_enabled": settings.scheduling_assistant_enabled,
        "group_polls_enabled": settings.group_polls_enabled,
    }
    values.update(form or {})
    return render(
        request,
        "pages/program_settings.html",
        {
            "program": program,
            "settings": settings,
            "tab": tab,
            "values": values,
            "error": error.message if error else None,
            "error_input": FIELD_INPUTS.get(error.field or "") if error else None,
            "providers": [
                (p.value, calendar_status.PROVIDER_LABELS[p.value]) for p in ProviderName
            ],
            "hours_earliest": HOURS_EARLIEST,
            "hours_latest": HOURS_LATEST,
            "is_operator": viewer(request).actor.is_operator,
            "action": f"/admin/programs/{program.id}/settings",
        },
        status_code=status_code,
    )


async def settings_page(request: Request) -> Response:
    program, settings = await _load(request)
    return _page(request, program, settings, _tab(request.query_params.get("tab")))


def _int(form: FormData, name: str, label: str, field: str) -> int:
    raw = str(form.get(name, "")).strip()
    try:
        return int(raw)
    except ValueError:
        raise ValidationFailed(f"{label} must be a whole number.", field=field) from None


def _submitted(form: FormData, tab: str) -> dict[str, Any]:
    """The form's values, as the page shows them back after an error."""
    if tab == "general":
        return {
            "allowed_providers": [str(v) for v in form.getlist("allowed_providers")],
            "allow_weekends": form.get("allow_weekends") == "on",
            "earliest_hour": str(form.get("earliest_hour", "")),
            "latest_hour": str(form.get("latest_hour", "")),
            "minimum_notice_hours": str(form.get("minimum_notice_hours", "")),
            "buffer_minutes": str(form.get("buffer_minutes", "")),
        }
    return {
        name: form.get(name) == "on"
        for name in (
            "two_way_sync_enabled",
            "scheduling_assistant_enabled",
            "group_polls_enabled",
        )
    }


def _change(
    form: FormData, tab: str, current: programs.ProgramSettings, operator: bool
) -> programs.SettingsChange:
    """Only fields that differ from ``current``: unchanged values stay inherited from the
    organization, and the audit trail records real changes only."""
    wanted: dict[str, Any]
    if tab == "general":
        names = {str(v) for v in form.getlist("allowed_providers")}
        wanted = {
            "allowed_providers": tuple(p for p in ProviderName if p.value in names),
            "allow_weekends": form.get("allow_weekends") == "on",
            "earliest_hour": _int(form, "earliest_hour", "Earliest hour", "earliestHour"),
            "latest_hour": _int(form, "latest_hour", "Latest hour", "latestHour"),
            "minimum_notice_hours": _int(
                form, "minimum_notice_hours", "Minimum notice", "minimumNoticeHours"
            ),
            "buffer_minutes": _int(form, "buffer_minutes", "Buffer", "bufferMinutes"),
        }
    else:
        wanted = {"two_way_sync_enabled": form.get("two_way_sync_enabled") == "on"}
        # Non-operators never see these switches, so an absent box means "not shown", not
        # "off"; a ticked one is passed on for the service to refuse.
        for name in ("scheduling_assistant_enabled", "group_polls_enabled"):
            if operator or form.get(name) == "on":
                wanted[name] = form.get(name) == "on"
    changed = {name: value for name, value in wanted.items() if getattr(current, name) != value}
    return programs.SettingsChange(**changed)


async def save_settings(request: Request) -> Response:
    current = viewer(request)
    program, settings = await _load(request)
    form = await request.form()
    tab = _tab(form.get("tab"))
    try:
        change = _change(form, tab, settings, current.actor.is_operator)
    except DomainError as exc:
        return _page(
            request, program, settings, tab, form=_submitted(form, tab), error=exc, status_code=422
        )
    if change.given():
        async with services(request).db.session() as db:
            try:
                await programs.update_settings(db, current, program.id, change)
            except DomainError as exc:
                status = {"not_found": 404, "forbidden": 403}.get(exc.code, 422)
                return _page(
                    request,
                    program,
                    settings,
                    tab,
                    form=_submitted(form, tab),
                    error=exc,
                    status_code=status,
                )
            await db.commit()
    return redirect(
        f"/admin/programs/{program.id}/settings?tab={tab}&notice=settings_saved", request=request
    )
