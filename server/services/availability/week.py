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
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from server.services.availability import Rules, Slot
from server.services.availability.grid import to_us
from server.services.availability.query import AvailabilityAnswer
from server.services.availability.reasons import names as join_names
from server.services.availability.zones import allowed_spans

__all__ = [
    "DURATIONS",
    "Band",
    "Cell",
    "CellState",
    "Day",
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


@dataclass(frozen=True, slots=True)
class Cell:
    """``text`` is what the cell shows and ``detail`` what a screen reader hears after it
    (the table headers already name the day and time); ``label`` is the whole sentence,
    the accessible name of a free slot's link. ``book_start`` (ISO 8601 UTC, ``Z``) is
    set only on free slots."""

    state: CellState
    text: str
    detail: str
    label: str
    book_start: str | None = None
    busy: str | None = None  # "me", "partner" or "both" on unavailable cells
    who: tuple[str, ...] = ()  # whom ``detail`` is about (outside the hours, busy)


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
    """
    step = step_minutes or step_for(duration_minutes)
    zone = ZoneInfo(viewer_zone)
    people = people_from(answer, viewer_id)
    days = tuple(first_day + timedelta(days=i) for i in range(7))
    today = now.astimezone(zone).date()
    partner = _partner(people, viewer_zone)
    checker = _RulesChecker(answer.rules, people, first_day)
    busy = _busy_by_user(answer, people)
    unread = _unread_by_user(answer)
    slots = _slots_by_wall_time(answer.result.slots, zone)
    notice = now + timedelta(minutes=answer.rules.minimum_notice_minutes)

    rows: list[Row] = []
    closed_rows: list[bool] = []  # nobody may meet at this time on any day
    headings = [_day_heading(day) for day in days]  # once per day, not once per cell
    for minute in range(0, 24 * 60, step):
        cells: list[Cell] = []
        starts: list[datetime] = []
        closed = True
        clock = _clock(minute)
        for day, heading in zip(days, headings, strict=True):
            occurrences = _occurrences(day, minute, step, zone)
            when = f"{heading} {clock}"
            outside = checker.outside(occurrences)
            if occurrences and not _closed(outside, people):
                closed = False
            starts.extend(o[0] for o in occurrences[:1])
            cells.append(
                _cell(
                    when,
                    occurrences,
                    outside,
                    busy,
                    unread,
                    slots.get((day, minute)),
                    now=now,
                    notice=notice,
                    people=people,
                    duration=duration_minutes,
                    zone=zone,
                )
            )
        rows.append(Row(clock, tuple(cells), _partner_clock(partner, starts)))
        closed_rows.append(closed)
    open_at = [i for i, closed in enumerate(closed_rows) if not closed]
    if open_at:
        rows = rows[open_at[0] : open_at[-1] + 1]
    heading = (
        f"Week of Monday {first_day.day} {first_day:%B %Y}"
        if first_day.weekday() == 0
        else f"7 days from {first_day:%A} {first_day.day} {first_day:%B %Y}"
    )
    return WeekView(
        zone=viewer_zone,
        first_day=first_day,
        heading=heading,
        days=tuple(Day(d, _day_heading(d), d == today) for d in days),
        rows=tuple(rows),
        people=people,
        duration_minutes=duration_minutes,
        step_minutes=step,
        slot_count=len(answer.result.slots),
        blocks=_fold(rows, step),
        partner=partner,
    )


_FOLDABLE = {CellState.OUTSIDE_RULES, CellState.PAST, CellState.SKIPPED}


def _fold(rows: Sequence[Row], step: int) -> tuple[Row | Band, ...]:
    """Runs of two or more rows in which no cell is anything but outside the hours (or
    past, or skipped) become one band naming who is outside then."""
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

    for row in rows:
        states = {cell.state for cell in row.cells}
        if CellState.OUTSIDE_RULES in states and states <= _FOLDABLE:
            run.append(row)
        else:
            flush()
            blocks.append(row)
    flush()
    return tuple(blocks)


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


def _partner_clock(partner: Person | None, starts: Sequence[datetime]) -> str:
    if partner is None or not starts:
        return ""
    zone = ZoneInfo(partner.time_zone)
    seen: list[str] = []
    for start in starts:
        local = start.astimezone(zone)
        clock = f"{local.hour:02d}:{local.minute:02d}"  # as %H:%M, without strftime's cost
        if clock not in seen:
            seen.append(clock)
    return "/".join(seen)


def _cell(
    when: str,
    occurrences: list[_Interval],
    outside: list[Person],
    busy: dict[uuid.UUID, list[_Interval]],
    unread: dict[uuid.UUID, list[_Interval]],
    slot: Slot | None,
    *,
    now: datetime,
    notice: datetime,
    people: Sequence[Person],
    duration: int,
    zone: ZoneInfo,
) -> Cell:
    if not occurrences:
        return _plain(CellState.SKIPPED, when, "Clock change", "skipped by the clock change")
    start = occurrences[0][0]
    if start < now:
        return _plain(CellState.PAST, when, "Past", "in the past")
    if start < notice:
        return _plain(CellState.PAST, when, "Too soon", "more notice is needed")
    if outside:
        cell = _plain(
            CellState.OUTSIDE_RULES, when, "Outside meeting hours", f"for {_who(outside)}"
        )
        return replace(cell, who=_called(outside))
    busy_people = [p for p in people if p.known and _overlaps(busy.get(p.user_id, []), occurrences)]
    if busy_people:
        verb = "is" if len(busy_people) == 1 and not busy_people[0].is_viewer else "are"
        kind, text = _busy_kind(busy_people, people)
        detail = f"{_who(busy_people)} {verb} busy"
        return Cell(
            CellState.UNAVAILABLE,
            text,
            detail,
            f"{when}: {detail}",
            busy=kind,
            who=_called(busy_people),
        )
    unread_people = [
        p for p in people if p.known and _overlaps(unread.get(p.user_id, []), occurrences)
    ]
    if unread_people:
        return _plain(
            CellState.UNKNOWN, when, "Unknown", f"calendar not read for {_who(unread_people)}"
        )
    if slot is not None:
        end = slot.end.astimezone(zone)
        label = f"Book {when}-{end:%H:%M}"
        return Cell(
            CellState.FREE_SLOT,
            "Book",
            label,
            label,
            book_start=slot.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    return _plain(
        CellState.NO_FIT, when, "No room", f"a {duration}-minute meeting does not fit here"
    )


def _plain(state: CellState, when: str, text: str, detail: str) -> Cell:
    return Cell(state, text, detail, f"{when}: {text.lower()}, {detail}")


def _closed(outside: Sequence[Person], people: Sequence[Person]) -> bool:
    """Rows show the viewer's own meeting hours (shading the partner's limits inside
    them); an administrator who is not in the pair sees every hour anyone may meet."""
    if any(p.is_viewer for p in people):
        return any(p.is_viewer for p in outside)
    return len(outside) == len(people)


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


def _occurrences(day: date, minute: int, step: int, zone: ZoneInfo) -> list[_Interval]:
    """The UTC intervals during which ``zone``'s clock shows ``[minute, minute + step)``
    of ``day``: none in a DST gap, two in a repeated hour, else one."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    first = wall.replace(tzinfo=zone)
    if first.utcoffset() == first.replace(fold=1).utcoffset():
        # Neither repeated nor skipped (PEP 495: fold matters only then): one interval.
        instant = first.astimezone(UTC)
        return [(instant, instant + timedelta(minutes=step))]
    found: list[_Interval] = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) != wall:
            continue  # this wall time does not exist that day
        interval = (instant, instant + timedelta(minutes=step))
        if interval not in found:
            found.append(interval)
    found.sort()
    return found


def _overlaps(intervals: Sequence[_Interval], occurrences: Sequence[_Interval]) -> bool:
    return any(s < oe and e > os for s, e in intervals for os, oe in occurrences)


def _busy_by_user(
    answer: AvailabilityAnswer, people: Iterable[Person]
) -> dict[uuid.UUID, list[_Interval]]:
    known = {p.user_id for p in people if p.known}
    grouped: dict[uuid.UUID, list[_Interval]] = defaultdict(list)
    for block in answer.busy:
        if block.user_id in known and block.end > block.start:
            grouped[block.user_id].append((block.start, block.end))
    return grouped


def _unread_by_user(answer: AvailabilityAnswer) -> dict[uuid.UUID, list[_Interval]]:
    grouped: dict[uuid.UUID, list[_Interval]] = defaultdict(list)
    for gap in answer.unknown:
        grouped[gap.user_id].append((gap.start, gap.end))
    return grouped


def _slots_by_wall_time(slots: Iterable[Slot], zone: ZoneInfo) -> dict[tuple[date, int], Slot]:
    found: dict[tuple[date, int], Slot] = {}
    for slot in slots:
        local = slot.start.astimezone(zone)
        found.setdefault((local.date(), local.hour * 60 + local.minute), slot)
    return found


class _RulesChecker:
    """Who, at a given time, is outside the program's hours on their own clock."""

    def __init__(self, rules: Rules, people: Sequence[Person], first_day: date) -> None:
        self._people = people
        first, last = first_day - timedelta(days=2), first_day + timedelta(days=9)
        self._spans: dict[str, tuple[tuple[int, int], ...]] = {}
        self._starts: dict[str, list[int]] = {}
        for zone in {p.time_zone for p in people}:
            spans = allowed_spans(
                zone, rules.earliest_hour, rules.latest_hour, rules.allow_weekends, first, last
            )
            self._spans[zone] = spans
            self._starts[zone] = [lo for lo, _ in spans]

    def outside(self, occurrences: Sequence[_Interval]) -> list[Person]:
        return [
            p
            for p in self._people
            if any(not self._within(p.time_zone, s, e) for s, e in occurrences)
        ]

    def _within(self, zone: str, start: datetime, end: datetime) -> bool:
        lo, hi = to_us(start), to_us(end)
        index = bisect_right(self._starts[zone], lo) - 1
        if index < 0:
            return False
        span_lo, span_hi = self._spans[zone][index]
        return span_lo <= lo and hi <= span_hi


def _day_heading(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b}"


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
