"""Find meeting slots: a pure function of busy times, time zones, rules and a window.

Semantics (the tests hold the code to these):

- Candidate slots are ``[start + k*step, start + k*step + duration)`` lying fully inside
  ``[start, end)``; callers pass ``start`` already aligned. Slots starting before
  ``now + minimum_notice`` are skipped.
- A slot is *within the rules* for a participant when every moment of it falls, on
  that participant's own wall clock, on one local day that is a weekday (unless
  weekends are allowed) and between ``earliest_hour`` and ``latest_hour`` (24 is the
  midnight ending the day). On ordinary days that is: start on a weekday at or after
  ``earliest_hour``, end no later than ``latest_hour`` of the same local day. DST days
  (23 or 25 hours, gaps, folds) follow from the same definition.
- A slot is *eligible* when it is within the rules for every required participant.
- Each participant is in exactly one list per slot, in input order: ``unknown`` when
  ``busy`` is ``None`` (no calendar: never painted free); ``busy`` when one of their
  busy intervals, widened by ``buffer_minutes`` on both sides, overlaps the slot
  (half-open), or when they are optional and the slot is outside their rules; else
  ``unknown`` when one of their ``unknown`` intervals (times their calendar was not
  read), widened the same way, overlaps the slot; else ``free``. Intervals with
  ``end <= start`` are empty and block nothing. Unknown never blocks a slot and is
  never counted free.
- A slot *qualifies* when it is eligible, no required participant is busy, and at least
  ``minimum_free`` participants are free. PAIR mode returns qualifying slots by time;
  GROUP mode by number free (most first), ties earlier first. ``limit`` truncates after
  ordering.
- Reasons name people only. ``empty_reason`` is set exactly when no slot qualifies and
  says what to change.

Cost: each busy interval is turned into the range of slot indices it blocks with
integer arithmetic, and all ranges are summed at once with a difference array (a
counting sort over slot indices) and one cumulative sum: linear in the number of busy
intervals plus participants x eligible slots, with no per-minute grid. Allowed hours
are computed per distinct time zone, not per participant. Busy ``datetime`` values
are converted through float timestamps rounded back to whole microseconds (exact for
instants before 2100); that conversion is most of the time for large inputs, so busy
intervals may also come packed as integers (``PackedBusy``), read without conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import chain, compress
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from server.providers.base import BusyInterval
from server.services.availability import reasons
from server.services.availability.grid import Grid, to_us
from server.services.availability.model import (
    AvailabilityResult,
    LazySlots,
    Mode,
    Participant,
    Rules,
    Slot,
    Standing,
)
from server.services.availability.packed import PackedBusy
from server.services.availability.zones import allowed_mask, zone_named

__all__ = [
    "AvailabilityResult",
    "Mode",
    "PackedBusy",
    "Participant",
    "Rules",
    "Slot",
    "find_slots",
]

# Memory grows with participants x candidate slots; a year at 5-minute steps fits.
MAX_CANDIDATES = 110_000
_MINUTE = timedelta(minutes=1)
_MINUTE_US = 60_000_000
_get_start = attrgetter("start")
_get_end = attrgetter("end")
_get_tzinfo = attrgetter("tzinfo")
_Mask = npt.NDArray[np.bool_]
_Micros = npt.NDArray[np.int64]


def find_slots(
    participants: Sequence[Participant],
    rules: Rules,
    *,
    start: datetime,
    end: datetime,
    duration: timedelta,
    step: timedelta,
    now: datetime,
    mode: Mode = Mode.PAIR,
    minimum_free: int = 0,
    limit: int | None = None,
) -> AvailabilityResult:
    """Slots in ``[start, end)`` that suit ``participants`` under ``rules``.

    All datetimes must be aware; returned slots are in UTC. Raises ``ValueError`` for
    invalid input (naive datetimes, unknown zones, non-positive duration or step, ...).
    """
    mode = Mode(mode)
    _validate(participants, start, end, now, duration, step, minimum_free, limit)
    grid = Grid.over(start, end, duration, step)
    if grid.count > MAX_CANDIDATES:
        raise ValueError(
            f"the window holds {grid.count} candidate slots at this step; "
            f"at most {MAX_CANDIDATES} are searched at once (use a longer step or a shorter window)"
        )
    if grid.count == 0:
        return _empty(reasons.window_too_short((end - start) / _MINUTE, duration / _MINUTE))
    notice = rules.minimum_notice_minutes * _MINUTE_US
    first = grid.first_starting_at_or_after(to_us(now) + notice)
    if first >= grid.count:
        return _empty(reasons.window_in_past(rules.minimum_notice_minutes))

    zones = list(dict.fromkeys(p.time_zone for p in participants))
    masks = {
        zone: allowed_mask(zone, rules.earliest_hour, rules.latest_hour, rules.allow_weekends, grid)
        for zone in zones
    }
    required = [p for p in participants if not p.optional]
    eligible = np.zeros(grid.count, dtype=np.bool_)
    eligible[first:] = True
    for zone in dict.fromkeys(p.time_zone for p in required):
        eligible &= masks[zone]
    columns = np.flatnonzero(eligible)
    if columns.size == 0:
        return _empty(_why_nothing_eligible(required, rules, grid, first, masks))

    known = [p for p in participants if p.busy is not None]
    calendar_busy = _busy_matrix(known, rules, grid, eligible, columns.size)
    unread = _unknown_matrix(known, rules, grid, eligible, columns.size)
    state = _states(known, calendar_busy, masks, columns, unread)
    required_rows = [i for i, p in enumerate(known) if not p.optional]
    blocked = calendar_busy[required_rows].any(axis=0)
    free_count = len(known) - np.count_nonzero(state, axis=0)
    open_slots = ~blocked
    chosen = np.flatnonzero(open_slots & (free_count >= minimum_free))
    if chosen.size == 0:
        if open_slots.any():
            best = int(free_count[open_slots].max())
            return _empty(reasons.too_few_free(minimum_free, len(participants), best))
        return _empty(_why_blocked(known, required_rows, calendar_busy))
    if mode is Mode.GROUP:
        chosen = chosen[np.argsort(-free_count[chosen], kind="stable")]
    if limit is not None:
        chosen = chosen[:limit]
    starts_us = grid.origin + grid.step * columns[chosen].astype(np.int64)
    slots = LazySlots(
        int(chosen.size),
        lambda: _standings(participants, known, state, chosen),
        starts_us,
        starts_us + grid.duration,
    )
    return AvailabilityResult(slots=slots, empty_reason=None)


def _validate(
    participants: Sequence[Participant],
    start: datetime,
    end: datetime,
    now: datetime,
    duration: timedelta,
    step: timedelta,
    minimum_free: int,
    limit: int | None,
) -> None:
    for label, moment in (("start", start), ("end", end), ("now", now)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{label} must be an aware datetime, got naive {moment}")
    if end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    if duration <= timedelta(0):
        raise ValueError(f"duration must be positive, got {duration}")
    if step <= timedelta(0):
        raise ValueError(f"step must be positive, got {step}")
    if minimum_free < 0:
        raise ValueError(f"minimum_free must be >= 0, got {minimum_free}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be positive or None, got {limit}")
    if not participants:
        raise ValueError("at least one participant is needed")
    if len({p.user_id for p in participants}) != len(participants):
        raise ValueError("each participant may appear only once")
    checked: set[str] = set()
    for person in participants:
        if person.time_zone not in checked:
            zone_named(person.time_zone, person.name)
            checked.add(person.time_zone)


def _empty(reason: str) -> AvailabilityResult:
    return AvailabilityResult(slots=[], empty_reason=reason)


def _busy_matrix(
    known: Sequence[Participant], rules: Rules, grid: Grid, eligible: _Mask, width: int
) -> _Mask:
    """``[row, column]``: is known participant ``row`` calendar-busy in eligible slot
    ``column``? One difference array over (participant, eligible slot) and one
    cumulative sum, whatever the number of intervals."""
    rows, lo, hi = _busy_arrays(known, width + 1)
    return _cover_matrix(len(known), rows, lo, hi, rules, grid, eligible, width)


def _unknown_matrix(
    known: Sequence[Participant], rules: Rules, grid: Grid, eligible: _Mask, width: int
) -> _Mask | None:
    """Like ``_busy_matrix`` for the times each known participant's calendar was not
    read; ``None`` when nobody has such times (the common case costs nothing)."""
    spans = [(row, p.unknown) for row, p in enumerate(known) if p.unknown]
    if not spans:
        return None
    pairs = list(chain.from_iterable(unknown for _, unknown in spans))
    begins = [a for a, _ in pairs]
    finishes = [b for _, b in pairs]
    if None in map(_get_tzinfo, begins) or None in map(_get_tzinfo, finishes):
        raise ValueError("unknown intervals must have aware datetimes")
    rows = np.repeat(
        np.array([row * (width + 1) for row, _ in spans], dtype=np.int64),
        [len(unknown) for _, unknown in spans],
    )
    return _cover_matrix(
        len(known), rows, _to_micros(begins), _to_micros(finishes), rules, grid, eligible, width
    )


def _cover_matrix(
    height: int,
    rows: _Micros,
    lo: _Micros,
    hi: _Micros,
    rules: Rules,
    grid: Grid,
    eligible: _Mask,
    width: int,
) -> _Mask:
    """``[row, column]``: does one of row's intervals (widened by the buffer) overlap
    eligible slot ``column``? ``rows`` holds each interval's row times ``width + 1``."""
    if lo.size == 0:
        return np.zeros((height, width), dtype=np.bool_)
    non_empty = hi > lo
    buffer = rules.buffer_minutes * _MINUTE_US
    lo -= grid.origin + buffer
    hi -= grid.origin - buffer
    # Slot k overlaps [lo, hi) iff k*step < hi and k*step + duration > lo.
    first = (lo - grid.duration) // grid.step + 1
    after = -(-hi // grid.step)
    np.clip(first, 0, grid.count, out=first)
    np.clip(after, 0, grid.count, out=after)
    # rank[k]: how many eligible slots come before slot k, so a range of slot indices
    # becomes a range of eligible columns.
    rank = np.zeros(grid.count + 1, dtype=np.int64)
    np.cumsum(eligible, out=rank[1:])
    col_lo = rank[first]
    col_hi = np.where(non_empty, np.maximum(rank[after], col_lo), col_lo)
    cells = height * (width + 1)
    diff = np.bincount(rows + col_lo, minlength=cells) - np.bincount(rows + col_hi, minlength=cells)
    running = np.cumsum(diff.reshape(height, width + 1), axis=1)
    busy: _Mask = running[:, :width] > 0
    return busy


def _busy_arrays(known: Sequence[Participant], row_width: int) -> tuple[_Micros, _Micros, _Micros]:
    """Every busy interval as (row offset, start, end) in epoch microseconds.

    Packed intervals are read as they are; all others are converted in one pass.
    """
    packed: list[tuple[int, PackedBusy]] = []
    loose: list[tuple[int, Sequence[BusyInterval]]] = []
    for row, person in enumerate(known):
        if isinstance(person.busy, PackedBusy):
            packed.append((row, person.busy))
        elif person.busy:
            loose.append((row, person.busy))
    rows = [np.repeat(np.int64(row * row_width), len(busy)) for row, busy in packed]
    starts = [busy.starts_us for _, busy in packed]
    ends = [busy.ends_us for _, busy in packed]
    if loose:
        intervals = list(chain.from_iterable(busy for _, busy in loose))
        begins = list(map(_get_start, intervals))
        finishes = list(map(_get_end, intervals))
        if None in map(_get_tzinfo, begins) or None in map(_get_tzinfo, finishes):
            raise ValueError(_naive_busy_message(known))
        rows.append(
            np.repeat(
                np.array([row * row_width for row, _ in loose], dtype=np.int64),
                [len(busy) for _, busy in loose],
            )
        )
        starts.append(_to_micros(begins))
        ends.append(_to_micros(finishes))
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(rows), np.concatenate(starts), np.concatenate(ends)


def _to_micros(moments: list[datetime]) -> _Micros:
    """Epoch microseconds of aware datetimes. ``datetime.timestamp`` is the fastest
    route in the standard library; rounding restores whole microseconds exactly for
    instants before 2100 (the float error stays under a quarter microsecond)."""
    seconds = np.fromiter(map(datetime.timestamp, moments), dtype=np.float64, count=len(moments))
    return np.rint(seconds * 1e6).astype(np.int64)


def _naive_busy_message(known: Sequence[Participant]) -> str:
    for person in known:
        for interval in person.busy or ():
            if interval.start.tzinfo is None or interval.end.tzinfo is None:
                return f"busy intervals must have aware datetimes (naive ones for {person.name})"
    return "busy intervals must have aware datetimes"


def _states(
    known: Sequence[Participant],
    calendar_busy: _Mask,
    masks: dict[str, _Mask],
    columns: npt.NDArray[np.intp],
    unread: _Mask | None = None,
) -> npt.NDArray[np.uint8]:
    """0 free, 1 calendar-busy, 2 optional and outside their allowed hours, 3 unknown
    (calendar not read then), in that order of precedence."""
    state = calendar_busy.astype(np.uint8)
    optional_rows = [i for i, p in enumerate(known) if p.optional]
    if optional_rows:
        zones = list(dict.fromkeys(known[i].time_zone for i in optional_rows))
        allowed = np.stack([masks[zone][columns] for zone in zones])
        zone_index = [zones.index(known[i].time_zone) for i in optional_rows]
        outside = ~allowed[zone_index]
        sub = state[optional_rows]
        state[optional_rows] = np.where(sub == 1, 1, outside.astype(np.uint8) * 2)
    if unread is not None:
        state[(state == 0) & unread] = 3
    return state


def _standings(
    participants: Sequence[Participant],
    known: Sequence[Participant],
    state: npt.NDArray[np.uint8],
    chosen: npt.NDArray[np.intp],
) -> list[Standing]:
    """Where everyone stands at each chosen column, as ``Slot`` says it (free, busy,
    unknown, reason); slots with the same row share one standing.

    This loop is most of the cost once busy times are numbers, so numpy does the bulk
    up front (counts, and every slot's ids in one flat list to cut per slot), first
    names come from ``itertools.compress`` over 0/1 byte rows, and each distinct row is
    worded once.
    """
    total = len(participants)
    unknown_people = [p for p in participants if p.busy is None]
    unknown = tuple(p.user_id for p in unknown_people)
    unknown_text = reasons.unknown_part([p.name for p in unknown_people])
    names = [p.name for p in known]
    width = len(known)
    picked = np.ascontiguousarray(state[:, chosen].T)
    is_free, is_busy, is_outside = picked == 0, picked == 1, picked == 2
    any_unread = bool((picked == 3).any())
    # Where each known participant stands among everyone, to merge the unread into
    # ``unknown`` in input order.
    position = {p.user_id: n for n, p in enumerate(participants)}
    rows = picked.tobytes()
    busy_rows, outside_rows = is_busy.tobytes(), is_outside.tobytes()
    free_counts = np.count_nonzero(is_free, axis=1)
    busy_counts = np.count_nonzero(is_busy, axis=1).tolist()
    outside_counts = np.count_nonzero(is_outside, axis=1).tolist()
    # All slots' free (and not-free) ids in one flat list each, cut per slot below.
    ids = np.empty(width, dtype=object)
    ids[:] = [p.user_id for p in known]
    everyone = np.broadcast_to(ids, picked.shape)
    is_taken = is_busy | is_outside
    free_ids, taken_ids = everyone[is_free].tolist(), everyone[is_taken].tolist()
    free_at = [0, *np.cumsum(free_counts).tolist()]
    taken_at = [0, *np.cumsum(np.count_nonzero(is_taken, axis=1)).tolist()]
    free_counts_list = free_counts.tolist()
    seen: dict[bytes, Standing] = {}
    found: list[Standing] = []
    for i in range(len(chosen)):
        lo, hi = i * width, (i + 1) * width
        row = rows[lo:hi]
        standing = seen.get(row)
        if standing is None:
            slot_unknown, slot_unknown_text = unknown, unknown_text
            if any_unread:
                unread = [p for p, s in zip(known, row, strict=True) if s == 3]
                if unread:
                    merged = sorted([*unknown_people, *unread], key=lambda p: position[p.user_id])
                    slot_unknown = tuple(p.user_id for p in merged)
                    slot_unknown_text = reasons.unknown_part(
                        [p.name for p in unknown_people], [p.name for p in unread]
                    )
            reason = reasons.slot_reason(
                total,
                free_counts_list[i],
                compress(names, busy_rows[lo:hi]),
                busy_counts[i],
                compress(names, outside_rows[lo:hi]),
                outside_counts[i],
                slot_unknown_text,
            )
            free = tuple(free_ids[free_at[i] : free_at[i + 1]])
            taken = tuple(taken_ids[taken_at[i] : taken_at[i + 1]])
            standing = seen[row] = (free, taken, slot_unknown, reason)
        found.append(standing)
    return found


def _why_nothing_eligible(
    required: Sequence[Participant],
    rules: Rules,
    grid: Grid,
    first: int,
    masks: dict[str, _Mask],
) -> str:
    """Only called when required participants' allowed hours never meet in the window."""
    zones = list(dict.fromkeys(p.time_zone for p in required))
    if not rules.allow_weekends:
        with_weekends = np.ones(grid.count - first, dtype=np.bool_)
        for zone in zones:
            with_weekends &= allowed_mask(zone, rules.earliest_hour, rules.latest_hour, True, grid)[
                first:
            ]
        if with_weekends.any():
            return reasons.weekends_only()
    lonely = [p for p in required if not masks[p.time_zone][first:].any()]
    if lonely:
        people = [(p.name, p.time_zone) for p in lonely]
        return reasons.outside_own_hours(people, rules.earliest_hour, rules.latest_hour)
    first_in_zone = {p.time_zone: p for p in reversed(required)}
    for i, zone in enumerate(zones):
        for other in zones[i + 1 :]:
            if not (masks[zone][first:] & masks[other][first:]).any():
                pair = [first_in_zone[zone], first_in_zone[other]]
                people = [(p.name, p.time_zone) for p in pair]
                return reasons.no_overlap(people, rules.earliest_hour, rules.latest_hour)
    people = [(first_in_zone[zone].name, zone) for zone in zones]
    return reasons.no_overlap(people, rules.earliest_hour, rules.latest_hour)


def _why_blocked(
    known: Sequence[Participant], required_rows: list[int], calendar_busy: _Mask
) -> str:
    """Every eligible slot has a required participant busy: name who blocks most."""
    busy = calendar_busy[required_rows]
    per_person = busy.sum(axis=1).tolist()
    ranked = sorted(range(len(required_rows)), key=lambda i: -per_person[i])
    blockers = [
        (known[required_rows[i]].name, int(per_person[i])) for i in ranked[:3] if per_person[i]
    ]
    everyone = bool(busy.all())
    return reasons.blocked(blockers, int(busy.shape[1]), everyone)
