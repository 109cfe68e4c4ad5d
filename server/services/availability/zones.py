"""Where a time zone's allowed hours fall in UTC, exactly, across DST changes.

A slot is within the rules for someone when every moment of it falls, on their wall
clock, on one allowed day between ``earliest_hour`` and ``latest_hour``. That set of
instants is computed directly: split time into stretches of constant UTC offset and,
for each local day, intersect each stretch with ``[day + earliest - offset,
day + latest - offset)``. 23- and 25-hour days, gaps and folds (even 30-minute ones,
as on Lord Howe Island) then need no special case.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from server.services.availability.grid import (
    DAY_US,
    EPOCH_ORDINAL,
    HOUR_US,
    MICROSECOND,
    SECOND_US,
    Grid,
    from_us,
)

# Offsets change at most a few times a year (never twice within hours), so sampling
# every 6 hours finds every change; a bisection then places it to the second.
_SAMPLE = 6 * HOUR_US


def zone_named(name: str, whose: str) -> ZoneInfo:
    """The IANA zone ``name``, or a ``ValueError`` that says whose setting is wrong."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} for {whose}") from None


@lru_cache(maxsize=256)
def allowed_mask(
    zone_name: str, earliest: int, latest: int, allow_weekends: bool, grid: Grid
) -> npt.NDArray[np.bool_]:
    """For each slot of ``grid``, whether it lies within the rules on this zone's clock.

    Cached, and read-only: the same window is asked again and again (a page refresh, a
    client polling), and building the mask walks every local day of it in Python."""
    mask = np.zeros(grid.count, dtype=np.bool_)
    if grid.count == 0:
        mask.flags.writeable = False
        return mask
    first_day = from_us(grid.origin).date() - timedelta(days=1)
    last_day = from_us(grid.end).date() + timedelta(days=1)
    for lo, hi in allowed_spans(zone_name, earliest, latest, allow_weekends, first_day, last_day):
        k0, k1 = grid.first_starting_at_or_after(lo), grid.after_last_ending_by(hi)
        if k0 < k1:
            mask[k0:k1] = True
    mask.flags.writeable = False
    return mask


@lru_cache(maxsize=512)
def allowed_spans(
    zone_name: str,
    earliest: int,
    latest: int,
    allow_weekends: bool,
    first_day: date,
    last_day: date,
) -> tuple[tuple[int, int], ...]:
    """Allowed ``[start, end)`` stretches (epoch microseconds) for the local days given.

    Stretches of one day are merged; stretches of different days are kept apart, so a
    slot across local midnight never fits. Cached: it depends on nothing but its
    arguments, and the same zones and days come back request after request.
    """
    zone = ZoneInfo(zone_name)
    day_lo = (first_day.toordinal() - EPOCH_ORDINAL) * DAY_US
    day_hi = (last_day.toordinal() - EPOCH_ORDINAL + 1) * DAY_US
    regimes = _offset_regimes(zone, day_lo - DAY_US, day_hi + DAY_US)
    spans: list[tuple[int, int]] = []
    for ordinal in range(first_day.toordinal(), last_day.toordinal() + 1):
        if not allow_weekends and date.fromordinal(ordinal).weekday() >= 5:
            continue
        midnight = (ordinal - EPOCH_ORDINAL) * DAY_US
        wall_lo, wall_hi = midnight + earliest * HOUR_US, midnight + latest * HOUR_US
        day_spans: list[tuple[int, int]] = []
        for since, until, offset in regimes:
            lo, hi = max(since, wall_lo - offset), min(until, wall_hi - offset)
            if lo >= hi:
                continue
            if day_spans and day_spans[-1][1] == lo:
                day_spans[-1] = (day_spans[-1][0], hi)
            else:
                day_spans.append((lo, hi))
        spans.extend(day_spans)
    return tuple(spans)


@lru_cache(maxsize=256)
def offset_regimes(
    zone_name: str, first_day: date, last_day: date
) -> tuple[tuple[int, int, int], ...]:
    """``(since, until, offset)`` stretches of constant UTC offset (epoch microseconds)
    covering the local days ``first_day`` to ``last_day`` with two days to spare on each
    side, so every instant whose wall clock shows one of those days is inside one.

    The instants at which the clock shows wall time ``w`` (microseconds since the epoch
    of the naive wall time) are then ``w - offset`` for each stretch that contains it:
    none in a gap, two in a repeated hour. Cached like ``allowed_spans``.
    """
    day_lo = (first_day.toordinal() - EPOCH_ORDINAL - 2) * DAY_US
    day_hi = (last_day.toordinal() - EPOCH_ORDINAL + 3) * DAY_US
    return tuple(_offset_regimes(ZoneInfo(zone_name), day_lo, day_hi))


def _offset_regimes(zone: ZoneInfo, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """Maximal ``(since, until, offset)`` stretches of constant UTC offset covering
    ``[lo, hi)``; all values in microseconds, ``lo`` and ``hi`` whole seconds."""
    regimes: list[tuple[int, int, int]] = []
    since, offset = lo, _offset_at(zone, lo)
    probe = lo
    while probe < hi:
        ahead = min(probe + _SAMPLE, hi)
        if _offset_at(zone, ahead) == offset:
            probe = ahead
            continue
        # Invariant: offset at `before` is `offset`, at `after` it is not. Transitions
        # fall on whole seconds, so stop when they are one second apart.
        before, after = probe, ahead
        while after - before > SECOND_US:
            middle = before + (after - before) // 2 // SECOND_US * SECOND_US
            if _offset_at(zone, middle) == offset:
                before = middle
            else:
                after = middle
        regimes.append((since, after, offset))
        since, offset, probe = after, _offset_at(zone, after), after
    regimes.append((since, hi, offset))
    return regimes


def _offset_at(zone: ZoneInfo, us: int) -> int:
    offset = from_us(us).astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always knows its offset
    return offset // MICROSECOND
