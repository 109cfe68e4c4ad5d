"""The typed per-request context every resolver receives."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from strawberry.dataloader import DataLoader

from server.models import CalendarConnection, User
from server.services import calendars, mentoring
from server.services.sessions import Viewer
from server.web.state import AppServices


def _loaders(db: AsyncSession) -> dict[str, DataLoader[Any, Any]]:
    async def load_calendars(ids: list[uuid.UUID]) -> list[CalendarConnection | None]:
        found = await calendars.statuses(db, ids)
        return [found.get(i) for i in ids]

    async def load_connection_members(ids: list[uuid.UUID]) -> list[list[tuple[User, str]]]:
        grouped = await mentoring.members_by_connection(db, ids)
        return [grouped.get(i, []) for i in ids]

    return {
        "calendar_by_user": DataLoader(load_fn=load_calendars),
        "members_by_connection": DataLoader(load_fn=load_connection_members),
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
            loaders=_loaders(db),
        )

    @property
    def user(self) -> User:
        """The effective user; permission classes guarantee one is present."""
        assert self.viewer is not None
        return self.viewer.user
