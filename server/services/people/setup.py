"""One-time account setup links: how a person an administrator created picks a password.

A link is a signed token (``invites.links``) naming the user and a fingerprint of their
current password hash and active flag. Setting the password changes the fingerprint, so
the link works once; deactivating the person kills it too. It expires after
``SETUP_LINK_LIFETIME``. Nothing is stored: there is no table of outstanding links.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import User
from server.models.base import utcnow
from server.services import audit
from server.services.errors import NotFound, ValidationFailed
from server.services.invites import Mailer, notification_message
from server.services.invites.links import InvalidLink, derive_key, sign, verify
from server.services.people import accounts

SETUP_PURPOSE = "account_setup"
SETUP_LINK_LIFETIME = timedelta(days=7)

__all__ = [
    "SETUP_LINK_LIFETIME",
    "complete_setup",
    "make_setup_link",
    "read_setup_link",
    "send_setup_link",
    "setup_key",
]


def setup_key(master: bytes) -> bytes:
    """The signing key of setup links, derived for this purpose only."""
    return derive_key(master, SETUP_PURPOSE)


def _fingerprint(user: User) -> str:
    state = f"{user.password_hash or '-'}|{user.is_active}"
    return hashlib.sha256(state.encode()).hexdigest()[:24]


def make_setup_link(key: bytes, base_url: str, user: User, *, now: datetime | None = None) -> str:
    """The URL a person opens to choose their password (as sensitive as a password reset)."""
    expires = (now or utcnow()) + SETUP_LINK_LIFETIME
    token = sign(key, SETUP_PURPOSE, {"u": user.id.hex, "f": _fingerprint(user)}, expires)
    return f"{base_url.rstrip('/')}/setup/{token}"


async def read_setup_link(
    session: AsyncSession, key: bytes, token: str, *, now: datetime | None = None
) -> User:
    """The person a still-valid link is for; ``NotFound`` for a used, expired, forged or
    stale link (one message for all: the page cannot tell which)."""
    try:
        claims = verify(key, SETUP_PURPOSE, token, now or utcnow())
        user_id = uuid.UUID(hex=str(claims["u"]))
    except (InvalidLink, KeyError, ValueError):
        raise NotFound("setup link") from None
    user = await session.get(User, user_id)
    if user is None or not user.is_active or claims.get("f") != _fingerprint(user):
        raise NotFound("setup link")
    return user


async def complete_setup(
    session: AsyncSession, key: bytes, token: str, password: str, confirm: str
) -> User:
    """Set the first password through a valid link; the link stops working."""
    user = await read_setup_link(session, key, token)
    if password != confirm:
        raise ValidationFailed("The two passwords differ.", field="confirm")
    user.password_hash = accounts.hash_password(password)
    session.add(user)
    audit.record(session, "user.setup_completed", actor_id=user.id, subject_id=user.id)
    return user


async def send_setup_link(
    mailer: Mailer, mail_from: str, user: User, link: str, program_name: str
) -> None:
    """Email the link to the new person. Raises ``MailError`` when delivery fails."""
    text = (
        f"Hello {user.name},\n\n"
        f"An administrator of {program_name} added you to Tandem, which finds meeting "
        "times with your mentoring partners.\n\n"
        f"Choose your password here (the link works once, for 7 days):\n{link}\n\n"
        "Then connect your calendar so your partners see when you are busy; Tandem reads "
        "only busy times, never what your events are.\n"
    )
    await mailer.send(
        notification_message(
            user.email, f"Your Tandem account for {program_name}", text, None, mail_from
        )
    )
