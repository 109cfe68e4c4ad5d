"""Which times a connection's cached busy blocks cover, and fetching the rest on demand.

A connection's cache covers its default horizon (``synced_from``/``synced_until``, kept
fresh by the job loop) plus any extra ranges readers asked about (``BusyCoverage``
rows: a window 100 or 300 days out). Outside that union Tandem has not looked, so
nobody may be shown free there. ``ensure_covered`` is the one place that, for some
windows and people, finds the uncovered parts, fetches them from the provider within
the caller's time budget, stores the blocks and the new covered range, and returns
what is still uncovered (with why) so the caller marks those times *unknown*. People an
organization's integration covers are read through its directory, batched
(``org_reads``).

Extra ranges are rounded to whole UTC days and merged when close, so asking about
one slot does not cost a provider call per slot; ranges nobody used for
``UNUSED_FOR`` are dropped with their blocks (``drop_unused``), and ranges still in
use are refreshed like the default horizon (``refresh_in_use``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import and_, bindparam, delete, exists, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import BusyBlock, BusyCoverage, CalendarConnection, User, busy_version
from server.models.base import utcnow
from server.models.enums import BusyKind, CalendarStatus
from server.providers.base import BusyFetch, BusyInterval, RateLimited
from server.providers.secrets import SecretError
from server.services.calendars import org_reads, refresh_lock
from server.services.calendars.deps import (
    CalendarDeps,
    load_credentials,
    save_refreshed_credentials,
)

log = logging.getLogger("tandem.coverage")

__all__ = [
    "LOOKBEHIND",
    "MAX_AHEAD",
    "UNUSED_FOR",
    "Gap",
    "default_range",
    "drop_uncovered_blocks",
    "drop_unused",
    "ensure_covered",
    "refresh_in_use",
    "replace_blocks",
    "uncovered",
]

# The default horizon starts this long before "now"; earlier times are not scheduling
# questions and are never fetched on demand.
LOOKBEHIND = timedelta(days=1)
# On-demand reads go this far ahead: polls and the availability query reach 12 months.
MAX_AHEAD = timedelta(days=366 + 7)
# Extra ranges nobody asked about for this long are dropped with their blocks.
UNUSED_FOR = timedelta(days=7)
# Uncovered pieces closer than this are fetched as one range (one provider call).
_MERGE_GAP = timedelta(days=7)
# ``last_used_at`` is written at most this often per range (reads stay cheap).
_TOUCH_EVERY = timedelta(hours=1)
_DAY = timedelta(days=1)

Span = tuple[datetime, datetime]

WHY_TIMEOUT = "the calendar did not answer in time"
WHY_FAILED = "the calendar could not be read just now"
WHY_TOO_FAR = "Tandem reads calendars at most 12 months ahead"
WHY_NOT_FETCHED = "not read yet"


@dataclass(frozen=True, slots=True)
class Gap:
    """Part of an asked window a connection's cache does not cover, and why."""

    start: datetime
    end: datetime
    why: str


def default_range(connection: CalendarConnection, horizon_days: int = 60) -> Span | None:
    """The default horizon the last successful sync covered, ``None`` before any.

    Rows synced before the range was recorded fall back to the horizon around the last
    sync, which is what that sync fetched.
    """
    if connection.last_synced_at is None:
        return None
    start = connection.synced_from or connection.last_synced_at - LOOKBEHIND
    end = connection.synced_until or connection.last_synced_at + timedelta(days=horizon_days)
    return (start, end) if end > start else None


def uncovered(window: Span, covered: Iterable[Span]) -> list[Span]:
    """The parts of ``window`` outside every ``covered`` span, in order."""
    start, end = window
    pieces: list[Span] = []
    cursor = start
    for lo, hi in sorted(covered):
        if hi <= cursor or lo >= end:
            continue
        if lo > cursor:
            pieces.append((cursor, min(lo, end)))
        cursor = max(cursor, hi)
        if cursor >= end:
            break
    if cursor < end:
        pieces.append((cursor, end))
    return pieces


def _merge(spans: Iterable[Span], gap: timedelta = timedelta(0)) -> list[Span]:
    merged: list[Span] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _whole_days(span: Span) -> Span:
    lo, hi = (moment.astimezone(UTC) for moment in span)
    floor = lo.replace(hour=0, minute=0, second=0, microsecond=0)
    ceil = hi.replace(hour=0, minute=0, second=0, microsecond=0)
    if ceil < hi:
        ceil += _DAY
    return floor, ceil


_EXTRA_RANGES = select(BusyCoverage).where(
    col(BusyCoverage.connection_id).in_(bindparam("ids", expanding=True))
)
"""Built once: every busy read asks."""

_READABLE = (
    select(CalendarConnection, User.time_zone)
    .join(User, col(User.id) == col(CalendarConnection.user_id))
    .where(
        col(CalendarConnection.user_id).in_(bindparam("ids", expanding=True)),
        CalendarConnection.status == CalendarStatus.CONNECTED,
        col(CalendarConnection.last_synced_at).is_not(None),
    )
)
"""Built once: the readable (connected, synced) connections of some people, with each
owner's time zone, for callers that have not read them yet."""


async def _attached(
    db: AsyncSession,
    by_id: dict[uuid.UUID, tuple[CalendarConnection, str]],
    gaps: Mapping[uuid.UUID, Sequence[Span]],
) -> dict[uuid.UUID, tuple[CalendarConnection, str]]:
    """``by_id`` with the connections about to be fetched for as this session's objects
    (a fetch may rotate their tokens, written back through the session): a caller's
    detached copy is read again (and stays detached if the row is gone), one already in
    the session is itself."""
    attached = dict(by_id)
    for connection_id in gaps:
        connection, zone = by_id[connection_id]
        if connection in db:
            continue
        current = await db.get(CalendarConnection, connection_id)
        if current is not None:
            attached[connection_id] = (current, zone)
    return attached


async def _extra_ranges(
    db: AsyncSession, connection_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[BusyCoverage]]:
    found: dict[uuid.UUID, list[BusyCoverage]] = defaultdict(list)
    if not connection_ids:
        return found
    rows = await db.exec(_EXTRA_RANGES, params={"ids": list(connection_ids)})
    for row in rows.all():
        found[row.connection_id].append(row)
    return found


async def ensure_covered(
    db: AsyncSession,
    deps: CalendarDeps | None,
    user_ids: Sequence[uuid.UUID],
    windows: Sequence[Span],
    *,
    now: datetime | None = None,
    budget_seconds: float | None = 3.0,
    fetch: bool = True,
    connections: Sequence[tuple[CalendarConnection, str]] | None = None,
    extras: Mapping[uuid.UUID, Sequence[BusyCoverage]] | None = None,
) -> dict[uuid.UUID, list[Gap]]:
    """For each of ``user_ids`` with a readable connected calendar, the parts of
    ``windows`` still uncovered after fetching what could be fetched in time.

    Users without a connected, synced calendar are left out (they are wholly unknown,
    which callers already know from the connection). Times before ``now - LOOKBEHIND``
    are not asked about. With ``fetch=False`` nothing is fetched or written (booking
    re-checks inside a locked transaction): every uncovered part comes back as a gap,
    and ``deps`` may be ``None``. Commits when it fetched or marked ranges used.
    ``connections`` are the readable (connected, synced) connections of ``user_ids`` with
    each owner's time zone, when the caller has already read them; ``extras``, the extra
    covered ranges of (at least) those connections by connection id, likewise.
    """
    now = now or utcnow()
    if fetch and deps is None:
        raise ValueError("fetching busy times needs the calendar dependencies")
    horizon_days = deps.horizon_days if deps is not None else 60
    deadline = time.monotonic() + budget_seconds if budget_seconds is not None else None
    wanted = _merge((max(lo, now - LOOKBEHIND), hi) for lo, hi in windows if hi > now - LOOKBEHIND)
    if not wanted or not user_ids:
        return {}
    if connections is None:
        connections = (await db.exec(_READABLE, params={"ids": list(user_ids)})).all()
    by_id = {connection.id: (connection, zone) for connection, zone in connections}
    if extras is None:
        ranges = await _extra_ranges(db, list(by_id))
    else:
        ranges = defaultdict(list, {i: list(extras[i]) for i in by_id if i in extras})
    gaps: dict[uuid.UUID, list[Span]] = {}
    for connection_id, (connection, _zone) in by_id.items():
        covered = [(r.start_at, r.end_at) for r in ranges[connection_id]]
        default = default_range(connection, horizon_days)
        if default is not None:
            covered.append(default)
        pieces = [piece for window in wanted for piece in uncovered(window, covered)]
        if pieces:
            gaps[connection_id] = pieces
    touched = await _touch(db, ranges, wanted, now) if fetch else False
    result: dict[uuid.UUID, list[Gap]] = {}
    if not gaps:
        if touched:
            await db.commit()
        return result
    if fetch and deps is not None:
        by_id = await _attached(db, by_id, gaps)
    limit = now + MAX_AHEAD
    plans: list[tuple[CalendarConnection, str, Span]] = []
    for connection_id, pieces in gaps.items():
        connection, zone = by_id[connection_id]
        if fetch and connection not in db:
            continue  # gone since it was read: its gaps stay unknown
        reachable = [(lo, min(hi, limit)) for lo, hi in pieces if lo < limit]
        for span in _merge((_whole_days(p) for p in reachable), _MERGE_GAP):
            plans.append((connection, zone, (max(span[0], now - LOOKBEHIND), span[1])))
    fetched: dict[uuid.UUID, list[Span]] = defaultdict(list)
    failed: dict[uuid.UUID, str] = {}
    if fetch and plans and deps is not None:
        outcomes = await _fetch_all(db, deps, plans, now, deadline)
        for (connection, _zone, span), outcome in zip(plans, outcomes, strict=True):
            if isinstance(outcome, str):
                failed[connection.id] = outcome
                continue
            await replace_blocks(db, connection.user_id, span, outcome.intervals)
            await _record_range(db, connection.id, span, now)
            fetched[connection.id].append(span)
        for connection, _zone, _span in plans:
            db.add(connection)  # refreshed credentials, if a provider rotated them
        await db.commit()
    elif fetch:
        await db.commit()
    for connection_id, pieces in gaps.items():
        connection, _zone = by_id[connection_id]
        left: list[Gap] = []
        for piece in pieces:
            for lo, hi in uncovered(piece, fetched[connection_id]):
                if lo >= limit:
                    why = WHY_TOO_FAR
                elif not fetch:
                    why = WHY_NOT_FETCHED
                else:
                    why = failed.get(connection_id, WHY_FAILED)
                left.append(Gap(lo, hi, why))
        if left:
            result[connection.user_id] = left
    return result


async def _fetch_all(
    db: AsyncSession,
    deps: CalendarDeps,
    plans: Sequence[tuple[CalendarConnection, str, Span]],
    now: datetime,
    deadline: float | None,
) -> list[BusyFetch | str]:
    """Fetch every planned range concurrently; a failure is the reason, as a phrase.
    Covered people are read through their integration's directory, in its batches."""
    outcomes: list[BusyFetch | str] = [WHY_FAILED] * len(plans)
    covered = [
        i
        for i, (c, _z, _s) in enumerate(plans)
        if c.integration_id is not None and (c.retry_after is None or c.retry_after <= now)
    ]
    personal = [i for i, (c, _z, _s) in enumerate(plans) if c.integration_id is None]
    if covered:
        answers = await org_reads.fetch_covered(
            db, deps, [(plans[i][0], plans[i][2]) for i in covered], deadline
        )
        for i, answer in zip(covered, answers, strict=True):
            if answer is None:
                outcomes[i] = WHY_TIMEOUT
            else:
                outcomes[i] = answer if answer.readable else WHY_FAILED
    if personal:
        answers_personal = await _fetch_personal(
            db, deps, [plans[i] for i in personal], now, deadline
        )
        for i, outcome in zip(personal, answers_personal, strict=True):
            outcomes[i] = outcome
    return outcomes


async def _fetch_personal(
    db: AsyncSession,
    deps: CalendarDeps,
    plans: Sequence[tuple[CalendarConnection, str, Span]],
    now: datetime,
    deadline: float | None,
) -> list[BusyFetch | str]:
    async def one(connection: CalendarConnection, zone: str, span: Span) -> BusyFetch | str:
        if connection.retry_after is not None and connection.retry_after > now:
            return WHY_FAILED  # backing off after an outage: do not hammer the provider
        try:
            credentials = load_credentials(deps.secrets, connection)
        except SecretError:
            return WHY_FAILED
        provider = deps.registry.get(connection.provider)
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return WHY_TIMEOUT
        try:
            # Several nodes: the newest token, refreshed under the connection's lock first.
            answer = await asyncio.wait_for(
                refresh_lock.call_with_fresh_token(
                    db,
                    deps,
                    connection.id,
                    credentials,
                    partial(provider.fetch_busy, start=span[0], end=span[1], time_zone=zone),
                ),
                remaining,
            )
        except TimeoutError:
            return WHY_TIMEOUT
        except RateLimited:
            return WHY_FAILED
        except Exception as error:  # any provider failure leaves the range unknown
            log.info(
                "on-demand read for user %s failed: %s", connection.user_id, type(error).__name__
            )
            return WHY_FAILED
        finally:
            save_refreshed_credentials(deps.secrets, connection, credentials)
        return answer if answer.readable else WHY_FAILED

    return list(await asyncio.gather(*(one(c, z, s) for c, z, s in plans)))


async def replace_blocks(
    db: AsyncSession, user_id: uuid.UUID, span: Span, intervals: Iterable[BusyInterval]
) -> None:
    """Make ``span`` of the user's cache exactly ``intervals`` (clipped to it); blocks
    reaching outside keep their outside parts, which other ranges may cover."""
    lo, hi = span
    overlapping = (
        col(BusyBlock.user_id) == user_id,
        col(BusyBlock.start_at) < hi,
        col(BusyBlock.end_at) > lo,
    )
    straddling = (
        await db.exec(
            select(BusyBlock.start_at, BusyBlock.end_at, BusyBlock.kind).where(
                *overlapping, or_(col(BusyBlock.start_at) < lo, col(BusyBlock.end_at) > hi)
            )
        )
    ).all()
    await db.exec(delete(BusyBlock).where(*overlapping))
    busy_version.note_changed(db, [user_id])
    for start_at, end_at, kind in straddling:
        if start_at < lo:
            db.add(BusyBlock(user_id=user_id, start_at=start_at, end_at=lo, kind=BusyKind(kind)))
        if end_at > hi:
            db.add(BusyBlock(user_id=user_id, start_at=hi, end_at=end_at, kind=BusyKind(kind)))
    for interval in intervals:
        start, end = max(interval.start, lo), min(interval.end, hi)
        if end > start:
            db.add(BusyBlock(user_id=user_id, start_at=start, end_at=end, kind=interval.kind))


async def _record_range(
    db: AsyncSession, connection_id: uuid.UUID, span: Span, now: datetime
) -> None:
    """Store ``span`` as covered, merged with the ranges it overlaps or touches."""
    lo, hi = span
    touching = (
        await db.exec(
            select(BusyCoverage).where(
                col(BusyCoverage.connection_id) == connection_id,
                col(BusyCoverage.start_at) <= hi,
                col(BusyCoverage.end_at) >= lo,
            )
        )
    ).all()
    fetched_at = now
    for row in touching:
        lo, hi = min(lo, row.start_at), max(hi, row.end_at)
        # The merged range is only as fresh as its oldest part.
        fetched_at = min(fetched_at, row.fetched_at)
        await db.delete(row)
    await db.flush()
    db.add(
        BusyCoverage(
            connection_id=connection_id,
            start_at=lo,
            end_at=hi,
            fetched_at=fetched_at,
            last_used_at=now,
        )
    )


async def _touch(
    db: AsyncSession,
    extras: dict[uuid.UUID, list[BusyCoverage]],
    wanted: Sequence[Span],
    now: datetime,
) -> bool:
    """Mark the extra ranges these windows read as used (at most once an hour); whether
    any was."""
    ids = [
        row.id
        for rows in extras.values()
        for row in rows
        if row.last_used_at < now - _TOUCH_EVERY
        and any(row.start_at < hi and row.end_at > lo for lo, hi in wanted)
    ]
    if ids:
        await db.exec(
            update(BusyCoverage).where(col(BusyCoverage.id).in_(ids)).values(last_used_at=now)
        )
    return bool(ids)


async def drop_uncovered_blocks(
    db: AsyncSession, connection: CalendarConnection, horizon_days: int = 60
) -> None:
    """Delete the user's blocks outside the default horizon and every extra range."""
    outside_extras = ~exists().where(
        col(BusyCoverage.connection_id) == connection.id,
        col(BusyCoverage.start_at) < col(BusyBlock.end_at),
        col(BusyCoverage.end_at) > col(BusyBlock.start_at),
    )
    condition = [col(BusyBlock.user_id) == connection.user_id, outside_extras]
    default = default_range(connection, horizon_days)
    if default is not None:
        condition.append(
            or_(col(BusyBlock.end_at) <= default[0], col(BusyBlock.start_at) >= default[1])
        )
    await db.exec(delete(BusyBlock).where(and_(*condition)))
    busy_version.note_changed(db, [connection.user_id])


async def drop_unused(
    db: AsyncSession, *, now: datetime | None = None, horizon_days: int = 60
) -> int:
    """Drop extra ranges nobody used for ``UNUSED_FOR``, ranges now wholly in the past
    or inside the default horizon, and the blocks no range covers any more. Returns
    how many ranges were dropped."""
    now = now or utcnow()
    rows = (
        await db.exec(
            select(BusyCoverage, CalendarConnection)
            .join(
                CalendarConnection,
                col(CalendarConnection.id) == col(BusyCoverage.connection_id),
            )
            .where(
                or_(
                    col(BusyCoverage.last_used_at) < now - UNUSED_FOR,
                    col(BusyCoverage.end_at) <= now - LOOKBEHIND,
                    and_(
                        col(CalendarConnection.synced_from).is_not(None),
                        col(CalendarConnection.synced_until).is_not(None),
                        col(BusyCoverage.start_at) >= col(CalendarConnection.synced_from),
                        col(BusyCoverage.end_at) <= col(CalendarConnection.synced_until),
                    ),
                )
            )
        )
    ).all()
    dropped: dict[uuid.UUID, CalendarConnection] = {}
    count = 0
    for row, connection in rows:
        default = default_range(connection, horizon_days)
        inside_default = (
            default is not None and default[0] <= row.start_at and row.end_at <= default[1]
        )
        if row.last_used_at < now - UNUSED_FOR or row.end_at <= now - LOOKBEHIND or inside_default:
            await db.delete(row)
            dropped[connection.id] = connection
            count += 1
    await db.flush()
    for connection in dropped.values():
        await drop_uncovered_blocks(db, connection, horizon_days)
    await db.commit()
    if count:
        log.info("dropped %d unused busy ranges", count)
    return count


async def refresh_in_use(
    db: AsyncSession,
    deps: CalendarDeps,
    max_age: timedelta,
    *,
    now: datetime | None = None,
    limit: int = 20,
    budget_seconds: float = 60.0,
) -> int:
    """Re-fetch extra ranges still in use whose blocks are older than ``max_age``, like
    the default horizon. Each range is claimed by moving its ``fetched_at`` first (a
    conditional UPDATE), so several workers never fetch the same range. Returns how
    many ranges were refreshed."""
    now = now or utcnow()
    candidates = (
        await db.exec(
            select(BusyCoverage, CalendarConnection, User.time_zone)
            .join(
                CalendarConnection,
                col(CalendarConnection.id) == col(BusyCoverage.connection_id),
            )
            .join(User, col(User.id) == col(CalendarConnection.user_id))
            .where(
                col(BusyCoverage.fetched_at) < now - max_age,
                col(BusyCoverage.last_used_at) >= now - UNUSED_FOR,
                CalendarConnection.status == CalendarStatus.CONNECTED,
                or_(
                    col(CalendarConnection.retry_after).is_(None),
                    col(CalendarConnection.retry_after) <= now,
                ),
            )
            .order_by(col(BusyCoverage.fetched_at))
            .limit(limit)
        )
    ).all()
    plans: list[tuple[CalendarConnection, str, Span]] = []
    claimed: list[tuple[uuid.UUID, datetime]] = []
    for row, connection, zone in candidates:
        claim = await db.exec(
            update(BusyCoverage)
            .where(col(BusyCoverage.id) == row.id, col(BusyCoverage.fetched_at) == row.fetched_at)
            .values(fetched_at=now)
        )
        if claim.rowcount == 1:
            plans.append((connection, zone, (row.start_at, row.end_at)))
            claimed.append((row.id, row.fetched_at))
    await db.commit()
    if not plans:
        return 0
    deadline = time.monotonic() + budget_seconds
    outcomes = await _fetch_all(db, deps, plans, now, deadline)
    refreshed = 0
    for (connection, _zone, span), (range_id, fetched_at), outcome in zip(
        plans, claimed, outcomes, strict=True
    ):
        db.add(connection)
        if isinstance(outcome, str):
            # Still covered by the older blocks; say how old they are and retry next tick.
            await db.exec(
                update(BusyCoverage)
                .where(col(BusyCoverage.id) == range_id)
                .values(fetched_at=fetched_at)
            )
            log.info("refresh of a busy range for user %s failed", connection.user_id)
            continue
        await replace_blocks(db, connection.user_id, span, outcome.intervals)
        refreshed += 1
    await db.commit()
    return refreshed
