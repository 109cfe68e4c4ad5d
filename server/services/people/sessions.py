"""Server-side login sessions and "work on behalf".

The browser holds only a random token; the row holds who is logged in and, while an admin
works on behalf of a participant, whom they act for. Deleting rows really ends sessions.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, delete, exists, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import ProgramMembership, User, UserSession
from server.models.base import utcnow
from server.models.enums import ProgramRole
from server.services import audit, core_reads
from server.services.errors import NotFound, PermissionDenied, ValidationFailed
from server.services.people import access
from server.services.validation import clean_line

ACTING_LIFETIME = timedelta(minutes=30)
"""Working on behalf ends by itself after this long; the admin can start again."""

ADMIN_ON_BEHALF_MESSAGE = (
    "End working on behalf before changing programs, their settings, members or connections."
)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking: the effective user, and the real person behind the keyboard.

    ``user`` is whom the request acts as; ``actor`` differs only while an admin works on
    behalf of ``user``. Rules about data use ``user``; audit trails name both.
    """

    user: User
    actor: User
    session_id: uuid.UUID | None = None
    acting_reason: str | None = None
    actor_is_admin: bool = False  # global admin or admin of some program: shows the Admin link
    acting_until: datetime | None = None

    @property
    def acting_on_behalf(self) -> bool:
        return self.user.id != self.actor.id


def admin_as_self(who: User | Viewer) -> User:
    """The person whose admin rights an administrative change uses, refusing while they
    work on behalf of someone (administration happens as oneself, never in a participant's
    name). Services take a ``Viewer`` from pages and the API alike, so both refuse the same
    way; a bare ``User`` (the CLI, the demo) is always acting as themselves."""
    if isinstance(who, User):
        return who
    if who.acting_on_behalf:
        raise PermissionDenied(ADMIN_ON_BEHALF_MESSAGE)
    return who.actor


async def start_session(
    session: AsyncSession, user: User, *, lifetime: timedelta
) -> tuple[str, UserSession]:
    raw = secrets.token_urlsafe(32)
    row = UserSession(
        token_hash=token_hash(raw),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        expires_at=utcnow() + lifetime,
    )
    session.add(row)
    audit.record(session, "session.started", actor_id=user.id, subject_id=user.id)
    return raw, row


_SESSIONS: Table = UserSession.__table__  # type: ignore[attr-defined]
_USERS: Table = User.__table__  # type: ignore[attr-defined]
_MEMBERSHIPS: Table = ProgramMembership.__table__  # type: ignore[attr-defined]
_ADMINISTERS_SOMETHING = (
    exists()
    .where(
        _MEMBERSHIPS.c.user_id == _SESSIONS.c.user_id,
        _MEMBERSHIPS.c.role == ProgramRole.ADMIN,
    )
    .correlate(_SESSIONS)
)
# The session, its user and whether they administer a program, in one query of table
# columns (``core_reads``): every signed-in request asks for all three.
_SESSION_WITH_ACTOR = (
    select(*_SESSIONS.c, *_USERS.c, _ADMINISTERS_SOMETHING.label("administers"))
    .select_from(_SESSIONS.outerjoin(_USERS, _USERS.c.id == _SESSIONS.c.user_id))
    .where(_SESSIONS.c.token_hash == bindparam("token_hash"))
)


async def _load(session: AsyncSession, raw: str) -> tuple[UserSession, User | None, bool] | None:
    """The session row and its user, detached from ``session`` (as a closed session
    leaves them); an expired row is deleted."""
    found = await core_reads.first(session, _SESSION_WITH_ACTOR, {"token_hash": token_hash(raw)})
    if found is None:
        return None
    row = core_reads.detached_at(UserSession, found)
    split = core_reads.width(UserSession)
    user = core_reads.detached_at(User, found, split) if found[split] is not None else None
    if row.expires_at <= utcnow():
        await session.delete(row)
        await session.commit()
        return None
    return row, user, bool(found[-1])


async def load_session(session: AsyncSession, raw: str) -> UserSession | None:
    loaded = await _load(session, raw)
    return loaded[0] if loaded else None


async def signed_in(session: AsyncSession, raw: str) -> tuple[UserSession | None, Viewer | None]:
    """The session of a cookie's token and who it signs in (one query when nobody acts on
    behalf of anyone); ``(None, None)`` for an unknown or expired token."""
    loaded = await _load(session, raw)
    if loaded is None:
        return None, None
    row, user, administers = loaded
    return row, await viewer_for(session, row, actor=user, actor_is_admin=administers)


async def viewer_for(
    session: AsyncSession,
    row: UserSession,
    *,
    actor: User | None = None,
    actor_is_admin: bool | None = None,
) -> Viewer | None:
    """``actor`` (the session's user) and ``actor_is_admin`` when already read (see
    ``signed_in``), else asked here."""
    if actor is None:
        actor = await session.get(User, row.user_id)
    if actor is None or not actor.is_active:
        return None
    user = actor
    if row.acting_for_user_id is not None:
        target = await session.get(User, row.acting_for_user_id)
        expired = row.acting_since is None or row.acting_since + ACTING_LIFETIME <= utcnow()
        if expired or target is None or not await access.can_act_for(session, actor, target):
            audit.record(
                session,
                "act_on_behalf.expired",
                actor_id=actor.id,
                subject_id=row.acting_for_user_id,
            )
            row.acting_for_user_id = None
            row.acting_reason = None
            row.acting_since = None
            session.add(row)
            await session.commit()
        else:
            user = target
    if actor_is_admin is None:
        actor_is_admin = bool(await access.admin_program_ids(session, actor))
    is_admin = actor.is_global_admin or actor_is_admin
    return Viewer(
        user=user,
        actor=actor,
        session_id=row.id,
        acting_reason=row.acting_reason,
        actor_is_admin=is_admin,
        acting_until=row.acting_since + ACTING_LIFETIME
        if row.acting_since and user.id != actor.id
        else None,
    )


async def end_session(session: AsyncSession, session_id: uuid.UUID) -> None:
    await session.exec(delete(UserSession).where(col(UserSession.id) == session_id))


async def end_all_sessions(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.exec(delete(UserSession).where(col(UserSession.user_id) == user_id))


async def start_acting(
    session: AsyncSession, viewer: Viewer, target_id: uuid.UUID, reason: str
) -> User:
    """Let an admin act as a participant of a program they administer (audited)."""
    if viewer.acting_on_behalf:
        raise PermissionDenied("End the current work on behalf first.")
    if viewer.session_id is None:
        raise PermissionDenied("Working on behalf needs a signed-in browser session.")
    reason = clean_line(reason)
    if not reason:
        raise ValidationFailed("Say why you are working on behalf of this person.", field="reason")
    target = await session.get(User, target_id)
    if target is None or target.id == viewer.actor.id:
        raise NotFound("user")
    if not await access.can_act_for(session, viewer.actor, target):
        raise NotFound("user")
    row = await session.get(UserSession, viewer.session_id)
    if row is None:
        raise PermissionDenied("Your session has ended.")
    row.acting_for_user_id = target.id
    row.acting_reason = reason[:500]
    row.acting_since = utcnow()
    audit.record(
        session,
        "act_on_behalf.started",
        actor_id=viewer.actor.id,
        subject_id=target.id,
        reason=reason[:500],
    )
    return target


async def stop_acting(session: AsyncSession, viewer: Viewer) -> None:
    if not viewer.acting_on_behalf or viewer.session_id is None:
        return
    row = await session.get(UserSession, viewer.session_id)
    if row is not None:
        row.acting_for_user_id = None
        row.acting_reason = None
        row.acting_since = None
    audit.record(
        session, "act_on_behalf.ended", actor_id=viewer.actor.id, subject_id=viewer.user.id
    )
