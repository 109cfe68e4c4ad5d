"""Recording who did what, for whom. Callers pass ids and harmless facts, never secrets."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import AuditEvent


def record(
    session: AsyncSession,
    action: str,
    *,
    actor_id: uuid.UUID | None,
    subject_id: uuid.UUID | None = None,
    target_type: str | None = None,
    target_id: uuid.UUID | str | None = None,
    **details: Any,
) -> AuditEvent:
    event = AuditEvent(
        action=action,
        actor_id=actor_id,
        subject_id=subject_id,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        details=details,
    )
    session.add(event)
    return event
