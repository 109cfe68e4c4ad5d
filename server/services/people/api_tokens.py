"""API tokens for integrators: 256 random bits, shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta

from sqlalchemy import Table, bindparam, update
from sqlalchemy import select as select_columns
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import ApiToken, User
from server.models.base import utcnow
from server.services import audit, core_reads
from server.services.errors import NotFound, PermissionDenied
from server.services.validation import clean_name

LAST_USED_RESOLUTION = timedelta(minutes=1)
TOKEN_PREFIX = "tdm_"  # noqa: S105 - a public prefix, not a secret


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _refuse_on_behalf(owner: User, actor: User | None, verb: str) -> None:
    """Tokens are credentials: only their owner manages them, never an admin on behalf."""
    if actor is not None and actor.id != owner.id:
        raise PermissionDenied(f"Only the user can {verb} their own API tokens.")


async def create_token(
    session: AsyncSession, user: User, name: str, *, actor: User | None = None
) -> tuple[str, ApiToken]:
    _refuse_on_behalf(user, actor, "create")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=clean_name(name or "API token", what="Token name", max_length=100),
        token_hash=_digest(raw),
        prefix=raw[: len(TOKEN_PREFIX) + 4],
    )
    session.add(token)
    audit.record(
        session,
        "api_token.created",
        actor_id=user.id,
        subject_id=user.id,
        target_type="api_token",
        target_id=token.id,
    )
    return raw, token


_TOKENS: Table = ApiToken.__table__  # type: ignore[attr-defined]
_USERS: Table = User.__table__  # type: ignore[attr-defined]
_TOKEN_AND_OWNER = (
    select_columns(_TOKENS.c.id, _TOKENS.c.token_hash, _TOKENS.c.last_used_at, *_USERS.c)
    .join_from(_TOKENS, _USERS, _USERS.c.id == _TOKENS.c.user_id)
    .where(_TOKENS.c.token_hash == bindparam("digest"), _TOKENS.c.revoked_at.is_(None))
)
"""Built once, of table columns (``core_reads``): every API call asks."""
_MARK_USED = (
    update(_TOKENS)
    .where(_TOKENS.c.id == bindparam("token_id"))
    .values(last_used_at=bindparam("now"))
)


async def user_for_token(session: AsyncSession, raw: str) -> User | None:
    """The active user owning this token (detached from ``session``), or None. The hash
    is compared in constant time. Marks the token used, at most once a minute, and
    commits that."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    digest = _digest(raw)
    found = await core_reads.first(session, _TOKEN_AND_OWNER, {"digest": digest})
    if found is None:
        return None
    token_id, token_hash, last_used_at = found[0], found[1], found[2]
    user = core_reads.detached_at(User, found, 3)
    if not hmac.compare_digest(token_hash, digest) or not user.is_active:
        return None
    now = utcnow()
    if last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION:
        # At most one write a minute per token, not one per call.
        await core_reads.write(session, _MARK_USED, {"token_id": token_id, "now": now})
        await session.commit()
    return user


async def list_tokens(session: AsyncSession, user: User) -> list[ApiToken]:
    result = await session.exec(
        select(ApiToken)
        .where(ApiToken.user_id == user.id, col(ApiToken.revoked_at).is_(None))
        .order_by(col(ApiToken.created_at).desc())
    )
    return list(result.all())


async def revoke_all(session: AsyncSession, user: User) -> int:
    """Revoke every live token of the user (after a password change that asks for it);
    returns how many. Callers have checked that the user acts for themselves."""
    now = utcnow()
    tokens = await list_tokens(session, user)
    for token in tokens:
        token.revoked_at = now
        session.add(token)
    if tokens:
        audit.record(
            session,
            "api_token.revoked_all",
            actor_id=user.id,
            subject_id=user.id,
            count=len(tokens),
        )
    return len(tokens)


async def revoke_token(
    session: AsyncSession, user: User, token_id: uuid.UUID, *, actor: User | None = None
) -> None:
    _refuse_on_behalf(user, actor, "revoke")
    token = await session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id or token.revoked_at is not None:
        raise NotFound("token")
    token.revoked_at = utcnow()
    audit.record(
        session,
        "api_token.revoked",
        actor_id=user.id,
        subject_id=user.id,
        target_type="api_token",
        target_id=token.id,
    )
