"""The pair scheduling page's week grid, computed from an availability answer.

Pure (no I/O): it turns an ``AvailabilityAnswer`` and the viewer's time zone into rows
(wall-clock times in the viewer's zone) of cells (one per day), each with a state and
the words that say it, so the page never relies on colour alone. A cell stands for a
meeting *start* time ``[t, t + step)``:

- ``past``: it starts before now (or before the minimum notice allows);
- ``outside-rules``: some of it lies outside the program's hours or weekdays on
  someone's own clock (the engine's exact definition, shared through ``allowed_spans``);
- ``unavailable``: someone whose calendar is known is busy during it; ``busy`` says who
  ("me", "partner" or "both"), so the page can draw each differently and say it;
- ``unknown``: nobody is known busy, but someone's connected calendar could not be read
  for it (a week months ahead with the provider down): never shown as free;
- ``free-slot``: the engine offers a meeting of the chosen length starting there;
- ``no-fit``: free, but a meeting of that length (plus buffers) does not fit;
- ``skipped``: a wall-clock time that a daylight-saving change skips that day.

Rows come from the viewer's wall clock, so on a 23- or 25-hour day the times still
line up with the other days: skipped times are marked, and a repeated hour's cell
covers both of its occurrences. Each row also carries the partner's wall clock, and
runs of rows in which nobody may meet on any day fold into one ``Band``.

The view starts on any day (the page starts it today, so no past days fill it) and
covers seven days from there.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple, cast
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from server.services.availability import Slot
from server.services.availability.grid import DAY_US, EPOCH_ORDINAL, MINUTE_US, iso_utc, to_us
from server.services.availability.model import slot_times
from server.services.availability.query import AvailabilityAnswer, clipped_busy
from server.services.availability.reasons import names as join_names
from server.services.availability.zones import allowed_spans, offset_regimes

__all__ = [
    "DURATIONS",
    "Band",
    "Cell",
    "CellState",
    "Day",
    "FreeStart",
    "Person",
    "Row",
    "WeekView",
    "build_week",
    "monday_of",
    "step_for",
    "week_window",
]

DURATIONS = (15, 30, 45, 60, 90)
_Interval = tuple[datetime, datetime]


class CellState(StrEnum):
    FREE_SLOT = "free-slot"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"
    OUTSIDE_RULES = "outside-rules"
    PAST = "past"
    NO_FIT = "no-fit"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Person:
    """Someone on the grid. ``known`` is false when their calendar cannot be read."""

    user_id: uuid.UUID
    name: str
    time_zone: str
    known: bool
    calendar_status: str
    is_viewer: bool

    @property
    def called(self) -> str:
        return "you" if self.is_viewer else self.name


class Cell(NamedTuple):
    """``text`` is what the cell shows and ``detail`` what a screen reader hears after it
    (the table headers already name the day and time); ``label`` is the whole sentence,
    the accessible name of a free slot's link. ``book_start`` (ISO 8601 UTC, ``Z``) is
    set only on free slots. A named tuple rather than a frozen dataclass: a week has up
    to 672 cells, and a tuple is built in a fifth of the time."""

    state: CellState
    text: str
    detail: str
    label: str
    book_start: str | None = None
    busy: str | None = None  # "me", "partner" or "both" on unavailable cells
    who: tuple[str, ...] = ()  # whom ``detail`` is about (outside the hours, busy)


class FreeStart(NamedTuple):
    """A free slot in the list of one day's free start times (``WeekView.free_by_day``)."""

    time: str  # the row's time on the viewer's clock
    partner_time: str  # the row's ``partner_time``
    cell: Cell


@dataclass(frozen=True, slots=True)
class Day:
    date: date
    heading: str  # "Tue 12 Nov"
    is_today: bool


@dataclass(frozen=True, slots=True)
class Row:
    time: str  # "10:00" on the viewer's wall clock
    cells: tuple[Cell, ...]
    partner_time: str = ""  # "04:00" on the partner's clock ("04:00/05:00" across a change)

    @property
    def is_band(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class Band:
    """Rows folded together because nobody may meet then on any day of the view."""

    first: str  # "08:00"
    last: str  # "13:30", the last folded row's start
    until: str  # "14:00", when the band ends
    text: str  # "Outside meeting hours for Maya"
    rows: int

    @property
    def is_band(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class WeekView:
    """``rows`` are every row; ``blocks`` the same with folded runs as ``Band`` items, in
    the order the page shows them."""

    zone: str
    first_day: date
    heading: str  # "Week of Monday 11 November 2024", "7 days from Wednesday 2 December 2026"
    days: tuple[Day, ...]
    rows: tuple[Row, ...]
    people: tuple[Person, ...]
    duration_minutes: int
    step_minutes: int
    slot_count: int
    blocks: tuple[Row | Band, ...] = ()
    partner: Person | None = None  # whose clock ``Row.partner_time`` shows
    free_by_day: tuple[tuple[FreeStart, ...], ...] = ()  # per day, in row order

    @property
    def previous_start(self) -> date:
        return self.first_day - timedelta(days=7)

    @property
    def next_start(self) -> date:
        return self.first_day + timedelta(days=7)


def step_for(duration_minutes: int) -> int:
    """Rows are 30 minutes apart, 15 for 15-minute meetings."""
    return 15 if duration_minutes < 30 else 30


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def week_window(first_day: date, zone: str) -> tuple[datetime, datetime]:
    """``first_day`` 00:00 to seven days later 00:00 on ``zone``'s clock, as UTC instants."""
    return _midnight(first_day, zone), _midnight(first_day + timedelta(days=7), zone)


def _midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def people_from(answer: AvailabilityAnswer, viewer_id: uuid.UUID) -> tuple[Person, ...]:
    return tuple(
        Person(
            user_id=state.user.id,
            name=state.user.name,
            time_zone=state.user.time_zone,
            known=state.calendar_status == "connected" and state.last_synced_at is not None,
            calendar_status=state.calendar_status,
            is_viewer=state.user.id == viewer_id,
        )
        for state in answer.participants
    )


def build_week(
    answer: AvailabilityAnswer,
    *,
    viewer_id: uuid.UUID,
    viewer_zone: str,
    first_day: date,
    duration_minutes: int,
    now: datetime,
    step_minutes: int | None = None,
) -> WeekView:
    """The grid for the seven days from ``first_day`` (a date in ``viewer_zone``).

    ``answer`` must have been asked for that window with the same duration. Rows outside
    the viewer's own meeting hours on every day are left off the top and the bottom (for
    an administrator outside the pair: rows in which nobody may meet); inside, runs of
    rows in which nobody may meet on any day become one band.

    Every cell's state is decided for the whole week at once, in epoch microseconds
    (numpy masks over a rows x days array); only the cells of the rows shown are then
    built, their words made once per kind of cell (state and who) rather than per cell.
    """
    step = step_minutes or step_for(duration_minutes)
    zone = ZoneInfo(viewer_zone)
    people = people_from(answer, viewer_id)
    if len(people) > _MAX_PEOPLE:
        raise ValueError(f"the week grid shows at most {_MAX_PEOPLE} people")
    days = tuple(first_day + timedelta(days=i) for i in range(7))
    today = now.astimezone(zone).date()
    partner = _partner(people, viewer_zone)
    last_day = days[-1]
    clock = _clock_of(viewer_zone, first_day, last_day)
    minutes = range(0, 24 * 60, step)
    step_us = step * MINUTE_US

    # Wall times (microseconds since the epoch of the naive wall clock), rows x days.
    base_day = first_day.toordinal() - EPOCH_ORDINAL
    walls = (base_day + np.arange(7, dtype=np.int64))[np.newaxis, :] * DAY_US + (
        np.arange(len(minutes), dtype=np.int64) * step_us
    )[:, np.newaxis]
    first, second, count = clock.instants(walls)

    everyone = _bits(people, lambda p: True)
    outside = np.zeros(walls.shape, dtype=np.int64)
    busy = np.zeros(walls.shape, dtype=np.int64)
    unread = np.zeros(walls.shape, dtype=np.int64)
    rules = answer.rules
    busy_us = _busy_micros(answer)
    unread_us = _unread_micros(answer)
    for index, person in enumerate(people):
        bit = np.int64(1 << index)
        los, his = _span_arrays(
            person.time_zone,
            rules.earliest_hour,
            rules.latest_hour,
            rules.allow_weekends,
            first_day - timedelta(days=2),
            first_day + timedelta(days=9),
        )
        within = _within(los, his, first, step_us) & _within(los, his, second, step_us)
        outside |= np.where(within, 0, bit)
        if not person.known:
            continue
        for found, intervals in ((busy, busy_us), (unread, unread_us)):
            sorted_intervals = intervals.get(person.user_id)
            if sorted_intervals is not None:
                hit = _overlapping(sorted_intervals, first, step_us) | _overlapping(
                    sorted_intervals, second, step_us
                )
                found |= np.where(hit, bit, 0)

    slot_at, book_starts, end_clocks = _slots_at(
        answer.result.slots, clock, base_day, step, walls.shape
    )
    state = np.full(walls.shape, _NO_FIT, dtype=np.int64)
    state[slot_at >= 0] = _FREE
    state[unread != 0] = _UNREAD
    state[busy != 0] = _BUSY
    state[outside != 0] = _OUTSIDE
    notice = now + timedelta(minutes=rules.minimum_notice_minutes)
    state[first < to_us(notice)] = _SOON
    state[first < to_us(now)] = _PAST
    state[count == 0] = _SKIPPED
    mask = np.where(
        state == _OUTSIDE,
        outside,
        np.where(state == _BUSY, busy, np.where(state == _UNREAD, unread, 0)),
    )
    keys = mask * _STATES + state

    # Rows show the viewer's own meeting hours (shading the partner's limits inside
    # them); an administrator who is not in the pair sees every hour anyone may meet.
    viewer_bits = _bits(people, lambda p: p.is_viewer)
    closed = (outside & viewer_bits) != 0 if viewer_bits else outside == everyone
    open_at = np.flatnonzero(((count > 0) & ~closed).any(axis=1))
    top, bottom = (int(open_at[0]), int(open_at[-1]) + 1) if len(open_at) else (0, len(minutes))

    partner_minutes: list[list[int]] | None = None
    if partner is not None:
        partner_clock = _clock_of(partner.time_zone, first_day, last_day)
        partner_walls = partner_clock.wall(first[top:bottom])
        partner_minutes = ((partner_walls % DAY_US) // MINUTE_US).tolist()
    counts = count[top:bottom].tolist()
    slots_shown = slot_at[top:bottom].tolist()
    kinds = _Kinds(people, duration_minutes)
    headings = [_day_heading(day) for day in days]  # once per day, not once per cell
    made = kinds.made
    new_cell = Cell._make  # from a tuple: a third cheaper than Cell(...) per cell
    free_by_day: list[list[FreeStart]] = [[] for _ in days]
    rows: list[Row] = []
    for offset, row_keys in enumerate(keys[top:bottom].tolist()):
        at = _CLOCKS[(top + offset) * step]
        partner_time = ""
        if partner_minutes is not None:
            partner_time = _partner_clock(partner_minutes[offset], counts[offset])
        cells: list[Cell] = []
        for index, key in enumerate(row_keys):
            when = f"{headings[index]} {at}"
            if key == _FREE:
                slot = slots_shown[offset][index]
                label = f"Book {when}-{end_clocks[slot]}"
                cell = Cell(CellState.FREE_SLOT, "Book", label, label, book_starts[slot])
                free_by_day[index].append(FreeStart(at, partner_time, cell))
            else:
                kind = made.get(key) or kinds.of(key)
                cell = new_cell(
                    (
                        kind.state,
                        kind.text,
                        kind.detail,
                        when + kind.suffix,
                        None,
                        kind.busy,
                        kind.who,
                    )
                )
            cells.append(cell)
        rows.append(Row(at, tuple(cells), partner_time))
    heading = (
        f"Week of Monday {first_day.day} {first_day:%B %Y}"
        if first_day.weekday() == 0
        else f"7 days from {first_day:%A} {first_day.day} {first_day:%B %Y}"
    )
    return WeekView(
        zone=viewer_zone,
        first_day=first_day,
        heading=heading,
        days=tuple(Day(d, heading, d == today) for d, heading in zip(days, headings, strict=True)),
        rows=tuple(rows),
        people=people,
        duration_minutes=duration_minutes,
        step_minutes=step,
        slot_count=len(answer.result.slots),
        blocks=_fold(rows, step, _foldable(keys[top:bottom])),
        partner=partner,
        free_by_day=tuple(tuple(found) for found in free_by_day),
    )


_MAX_PEOPLE = 60  # one bit each in an int64 key, beside the state
# A cell's state code, in the order the rules are applied (the first that holds wins);
# the first four are the states a band folds (``_foldable``).
_SKIPPED, _PAST, _SOON, _OUTSIDE, _BUSY, _UNREAD, _FREE, _NO_FIT = range(8)
_STATES = 8  # key = who (one bit per person) * _STATES + state
_Micros = npt.NDArray[np.int64]


class _Clock:
    """A zone's wall clock around the view, in epoch microseconds (``offset_regimes``)."""

    __slots__ = ("_offsets", "_regimes", "_since")

    def __init__(self, regimes: tuple[tuple[int, int, int], ...]) -> None:
        self._regimes = regimes
        self._since = np.array([since for since, _, _ in regimes], dtype=np.int64)
        self._offsets = np.array([offset for _, _, offset in regimes], dtype=np.int64)

    def instants(self, walls: _Micros) -> tuple[_Micros, _Micros, npt.NDArray[np.int8]]:
        """The first and last instant at which the clock shows each wall time, and how
        many there are: 0 in a gap (then both are 0), 2 in a repeated hour, else 1."""
        first = np.zeros_like(walls)
        last = np.zeros_like(walls)
        count = np.zeros(walls.shape, dtype=np.int8)
        for since, until, offset in self._regimes:
            instants = walls - offset
            hit = (instants >= since) & (instants < until)
            if not hit.any():
                continue
            first = np.where(hit & (count == 0), instants, first)
            last = np.where(hit, instants, last)
            count += hit
        return first, last, count

    def wall(self, instants: _Micros) -> _Micros:
        """The wall time the clock shows at each instant."""
        regime = np.searchsorted(self._since, instants, side="right") - 1
        return instants + self._offsets[regime]


@lru_cache(maxsize=256)
def _clock_of(zone: str, first_day: date, last_day: date) -> _Clock:
    return _Clock(offset_regimes(zone, first_day, last_day))


@lru_cache(maxsize=512)
def _span_arrays(
    zone: str, earliest: int, latest: int, allow_weekends: bool, first: date, last: date
) -> tuple[_Micros, _Micros]:
    spans = allowed_spans(zone, earliest, latest, allow_weekends, first, last)
    los = np.array([lo for lo, _ in spans], dtype=np.int64)
    his = np.array([hi for _, hi in spans], dtype=np.int64)
    return los, his


def _within(los: _Micros, his: _Micros, starts: _Micros, length: int) -> npt.NDArray[np.bool_]:
    """Whether each ``[start, start + length)`` lies inside one allowed span."""
    if not len(los):
        return np.zeros(starts.shape, dtype=np.bool_)
    index = np.searchsorted(los, starts, side="right") - 1
    return (index >= 0) & (starts + length <= his[np.maximum(index, 0)])


_Sorted = tuple[_Micros, _Micros]  # starts ascending, and the running maximum of the ends


def _sorted(starts: _Micros, ends: _Micros) -> _Sorted:
    order = np.argsort(starts, kind="stable")
    return starts[order], np.maximum.accumulate(ends[order])


def _overlapping(intervals: _Sorted, starts: _Micros, length: int) -> npt.NDArray[np.bool_]:
    """Whether each ``[start, start + length)`` overlaps one of the intervals: some
    interval starts before it ends and, of those, the latest end is after its start."""
    lows, reach = intervals
    if not len(lows):
        return np.zeros(starts.shape, dtype=np.bool_)
    before = np.searchsorted(lows, starts + length, side="left")
    return (before > 0) & (reach[np.maximum(before - 1, 0)] > starts)


def _busy_micros(answer: AvailabilityAnswer) -> dict[uuid.UUID, _Sorted]:
    """Each person's non-empty busy blocks, sorted for ``_overlapping``."""
    by_user = clipped_busy(answer.busy).by_user()
    found: dict[uuid.UUID, _Sorted] = {}
    for user_id, (starts, ends) in by_user.items():
        real = ends > starts
        found[user_id] = _sorted(starts[real], ends[real])
    return found


def _unread_micros(answer: AvailabilityAnswer) -> dict[uuid.UUID, _Sorted]:
    grouped: dict[uuid.UUID, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for gap in answer.unknown:
        grouped[gap.user_id][0].append(to_us(gap.start))
        grouped[gap.user_id][1].append(to_us(gap.end))
    return {
        user_id: _sorted(np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64))
        for user_id, (starts, ends) in grouped.items()
    }


def _slots_at(
    slots: Sequence[Slot], clock: _Clock, base_day: int, step: int, shape: tuple[int, ...]
) -> tuple[npt.NDArray[np.int64], list[str], list[str]]:
    """Which slot starts at each cell's wall time (the first one when a repeated hour
    has two, -1 for none); each slot's start as ISO 8601 UTC and its end on the clock."""
    at = np.full(shape, -1, dtype=np.int64)
    if not slots:
        return at, [], []
    starts, ends = slot_times(slots)
    walls = clock.wall(starts)
    day = walls // DAY_US - base_day
    minute = (walls % DAY_US) // MINUTE_US
    shown = np.flatnonzero((day >= 0) & (day < shape[1]) & (minute % step == 0))
    cells = ((minute[shown] // step) * shape[1] + day[shown]).tolist()
    placed = at.reshape(-1)  # a view: writes land in ``at``
    for cell, index in zip(cells, shown.tolist(), strict=True):
        if placed[cell] < 0:  # a repeated hour's first slot keeps the cell
            placed[cell] = index
    # ISO 8601 to the second, in UTC with a Z ("2026-12-08T13:00:00Z").
    book = [f"{text[:19]}Z" for text in iso_utc(starts)]
    end_minutes = ((clock.wall(ends) % DAY_US) // MINUTE_US).tolist()
    return at, book, [_CLOCKS[m] for m in end_minutes]


def _bits(people: Sequence[Person], chosen: Callable[[Person], bool]) -> int:
    return sum(1 << index for index, person in enumerate(people) if chosen(person))


@dataclass(frozen=True, slots=True)
class _Kind:
    """What every cell of one state and one set of people says, but for its time."""

    state: CellState
    text: str
    detail: str
    suffix: str  # the label is the cell's time followed by this
    busy: str | None = None
    who: tuple[str, ...] = ()


class _Kinds:
    """The words of each kind of cell, made the first time a cell of that kind is seen."""

    def __init__(self, people: tuple[Person, ...], duration: int) -> None:
        self._people = people
        self._duration = duration
        self.made: dict[int, _Kind] = {}  # read directly in the grid's inner loop

    def of(self, key: int) -> _Kind:
        kind = self.made.get(key)
        if kind is None:
            kind = self.made[key] = _kind(
                key % _STATES, key // _STATES, self._people, self._duration
            )
        return kind


@lru_cache(maxsize=4096)
def _kind(state: int, mask: int, people: tuple[Person, ...], duration: int) -> _Kind:
    """The words of the cells in ``state`` about the people in ``mask`` (one bit each),
    remembered: the same pair asks again and again."""
    who = [p for index, p in enumerate(people) if mask >> index & 1]
    if state == _SKIPPED:
        return _plain(CellState.SKIPPED, "Clock change", "skipped by the clock change")
    if state == _PAST:
        return _plain(CellState.PAST, "Past", "in the past")
    if state == _SOON:
        return _plain(CellState.PAST, "Too soon", "more notice is needed")
    if state == _OUTSIDE:
        kind = _plain(CellState.OUTSIDE_RULES, "Outside meeting hours", f"for {_who(who)}")
        return replace(kind, who=_called(who))
    if state == _BUSY:
        verb = "is" if len(who) == 1 and not who[0].is_viewer else "are"
        busy, text = _busy_kind(who, people)
        detail = f"{_who(who)} {verb} busy"
        return _Kind(CellState.UNAVAILABLE, text, detail, f": {detail}", busy, _called(who))
    if state == _UNREAD:
        return _plain(CellState.UNKNOWN, "Unknown", f"calendar not read for {_who(who)}")
    return _plain(CellState.NO_FIT, "No room", f"a {duration}-minute meeting does not fit here")


def _plain(state: CellState, text: str, detail: str) -> _Kind:
    return _Kind(state, text, detail, f": {text.lower()}, {detail}")


_FOLDABLE = {CellState.OUTSIDE_RULES, CellState.PAST, CellState.SKIPPED}


def _fold(rows: Sequence[Row], step: int, foldable_rows: Sequence[bool]) -> tuple[Row | Band, ...]:
    """Runs of two or more rows in which no cell is anything but outside the hours (or
    past, or skipped), the ``foldable_rows``, become one band naming who is outside then."""
    blocks: list[Row | Band] = []
    run: list[Row] = []

    def flush() -> None:
        if len(run) < 2:
            blocks.extend(run)
        else:
            # Whoever is outside in every such cell (Maya's night), else anyone who is.
            outside = [c.who for r in run for c in r.cells if c.state == CellState.OUTSIDE_RULES]
            names = [n for n in outside[0] if all(n in who for who in outside)]
            if not names:
                names = list(dict.fromkeys(n for who in outside for n in who))
            ordered = sorted(names, key=lambda n: n != "you")
            until = _clock(_minutes(run[-1].time) + step)
            blocks.append(
                Band(
                    run[0].time,
                    run[-1].time,
                    until,
                    f"Outside meeting hours for {join_names(ordered)}"
                    if ordered
                    else "Outside meeting hours",
                    len(run),
                )
            )
        run.clear()

    for row, foldable in zip(rows, foldable_rows, strict=True):
        if foldable:
            run.append(row)
        else:
            flush()
            blocks.append(row)
    flush()
    return tuple(blocks)


def _foldable(keys: npt.NDArray[np.int64]) -> list[bool]:
    """Per row of cell keys: whether every cell is outside the hours, past (or too soon)
    or skipped, and one is outside the hours (``_fold``'s rows)."""
    states = keys % _STATES
    # The states of ``_FOLDABLE`` (too soon is drawn as past) are the first four codes.
    folds = (states <= _OUTSIDE).all(axis=1) & (states == _OUTSIDE).any(axis=1)
    return cast(list[bool], folds.tolist())


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _partner(people: Sequence[Person], viewer_zone: str) -> Person | None:
    """The first other person whose clock differs from the viewer's (none: same zone)."""
    others = [p for p in people if not p.is_viewer and p.time_zone != viewer_zone]
    if any(p.is_viewer for p in people):
        return others[0] if others else None
    zones = [p for p in people if p.time_zone != viewer_zone]
    return zones[0] if zones else None


def _partner_clock(minutes: list[int], counts: list[int]) -> str:
    """The partner's clock at each day's start of a row, each time once, in day order."""
    first = minutes[0]
    if counts.count(1) == len(counts) and minutes.count(first) == len(minutes):
        return _CLOCKS[first]  # most rows: one time on every day
    seen: list[int] = []
    for minute, count in zip(minutes, counts, strict=True):
        if count and minute not in seen:
            seen.append(minute)
    return "/".join(_CLOCKS[minute] for minute in seen)


def _busy_kind(busy: Sequence[Person], people: Sequence[Person]) -> tuple[str, str]:
    """("me" | "partner" | "both", the cell's short visible words)."""
    mine = any(p.is_viewer for p in busy)
    theirs = [p for p in busy if not p.is_viewer]
    if (mine and theirs) or (not any(p.is_viewer for p in people) and len(theirs) > 1):
        return "both", "Both busy"
    if mine:
        return "me", "You're busy"
    return "partner", f"{theirs[0].name} busy"


def _called(people: Sequence[Person]) -> tuple[str, ...]:
    return tuple(p.called for p in sorted(people, key=lambda p: not p.is_viewer))


def _who(people: Sequence[Person]) -> str:
    """ "you", "Maya", "you and Maya" (the viewer first)."""
    ordered = sorted(people, key=lambda p: not p.is_viewer)
    return join_names(p.called for p in ordered)


@lru_cache(maxsize=64)
def _day_heading(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b}"  # strftime is slow: cached, the same days return


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


_CLOCKS = tuple(_clock(minute) for minute in range(24 * 60))
