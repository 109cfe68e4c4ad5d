"""The availability time zone (``SerializableTimeZone``) as Exchange applies it.

GetUserAvailability states its window and answers its busy times as local wall-clock
times (no offset) in the TimeZone element of the request: a base ``Bias`` plus a
``StandardTime`` and ``DaylightTime`` rule (``DayOrder`` of ``DayOfWeek`` in ``Month``,
5 = last, at ``Time``), each with its own extra bias. Local = UTC - (Bias + rule bias).
https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/timezone-availability
https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/standardtime
https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/daylighttime
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@dataclass(frozen=True)
class Rule:
    bias: int  # minutes added to the base bias while the rule is in force
    at: time
    day_order: int  # 1..4, or 5 for the last one in the month
    month: int
    weekday: str

    def moment(self, year: int) -> datetime:
        """The naive local time the rule starts in ``year``."""
        day_index = _DAYS.index(self.weekday)
        days = [
            d
            for d in range(1, calendar.monthrange(year, self.month)[1] + 1)
            if datetime(year, self.month, d).weekday() == day_index
        ]
        day = days[-1] if self.day_order >= 5 else days[self.day_order - 1]
        return datetime.combine(datetime(year, self.month, day).date(), self.at)


@dataclass(frozen=True)
class SerializableTimeZone:
    bias: int
    standard: Rule | None = None
    daylight: Rule | None = None

    @property
    def has_dst(self) -> bool:
        return (
            self.standard is not None
            and self.daylight is not None
            and self.standard.bias != self.daylight.bias
        )

    def _offset_at_utc(self, moment: datetime) -> int:
        """Minutes to subtract from UTC to get local time."""
        if not self.has_dst:
            return self.bias + (self.standard.bias if self.standard else 0)
        assert self.standard is not None and self.daylight is not None
        year = moment.year
        std_bias = self.bias + self.standard.bias
        dst_bias = self.bias + self.daylight.bias
        # The daylight rule's time is standard local time; the standard rule's is daylight.
        dst_starts = self.daylight.moment(year) + timedelta(minutes=std_bias)
        dst_ends = self.standard.moment(year) + timedelta(minutes=dst_bias)
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        if dst_starts < dst_ends:  # northern hemisphere
            in_dst = dst_starts <= naive < dst_ends
        else:
            in_dst = not (dst_ends <= naive < dst_starts)
        return dst_bias if in_dst else std_bias

    def to_local(self, moment: datetime) -> datetime:
        """The naive wall-clock time Exchange writes for an aware instant."""
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        return naive - timedelta(minutes=self._offset_at_utc(moment))

    def to_utc(self, local: datetime) -> datetime:
        """An aware instant for a naive local time (the earlier one when ambiguous)."""
        biases = {self.bias + (rule.bias if rule else 0) for rule in (self.standard, self.daylight)}
        candidates = sorted(local.replace(tzinfo=UTC) + timedelta(minutes=b) for b in biases)
        for candidate in candidates:
            if self.to_local(candidate) == local:
                return candidate
        return candidates[-1]
