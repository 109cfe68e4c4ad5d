"""Slot suggestions for a new poll: times ranked by how many invitees are free.

Built on the availability service (so stale calendars are refreshed within its budget
and the program's hours, weekends, notice and buffer rules apply). The organizer is the
one required participant: a slot the organizer is busy in is never suggested. Every
other member is optional, so nobody else's calendar removes a slot; it only ranks it
lower and names them as unavailable. Members without a connected calendar are
"unknown", never counted free.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import User
from server.services.availability import Mode, query
from server.services.calendars.deps import CalendarDeps
from server.services.errors import ValidationFailed
from server.services.polls.rules import OrganizedGroup

FRIENDLY_FROM = time(8, 0)
FRIENDLY_UNTIL = time(20, 0)
MAX_RANGE_DAYS = 31
MAX_SUGGESTIONS = 20
STEP_MINUTES = 30


@dataclass(frozen=True, slots=True)
class Suggestion:
    start: datetime
    end: datetime
    free: tuple[uuid.UUID, ...]
    unavailable: tuple[uuid.UUID, ...]
    unknown: tuple[uuid.UUID, ...]


@dataclass(frozen=True, slots=True)
class Suggestions:
    slots: list[Suggestion]
    empty_reason: str | None
    notes: list[str]


def unsocial_hours(start: datetime, end: datetime, people: Sequence[User]) -> list[str]:
    """For each person whose own clock shows the slot starting before 08:00 or ending
    after 20:00: "05:00 for Asha (Asia/Kolkata)" (their local start), so the organizer
    sees whom a time is hard on. Any day's hours count, not the program's rules."""
    found: list[str] = []
    for person in people:
        try:
            zone = ZoneInfo(person.time_zone)
        except (ValueError, KeyError):
            continue
        try:
            local_start, local_end = start.astimezone(zone), end.astimezone(zone)
        except (OverflowError, ValueError):  # at the edge of what datetime holds
            continue
        evening = datetime.combine(local_start.date(), FRIENDLY_UNTIL)
        late = local_end.replace(tzinfo=None) > evening
        if local_start.time() < FRIENDLY_FROM or late:
            found.append(f"{local_start:%H:%M} for {person.name} ({person.time_zone})")
    return found


def local_range(first: date, last: date, zone: str) -> tuple[datetime, datetime]:
    """``[first 00:00, the day after last 00:00)`` on the viewer's wall clock, as UTC."""
    if last < first:
        raise ValidationFailed("The last day must not be before the first.", field="to")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise ValidationFailed(f"Look at most {MAX_RANGE_DAYS} days at a time.", field="to")
    tz = ZoneInfo(zone)
    start = datetime.combine(first, time.min, tz)
    end = datetime.combine(last + timedelta(days=1), time.min, tz)
    return start, end


async def suggest(
    db: AsyncSession,
    deps: CalendarDeps,
    viewer: User,
    organized: OrganizedGroup,
    *,
    start: datetime,
    end: datetime,
    duration_minutes: int,
    now: datetime | None = None,
    limit: int = MAX_SUGGESTIONS,
) -> Suggestions:
    """Up to ``limit`` slots in ``[start, end)``, most invitees free first, ties earlier.

    ``organized`` comes from ``polls.organized_group`` (which checked the organizer and
    the operator switch).
    """
    others = [m.id for m in organized.members if m.id != viewer.id]
    answer = await query.find_availability(
        db,
        deps,
        viewer,
        query.AvailabilityRequest(
            participant_ids=[viewer.id],
            optional_participant_ids=others,
            start=start,
            end=end,
            duration_minutes=duration_minutes,
            step_minutes=STEP_MINUTES,
            minimum_free=0,
            program_id=organized.group.program_id,
            mode=Mode.GROUP,
            limit=limit,
        ),
        now=now,
    )
    slots = [Suggestion(s.start, s.end, s.free, s.busy, s.unknown) for s in answer.result.slots]
    return Suggestions(slots, answer.result.empty_reason, answer.notes)
