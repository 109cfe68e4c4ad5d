"""Shapes shared by every domain: typed errors in mutation payloads, ID parsing."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TypeVar

import strawberry

from server.schema.context import Context
from server.services.errors import DomainError, NotFound

T = TypeVar("T")


@strawberry.enum
class ErrorCode(Enum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"


@strawberry.type(description="An expected failure: which input, what kind, and a sentence to show.")
class UserError:
    field: str | None
    code: ErrorCode
    message: str


def to_user_error(exc: DomainError) -> UserError:
    try:
        code = ErrorCode(exc.code)
    except ValueError:
        code = ErrorCode.INVALID
    return UserError(field=exc.field, code=code, message=exc.message)


def parse_id(raw: strawberry.ID | str, what: str, field: str | None = None) -> uuid.UUID:
    """A UUID, or NotFound: a malformed id is just an id that matches nothing."""
    try:
        return uuid.UUID(str(raw))
    except ValueError as exc:
        raise NotFound(what, field=field) from exc


async def run_mutation(
    info: strawberry.Info[Context, None], action: Callable[[], Awaitable[T]]
) -> tuple[T | None, list[UserError]]:
    """Run a service call as one transaction: commit on success; on an expected failure
    roll back and return it as a typed error."""
    db = info.context.db
    try:
        result = await action()
    except DomainError as exc:
        await db.rollback()
        return None, [to_user_error(exc)]
    await db.commit()
    return result, []
