"""Automatic connection of covered people, and the coverage report.

Everyone whose address is in an active integration's domains gets a calendar connection
linked to the integration (no personal secret), so busy readers, ``User.calendar``,
meetings and coverage work unchanged. ``reconcile`` runs when an integration turns on,
on every batched-sync tick (new sign-ups, changed addresses) and can be called for one
user. A person who had a personal connection keeps exactly one calendar: the personal
one is revoked and removed, and ``replaced_provider`` tells them so.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import (
    BusyBlock,
    CalendarConnection,
    OrganizationIntegration,
    ProgramMembership,
    User,
    busy_version,
)
from server.models.enums import CalendarStatus, IntegrationKind
from server.models.integration import INTEGRATION_ACTIVE
from server.providers.org_base import UncoveredReason
from server.services import audit
from server.services.calendars import connect
from server.services.calendars.deps import CalendarDeps
from server.services.integrations.directory import CALENDAR_LABELS, PROVIDER_FOR_KIND

UNCOVERED_LIST_LIMIT = 200


def _domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower()


def _in_domains(domains: Sequence[str]) -> ColumnElement[bool]:
    return or_(*(col(User.email).like(f"%@{d}") for d in domains))


async def reconcile(
    db: AsyncSession,
    deps: CalendarDeps,
    integration: OrganizationIntegration,
    user_ids: Sequence[uuid.UUID] | None = None,
) -> int:
    """Connect everyone in the domains who is not yet, and drop connections of people whose
    address left them. Returns how many people were newly connected. Commits."""
    if not integration.enabled or integration.status != INTEGRATION_ACTIVE:
        return 0
    domains = integration.domain_list
    query = select(User.id, User.email).where(col(User.is_active).is_(True))
    if user_ids is not None:
        query = query.where(col(User.id).in_(list(user_ids)))
    people = {uid: email for uid, email in (await db.exec(query)).all()}
    existing = {
        c.user_id: c
        for c in (
            await db.exec(
                select(CalendarConnection).where(col(CalendarConnection.user_id).in_(list(people)))
            )
        ).all()
    }
    provider = PROVIDER_FOR_KIND[integration.kind]
    label = CALENDAR_LABELS[integration.kind]
    added = 0
    gone: list[uuid.UUID] = []
    for user_id, email in people.items():
        covered = _domain(email) in domains
        current = existing.get(user_id)
        if current is not None and current.integration_id == integration.id:
            if not covered:
                gone.append(user_id)
            continue
        if not covered or (current is not None and current.integration_id is not None):
            continue  # outside the domains, or another integration covers them
        replaced = None
        if current is not None:
            replaced = await connect.release_personal(db, deps, user_id)
            audit.record(
                db,
                "calendar.replaced_by_integration",
                actor_id=None,
                subject_id=user_id,
                provider=replaced.value if replaced else None,
                kind=integration.kind.value,
            )
        db.add(
            CalendarConnection(
                user_id=user_id,
                provider=provider,
                status=CalendarStatus.CONNECTED,
                label=label,
                account_email=email,
                integration_id=integration.id,
                replaced_provider=replaced.value if replaced else None,
                sync_requested=True,
            )
        )
        added += 1
    if gone:
        await db.exec(delete(BusyBlock).where(col(BusyBlock.user_id).in_(gone)))
        busy_version.note_changed(db, gone)
        await db.exec(
            delete(CalendarConnection).where(
                col(CalendarConnection.user_id).in_(gone),
                col(CalendarConnection.integration_id) == integration.id,
            )
        )
    if added or gone:
        audit.record(
            db,
            "integration.coverage_changed",
            actor_id=None,
            target_type="integration",
            target_id=integration.id,
            connected=added,
            released=len(gone),
        )
    await db.commit()
    return added


async def reconcile_user(db: AsyncSession, deps: CalendarDeps, user_id: uuid.UUID) -> None:
    """After a sign-up or an address change: connect (or release) this one person."""
    rows = await db.exec(
        select(OrganizationIntegration).where(
            col(OrganizationIntegration.enabled).is_(True),
            OrganizationIntegration.status == INTEGRATION_ACTIVE,
        )
    )
    for integration in rows.all():
        await reconcile(db, deps, integration, [user_id])


@dataclass(frozen=True, slots=True)
class Uncovered:
    user: User
    reason: UncoveredReason


@dataclass(frozen=True, slots=True)
class CoverageReport:
    integration: OrganizationIntegration
    covered_count: int
    participant_count: int
    domains: list[str]
    last_synced_at: datetime | None
    uncovered: list[Uncovered] = field(default_factory=list)


async def report(db: AsyncSession, integration: OrganizationIntegration) -> CoverageReport:
    """N of M participants covered, and who is not with why (at most
    ``UNCOVERED_LIST_LIMIT`` named)."""
    participants = (
        select(ProgramMembership.user_id)
        .join(User, col(User.id) == col(ProgramMembership.user_id))
        .where(col(User.is_active).is_(True))
        .distinct()
    )
    total = int((await db.exec(select(func.count()).select_from(participants.subquery()))).one())
    covered = int(
        (
            await db.exec(
                select(func.count(func.distinct(CalendarConnection.user_id))).where(
                    CalendarConnection.integration_id == integration.id,
                    col(CalendarConnection.uncovered_reason).is_(None),
                    col(CalendarConnection.user_id).in_(participants),
                )
            )
        ).one()
    )
    uncovered: list[Uncovered] = []
    problems = await db.exec(
        select(User, CalendarConnection.uncovered_reason)
        .join(CalendarConnection, col(CalendarConnection.user_id) == col(User.id))
        .where(
            CalendarConnection.integration_id == integration.id,
            col(CalendarConnection.uncovered_reason).is_not(None),
            col(User.id).in_(participants),
        )
        .order_by(col(User.name))
        .limit(UNCOVERED_LIST_LIMIT)
    )
    for user, reason in problems.all():
        uncovered.append(Uncovered(user, UncoveredReason(reason or UncoveredReason.UNREADABLE)))
    domains = integration.domain_list
    if domains and len(uncovered) < UNCOVERED_LIST_LIMIT:
        outside = await db.exec(
            select(User)
            .where(col(User.id).in_(participants), ~_in_domains(domains))
            .order_by(col(User.name))
            .limit(UNCOVERED_LIST_LIMIT - len(uncovered))
        )
        uncovered.extend(Uncovered(u, UncoveredReason.NOT_IN_DOMAIN) for u in outside.all())
    return CoverageReport(
        integration=integration,
        covered_count=covered,
        participant_count=total,
        domains=domains,
        last_synced_at=integration.last_full_sync_at,
        uncovered=uncovered,
    )


async def managing_kind(
    db: AsyncSession, connection: CalendarConnection | None
) -> IntegrationKind | None:
    """The kind of integration that manages this connection, None for a personal one."""
    if connection is None or connection.integration_id is None:
        return None
    integration = await db.get(OrganizationIntegration, connection.integration_id)
    return integration.kind if integration is not None else None


async def kinds_by_id(
    db: AsyncSession, integration_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, IntegrationKind]:
    """Integration kinds by id, in one query (for many covered calendars at once)."""
    if not integration_ids:
        return {}
    rows = await db.exec(
        select(OrganizationIntegration.id, OrganizationIntegration.kind).where(
            col(OrganizationIntegration.id).in_(list(integration_ids))
        )
    )
    return {row_id: IntegrationKind(kind) for row_id, kind in rows.all()}
