"""Busy intervals packed as epoch microseconds, for callers that hold many of them.

Turning a ``datetime`` back into a number costs CPython about 150 ns, which is most of
the engine's time for 100 people with 500 busy blocks each. A cache that keeps busy
blocks as integers can hand them over packed: the engine then reads the arrays as
they are. A ``PackedBusy`` is still a ``Sequence[BusyInterval]``; indexing builds the
interval on demand. ``availability.busy`` reads busy blocks from the database straight
into these arrays (``from_codes``), kinds as small integer codes into ``KIND_CODES``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np
import numpy.typing as npt

from server.providers.base import BusyInterval, BusyKind
from server.services.availability.grid import from_us, to_us

_Micros = npt.NDArray[np.int64]
_Codes = npt.NDArray[np.int8]

KIND_CODES: tuple[BusyKind, ...] = tuple(BusyKind)
"""``kind_codes[i]`` of a packed interval indexes this tuple."""
CODE_OF: dict[BusyKind, int] = {kind: code for code, kind in enumerate(KIND_CODES)}


class PackedBusy(Sequence[BusyInterval]):
    """Half-open ``[start, end)`` intervals as two int64 arrays of epoch microseconds."""

    __slots__ = ("_codes", "_ends", "_kinds", "_starts")

    def __init__(
        self,
        starts_us: Sequence[int] | _Micros,
        ends_us: Sequence[int] | _Micros,
        kinds: Sequence[BusyKind] | None = None,
    ) -> None:
        starts = np.array(starts_us, dtype=np.int64)
        ends = np.array(ends_us, dtype=np.int64)
        if starts.ndim != 1 or starts.shape != ends.shape:
            raise ValueError("starts and ends must be flat and of the same length")
        if kinds is not None and len(kinds) != len(starts):
            raise ValueError("kinds must have one entry per interval")
        starts.flags.writeable = False
        ends.flags.writeable = False
        self._starts, self._ends = starts, ends
        self._kinds = tuple(kinds) if kinds is not None else None
        self._codes: _Codes | None = None

    @classmethod
    def from_codes(cls, starts_us: _Micros, ends_us: _Micros, codes: _Codes) -> PackedBusy:
        """Arrays as read from the database; kinds stay integer codes into ``KIND_CODES``
        until an interval is asked for."""
        if codes.shape != starts_us.shape:
            raise ValueError("kinds must have one entry per interval")
        packed = cls(starts_us, ends_us)
        frozen = np.array(codes, dtype=np.int8)
        frozen.flags.writeable = False
        packed._codes = frozen
        return packed

    @classmethod
    def from_intervals(cls, intervals: Iterable[BusyInterval]) -> PackedBusy:
        """Pack once (say, when filling a cache); raises ``ValueError`` for naive times."""
        items = list(intervals)
        for item in items:
            if item.start.tzinfo is None or item.end.tzinfo is None:
                raise ValueError("busy intervals must have aware datetimes")
        return cls(
            [to_us(item.start) for item in items],
            [to_us(item.end) for item in items],
            [item.kind for item in items],
        )

    @property
    def starts_us(self) -> _Micros:
        return self._starts

    @property
    def ends_us(self) -> _Micros:
        return self._ends

    @property
    def kind_codes(self) -> _Codes:
        """Each interval's kind as an index into ``KIND_CODES``."""
        if self._codes is not None:
            return self._codes
        if self._kinds is None:
            return np.zeros(len(self._starts), dtype=np.int8)
        return np.array([CODE_OF[kind] for kind in self._kinds], dtype=np.int8)

    def kind_at(self, index: int) -> BusyKind:
        if self._codes is not None:
            return KIND_CODES[int(self._codes[index])]
        return self._kinds[index] if self._kinds is not None else BusyKind.BUSY

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, index: int) -> BusyInterval: ...

    @overload
    def __getitem__(self, index: slice) -> PackedBusy: ...

    def __getitem__(self, index: int | slice) -> BusyInterval | PackedBusy:
        if isinstance(index, slice):
            if self._codes is not None:
                return PackedBusy.from_codes(
                    self._starts[index], self._ends[index], self._codes[index]
                )
            kinds = self._kinds[index] if self._kinds is not None else None
            return PackedBusy(self._starts[index], self._ends[index], kinds)
        return BusyInterval(
            from_us(int(self._starts[index])), from_us(int(self._ends[index])), self.kind_at(index)
        )

    def __iter__(self) -> Iterator[BusyInterval]:
        """All intervals, converting in one pass (faster than indexing one by one)."""
        codes = self.kind_codes.tolist()
        for start, end, code in zip(self._starts.tolist(), self._ends.tolist(), codes, strict=True):
            yield BusyInterval(from_us(start), from_us(end), KIND_CODES[code])

    def __eq__(self, other: object) -> bool:
        """Equal to packed or plain intervals with the same times and kinds, in order."""
        if isinstance(other, PackedBusy):
            return bool(
                np.array_equal(self._starts, other._starts)
                and np.array_equal(self._ends, other._ends)
                and np.array_equal(self.kind_codes, other.kind_codes)
            )
        if isinstance(other, list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PackedBusy({len(self)} intervals)"
