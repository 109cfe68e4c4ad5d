"""Changes in an organization's service mailbox flow back (Exchange on-premises).

Meetings of covered owners are created in the service account's calendar with the owner
and the attendees invited, so their answers, and edits or cancellations made there,
show up in that one mailbox. Each integration whose directory reads its mailbox's
changes (``MailboxChanges``) is read with the sync state stored on the integration, and
the changes are applied by the personal two-way sync's own code (``calendar_sync``):
the same rules for what counts, the same audit, the same emails.

The state is claimed with a conditional UPDATE in the transaction that applies the
batch, so two workers never apply one batch twice. Only the owners' upcoming meetings
written there, in programs with two-way sync on, are matched; anything else in the
mailbox is ignored (the directory reports Tandem's events only, by their UID).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import CalendarConnection, Meeting, MentoringConnection, OrganizationIntegration
from server.models.base import utcnow
from server.models.enums import CalendarStatus, MeetingStatus
from server.models.integration import INTEGRATION_ACTIVE
from server.providers.base import ProviderError, SyncTokenExpired
from server.providers.org_base import MailboxChanges
from server.services.integrations.directory import open_directory
from server.services.meetings.calendar_sync import _apply_changes, _Owner, _Seen
from server.services.meetings.delivery import MeetingDeps, deliver
from server.services.people import programs

log = logging.getLogger("tandem.meeting_sync.mailbox")

__all__ = ["sync_mailbox_changes"]


async def sync_mailbox_changes(db: AsyncSession, deps: MeetingDeps) -> int:
    """Read every active integration's service mailbox; returns how many meetings changed.
    Provider failures are logged and retried on the next run; never raises for them."""
    rows = await db.exec(
        select(OrganizationIntegration).where(
            col(OrganizationIntegration.enabled).is_(True),
            OrganizationIntegration.status == INTEGRATION_ACTIVE,
        )
    )
    integrations = list(rows.all())
    await db.commit()
    changed = 0
    for integration in integrations:
        try:
            changed += await _sync_integration(db, deps, integration)
        except Exception as exc:  # one mailbox's bug must not stop the others
            await db.rollback()
            log.warning(
                "mailbox changes of integration %s failed: %s", integration.id, type(exc).__name__
            )
    return changed


async def _owners(
    db: AsyncSession, integration_id: uuid.UUID, now: datetime
) -> dict[uuid.UUID, _Owner]:
    """Covered owners with upcoming meetings written to the service mailbox."""
    query = (
        select(Meeting, CalendarConnection, MentoringConnection.program_id)
        .join(CalendarConnection, col(CalendarConnection.user_id) == col(Meeting.owner_id))
        .join(
            MentoringConnection,
            col(MentoringConnection.id) == col(Meeting.connection_id),
            isouter=True,
        )
        .where(
            Meeting.status == MeetingStatus.SCHEDULED,
            col(Meeting.provider_event_id).is_not(None),
            col(Meeting.end_at) > now,
            CalendarConnection.status == CalendarStatus.CONNECTED,
            CalendarConnection.integration_id == integration_id,
        )
    )
    syncing: dict[uuid.UUID | None, bool] = {}
    owners: dict[uuid.UUID, _Owner] = {}
    for meeting, connection, program_id in (await db.exec(query)).all():
        if meeting.calendar_provider != connection.provider.value:
            continue
        if program_id not in syncing:
            syncing[program_id] = (await programs.settings_for(db, program_id)).two_way_sync_enabled
        if not syncing[program_id] or meeting.provider_event_id is None:
            continue
        owner = owners.setdefault(connection.user_id, _Owner(connection))
        owner.seen[meeting.provider_event_id] = _Seen(
            meeting.id, meeting.sequence, meeting.calendar_sync_state
        )
    return owners


async def _claim(
    db: AsyncSession, integration_id: uuid.UUID, expected: str | None, state: str | None
) -> bool:
    condition = (
        col(OrganizationIntegration.changes_sync_state).is_(None)
        if expected is None
        else col(OrganizationIntegration.changes_sync_state) == expected
    )
    result = await db.exec(
        update(OrganizationIntegration)
        .where(col(OrganizationIntegration.id) == integration_id, condition)
        .values(changes_sync_state=state)
    )
    return bool(result.rowcount == 1)


async def _sync_integration(
    db: AsyncSession, deps: MeetingDeps, integration: OrganizationIntegration
) -> int:
    now = utcnow()
    owners = await _owners(db, integration.id, now)
    await db.commit()
    if not owners:
        return 0  # nothing to match: the state stays, later reads catch up from it
    directory = open_directory(deps.calendar, integration)
    try:
        if not isinstance(directory, MailboxChanges):
            return 0
        expected = integration.changes_sync_state
        try:
            batch = await directory.read_changes(expected)
        except SyncTokenExpired:
            log.info("mailbox sync state of integration %s expired; reading again", integration.id)
            batch = await directory.read_changes(None)
    except ProviderError as exc:
        log.info(
            "mailbox changes of integration %s not read: %s", integration.id, type(exc).__name__
        )
        return 0
    finally:
        await directory.aclose()
    if not await _claim(db, integration.id, expected, batch.sync_token):
        await db.commit()
        return 0  # another worker applied this batch
    outcomes = []
    for owner in owners.values():
        outcomes.extend(await _apply_changes(db, owner, batch.changes, now))
    await db.commit()
    for outcome in outcomes:
        if outcome.kind is not None:
            await deliver(db, deps, outcome.meeting, outcome.kind, write_calendar=False)
    return len(outcomes)
