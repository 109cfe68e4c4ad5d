"""The typed per-request context every resolver receives."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from strawberry.dataloader import DataLoader

from server.models import CalendarConnection, MentoringConnection, User
from server.models.enums import ProgramRole
from server.services.calendars import health, status
from server.services.integrations import cover
from server.services.people import access, mentoring, programs
from server.services.people.sessions import Viewer
from server.wiring import AppServices


def _loaders(
    db: AsyncSession, viewer: Viewer | None, services: AppServices
) -> dict[str, DataLoader[Any, Any]]:
    async def load_health(ids: list[uuid.UUID]) -> list[health.Health | None]:
        """Health of the people the viewer may see it for (themselves, their programs'
        members); None for the others."""
        assert viewer is not None
        visible = await health.visible_health_ids(db, viewer.user, ids)
        found = await health.health_for(db, services.calendar, [i for i in ids if i in visible])
        return [found.get(i) for i in ids]

    async def load_calendars(ids: list[uuid.UUID]) -> list[CalendarConnection | None]:
        found = await status.statuses(db, ids)
        return [found.get(i) for i in ids]

    async def load_connection_members(ids: list[uuid.UUID]) -> list[list[tuple[User, str]]]:
        grouped = await mentoring.members_by_connection(db, ids)
        return [grouped.get(i, []) for i in ids]

    async def load_program_settings(ids: list[uuid.UUID]) -> list[programs.ProgramSettings]:
        found = await programs.settings_for_many(db, ids)
        return [found[i] for i in ids]

    async def load_program_members(ids: list[uuid.UUID]) -> list[list[tuple[User, ProgramRole]]]:
        """Members of many programs, filtered once to the people the viewer may see."""
        assert viewer is not None
        grouped = await programs.members_of_many(db, ids)
        everyone = {user.id for rows in grouped.values() for user, _role in rows}
        visible = await access.visible_user_ids(db, viewer.user, everyone)
        return [[(u, r) for u, r in grouped[i] if u.id in visible] for i in ids]

    async def load_program_connections(ids: list[uuid.UUID]) -> list[list[MentoringConnection]]:
        assert viewer is not None
        grouped = await mentoring.connections_visible_in_programs(db, viewer.user, ids)
        return [grouped[i] for i in ids]

    async def load_integration_kinds(ids: list[uuid.UUID]) -> list[str | None]:
        found = await cover.kinds_by_id(db, ids)
        return [found[i].value if i in found else None for i in ids]

    return {
        "calendar_by_user": DataLoader(load_fn=load_calendars),
        "integration_kind": DataLoader(load_fn=load_integration_kinds),
        "calendar_health_by_user": DataLoader(load_fn=load_health),
        "members_by_connection": DataLoader(load_fn=load_connection_members),
        "program_settings": DataLoader(load_fn=load_program_settings),
        "program_members": DataLoader(load_fn=load_program_members),
        "program_connections": DataLoader(load_fn=load_program_connections),
    }


@dataclass
class Context:
    request: Request
    response: Response | None
    services: AppServices
    db: AsyncSession
    viewer: Viewer | None
    loaders: dict[str, DataLoader[Any, Any]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, request: Request, response: Response | None, services: AppServices, db: AsyncSession
    ) -> Context:
        return cls(
            request=request,
            response=response,
            services=services,
            db=db,
            viewer=request.state.viewer,
            loaders=_loaders(db, request.state.viewer, services),
        )

    @property
    def user(self) -> User:
        """The effective user; permission classes guarantee one is present."""
        assert self.viewer is not None
        return self.viewer.user
