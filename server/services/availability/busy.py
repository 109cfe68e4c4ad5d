"""Everybody's busy times for some windows: the one door every reader goes through.

The availability query, the pair week page, ranked poll suggestions, booking re-checks
and a poll's busy marks all read busy times here. For the windows asked about it
refreshes stale default horizons, fetches the parts no connection has read yet
(``calendars.coverage``) within the request's time budget, and returns per person their
calendar state, their busy intervals (calendar blocks and Tandem's own meetings) and
the times their calendar could not be read, with notes saying why. Those times are
*unknown*, never free.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Table, bindparam
from sqlalchemy import select as sa_select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import BusyCoverage, BusyVersion, CalendarConnection, Meeting, User, busy_version
from server.models.base import utcnow
from server.models.enums import CalendarStatus
from server.providers.base import BusyInterval
from server.services import core_reads
from server.services.availability import booked as booked_reads
from server.services.availability import busy_cache
from server.services.availability.blocks import KIND_ORDER, read_block_table
from server.services.availability.grid import to_us
from server.services.availability.packed import CODE_OF, PackedBusy
from server.services.calendars import coverage, sync
from server.services.calendars.coverage import Gap
from server.services.calendars.deps import CalendarDeps

__all__ = ["REFRESH_BUDGET_SECONDS", "BusyPicture", "Gap", "PersonBusy", "read_busy"]

REFRESH_BUDGET_SECONDS = 3.0

Span = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class PersonBusy:
    """One person's standing for the windows asked about.

    ``known`` is false when there is no connected, read calendar at all (wholly
    unknown); otherwise ``unknown`` lists the times it could not be read.
    """

    user_id: uuid.UUID
    calendar_status: str  # not_connected | connected | needs_reauth | error
    last_synced_at: datetime | None
    known: bool
    intervals: PackedBusy  # a Sequence[BusyInterval], held as integer arrays
    unknown: list[Gap]
    note: str | None = None


@dataclass(frozen=True, slots=True)
class BusyPicture:
    people: dict[uuid.UUID, PersonBusy]
    notes: list[str] = field(default_factory=list)
    users: dict[uuid.UUID, User] = field(default_factory=dict)
    """The people asked about, as read for this picture (callers need not read them again)."""


async def read_busy(
    db: AsyncSession,
    deps: CalendarDeps | None,
    user_ids: Sequence[uuid.UUID],
    windows: Sequence[Span],
    *,
    now: datetime | None = None,
    fetch: bool = True,
    budget_seconds: float = REFRESH_BUDGET_SECONDS,
    margin: timedelta = timedelta(0),
    ignore_meeting_id: uuid.UUID | None = None,
    include_meetings: bool = True,
) -> BusyPicture:
    """Busy times of ``user_ids`` overlapping ``windows`` (each widened by ``margin``).

    ``fetch=False`` reads the cache only and writes nothing (booking re-checks hold a
    lock and must not wait on providers); uncovered times are then unknown. With
    ``fetch=True`` fetched blocks are committed. ``ignore_meeting_id`` leaves out a
    Tandem meeting being moved (and the calendar block at exactly its old time).
    ``deps`` may be ``None`` only without ``fetch``.
    """
    now = now or utcnow()
    ids = list(dict.fromkeys(user_ids))
    wide = [(lo - margin, hi + margin) for lo, hi in windows if hi > lo]
    notes: list[str] = []
    started = time.monotonic()
    if fetch and deps is None:
        raise ValueError("fetching busy times needs the calendar dependencies")
    span = (min(w[0] for w in wide), max(w[1] for w in wide)) if wide else None
    booked: dict[uuid.UUID, list[BusyInterval]] | None = None
    if span is not None and include_meetings and ignore_meeting_id is None:
        # Tandem's own meetings come with the people: one round trip, not two.
        asked, booked = await _people_and_booked(db, ids, *span)
    else:
        asked = await _people(db, ids)
    stale: list[uuid.UUID] = []
    if fetch and deps is not None:
        stale = _stale(asked, timedelta(seconds=deps.max_age_seconds))
        if stale:
            outcomes = await sync.sync_users(db, deps, stale, budget_seconds=budget_seconds)
            asked = await _people(db, ids)  # as the refresh left them (it committed)
            notes.extend(_refresh_notes(asked, outcomes, now))
    users, connections = asked.users, asked.connections
    remaining = max(budget_seconds - (time.monotonic() - started), 0.0)
    readable = [
        (c, users[c.user_id].time_zone)
        for c in connections.values()
        if c.user_id in users
        and c.status == CalendarStatus.CONNECTED
        and c.last_synced_at is not None
    ]
    gaps = await coverage.ensure_covered(
        db,
        deps,
        ids,
        wide,
        now=now,
        budget_seconds=remaining,
        fetch=fetch,
        connections=readable,
        # A refresh may have dropped the ranges of a calendar it found unreadable.
        extras=None if stale else asked.extras,
    )
    by_user: dict[uuid.UUID, PackedBusy] = {}
    if span is not None:
        # A meeting being moved is already in its attendees' calendars (two-way sync,
        # accepted invitations): the block at exactly its old time is that meeting.
        moving = await db.get(Meeting, ignore_meeting_id) if ignore_meeting_id else None
        by_user = await _read_blocks(db, ids, asked.versions, wide, moving)
        # Tandem's own scheduled meetings are busy time too, even before a calendar sync.
        if booked is None:
            booked = (
                await booked_reads.meeting_busy(db, ids, *span, ignore_meeting_id=ignore_meeting_id)
                if include_meetings
                else {}
            )
        for user_id, meeting_intervals in booked.items():
            by_user[user_id] = _merged(by_user.get(user_id, _EMPTY), meeting_intervals)
    people: dict[uuid.UUID, PersonBusy] = {}
    for user_id in ids:
        connection = connections.get(user_id)
        known = (
            connection is not None
            and connection.status == CalendarStatus.CONNECTED
            and connection.last_synced_at is not None
        )
        unread = gaps.get(user_id, []) if known else []
        user = users.get(user_id)
        note = _gap_note(user.name if user else "Someone", unread) if unread else None
        if note:
            notes.append(note)
        people[user_id] = PersonBusy(
            user_id=user_id,
            calendar_status=connection.status.value if connection else "not_connected",
            last_synced_at=connection.last_synced_at if connection else None,
            known=known,
            intervals=by_user.get(user_id, _EMPTY),
            unknown=unread,
            note=note,
        )
    return BusyPicture(people, notes, users)


_EMPTY = PackedBusy.from_codes(
    np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8)
)


async def _read_blocks(
    db: AsyncSession,
    ids: Sequence[uuid.UUID],
    versions: dict[uuid.UUID, int],
    wide: Sequence[Span],
    moving: Meeting | None,
) -> dict[uuid.UUID, PackedBusy]:
    """Each person's blocks overlapping one of ``wide``, in ``BusyInterval`` order.

    From memory where the busy version read for the person (before this read) still
    vouches for it; otherwise all of the person's blocks from the database, kept for the
    next question. Never from memory for people whose blocks this session changed: the
    version read for them may be older than what it wrote."""
    cache = busy_cache.shared
    untrusted = busy_version.changed_in(db)
    whole: dict[uuid.UUID, PackedBusy] = {}
    missing: list[uuid.UUID] = []
    for user_id in ids:
        held = None if user_id in untrusted else cache.get(user_id, versions.get(user_id, 0))
        if held is None:
            missing.append(user_id)
        else:
            whole[user_id] = held
    if missing:
        table = await read_block_table(db, missing, *_EVER)  # sorted by person
        bounds = np.searchsorted(table[:, 0], np.arange(len(missing) + 1))
        for index, user_id in enumerate(missing):
            mine = table[bounds[index] : bounds[index + 1]]
            blocks = PackedBusy.from_codes(
                mine[:, 1].copy(), mine[:, 2].copy(), mine[:, 3].astype(np.int8)
            )
            whole[user_id] = blocks
            if user_id not in untrusted:
                cache.put(user_id, versions.get(user_id, 0), blocks)
    found: dict[uuid.UUID, PackedBusy] = {}
    for user_id, blocks in whole.items():
        cut = _cut(blocks, wide, moving)
        if len(cut):
            found[user_id] = cut
    return found


_EVER = (datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
"""Bounds around every block a person could have: a miss reads all of them."""


def _cut(blocks: PackedBusy, wide: Sequence[Span], moving: Meeting | None) -> PackedBusy:
    """The blocks overlapping one of ``wide``, less the one at exactly ``moving``'s time."""
    starts, ends = blocks.starts_us, blocks.ends_us
    keep = np.zeros(len(blocks), dtype=bool)
    for w_lo, w_hi in wide:
        keep |= (starts < to_us(w_hi)) & (ends > to_us(w_lo))
    if moving is not None:
        keep &= ~((starts == to_us(moving.start_at)) & (ends == to_us(moving.end_at)))
    if bool(keep.all()):
        return blocks
    return PackedBusy.from_codes(starts[keep], ends[keep], blocks.kind_codes[keep])


def _merged(blocks: PackedBusy, extra: Sequence[BusyInterval]) -> PackedBusy:
    """``blocks`` and ``extra`` in ``BusyInterval`` order (start, end, kind)."""
    starts = np.concatenate([blocks.starts_us, [to_us(i.start) for i in extra]])
    ends = np.concatenate([blocks.ends_us, [to_us(i.end) for i in extra]])
    codes = np.concatenate([blocks.kind_codes, [CODE_OF[i.kind] for i in extra]])
    codes = codes.astype(np.int8)
    order = np.lexsort((KIND_ORDER[codes], ends, starts))
    return PackedBusy.from_codes(
        starts.astype(np.int64)[order], ends.astype(np.int64)[order], codes[order]
    )


def _gap_note(name: str, gaps: Sequence[Gap]) -> str:
    """ "Kim's calendar could not be read from 3 Mar 2027 to 9 Mar 2027 (the calendar
    did not answer in time), so Kim is shown as unknown then, not free." """
    first, last = gaps[0].start, gaps[-1].end
    whys = list(dict.fromkeys(g.why for g in gaps))
    return (
        f"{name}'s calendar could not be read from {_day(first)} to {_day(last)} "
        f"({'; '.join(whys)}), so {name} is shown as unknown then, not free."
    )


def _day(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%b %Y} {moment:%H:%M} UTC"


_USERS: Table = User.__table__  # type: ignore[attr-defined]
_CONNECTIONS: Table = CalendarConnection.__table__  # type: ignore[attr-defined]
_RANGES: Table = BusyCoverage.__table__  # type: ignore[attr-defined]
_VERSIONS: Table = BusyVersion.__table__  # type: ignore[attr-defined]
_PEOPLE = (
    sa_select(*_USERS.c, *_CONNECTIONS.c, *_RANGES.c, _VERSIONS.c.version)
    .select_from(
        _USERS.outerjoin(_CONNECTIONS, _CONNECTIONS.c.user_id == _USERS.c.id)
        .outerjoin(_VERSIONS, _VERSIONS.c.user_id == _USERS.c.id)
        .outerjoin(_RANGES, _RANGES.c.connection_id == _CONNECTIONS.c.id)
    )
    .where(_USERS.c.id.in_(bindparam("ids", expanding=True)))
)
"""Built once, of table columns (``core_reads``): the people asked about with their
calendar connections, the extra ranges those cover (one row per range) and their busy
versions, in one query, as stored."""
_AT_CONNECTION = core_reads.width(User)
_AT_RANGE = _AT_CONNECTION + core_reads.width(CalendarConnection)
_AT_VERSION = _AT_RANGE + core_reads.width(BusyCoverage)
"""Where a ``_PEOPLE`` row's connection, range and version columns are."""
_PEOPLE_AND_BOOKED = booked_reads.after(_PEOPLE)
"""``_PEOPLE``'s rows and then their Tandem meetings (``meeting_busy``), in one round trip."""


@dataclass(slots=True)
class _People:
    """As read, detached from the session (a sync or a fetch works on its own objects)."""

    users: dict[uuid.UUID, User] = field(default_factory=dict)
    connections: dict[uuid.UUID, CalendarConnection] = field(default_factory=dict)
    """Each person's connection, whose columns are also its stored sync state."""
    extras: dict[uuid.UUID, list[BusyCoverage]] = field(default_factory=dict)
    """The extra covered ranges by connection id."""
    versions: dict[uuid.UUID, int] = field(default_factory=dict)
    """Each person's busy version, read before any of their blocks."""


async def _people(db: AsyncSession, ids: list[uuid.UUID]) -> _People:
    found = _People()
    if ids:
        _add_people(found, await core_reads.rows(db, _PEOPLE, {"ids": ids}))
    return found


async def _people_and_booked(
    db: AsyncSession, ids: list[uuid.UUID], start: datetime, end: datetime
) -> tuple[_People, dict[uuid.UUID, list[BusyInterval]]]:
    """``_people`` and ``meeting_busy(db, ids, start, end)`` in one query."""
    found = _People()
    if not ids:
        return found, {}
    params = {"ids": ids, "start": start, "end": end}
    rows = await core_reads.rows(db, _PEOPLE_AND_BOOKED, params)
    _add_people(found, [row for row in rows if row[0] is not None])
    return found, booked_reads.booked_in(rows)


def _add_people(found: _People, rows: Sequence[Sequence[Any]]) -> None:
    for row in rows:
        user_id = row[0]
        if user_id not in found.users:
            found.users[user_id] = core_reads.detached_at(User, row)
            found.versions[user_id] = row[_AT_VERSION] or 0
        if row[_AT_CONNECTION] is None:
            continue
        connection = found.connections.get(user_id)
        if connection is None:
            connection = found.connections[user_id] = core_reads.detached_at(
                CalendarConnection, row, _AT_CONNECTION
            )
        ranges = found.extras.setdefault(connection.id, [])
        if row[_AT_RANGE] is not None:
            ranges.append(core_reads.detached_at(BusyCoverage, row, _AT_RANGE))


def _stale(people: _People, max_age: timedelta) -> list[uuid.UUID]:
    checked_at = utcnow()
    return [
        user_id
        for user_id, connection in people.connections.items()
        if sync.is_stale(connection, checked_at, max_age)
    ]


def _refresh_notes(
    people: _People, outcomes: Mapping[uuid.UUID, sync.SyncOutcome], now: datetime
) -> list[str]:
    """Name what could not be refreshed just now and how old its busy times are."""
    notes = []
    for user_id, outcome in outcomes.items():
        connection = people.connections.get(user_id)
        if outcome.ok or connection is None or connection.status != CalendarStatus.CONNECTED:
            continue
        if connection.last_synced_at is None:
            continue
        age = max(int((now - connection.last_synced_at).total_seconds() // 60), 0)
        user = people.users.get(user_id)
        notes.append(
            f"{user.name if user else 'Someone'}'s calendar could not be refreshed just now; "
            f"showing busy times from {age} minute{'s' if age != 1 else ''} ago."
        )
    return notes
