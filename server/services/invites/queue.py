"""Mail that survives an SMTP outage: send now, or keep it and retry with backoff.

``QueueingMailer`` wraps the real mailer. A temporary failure (server down, 4xx) stores
the whole message, encrypted because it carries signed RSVP links, and reports success
to the caller: the invitation is not lost, only late. A permanent refusal (5xx) still
raises. ``retry_queued_mail`` (a background job) resends what is due; after
``MAX_ATTEMPTS`` a message is marked failed and kept for operators.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db import Database
from server.models import QueuedMail
from server.models.base import utcnow
from server.providers.secrets import SecretBox, SecretError
from server.services.invites import Mailer, MailError

log = logging.getLogger("tandem.mail")

MAX_ATTEMPTS = 12
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=2)
_BINDING = "queued-mail"


def _delay(attempts: int) -> timedelta:
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=random.uniform(ceiling.total_seconds() / 2, ceiling.total_seconds()))


class QueueingMailer:
    def __init__(self, inner: Mailer, db: Database, secrets: SecretBox) -> None:
        self.inner = inner
        self._db = db
        self._secrets = secrets

    def __repr__(self) -> str:
        return f"QueueingMailer({self.inner!r})"

    async def send(self, message: EmailMessage) -> None:
        try:
            await self.inner.send(message)
        except MailError as exc:
            if exc.permanent:
                raise
            log.warning("mail queued for retry: %s", exc)
            async with self._db.session() as db:
                db.add(
                    QueuedMail(
                        encrypted_message=self._secrets.encrypt(
                            message.as_bytes().decode("latin-1"), binding=_BINDING
                        ),
                        attempts=1,
                        next_attempt_at=utcnow() + _delay(1),
                        last_error=str(exc)[:500],
                    )
                )
                await db.commit()


async def retry_queued_mail(
    db: AsyncSession, inner: Mailer, secrets: SecretBox, *, limit: int = 50
) -> int:
    """Resend due messages; returns how many were delivered."""
    now = utcnow()
    rows = (
        await db.exec(
            select(QueuedMail)
            .where(col(QueuedMail.failed).is_(False), col(QueuedMail.next_attempt_at) <= now)
            .order_by(col(QueuedMail.next_attempt_at))
            .limit(limit)
        )
    ).all()
    delivered = 0
    for row in rows:
        try:
            raw = secrets.decrypt(row.encrypted_message, binding=_BINDING)
            message = message_from_bytes(raw.encode("latin-1"), policy=policy.SMTP)
            assert isinstance(message, EmailMessage)
            await inner.send(message)
        except SecretError:
            row.failed, row.last_error = True, "cannot be decrypted with the configured keys"
        except MailError as exc:
            row.attempts += 1
            row.last_error = str(exc)[:500]
            if exc.permanent or row.attempts >= MAX_ATTEMPTS:
                row.failed = True
                log.warning("queued mail %s given up: %s", row.id, exc)
            else:
                row.next_attempt_at = now + _delay(row.attempts)
        else:
            await db.delete(row)
            delivered += 1
            continue
        db.add(row)
    await db.commit()
    return delivered
