"""Availability: which times suit a set of people.

The engine (``engine``, ``model``, ``grid``, ``zones``, ``reasons``, ``packed``) is a pure
function with no I/O; see ``engine`` for the exact semantics. ``query`` gathers its inputs
(busy caches, Tandem's own meetings from ``booked``, program rules) and ``week`` lays an
answer out as the pair scheduling week. Imports calendars, people and the layers underneath.
"""

from server.services.availability.engine import find_slots
from server.services.availability.model import (
    AvailabilityResult,
    Mode,
    Participant,
    Rules,
    Slot,
)
from server.services.availability.packed import PackedBusy

__all__ = [
    "AvailabilityResult",
    "Mode",
    "PackedBusy",
    "Participant",
    "Rules",
    "Slot",
    "booked",
    "find_slots",
    "query",
    "week",
]
