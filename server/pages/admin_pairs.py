"""Administration: a program's pairs and groups. Create a pair (mentor and mentee), create
a group, add and remove group members (removal asks for confirmation on its own page, so
it works without JavaScript).

Rules and the audit trail live in ``people.mentoring`` (``create_connection`` is the
GraphQL mutation's service too); this module reads forms and renders.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.models.enums import ConnectionKind
from server.pages.common import redirect, render, services, viewer
from server.services.errors import DomainError, NotFound, ValidationFailed
from server.services.people import mentoring, programs

NOTICES = {
    "pair_created": "The pair is created.",
    "group_created": "The group is created.",
    "member_added": "The member is added to the group.",
    "member_removed": "The member is removed from the group.",
}


def _status(exc: DomainError) -> int:
    return {"forbidden": 403, "not_found": 404}.get(exc.code, 422)


def _uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise HTTPException(404) from None


def _form_id(form: FormData, name: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(form.get(name, "")))
    except ValueError:
        raise ValidationFailed("Choose a person.", field=field) from None


def _base(program_id: uuid.UUID) -> str:
    return f"/admin/programs/{program_id}/connections"


async def _page(request: Request, program_id: uuid.UUID, **extra: Any) -> Response:
    actor = viewer(request).actor
    async with services(request).db.session() as db:
        try:
            program = await programs.get_administered_program(db, actor, program_id)
        except NotFound:
            raise HTTPException(404) from None
        people = await programs.members(db, program_id)
        connections = await mentoring.connections_in_program(db, program_id)
        members = await mentoring.members_by_connection(db, [c.id for c in connections])
    everyone: dict[uuid.UUID, Any] = {}
    roles: dict[uuid.UUID, list[str]] = {}
    for user, role in people:
        everyone[user.id] = user
        roles.setdefault(user.id, []).append(role.value)
    status = extra.pop("status_code", 200)
    context: dict[str, Any] = {
        "program": program,
        # Only active accounts can join; deactivated members still show in their groups.
        "people": [user for user in everyone.values() if user.is_active],
        "roles": roles,
        "pairs": [c for c in connections if c.kind == ConnectionKind.PAIR],
        "groups": [c for c in connections if c.kind == ConnectionKind.GROUP],
        "members": members,
        "base": _base(program_id),
        "notice": NOTICES.get(request.query_params.get("notice", "")),
        "form": {},
    }
    context.update(extra)
    return render(request, "pages/admin_pairs.html", context, status_code=status)


async def connections_page(request: Request) -> Response:
    return await _page(request, _uuid(request.path_params["program_id"]))


async def create_pair(request: Request) -> Response:
    current = viewer(request)
    program_id = _uuid(request.path_params["program_id"])
    form = await request.form()
    async with services(request).db.session() as db:
        try:
            mentor = _form_id(form, "mentor_id", "mentorId")
            mentee = _form_id(form, "mentee_id", "menteeId")
            if mentor == mentee:
                raise ValidationFailed("Choose two different people.", field="menteeId")
            await mentoring.create_connection(
                db,
                current,
                program_id=program_id,
                member_ids=[mentor, mentee],
                kind=ConnectionKind.PAIR,
                name=str(form.get("name", ""))[:200] or None,
                mentor_id=mentor,
            )
            await db.commit()
        except DomainError as exc:
            if isinstance(exc, NotFound) and exc.field is None:
                raise HTTPException(404) from None
            return await _page(
                request, program_id, pair_error=exc.message, status_code=_status(exc)
            )
    return redirect(f"{_base(program_id)}?notice=pair_created", request=request)


async def create_group(request: Request) -> Response:
    current = viewer(request)
    program_id = _uuid(request.path_params["program_id"])
    form = await request.form()
    name = str(form.get("name", ""))[:200]
    picked = [str(value) for value in form.getlist("member_ids")][: mentoring.MAX_GROUP_SIZE + 1]
    async with services(request).db.session() as db:
        try:
            member_ids = []
            for raw in picked:
                try:
                    member_ids.append(uuid.UUID(raw))
                except ValueError:
                    raise ValidationFailed(
                        "Choose people of the program.", field="memberIds"
                    ) from None
            if not name.strip():
                raise ValidationFailed("Give the group a name.", field="name")
            organizer = None
            if form.get("organizer_id"):
                organizer = _form_id(form, "organizer_id", "organizerId")
            await mentoring.create_connection(
                db,
                current,
                program_id=program_id,
                member_ids=member_ids,
                kind=ConnectionKind.GROUP,
                name=name,
                organizer_id=organizer,
            )
            await db.commit()
        except DomainError as exc:
            if isinstance(exc, NotFound) and exc.field is None:
                raise HTTPException(404) from None
            return await _page(
                request,
                program_id,
                group_error=exc.message,
                form={"name": name, "member_ids": picked},
                status_code=_status(exc),
            )
    return redirect(f"{_base(program_id)}?notice=group_created", request=request)


async def add_member(request: Request) -> Response:
    current = viewer(request)
    program_id = _uuid(request.path_params["program_id"])
    connection_id = _uuid(request.path_params["connection_id"])
    form = await request.form()
    async with services(request).db.session() as db:
        try:
            _actor, connection = await mentoring.administered_connection(db, current, connection_id)
            if connection.program_id != program_id:
                raise NotFound("connection")
            user_id = _form_id(form, "user_id", "userId")
            await mentoring.add_connection_member(db, current, connection_id, user_id)
            await db.commit()
        except DomainError as exc:
            if isinstance(exc, NotFound) and exc.field is None:
                raise HTTPException(404) from None
            return await _page(request, program_id, error=exc.message, status_code=_status(exc))
    return redirect(f"{_base(program_id)}?notice=member_added", request=request)


async def _member(request: Request) -> tuple[uuid.UUID, Any, Any]:
    current = viewer(request)
    program_id = _uuid(request.path_params["program_id"])
    connection_id = _uuid(request.path_params["connection_id"])
    user_id = _uuid(request.path_params["user_id"])
    async with services(request).db.session() as db:
        try:
            _actor, connection = await mentoring.administered_connection(
                db, current.actor, connection_id
            )
        except NotFound:
            raise HTTPException(404) from None
        members = (await mentoring.members_by_connection(db, [connection.id]))[connection.id]
    person = next((user for user, _role in members if user.id == user_id), None)
    if connection.program_id != program_id or person is None:
        raise HTTPException(404)
    return program_id, connection, person


async def confirm_remove_member(request: Request) -> Response:
    program_id, connection, person = await _member(request)
    return render(
        request,
        "pages/admin_confirm.html",
        {
            "heading": f"Remove {person.name} from {connection.name}",
            "message": f"{person.name} will leave the group {connection.name}. Meetings and "
            "polls already made stay as they are.",
            "action": f"{_base(program_id)}/{connection.id}/members/{person.id}/remove",
            "button": "Remove from the group",
            "cancel": _base(program_id),
        },
    )


async def remove_member(request: Request) -> Response:
    current = viewer(request)
    program_id, connection, person = await _member(request)
    async with services(request).db.session() as db:
        try:
            await mentoring.remove_connection_member(db, current, connection.id, person.id)
            await db.commit()
        except DomainError as exc:
            return await _page(request, program_id, error=exc.message, status_code=_status(exc))
    return redirect(f"{_base(program_id)}?notice=member_removed", request=request)
