"""Permission classes. Object-level rules (who sees which user, program, poll) live in the
services; these only decide whether a field may be asked at all."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.permission import BasePermission

from server.schema.context import Context
from server.services.people.sessions import ADMIN_ON_BEHALF_MESSAGE


class IsAuthenticated(BasePermission):
    message = "Sign in or send an API token (Authorization: Bearer)."

    def has_permission(
        self, source: Any, info: strawberry.Info[Context, None], **kwargs: Any
    ) -> bool:
        return info.context.viewer is not None


class IsSelf(BasePermission):
    """Only the person themselves, never an admin working on behalf (credential actions)."""

    message = (
        "Only the user can do this for their own account; it is refused while working on behalf."
    )

    def has_permission(
        self, source: Any, info: strawberry.Info[Context, None], **kwargs: Any
    ) -> bool:
        viewer = info.context.viewer
        return viewer is not None and not viewer.acting_on_behalf


class NotActingOnBehalf(BasePermission):
    """Administration happens as oneself: while working on behalf of a participant, an
    admin cannot provision programs, members or connections in their name."""

    message = ADMIN_ON_BEHALF_MESSAGE  # the services refuse with the same words

    def has_permission(
        self, source: Any, info: strawberry.Info[Context, None], **kwargs: Any
    ) -> bool:
        viewer = info.context.viewer
        return viewer is not None and not viewer.acting_on_behalf
