"""The candidate-slot grid, in exact integer microseconds since the Unix epoch.

Slot ``k`` is ``[origin + k*step, origin + k*step + duration)`` for ``0 <= k < count``.
Working in integers (not floats or datetimes) keeps every boundary comparison exact:
a busy block ending at 10:00 never touches a slot starting at 10:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

import numpy as np
import numpy.typing as npt

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
EPOCH_ORDINAL = EPOCH.date().toordinal()
"""``date.toordinal()`` of the epoch's day: day ``d`` starts at ``(d.toordinal() -
EPOCH_ORDINAL) * DAY_US``."""


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime, exactly."""
    return (moment - EPOCH) // MICROSECOND


def from_us(us: int) -> datetime:
    """The UTC datetime ``us`` microseconds after the epoch."""
    return EPOCH + timedelta(microseconds=us)


def iso_utc(micros: npt.NDArray[np.int64]) -> list[str]:
    """``from_us(us).isoformat()`` for every value: ``2027-03-28T01:00:00+00:00``, with
    six fraction digits only when the microseconds are not zero, as ``isoformat`` writes
    them. The values are datetimes' (years 1 to 9999), the only years both write alike.

    Busy times repeat from one question to the next (the same blocks, asked again), so
    each text is remembered (``_ISO_TEXTS``): a lookup is a tenth of writing one; the
    ones not seen yet are written by numpy in one pass."""
    values: list[int] = np.asarray(micros, dtype=np.int64).tolist()
    known = _ISO_TEXTS
    texts = [known.get(value) for value in values]
    if None not in texts:
        return cast(list[str], texts)
    missing = [index for index, text in enumerate(texts) if text is None]
    written = _write_iso([values[index] for index in missing])
    if len(known) + len(written) > _ISO_TEXTS_MAX:
        known.clear()  # bounded: start again rather than grow (a year of 5-minute times fits)
    for index, text in zip(missing, written, strict=True):
        texts[index] = known[values[index]] = text
    return cast(list[str], texts)


_ISO_TEXTS: dict[int, str] = {}
_ISO_TEXTS_MAX = 120_000  # about 18 MB at most


def _write_iso(values: list[int]) -> list[str]:
    array = np.array(values, dtype=np.int64)
    stamps = array.view("datetime64[us]")
    whole = array % SECOND_US == 0
    text = np.datetime_as_string(stamps, unit="s")
    if not whole.all():
        text = np.where(whole, text, np.datetime_as_string(stamps, unit="us"))
    return [t + "+00:00" for t in text.tolist()]


@dataclass(frozen=True, slots=True)
class Grid:
    origin: int
    step: int
    duration: int
    count: int

    @classmethod
    def over(cls, start: datetime, end: datetime, duration: timedelta, step: timedelta) -> Grid:
        """Every slot of ``duration`` starting on ``start + k*step`` that ends by ``end``."""
        origin, stop = to_us(start), to_us(end)
        step_us, duration_us = step // MICROSECOND, duration // MICROSECOND
        room = stop - origin - duration_us
        count = room // step_us + 1 if room >= 0 else 0
        return cls(origin, step_us, duration_us, count)

    def first_starting_at_or_after(self, moment_us: int) -> int:
        """Index of the first slot starting at or after ``moment_us``, clipped to 0..count."""
        return min(max(0, -((self.origin - moment_us) // self.step)), self.count)

    def after_last_ending_by(self, moment_us: int) -> int:
        """One past the index of the last slot ending at or before ``moment_us``, clipped."""
        return min(max(0, (moment_us - self.duration - self.origin) // self.step + 1), self.count)

    @property
    def end(self) -> int:
        """Where the last slot ends (the origin when there is none)."""
        if self.count == 0:
            return self.origin
        return self.origin + (self.count - 1) * self.step + self.duration
