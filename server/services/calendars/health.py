"""Calendar health: the troubleshooting FAQ ("is the calendar connected? all-day events?
out of office? reconnect and wait ten minutes, or ask IT") turned into data.

Built from a connection's status and the busy *kinds* of its cached blocks only: never a
title, place or attendee (Tandem does not store them). ``hints`` is pure (unit-tested
across zones and DST); ``health_of`` gathers many people in a few grouped queries, so a
program of 500 costs the same handful of queries as one person.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import BusyBlock, CalendarConnection, Program, ProgramMembership, User
from server.models.base import utcnow
from server.models.enums import BusyKind, CalendarStatus
from server.services.calendars import coverage, sync
from server.services.calendars.deps import CalendarDeps
from server.services.people import access, programs

__all__ = [
    "ACTION_TEXT",
    "REASON_LABELS",
    "STATE_LABELS",
    "Action",
    "Block",
    "Health",
    "HealthState",
    "MemberHealth",
    "ProgramHealth",
    "Reason",
    "age_words",
    "health_for",
    "health_of",
    "hints",
    "program_health",
    "through",
    "visible_health_ids",
]

WEEKDAYS_AHEAD = 10
"""All-day events are counted over this many of the person's own coming weekdays."""
ALL_DAY_MIN = 3
"""Fewer blocked weekdays than this are ordinary (a holiday, a conference day)."""
QUIET_DAYS = 60
"""No busy time at all this far ahead suggests the wrong calendar is connected."""
HORIZON_SLACK = timedelta(days=1)


class HealthState(StrEnum):
    CONNECTED = "connected"
    NOT_CONNECTED = "not_connected"
    NEEDS_ATTENTION = "needs_attention"


STATE_LABELS = {
    HealthState.CONNECTED: "Connected",
    HealthState.NOT_CONNECTED: "Not connected",
    HealthState.NEEDS_ATTENTION: "Needs attention",
}


class Action(StrEnum):
    """What fixes a reason; pages turn it into a button or a sentence."""

    CONNECT = "connect"
    RECONNECT = "reconnect"
    ASK_IT = "ask_it"
    CHECK_ALL_DAY_EVENTS = "check_all_day_events"
    CHECK_CALENDAR = "check_calendar"
    WAIT = "wait"
    NONE = "none"


ACTION_TEXT: dict[Action, str] = {
    Action.CONNECT: "Connect a calendar on Calendar Settings.",
    Action.RECONNECT: "Disconnect and reconnect the calendar, then wait ten minutes.",
    Action.ASK_IT: "Ask the organization's IT administrator to allow Tandem.",
    Action.CHECK_ALL_DAY_EVENTS: "Check the all-day events: mark those that leave time "
    "for meetings as free in the calendar.",
    Action.CHECK_CALENDAR: "Check that the calendar used for meetings is the one connected.",
    Action.WAIT: "Nothing to do: Tandem retries by itself.",
    Action.NONE: "Nothing to do.",
}


@dataclass(frozen=True, slots=True)
class Reason:
    """One finding. ``attention`` is False for facts that are fine as they are (out of
    office); True ones make the person "needs attention"."""

    code: str
    message: str
    action: Action
    attention: bool = True

    @property
    def action_text(self) -> str:
        return ACTION_TEXT[self.action]


@dataclass(frozen=True, slots=True)
class Health:
    user_id: uuid.UUID
    state: HealthState
    through: str | None
    last_synced_at: datetime | None
    sync_age: timedelta | None
    last_error: str | None
    synced_until: datetime | None
    horizon_covered: bool
    reasons: tuple[Reason, ...] = field(default=())

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(reason.code for reason in self.reasons)

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def sync_age_text(self) -> str:
        return age_words(self.sync_age) if self.sync_age is not None else "never"


@dataclass(frozen=True, slots=True)
class Block:
    """A cached busy block as the hints see it: two instants and a kind, nothing else."""

    start: datetime
    end: datetime
    kind: BusyKind


def through(connection: CalendarConnection) -> str:
    """What the calendar is connected through, in the product's words ("Google", "Office
    365", "Outlook.com", "iCal"), and whether the organization's integration connects it
    (the person then has nothing to connect or reconnect themselves)."""
    if connection.integration_id is not None:
        return f"{connection.label}, through your organization's integration"
    return connection.label


def age_words(age: timedelta) -> str:
    """ "3 minutes ago", "5 hours ago", "2 days ago"."""
    seconds = max(int(age.total_seconds()), 0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def _day_span(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The person's own calendar day as UTC instants (23 or 25 hours on DST days)."""
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    return start, end


def _weekdays(today: date, count: int) -> list[date]:
    days: list[date] = []
    day = today
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> timedelta:
    return max(min(a[1], b[1]) - max(a[0], b[0]), timedelta(0))


def _all_day_hint(blocks: Sequence[Block], zone: ZoneInfo, now: datetime) -> Reason | None:
    all_day = [(b.start, b.end) for b in blocks if b.kind == BusyKind.ALL_DAY]
    if not all_day:
        return None
    blocked = 0
    for day in _weekdays(now.astimezone(zone).date(), WEEKDAYS_AHEAD):
        span = _day_span(day, zone)
        length = span[1] - span[0]
        # Half the day, so an all-day event stored at UTC midnight still counts.
        if sum((_overlap(span, b) for b in all_day), timedelta(0)) * 2 >= length:
            blocked += 1
    if blocked < ALL_DAY_MIN:
        return None
    return Reason(
        "all_day_blocking",
        f"All-day events block {blocked} of the next {WEEKDAYS_AHEAD} weekdays.",
        Action.CHECK_ALL_DAY_EVENTS,
    )


def _out_of_office_hint(blocks: Sequence[Block], zone: ZoneInfo, now: datetime) -> Reason | None:
    spans = sorted((b.start, b.end) for b in blocks if b.kind == BusyKind.OUT_OF_OFFICE)
    until: datetime | None = None
    for start, end in spans:
        if until is None:
            if start <= now < end:
                until = end
        elif start <= until:  # back-to-back absences read as one
            until = max(until, end)
    if until is None:
        return None
    # An absence ending at midnight lasts through the day before.
    last = (until - timedelta(microseconds=1)).astimezone(zone)
    return Reason(
        "out_of_office",
        f"Out of office until {last.day} {last:%B}.",
        Action.NONE,
        attention=False,
    )


def hints(
    blocks: Iterable[Block],
    zone_name: str,
    now: datetime,
    *,
    busy_ahead: int | None = None,
    quiet_days: int = QUIET_DAYS,
) -> list[Reason]:
    """What the busy kinds say, in the person's own zone: all-day events blocking many of
    their coming weekdays, a current absence, or no busy time at all ahead.

    ``busy_ahead`` is how many blocks of any kind overlap the next ``quiet_days`` (counted
    in the database); ``None`` counts ``blocks`` themselves.
    """
    try:
        zone = ZoneInfo(zone_name)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    rows = list(blocks)
    found = [
        hint
        for hint in (_all_day_hint(rows, zone, now), _out_of_office_hint(rows, zone, now))
        if hint is not None
    ]
    if busy_ahead is None:
        limit = now + timedelta(days=quiet_days)
        busy_ahead = sum(1 for b in rows if b.end > now and b.start < limit)
    if busy_ahead == 0:
        found.append(
            Reason(
                "no_busy_time",
                f"No busy time at all in {quiet_days} days (is the right calendar connected?)",
                Action.CHECK_CALENDAR,
            )
        )
    return found


_ERROR_REASONS: dict[str, tuple[str, Action]] = {
    sync.PROBLEM_AUTH_LOST: ("The calendar no longer accepts Tandem's access.", Action.RECONNECT),
    sync.PROBLEM_ACCESS_POLICY: (
        "The organization's policy does not let Tandem read this calendar.",
        Action.ASK_IT,
    ),
    sync.PROBLEM_ACCESS_DENIED: ("The calendar refused access for now.", Action.WAIT),
    sync.PROBLEM_PROVIDER_CONFIG: (
        "A configuration problem on Tandem's side; administrators have been told.",
        Action.WAIT,
    ),
    sync.PROBLEM_UNAVAILABLE: ("The calendar service did not answer.", Action.WAIT),
    sync.PROBLEM_UNREADABLE: ("Tandem could not read the calendar.", Action.RECONNECT),
}


def _connection_reasons(
    connection: CalendarConnection | None, now: datetime, horizon: timedelta, stale: timedelta
) -> tuple[list[Reason], bool]:
    """Reasons from the connection row alone, and whether the horizon is covered."""
    if connection is None or connection.status == CalendarStatus.DISCONNECTED:
        return [Reason("not_connected", "No calendar is connected.", Action.CONNECT)], False
    reasons: list[Reason] = []
    code = connection.error_code
    if code in _ERROR_REASONS:
        text, action = _ERROR_REASONS[code]
        # The sync's own sentence (status wording) is more exact when present.
        reasons.append(Reason(code, connection.last_error or text, action))
    elif connection.status == CalendarStatus.NEEDS_REAUTH:
        reasons.append(
            Reason(sync.PROBLEM_AUTH_LOST, _ERROR_REASONS["auth_lost"][0], Action.RECONNECT)
        )
    elif connection.status == CalendarStatus.ERROR:
        reasons.append(
            Reason(
                sync.PROBLEM_UNREADABLE,
                connection.last_error or _ERROR_REASONS["unreadable"][0],
                Action.RECONNECT,
            )
        )
    if connection.last_synced_at is None:
        if not reasons:
            reasons.append(
                Reason("not_synced_yet", "Tandem has not read this calendar yet.", Action.WAIT)
            )
        return reasons, False
    if not reasons and now - connection.last_synced_at > stale:
        reasons.append(
            Reason(
                "sync_stale",
                f"The last successful sync was {age_words(now - connection.last_synced_at)}.",
                Action.RECONNECT,
            )
        )
    # Rows synced before the range was recorded cover the horizon around their last sync.
    span = coverage.default_range(connection, horizon.days)
    covered = span is not None and span[1] + HORIZON_SLACK >= now + horizon
    if not covered and not reasons:
        reasons.append(
            Reason(
                "horizon_short",
                "Busy times are known only for part of the coming "
                f"{horizon.days} days; later times show as unknown.",
                Action.WAIT,
            )
        )
    return reasons, covered


async def visible_health_ids(
    db: AsyncSession, viewer: User, user_ids: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    """Whose calendar health ``viewer`` may see: their own, and members of programs they
    administer (everyone, for global admins). Partners see status, not health."""
    wanted = set(user_ids)
    if viewer.is_global_admin:
        return wanted
    visible = wanted & {viewer.id}
    admin_of = await access.admin_program_ids(db, viewer)
    if admin_of and wanted - visible:
        rows = await db.exec(
            select(ProgramMembership.user_id).where(
                col(ProgramMembership.program_id).in_(admin_of),
                col(ProgramMembership.user_id).in_(wanted - visible),
            )
        )
        visible |= set(rows.all())
    return visible


async def health_of(
    db: AsyncSession,
    user_ids: Sequence[uuid.UUID],
    *,
    horizon_days: int = 60,
    max_age_seconds: int = 900,
    now: datetime | None = None,
) -> dict[uuid.UUID, Health]:
    """Health of many people in four grouped queries (people, connections, all-day and
    absence blocks, busy counts). The caller has checked who may see it."""
    now = now or utcnow()
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    horizon = timedelta(days=horizon_days)
    stale = max(timedelta(hours=1), timedelta(seconds=4 * max_age_seconds))
    zones = dict(
        (await db.exec(select(User.id, User.time_zone).where(col(User.id).in_(ids)))).all()
    )
    connections = {
        row.user_id: row
        for row in (
            await db.exec(
                select(CalendarConnection).where(
                    col(CalendarConnection.user_id).in_(ids),
                    CalendarConnection.status != CalendarStatus.DISCONNECTED,
                )
            )
        ).all()
    }
    # Hints read the cache, so only for calendars read successfully and still readable (an
    # unreadable calendar's cache is emptied: "no busy time" would be wrong there).
    readable = [
        uid
        for uid, c in connections.items()
        if c.last_synced_at is not None and c.status == CalendarStatus.CONNECTED
    ]
    blocks: dict[uuid.UUID, list[Block]] = defaultdict(list)
    counts: dict[uuid.UUID, int] = {}
    quiet_until = now + timedelta(days=min(QUIET_DAYS, horizon_days))
    if readable:
        # Kinds and instants only: the cache holds nothing else.
        rows = await db.exec(
            select(BusyBlock.user_id, BusyBlock.start_at, BusyBlock.end_at, BusyBlock.kind).where(
                col(BusyBlock.user_id).in_(readable),
                col(BusyBlock.kind).in_([BusyKind.ALL_DAY, BusyKind.OUT_OF_OFFICE]),
                col(BusyBlock.end_at) > now - timedelta(days=1),
                col(BusyBlock.start_at) < quiet_until,
            )
        )
        for user_id, start, end, kind in rows.all():
            blocks[user_id].append(Block(start, end, BusyKind(kind)))
        counted = await db.exec(
            select(BusyBlock.user_id, func.count())
            .where(
                col(BusyBlock.user_id).in_(readable),
                col(BusyBlock.end_at) > now,
                col(BusyBlock.start_at) < quiet_until,
            )
            .group_by(col(BusyBlock.user_id))
        )
        counts = {user_id: int(n) for user_id, n in counted.all()}
    result: dict[uuid.UUID, Health] = {}
    for user_id in ids:
        if user_id not in zones:
            continue
        connection = connections.get(user_id)
        reasons, covered = _connection_reasons(connection, now, horizon, stale)
        if connection is not None and user_id in readable:
            reasons += hints(
                blocks[user_id],
                zones[user_id],
                now,
                busy_ahead=counts.get(user_id, 0),
                quiet_days=min(QUIET_DAYS, horizon_days),
            )
        if connection is None:
            state = HealthState.NOT_CONNECTED
        elif any(reason.attention for reason in reasons):
            state = HealthState.NEEDS_ATTENTION
        else:
            state = HealthState.CONNECTED
        synced = connection.last_synced_at if connection else None
        result[user_id] = Health(
            user_id=user_id,
            state=state,
            through=through(connection) if connection else None,
            last_synced_at=synced,
            sync_age=now - synced if synced else None,
            last_error=connection.last_error if connection else None,
            synced_until=connection.synced_until if connection else None,
            horizon_covered=covered,
            reasons=tuple(reasons),
        )
    return result


async def health_for(
    db: AsyncSession, deps: CalendarDeps, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Health]:
    """``health_of`` with this installation's horizon and sync age."""
    return await health_of(
        db, user_ids, horizon_days=deps.horizon_days, max_age_seconds=deps.max_age_seconds
    )


REASON_LABELS: dict[str, str] = {
    "not_connected": "Not connected",
    sync.PROBLEM_AUTH_LOST: "Access lost: reconnect",
    sync.PROBLEM_ACCESS_POLICY: "Blocked by the organization's policy",
    sync.PROBLEM_ACCESS_DENIED: "Access refused for now",
    sync.PROBLEM_PROVIDER_CONFIG: "Tandem's provider configuration",
    sync.PROBLEM_UNAVAILABLE: "Calendar service not answering",
    sync.PROBLEM_UNREADABLE: "Calendar unreadable",
    "not_synced_yet": "Not read yet",
    "sync_stale": "Last sync too old",
    "horizon_short": "Horizon not covered",
    "all_day_blocking": "Many all-day events",
    "out_of_office": "Out of office",
    "no_busy_time": "No busy time at all",
}


@dataclass(frozen=True, slots=True)
class MemberHealth:
    user: User
    roles: tuple[str, ...]
    health: Health


@dataclass(frozen=True, slots=True)
class ProgramHealth:
    """A program's calendar health for its admins: counts, counts by reason (code, label,
    how many people), and the members shown (all, or those with ``reason``)."""

    program: Program
    connected: int
    needs_attention: int
    not_connected: int
    by_reason: tuple[tuple[str, str, int], ...]
    members: tuple[MemberHealth, ...]
    reason: str | None


async def program_health(
    db: AsyncSession,
    deps: CalendarDeps,
    actor: User,
    program_id: uuid.UUID,
    *,
    reason: str | None = None,
) -> ProgramHealth:
    """For the program's admins (and global admins) only; NotFound for anyone else.
    ``reason`` filters the members to those with that reason code; an unknown code is
    ignored (shows everyone)."""
    program = await programs.get_administered_program(db, actor, program_id)
    roles: dict[uuid.UUID, list[str]] = defaultdict(list)
    people: dict[uuid.UUID, User] = {}
    for user, role in await programs.members(db, program.id):
        people[user.id] = user
        roles[user.id].append(role.value)
    found = await health_for(db, deps, list(people))
    counts: dict[str, int] = defaultdict(int)
    for item in found.values():
        for code in dict.fromkeys(item.codes):
            counts[code] += 1
    wanted = reason if reason in REASON_LABELS else None
    members = tuple(
        MemberHealth(people[uid], tuple(roles[uid]), found[uid])
        for uid in people
        if uid in found and (wanted is None or wanted in found[uid].codes)
    )
    states = [item.state for item in found.values()]
    return ProgramHealth(
        program=program,
        connected=sum(state == HealthState.CONNECTED for state in states),
        needs_attention=sum(state == HealthState.NEEDS_ATTENTION for state in states),
        not_connected=sum(state == HealthState.NOT_CONNECTED for state in states),
        by_reason=tuple(
            (code, REASON_LABELS[code], counts[code]) for code in REASON_LABELS if counts[code]
        ),
        members=members,
        reason=wanted,
    )
