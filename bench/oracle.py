"""A brute-force reference for ``find_slots``: minute by minute, slow, obviously right.

It shares no code with the engine: every minute of every candidate slot is converted
to each participant's wall clock with ``zoneinfo`` and checked against the rules, and
busy time is a set of busy minutes. All inputs must fall on whole minutes (then
checking each minute is the same as checking every instant). Used by the tests (as
the specification) and by the benchmark (as the baseline).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from server.services.availability import Mode, Participant, Rules


@dataclass(frozen=True)
class OracleSlot:
    start: datetime
    end: datetime
    free: tuple[uuid.UUID, ...]
    busy: tuple[uuid.UUID, ...]
    unknown: tuple[uuid.UUID, ...]


def _minute(moment: datetime) -> int:
    seconds = moment.timestamp()
    assert seconds % 60 == 0, f"{moment} is not on a whole minute"
    return int(seconds) // 60


def oracle_slots(
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
) -> list[OracleSlot]:
    busy_minutes: dict[uuid.UUID, set[int]] = {}
    for person in participants:
        minutes: set[int] = set()
        for interval in person.busy or ():
            if interval.end > interval.start:
                lo = _minute(interval.start) - rules.buffer_minutes
                hi = _minute(interval.end) + rules.buffer_minutes
                minutes.update(range(lo, hi))
        busy_minutes[person.user_id] = minutes
    unread_minutes: dict[uuid.UUID, set[int]] = {}
    for person in participants:
        minutes = set()
        for lo_at, hi_at in person.unknown:
            if hi_at > lo_at:
                lo = _minute(lo_at) - rules.buffer_minutes
                hi = _minute(hi_at) + rules.buffer_minutes
                minutes.update(range(lo, hi))
        unread_minutes[person.user_id] = minutes

    wall_cache: dict[tuple[str, int], tuple[int, int, int]] = {}

    def wall(zone: str, minute: int) -> tuple[int, int, int]:
        """(local date ordinal, weekday, minute of the local day) of an epoch minute."""
        key = (zone, minute)
        if key not in wall_cache:
            local = datetime.fromtimestamp(minute * 60, ZoneInfo(zone))
            wall_cache[key] = (
                local.date().toordinal(),
                local.weekday(),
                local.hour * 60 + local.minute,
            )
        return wall_cache[key]

    def within_rules(person: Participant, minutes: range) -> bool:
        day = wall(person.time_zone, minutes[0])[0]
        for minute in minutes:
            ordinal, weekday, of_day = wall(person.time_zone, minute)
            if ordinal != day:
                return False
            if weekday >= 5 and not rules.allow_weekends:
                return False
            if not rules.earliest_hour * 60 <= of_day < rules.latest_hour * 60:
                return False
        return True

    found: list[OracleSlot] = []
    earliest_start = now + timedelta(minutes=rules.minimum_notice_minutes)
    slot_start = start
    while slot_start + duration <= end:
        slot_end = slot_start + duration
        span = range(_minute(slot_start), _minute(slot_end))
        required = [p for p in participants if not p.optional]
        if slot_start >= earliest_start and all(within_rules(p, span) for p in required):
            free, busy, unknown = [], [], []
            for person in participants:
                if person.busy is None:
                    unknown.append(person.user_id)
                elif any(m in busy_minutes[person.user_id] for m in span) or (
                    person.optional and not within_rules(person, span)
                ):
                    busy.append(person.user_id)
                elif any(m in unread_minutes[person.user_id] for m in span):
                    unknown.append(person.user_id)
                else:
                    free.append(person.user_id)
            required_busy = any(p.user_id in busy for p in required)
            if not required_busy and len(free) >= minimum_free:
                found.append(
                    OracleSlot(slot_start, slot_end, tuple(free), tuple(busy), tuple(unknown))
                )
        slot_start += step
    if mode == Mode.GROUP:
        found.sort(key=lambda slot: -len(slot.free))  # stable: ties stay in time order
    return found[:limit] if limit is not None else found
