"""The heat map of a poll: its proposed slots by how many invitees are free.

Pure (no I/O), from ``PollDetails``. An invitee counts as free for a slot when they
answered Yes or If need be; before answering, when their connected calendar shows them
free then (busy, unread and unconnected calendars never count as free). Days are columns
and start times rows on the viewer's wall clock, so a week of proposals reads at a glance.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from server.models.enums import PollAnswerValue
from server.services.polls.tally import PollDetails, SlotTally

__all__ = ["LEVELS", "HeatCell", "HeatMap", "heat_map"]

LEVELS = 4  # colour steps above "nobody free"
_FREE_ANSWERS = {PollAnswerValue.YES, PollAnswerValue.IF_NEED_BE}


@dataclass(frozen=True, slots=True)
class HeatCell:
    slot_id: uuid.UUID
    free: int
    total: int
    level: int  # 0 (nobody free) .. LEVELS (everyone)
    free_names: tuple[str, ...]

    @property
    def label(self) -> str:
        """What a screen reader hears in the cell."""
        return f"{self.free} of {self.total} free"


@dataclass(frozen=True, slots=True)
class HeatMap:
    days: tuple[date, ...]
    times: tuple[str, ...]  # "09:00" on the viewer's clock
    cells: dict[tuple[date, str], HeatCell]
    total: int

    def at(self, day: date, clock: str) -> HeatCell | None:
        return self.cells.get((day, clock))


def heat_map(details: PollDetails, zone: str) -> HeatMap:
    tz = ZoneInfo(zone)
    names = {i.user.id: i.user.name for i in details.invitees}
    total = len(details.invitees)
    cells: dict[tuple[date, str], HeatCell] = {}
    for slot in details.slots:
        try:
            local = slot.start.astimezone(tz)
        except (OverflowError, ValueError):  # a stored year-9999 slot east of UTC
            local = slot.start
        key = (local.date(), f"{local:%H:%M}")
        free = _free(slot, details)
        level = 0 if not free or not total else max(1, round(LEVELS * len(free) / total))
        cells.setdefault(
            key,
            HeatCell(slot.id, len(free), total, level, tuple(names[u] for u in free if u in names)),
        )
    days = tuple(sorted({day for day, _clock in cells}))
    times = tuple(sorted({clock for _day, clock in cells}))
    return HeatMap(days, times, cells, total)


def _free(slot: SlotTally, details: PollDetails) -> list[uuid.UUID]:
    answered = dict(slot.answers)
    busy = set(slot.unavailable) | set(slot.unknown)
    free: list[uuid.UUID] = []
    for invitee in details.invitees:
        uid = invitee.user.id
        if uid in answered:
            if answered[uid] in _FREE_ANSWERS:
                free.append(uid)
        elif uid in details.connected_ids and uid not in busy:
            free.append(uid)
    return free
