"""The pair scheduling page's week grid, computed from an availability answer.

Pure (no I/O): it turns an ``AvailabilityAnswer`` and the viewer's time zone into rows
(wall-clock times in the viewer's zone) of cells (one per day), each with a state and
the words that say it, so the page never relies on colour alone. A cell stands for a
meeting *start* time ``[t, t + step)``:

- ``past``: it starts before now (or before the minimum notice allows);
- ``outside-rules``: some of it lies outside the program's hours or weekdays on
  someone's own clock (the engine's exact definition, shared through ``allowed_spans``);
- ``unavailable``: someone whose calendar is known is busy during it;
- ``unknown``: nobody is known busy, but someone's connected calendar could not be read
  for it (a week months ahead with the provider down): never shown as free;
- ``free-slot``: the engine offers a meeting of the chosen length starting there;
- ``no-fit``: free, but a meeting of that length (plus buffers) does not fit;
- ``skipped``: a wall-clock time that a daylight-saving change skips that day.

Rows come from the viewer's wall clock, so on a 23- or 25-hour day the times still
line up with the other days: skipped times are marked, and a repeated hour's cell
covers both of its occurrences.
"""

from __future__ import annotations

import uuid
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Day:
    date: date
    heading: str  # "Tue 12 Nov"
    is_today: bool


@dataclass(frozen=True, slots=True)
class Row:
    time: str  # "10:00" on the viewer's wall clock
    cells: tuple[Cell, ...]


@dataclass(frozen=True, slots=True)
class WeekView:
    zone: str
    monday: date
    heading: str  # "Week of Monday 11 November 2024"
    days: tuple[Day, ...]
    rows: tuple[Row, ...]
    people: tuple[Person, ...]
    duration_minutes: int
    step_minutes: int
    slot_count: int

    @property
    def previous_monday(self) -> date:
        return self.monday - timedelta(days=7)

    @property
    def next_monday(self) -> date:
        return self.monday + timedelta(days=7)


def step_for(duration_minutes: int) -> int:
    """Rows are 30 minutes apart, 15 for 15-minute meetings."""
    return 15 if duration_minutes < 30 else 30


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def week_window(monday: date, zone: str) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00 on ``zone``'s clock, as UTC instants."""
    return _midnight(monday, zone), _midnight(monday + timedelta(days=7), zone)


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
    monday: date,
    duration_minutes: int,
    now: datetime,
    step_minutes: int | None = None,
) -> WeekView:
    """The grid for the week starting ``monday`` (a Monday in ``viewer_zone``).

    ``answer`` must have been asked for that week's window with the same duration.
    Rows outside the viewer's own meeting hours on every day are left off the top and
    the bottom (for an administrator outside the pair: rows in which nobody may meet).
    """
    if monday.weekday() != 0:
        raise ValueError(f"{monday} is not a Monday")
    step = step_minutes or step_for(duration_minutes)
    zone = ZoneInfo(viewer_zone)
    people = people_from(answer, viewer_id)
    days = tuple(monday + timedelta(days=i) for i in range(7))
    today = now.astimezone(zone).date()
    checker = _RulesChecker(answer.rules, people, monday)
    busy = _busy_by_user(answer, people)
    unread = _unread_by_user(answer)
    slots = _slots_by_wall_time(answer.result.slots, zone)
    notice = now + timedelta(minutes=answer.rules.minimum_notice_minutes)

    rows: list[Row] = []
    closed_rows: list[bool] = []  # nobody may meet at this time on any day
    for minute in range(0, 24 * 60, step):
        cells: list[Cell] = []
        closed = True
        for day in days:
            occurrences = _occurrences(day, minute, step, zone)
            when = f"{_day_heading(day)} {_clock(minute)}"
            outside = checker.outside(occurrences)
            if occurrences and not _closed(outside, people):
                closed = False
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
        rows.append(Row(_clock(minute), tuple(cells)))
        closed_rows.append(closed)
    open_at = [i for i, closed in enumerate(closed_rows) if not closed]
    if open_at:
        rows = rows[open_at[0] : open_at[-1] + 1]
    return WeekView(
        zone=viewer_zone,
        monday=monday,
        heading=f"Week of Monday {monday.day} {monday:%B %Y}",
        days=tuple(Day(d, _day_heading(d), d == today) for d in days),
        rows=tuple(rows),
        people=people,
        duration_minutes=duration_minutes,
        step_minutes=step,
        slot_count=len(answer.result.slots),
    )


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
        return _plain(
            CellState.OUTSIDE_RULES, when, "Outside meeting hours", f"for {_who(outside)}"
        )
    busy_people = [p for p in people if p.known and _overlaps(busy.get(p.user_id, []), occurrences)]
    if busy_people:
        verb = "is" if len(busy_people) == 1 and not busy_people[0].is_viewer else "are"
        return _plain(
            CellState.UNAVAILABLE, when, "Unavailable", f"{_who(busy_people)} {verb} busy"
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


def _who(people: Sequence[Person]) -> str:
    """ "you", "Maya", "you and Maya" (the viewer first)."""
    ordered = sorted(people, key=lambda p: not p.is_viewer)
    return join_names(p.called for p in ordered)


def _occurrences(day: date, minute: int, step: int, zone: ZoneInfo) -> list[_Interval]:
    """The UTC intervals during which ``zone``'s clock shows ``[minute, minute + step)``
    of ``day``: none in a DST gap, two in a repeated hour, else one."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
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

    def __init__(self, rules: Rules, people: Sequence[Person], monday: date) -> None:
        self._people = people
        first, last = monday - timedelta(days=2), monday + timedelta(days=9)
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
