"""What the integration tests share: booking a meeting for a covered owner, and checking
that disabling an integration leaves nothing of it behind."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import (
    AuditEvent,
    BusyBlock,
    CalendarConnection,
    Meeting,
    OrganizationIntegration,
)
from server.models.enums import IntegrationKind
from server.services.integrations import setup
from server.services.meetings import booking
from server.services.people.sessions import Viewer
from server.wiring import AppServices
from tests.meetings_support import viewer_of, weekday_slot


async def book_for_covered_owner(services: AppServices, mentor_id: uuid.UUID) -> Meeting:
    """Book the mentor's pair meeting and check it went to the organization's calendar:
    the provider sends the invitations and the write is done."""
    async with services.db.session() as db:
        mentor = await viewer_of(services, mentor_id)
        pair = (
            await db.exec(
                text("SELECT connection_id FROM connection_member WHERE user_id = :u").bindparams(
                    u=mentor_id
                )
            )
        ).first()
        assert pair is not None
        meeting = await booking.schedule_meeting(
            db,
            services.meetings,
            mentor,
            connection_id=uuid.UUID(str(pair[0])),
            start=weekday_slot(days=4),
            duration_minutes=30,
            title="Mentoring chat",
            check_availability=False,
        )
        row = await db.get(Meeting, meeting.id)
        assert row is not None
        assert row.invitations_by == "provider"
        assert row.calendar_sync_state == "synced", row.calendar_error
        return row


async def disable_and_check_gone(
    db: AsyncSession,
    services: AppServices,
    viewer: Viewer,
    kind: IntegrationKind,
    integration_id: uuid.UUID,
    covered_id: uuid.UUID,
) -> set[str]:
    """Disable the integration and check its row, the covered person's connection and busy
    blocks are gone. Returns the audited actions for the caller's own checks."""
    assert await setup.disable(db, services.calendar, viewer, kind)
    assert await db.get(OrganizationIntegration, integration_id) is None
    assert (
        await db.exec(select(CalendarConnection).where(CalendarConnection.user_id == covered_id))
    ).first() is None
    assert (await db.exec(select(BusyBlock).where(BusyBlock.user_id == covered_id))).first() is None
    return {a.action for a in (await db.exec(select(AuditEvent))).all()}
