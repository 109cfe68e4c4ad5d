"""Availability: which times suit a set of people, as a pure function (no I/O).

See ``engine`` for the exact semantics.
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

__all__ = ["AvailabilityResult", "Mode", "PackedBusy", "Participant", "Rules", "Slot", "find_slots"]
