"""What the integration tests share: booking a meeting for a covered owner."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from server.models import Meeting
from server.services.meetings import booking
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
