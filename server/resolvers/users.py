"""Queries about people."""

from __future__ import annotations

import strawberry

from server.schema.common import parse_id
from server.schema.context import Context
from server.schema.users import User
from server.services.errors import NotFound
from server.services.people import access, accounts


async def me(info: strawberry.Info[Context, None]) -> User:
    return User.from_row(info.context.user)


async def user(info: strawberry.Info[Context, None], id: strawberry.ID) -> User | None:
    """A person the caller may see, else null (the same for "not yours" and "no such id")."""
    db = info.context.db
    try:
        user_id = parse_id(id, "user")
        if not await access.can_see_user(db, info.context.user, user_id):
            return None
        return User.from_row(await accounts.get_user(db, user_id))
    except NotFound:
        return None
