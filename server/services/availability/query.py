"""The availability question as users and integrators ask it: who, when, how long.

Checks who may be asked about, refreshes stale busy caches within a time budget, turns
calendar states into free/busy/unknown, applies the program's rules and runs the engine.
When a provider is slow or down the answer comes from the cache and says how old it is.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import BusyBlock, CalendarConnection, Meeting, User
from server.models.base import utcnow
from server.models.enums import BusyKind, CalendarStatus
from server.providers.base import BusyInterval
from server.services.availability import (
    AvailabilityResult,
    Mode,
    PackedBusy,
    Participant,
    Rules,
    find_slots,
)
from server.services.availability.booked import meeting_busy
from server.services.calendars import sync
from server.services.calendars.deps import CalendarDeps
from server.services.errors import NotFound, ValidationFailed
from server.services.people import access, programs

__all__ = ["AvailabilityRequest", "NotFound", "ValidationFailed", "find_availability"]

MAX_WINDOW = timedelta(days=90)
MIN_STEP_MINUTES = 5
MAX_PARTICIPANTS = 50
MAX_DURATION_MINUTES = 8 * 60
REFRESH_BUDGET_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class AvailabilityRequest:
    participant_ids: Sequence[uuid.UUID]
    start: datetime
    end: datetime
    duration_minutes: int
    step_minutes: int = 30
    optional_participant_ids: Sequence[uuid.UUID] = ()
    minimum_free: int = 0
    program_id: uuid.UUID | None = None
    mode: Mode | None = None  # default: PAIR for two required people, else GROUP
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class ParticipantState:
    user: User
    optional: bool
    calendar_status: str  # not_connected | connected | needs_reauth | error
    last_synced_at: datetime | None


@dataclass(frozen=True, slots=True)
class UserBusy:
    user_id: uuid.UUID
    start: datetime
    end: datetime
    kind: BusyKind


@dataclass(frozen=True, slots=True)
class AvailabilityAnswer:
    participants: list[ParticipantState]
    busy: list[UserBusy]
    result: AvailabilityResult
    rules: Rules
    notes: list[str] = field(default_factory=list)


def _validate(request: AvailabilityRequest) -> None:
    for name, value in (("start", request.start), ("end", request.end)):
        if value.tzinfo is None:
            raise ValidationFailed(f"{name} needs a time zone offset.", field=name)
    if request.end <= request.start:
        raise ValidationFailed("The end of the window must be after its start.", field="end")
    if request.end - request.start > MAX_WINDOW:
        raise ValidationFailed("Ask for at most 90 days at a time.", field="end")
    if not 5 <= request.duration_minutes <= MAX_DURATION_MINUTES:
        raise ValidationFailed(
            "Meetings last between 5 minutes and 8 hours.", field="durationMinutes"
        )
    if not MIN_STEP_MINUTES <= request.step_minutes <= 24 * 60:
        raise ValidationFailed(
            f"The step must be between {MIN_STEP_MINUTES} minutes and a day.", field="stepMinutes"
        )
    everyone = [*request.participant_ids, *request.optional_participant_ids]
    if not request.participant_ids:
        raise ValidationFailed("Name at least one participant.", field="participantIds")
    if len(everyone) > MAX_PARTICIPANTS:
        raise ValidationFailed(
            f"Ask about at most {MAX_PARTICIPANTS} people.", field="participantIds"
        )
    if len(set(everyone)) != len(everyone):
        raise ValidationFailed("Each person may appear only once.", field="participantIds")
    if request.minimum_free < 0 or request.minimum_free > len(everyone):
        raise ValidationFailed(
            "minimumFree must be between 0 and the number of participants.", field="minimumFree"
        )


def align_start(start: datetime, step_minutes: int, zone: str) -> datetime:
    """Round up to the next step boundary on the viewer's wall clock (10:07 → 10:15)."""
    local = start.astimezone(ZoneInfo(zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (local - midnight).total_seconds()
    step = step_minutes * 60
    steps = -(-elapsed // step)
    return (midnight + timedelta(seconds=steps * step)).astimezone(start.tzinfo)


async def find_availability(
    db: AsyncSession,
    deps: CalendarDeps,
    viewer: User,
    request: AvailabilityRequest,
    *,
    now: datetime | None = None,
    refresh_budget: float = REFRESH_BUDGET_SECONDS,
    refresh: bool = True,
    ignore_meeting_id: uuid.UUID | None = None,
) -> AvailabilityAnswer:
    """``refresh=False`` answers from the cache only (booking re-checks must not call
    providers or commit); ``ignore_meeting_id`` leaves out a Tandem meeting being moved."""
    _validate(request)
    now = now or utcnow()
    ids = [*request.participant_ids, *request.optional_participant_ids]
    visible = await access.visible_user_ids(db, viewer, ids)
    if set(ids) - visible:
        raise NotFound("participant", field="participantIds")
    if request.program_id is not None:
        if not await access.can_see_program(db, viewer, request.program_id):
            raise NotFound("program", field="programId")
        settings = await programs.settings_for(db, request.program_id)
    else:
        settings = await programs.settings_for_user(db, viewer.id)
    rules = Rules(
        allow_weekends=settings.allow_weekends,
        earliest_hour=settings.earliest_hour,
        latest_hour=settings.latest_hour,
        minimum_notice_minutes=settings.minimum_notice_hours * 60,
        buffer_minutes=settings.buffer_minutes,
    )
    notes = await _refresh(db, deps, ids, now, refresh_budget) if refresh else []
    users = {u.id: u for u in (await db.exec(select(User).where(col(User.id).in_(ids)))).all()}
    connections = {
        c.user_id: c
        for c in (
            await db.exec(
                select(CalendarConnection).where(col(CalendarConnection.user_id).in_(ids))
            )
        ).all()
    }
    margin = timedelta(minutes=rules.buffer_minutes)
    rows = (
        await db.exec(
            select(BusyBlock)
            .where(
                col(BusyBlock.user_id).in_(ids),
                col(BusyBlock.start_at) < request.end + margin,
                col(BusyBlock.end_at) > request.start - margin,
            )
            .order_by(col(BusyBlock.start_at))
        )
    ).all()
    # A meeting being moved is already in its attendees' calendars (two-way sync, accepted
    # invitations): the busy block at exactly its old time is that meeting, not a clash.
    moving = await db.get(Meeting, ignore_meeting_id) if ignore_meeting_id else None
    by_user: dict[uuid.UUID, list[BusyInterval]] = defaultdict(list)
    for row in rows:
        if moving is not None and (row.start_at, row.end_at) == (moving.start_at, moving.end_at):
            continue
        by_user[row.user_id].append(BusyInterval(row.start_at, row.end_at, row.kind))
    # Tandem's own scheduled meetings are busy time too, even before a calendar sync.
    booked = await meeting_busy(
        db, ids, request.start - margin, request.end + margin, ignore_meeting_id=ignore_meeting_id
    )
    for user_id, meeting_intervals in booked.items():
        by_user[user_id] = sorted([*by_user[user_id], *meeting_intervals])
    optional = set(request.optional_participant_ids)
    states: list[ParticipantState] = []
    participants: list[Participant] = []
    busy_out: list[UserBusy] = []
    for user_id in ids:
        user = users[user_id]
        connection = connections.get(user_id)
        status = connection.status.value if connection else "not_connected"
        known = (
            connection is not None
            and connection.status == CalendarStatus.CONNECTED
            and connection.last_synced_at is not None
        )
        intervals = by_user.get(user_id, []) if known else None
        states.append(
            ParticipantState(
                user, user_id in optional, status, connection.last_synced_at if connection else None
            )
        )
        participants.append(
            Participant(
                user_id=user_id,
                name=user.name,
                time_zone=user.time_zone,
                busy=PackedBusy.from_intervals(intervals) if intervals is not None else None,
                optional=user_id in optional,
            )
        )
        if intervals is not None:
            busy_out.extend(
                UserBusy(user_id, max(i.start, request.start), min(i.end, request.end), i.kind)
                for i in intervals
                if i.end > request.start and i.start < request.end
            )
    mode = request.mode or (
        Mode.PAIR if len(request.participant_ids) == 2 and not optional else Mode.GROUP
    )
    result = find_slots(
        participants,
        rules,
        start=align_start(request.start, request.step_minutes, viewer.time_zone),
        end=request.end,
        duration=timedelta(minutes=request.duration_minutes),
        step=timedelta(minutes=request.step_minutes),
        now=now,
        mode=mode,
        minimum_free=request.minimum_free,
        limit=request.limit,
    )
    return AvailabilityAnswer(states, busy_out, result, rules, notes)


async def _refresh(
    db: AsyncSession, deps: CalendarDeps, ids: list[uuid.UUID], now: datetime, budget: float
) -> list[str]:
    """Refresh stale caches within ``budget`` seconds; name what could not be refreshed."""
    stale = await sync.stale_user_ids(db, ids, timedelta(seconds=deps.max_age_seconds))
    if not stale:
        return []
    outcomes = await sync.sync_users(db, deps, stale, budget_seconds=budget)
    notes = []
    names = {
        u.id: u.name for u in (await db.exec(select(User).where(col(User.id).in_(stale)))).all()
    }
    connections = {
        c.user_id: c
        for c in (
            await db.exec(
                select(CalendarConnection).where(col(CalendarConnection.user_id).in_(stale))
            )
        ).all()
    }
    for user_id, outcome in outcomes.items():
        connection = connections.get(user_id)
        if outcome.ok or connection is None or connection.status != CalendarStatus.CONNECTED:
            continue
        if connection.last_synced_at is None:
            continue
        age = max(int((now - connection.last_synced_at).total_seconds() // 60), 0)
        notes.append(
            f"{names.get(user_id, 'Someone')}'s calendar could not be refreshed just now; "
            f"showing busy times from {age} minute{'s' if age != 1 else ''} ago."
        )
    return notes
