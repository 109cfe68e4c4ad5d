"""Administration: a program's people. Create a person (they choose a password through a
one-time setup link, emailed, or shown here when no mail server is configured), add an
existing account, give and take roles, deactivate and reactivate.

Rules, permissions and the audit trail live in ``people.provisioning`` and
``programs.add_member`` (the GraphQL mutation's service); this module reads forms and
renders. Removing a role and deactivating ask for confirmation on a page of their own,
so the step works without JavaScript.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.models.enums import ProgramRole
from server.pages.common import redirect, render, services, viewer
from server.services.errors import DomainError, NotFound, ValidationFailed
from server.services.invites import MailError
from server.services.people import accounts, programs, provisioning, setup
from server.services.validation import time_zone_names

NOTICES = {
    "person_added": "The person is added to the program.",
    "person_mailed": "The person is created and was emailed a link to choose their password.",
    "role_added": "The role is added.",
    "role_removed": "The role is removed.",
    "deactivated": "The account is deactivated: signed out everywhere, API tokens revoked.",
    "reactivated": "The account is active again.",
}
ROLE_LABELS = {
    ProgramRole.PARTICIPANT: "Participant",
    ProgramRole.MENTOR: "Mentor",
    ProgramRole.MENTEE: "Mentee",
    ProgramRole.ADMIN: "Program admin",
}


def _status(exc: DomainError) -> int:
    return {"forbidden": 403, "not_found": 404}.get(exc.code, 422)


def _uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise HTTPException(404) from None


def _base(program_id: uuid.UUID) -> str:
    return f"/admin/programs/{program_id}/people"


async def _page(request: Request, **extra: Any) -> Response:
    current = viewer(request)
    program_id = _uuid(request.path_params["program_id"])
    async with services(request).db.session() as db:
        try:
            program = await programs.get_administered_program(db, current.actor, program_id)
            people = await provisioning.people_of(db, current.actor, program_id)
        except NotFound:
            raise HTTPException(404) from None
    status = extra.pop("status_code", 200)
    context: dict[str, Any] = {
        "program": program,
        "people": people,
        "roles": ROLE_LABELS,
        "zones": time_zone_names(),
        "form": {"name": "", "email": "", "time_zone": current.actor.time_zone, "role": ""},
        "base": _base(program_id),
        "notice": NOTICES.get(request.query_params.get("notice", "")),
    }
    context.update(extra)
    return render(request, "pages/admin_people.html", context, status_code=status)


async def people_page(request: Request) -> Response:
    return await _page(request)


async def create_person(request: Request) -> Response:
    current = viewer(request)
    svc = services(request)
    program_id = _uuid(request.path_params["program_id"])
    form = await request.form()
    values = {key: str(form.get(key, ""))[:320] for key in ("name", "email", "time_zone", "role")}
    async with svc.db.session() as db:
        try:
            role = provisioning.parse_role(values["role"])
            program = await programs.get_administered_program(db, current.actor, program_id)
            user = await provisioning.create_person(
                db,
                current,
                program_id,
                email=values["email"],
                name=values["name"],
                time_zone=values["time_zone"],
                role=role,
            )
            await db.commit()
        except NotFound:
            raise HTTPException(404) from None
        except DomainError as exc:
            return await _page(request, error=exc.message, form=values, status_code=_status(exc))
    link = setup.make_setup_link(
        setup.setup_key(svc.secrets.master_key()), svc.settings.base_url, user
    )
    mailed = bool(svc.settings.smtp_host)
    if mailed:
        try:
            await setup.send_setup_link(
                svc.mailer, svc.settings.mail_from, user, link, program.name
            )
        except MailError:
            mailed = False
    if mailed:
        return redirect(f"{_base(program_id)}?notice=person_mailed", request=request)
    # No mail server: the admin hands the link over. Shown once, never stored.
    return await _page(request, created=user, setup_link=link)


async def add_existing(request: Request) -> Response:
    current = viewer(request)
    program_id = _uuid(request.path_params["program_id"])
    form = await request.form()
    email = str(form.get("email", ""))[:320]
    async with services(request).db.session() as db:
        try:
            role = provisioning.parse_role(str(form.get("role", "")))
            user = await accounts.get_by_email(db, email)
            if user is None:
                raise ValidationFailed(
                    "No account has this email; create the person instead.", field="email"
                )
            await programs.add_member(db, current, program_id, user.id, role)
            await db.commit()
        except DomainError as exc:
            if isinstance(exc, NotFound) and exc.field is None:
                raise HTTPException(404) from None
            message = (
                "No account with this email that you can add."
                if isinstance(exc, NotFound)
                else exc.message
            )
            return await _page(
                request, add_error=message, add_email=email, status_code=_status(exc)
            )
    return redirect(f"{_base(program_id)}?notice=person_added", request=request)


async def add_role(request: Request) -> Response:
    current = viewer(request)
    program_id = _uuid(request.path_params["program_id"])
    user_id = _uuid(request.path_params["user_id"])
    form = await request.form()
    async with services(request).db.session() as db:
        try:
            role = provisioning.parse_role(str(form.get("role", "")))
            await provisioning.add_role(db, current, program_id, user_id, role)
            await db.commit()
        except DomainError as exc:
            if isinstance(exc, NotFound) and exc.field is None:
                raise HTTPException(404) from None
            return await _page(request, error=exc.message, status_code=_status(exc))
    return redirect(f"{_base(program_id)}?notice=role_added", request=request)


async def _person(request: Request) -> tuple[uuid.UUID, provisioning.PersonRow, str]:
    """The program, the person in it and the program's name, or 404."""
    current = viewer(request)
    program_id = _uuid(request.path_params["program_id"])
    user_id = _uuid(request.path_params["user_id"])
    async with services(request).db.session() as db:
        try:
            program = await programs.get_administered_program(db, current.actor, program_id)
            people = await provisioning.people_of(db, current.actor, program_id)
        except NotFound:
            raise HTTPException(404) from None
    row = next((p for p in people if p.user.id == user_id), None)
    if row is None:
        raise HTTPException(404)
    return program_id, row, program.name


def _confirm(request: Request, **context: Any) -> Response:
    return render(request, "pages/admin_confirm.html", context)


async def confirm_remove_role(request: Request) -> Response:
    """Which role to take away (the one clicked is preselected), then a plain POST."""
    program_id, row, program_name = await _person(request)
    chosen = request.query_params.get("role", "")
    return render(
        request,
        "pages/admin_remove_role.html",
        {
            "person": row,
            "program_name": program_name,
            "roles": ROLE_LABELS,
            "chosen": chosen if chosen in {role.value for role in row.roles} else "",
            "action": f"{_base(program_id)}/{row.user.id}/roles/remove",
            "cancel": _base(program_id),
        },
    )


async def remove_role(request: Request) -> Response:
    current = viewer(request)
    program_id = _uuid(request.path_params["program_id"])
    user_id = _uuid(request.path_params["user_id"])
    form = await request.form()
    async with services(request).db.session() as db:
        try:
            role = provisioning.parse_role(str(form.get("role", "")))
            await provisioning.remove_role(db, current, program_id, user_id, role)
            await db.commit()
        except DomainError as exc:
            if isinstance(exc, NotFound) and exc.field is None:
                raise HTTPException(404) from None
            return await _page(request, error=exc.message, status_code=_status(exc))
    return redirect(f"{_base(program_id)}?notice=role_removed", request=request)


async def confirm_deactivate(request: Request) -> Response:
    program_id, row, _name = await _person(request)
    return _confirm(
        request,
        heading=f"Deactivate {row.user.name}",
        message=f"{row.user.name} ({row.user.email}) will be signed out everywhere, their API "
        "tokens revoked, and they will not be able to sign in. Their pairs, groups and "
        "meetings stay; you can reactivate the account later.",
        action=f"{_base(program_id)}/{row.user.id}/deactivate",
        button="Deactivate the account",
        cancel=_base(program_id),
    )


async def _set_active(request: Request, active: bool) -> Response:
    current = viewer(request)
    program_id = _uuid(request.path_params["program_id"])
    user_id = _uuid(request.path_params["user_id"])
    change = provisioning.reactivate if active else provisioning.deactivate
    async with services(request).db.session() as db:
        try:
            await change(db, current, program_id, user_id)
            await db.commit()
        except DomainError as exc:
            if isinstance(exc, NotFound) and exc.field is None:
                raise HTTPException(404) from None
            return await _page(request, error=exc.message, status_code=_status(exc))
    notice = "reactivated" if active else "deactivated"
    return redirect(f"{_base(program_id)}?notice={notice}", request=request)


async def deactivate(request: Request) -> Response:
    return await _set_active(request, False)


async def reactivate(request: Request) -> Response:
    return await _set_active(request, True)
