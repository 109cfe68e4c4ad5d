"""The values an invitation is made of, independent of the database rows they come from.

The meetings service maps a ``Meeting`` and its ``MeetingAttendee`` rows onto these, so the
iCalendar, email and link code stays pure and testable without a database.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

InviteKind = Literal["request", "update", "cancel"]
"""``request`` is the first invitation, ``update`` any later change, ``cancel`` the end."""


@dataclass(frozen=True, slots=True)
class Person:
    """Someone on an invitation; ``time_zone`` (IANA) is used to show them their local time."""

    name: str
    email: str
    time_zone: str | None = None
    optional: bool = False  # an optional attendee: ROLE=OPT-PARTICIPANT

    def __post_init__(self) -> None:
        if "@" not in self.email or any(c in self.email for c in "\r\n <>\"'"):
            raise ValueError("not a plain email address")
        if self.time_zone is not None:
            ZoneInfo(self.time_zone)  # raises for an unknown zone, before any email is built


@dataclass(frozen=True, slots=True)
class Invitation:
    """One version of a meeting as sent to its attendees.

    ``uid`` never changes for a meeting; ``sequence`` must grow with every update and
    with the cancellation (RFC 5546 §2.1.4), otherwise calendar clients ignore the
    newer message. ``start``/``end`` are aware datetimes (stored UTC); ``time_zone`` is
    the meeting's IANA zone, written as ``TZID`` so recurring clients show wall time
    correctly. The organizer may or may not be listed in ``attendees``; either way
    they are written once, as accepted.
    """

    uid: str
    sequence: int
    title: str
    description: str
    location: str | None
    start: datetime
    end: datetime
    time_zone: str
    organizer: Person
    attendees: Sequence[Person]
    meeting_id: uuid.UUID

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end must be aware datetimes")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.sequence < 0:
            raise ValueError("sequence must not be negative")
        if not self.uid or any(c in self.uid for c in "\r\n"):
            raise ValueError("uid must be a non-empty single line")
        object.__setattr__(self, "attendees", tuple(self.attendees))
        ZoneInfo(self.time_zone)  # raises for an unknown zone

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)
