"""Re-encrypting every stored secret under the newest key (``tandem secrets rotate``).

Rotation runbook: put the new key first in ``TANDEM_SECRET_KEYS`` (keep the old ones
after it), run this, then remove the old keys. Rows are re-encrypted in batches of
committed work, so an interrupted run can simply be run again.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import (
    CalendarConnection,
    OAuthFlow,
    OrganizationIntegration,
    OrganizationOAuthApp,
    QueuedMail,
)
from server.providers.secrets import SecretBox

_ENCRYPTED: list[tuple[Any, str]] = [
    (CalendarConnection, "encrypted_secret"),
    (OAuthFlow, "encrypted_flow"),
    (OrganizationIntegration, "encrypted_config"),
    (OrganizationOAuthApp, "encrypted_secret"),
    (QueuedMail, "encrypted_message"),
]
BATCH = 200


async def rotate_all(db: AsyncSession, box: SecretBox) -> int:
    """Returns how many ciphertexts were re-encrypted. Raises ``SecretError`` (and leaves
    the current batch untouched) when a ciphertext opens with none of the keys."""
    rotated = 0
    for model, column in _ENCRYPTED:
        last_id = None
        while True:
            query = select(model).order_by(col(model.id)).limit(BATCH)
            if last_id is not None:
                query = query.where(col(model.id) > last_id)
            rows = list((await db.exec(query)).all())
            if not rows:
                break
            for row in rows:
                value = getattr(row, column)
                if value:
                    setattr(row, column, box.rotate(value))
                    db.add(row)
                    rotated += 1
            await db.commit()
            last_id = rows[-1].id
    return rotated
