"""Users: creation, passwords, profile, and rate-limited login.

Passwords are hashed with argon2. Failed logins are rate-limited per account and per
client address; an unknown email costs the same hashing work as a wrong password.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import LoginAttempt, User
from server.models.base import utcnow
from server.services import audit
from server.services.errors import NotFound, PermissionDenied, TooManyAttempts, ValidationFailed
from server.services.people import api_tokens, sessions
from server.services.validation import (
    clean_name,
    normalize_email,
    strip_controls,
    validate_time_zone,
)

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("tandem-dummy-password")
MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"Password must be at least {MIN_PASSWORD_LENGTH} characters.", field="password"
        )
    return _hasher.hash(password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    password: str | None = None,
    time_zone: str = "UTC",
    global_admin: bool = False,
    operator: bool = False,
    profile_completed: bool = False,
) -> User:
    user = User(
        email=normalize_email(email),
        name=clean_name(name),
        time_zone=validate_time_zone(time_zone),
        password_hash=hash_password(password) if password else None,
        is_global_admin=global_admin,
        is_operator=operator,
        profile_completed=profile_completed,
    )
    if await get_by_email(session, user.email) is not None:
        raise ValidationFailed(f"A user with email {user.email} already exists.", field="email")
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise ValidationFailed(
            f"A user with email {user.email} already exists.", field="email"
        ) from exc
    return user


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.exec(
        select(User).where(User.email == strip_controls(email).strip().lower())
    )
    return result.first()


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user")
    return user


async def authenticate(
    session: AsyncSession,
    email: str,
    password: str,
    *,
    client_key: str,
    max_attempts: int,
    window: timedelta,
) -> User:
    """The user for these credentials, or ValidationFailed; TooManyAttempts when throttled."""
    address = strip_controls(email).strip().lower()[:320]  # NUL must not reach the database
    keys = [f"email:{address}", f"client:{client_key[:64]}"]
    since = utcnow() - window
    await session.exec(delete(LoginAttempt).where(col(LoginAttempt.attempted_at) < since))
    counts = await session.exec(
        select(LoginAttempt.key, func.count())
        .where(col(LoginAttempt.key).in_(keys), col(LoginAttempt.attempted_at) >= since)
        .group_by(col(LoginAttempt.key))
    )
    if max((n for _key, n in counts.all()), default=0) >= max_attempts:
        await session.commit()
        raise TooManyAttempts("Too many failed sign-in attempts. Wait a few minutes and try again.")
    user = await get_by_email(session, address)
    ok = _verify(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        for key in keys:
            session.add(LoginAttempt(key=key))
        await session.commit()
        raise ValidationFailed("Email or password is incorrect.", field="password")
    if _hasher.check_needs_rehash(user.password_hash or ""):
        user.password_hash = _hasher.hash(password)
    return user


async def change_password(
    session: AsyncSession,
    user: User,
    current_password: str,
    new_password: str,
    *,
    actor: User | None = None,
    revoke_tokens: bool = False,
) -> None:
    """Check the current password, set the new one and end every session of the user (the
    caller starts a fresh one for the browser that asked). With ``revoke_tokens`` every
    API token stops working too: "sign out everywhere", integrations included. Never while
    an admin works on behalf of the user (``actor``)."""
    if actor is not None and actor.id != user.id:
        raise PermissionDenied("Only the user can change their own password.")
    if not _verify(user.password_hash, current_password):
        raise ValidationFailed("Current password is incorrect.", field="current_password")
    user.password_hash = hash_password(new_password)
    await sessions.end_all_sessions(session, user.id)
    revoked = await api_tokens.revoke_all(session, user) if revoke_tokens else 0
    audit.record(
        session,
        "user.password_changed",
        actor_id=user.id,
        subject_id=user.id,
        tokens_revoked=revoked,
    )


async def update_profile(
    session: AsyncSession,
    user: User,
    *,
    name: str,
    time_zone: str,
    complete: bool = False,
    actor: User | None = None,
) -> User:
    """Name and time zone (an admin working on behalf may help with these). The audit
    trail names the fields changed, and ``actor`` when it is not the user."""
    new_name, new_zone = clean_name(name), validate_time_zone(time_zone)
    changed = [
        field
        for field, old, new in (
            ("name", user.name, new_name),
            ("time_zone", user.time_zone, new_zone),
        )
        if old != new
    ]
    user.name, user.time_zone = new_name, new_zone
    if complete:
        user.profile_completed = True
    session.add(user)
    if changed or complete:
        audit.record(
            session,
            "user.profile_updated",
            actor_id=(actor or user).id,
            subject_id=user.id,
            fields=changed,
        )
    return user
