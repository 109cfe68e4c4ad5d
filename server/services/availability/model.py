"""The values the availability engine takes and returns.

They carry people (ids, display names, time zones) and times only: a busy interval is
a start, an end and a kind, so nothing about anyone's events can leak into a slot or a
reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from server.lazy_sequence import BuiltOnFirstUse
from server.providers.base import BusyInterval
from server.services.availability.grid import from_us, to_us


@dataclass(frozen=True, slots=True)
class Participant:
    """Someone whose time counts.

    ``busy`` is ``None`` when the person has no connected (or readable) calendar: they
    are then *unknown* at every time, never free. ``unknown`` lists the times
    ``[start, end)`` a connected calendar could not be read for (outside what Tandem
    has fetched and could not fetch in time): there they are unknown too, never free.
    An ``optional`` participant never blocks a slot; outside their own allowed hours
    they count as busy.
    """

    user_id: uuid.UUID
    name: str
    time_zone: str
    busy: Sequence[BusyInterval] | None
    optional: bool = False
    unknown: Sequence[tuple[datetime, datetime]] = ()


@dataclass(frozen=True, slots=True)
class Rules:
    """Program rules, applied on each participant's own wall clock.

    Invalid combinations raise ``ValueError`` here, so a bad setting fails where it is
    read rather than deep inside a search.
    """

    allow_weekends: bool = False
    earliest_hour: int = 8
    latest_hour: int = 20
    minimum_notice_minutes: int = 0
    buffer_minutes: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.earliest_hour <= 23:
            raise ValueError(f"earliest_hour must be 0..23, got {self.earliest_hour}")
        if not 1 <= self.latest_hour <= 24:
            raise ValueError(f"latest_hour must be 1..24, got {self.latest_hour}")
        if self.earliest_hour >= self.latest_hour:
            raise ValueError(
                f"earliest_hour ({self.earliest_hour}) must be before "
                f"latest_hour ({self.latest_hour})"
            )
        if self.minimum_notice_minutes < 0:
            raise ValueError(
                f"minimum_notice_minutes must be >= 0, got {self.minimum_notice_minutes}"
            )
        if self.buffer_minutes < 0:
            raise ValueError(f"buffer_minutes must be >= 0, got {self.buffer_minutes}")


class Mode(StrEnum):
    """How qualifying slots are ordered: by time (pair) or by most people free (group)."""

    PAIR = "pair"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class Slot:
    """One candidate meeting time ``[start, end)`` in UTC and where everyone stands.

    Every participant appears in exactly one of ``free``, ``busy`` and ``unknown``, each
    in the order participants were given. ``reason`` names people only.
    """

    start: datetime
    end: datetime
    free: tuple[uuid.UUID, ...]
    busy: tuple[uuid.UUID, ...]
    unknown: tuple[uuid.UUID, ...]
    reason: str


Standing = tuple[tuple[uuid.UUID, ...], tuple[uuid.UUID, ...], tuple[uuid.UUID, ...], str]
"""A slot's ``free``, ``busy``, ``unknown`` and ``reason``, as ``Slot`` holds them."""


class LazySlots(BuiltOnFirstUse[Slot]):
    """Slots built on first use: their number is known at once, so an answer that asks
    only ``emptyReason`` or a count never builds one ``Slot``; their times are known at
    once too (``slot_times``), so the week grid, which places them, builds none either;
    and where everyone stands is worked out once, on first use, for the ``Slot`` values
    and for ``slot_standings`` alike (an answer written as rows builds no ``Slot``)."""

    __slots__ = ("_standings", "ends_us", "starts_us")

    def __init__(
        self,
        count: int,
        standings: Callable[[], list[Standing]],
        starts_us: npt.NDArray[np.int64],
        ends_us: npt.NDArray[np.int64],
    ) -> None:
        if starts_us.shape != (count,) or ends_us.shape != (count,):
            raise ValueError("one start and one end per slot")
        once = BuiltOnFirstUse(count, standings)  # worked out once, for both forms
        super().__init__(count, lambda: _slots(starts_us, ends_us, once.items()))
        self.starts_us, self.ends_us = starts_us, ends_us
        self._standings = once

    def standings(self) -> list[Standing]:
        return self._standings.items()


def _slots(
    starts_us: npt.NDArray[np.int64], ends_us: npt.NDArray[np.int64], standings: list[Standing]
) -> Iterable[Slot]:
    for start, end, (free, busy, unknown, reason) in zip(
        starts_us.tolist(), ends_us.tolist(), standings, strict=True
    ):
        yield Slot(from_us(start), from_us(end), free, busy, unknown, reason)


def slot_times(slots: Sequence[Slot]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Every slot's start and end in epoch microseconds, in order, building no ``Slot``
    when the engine already knows them."""
    if isinstance(slots, LazySlots):
        return slots.starts_us, slots.ends_us
    return (
        np.array([to_us(slot.start) for slot in slots], dtype=np.int64),
        np.array([to_us(slot.end) for slot in slots], dtype=np.int64),
    )


def slot_standings(slots: Sequence[Slot]) -> Sequence[Standing]:
    """Every slot's ``(free, busy, unknown, reason)``, in order, building no ``Slot``
    when the engine already knows them. Equal standings may be one shared tuple."""
    if isinstance(slots, LazySlots):
        return slots.standings()
    return [(slot.free, slot.busy, slot.unknown, slot.reason) for slot in slots]


@dataclass(frozen=True, slots=True)
class AvailabilityResult:
    """The slots found; when there are none, ``empty_reason`` tells the user what to change."""

    slots: Sequence[Slot]
    empty_reason: str | None
