"""The ``availability`` query's shapes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from server.schema.flat_inputs import flat_input
from server.schema.users import CalendarStatus, User


@strawberry.enum
class BusyKind(Enum):
    BUSY = "busy"
    TENTATIVE = "tentative"
    OUT_OF_OFFICE = "out_of_office"
    ALL_DAY = "all_day"


@flat_input
@strawberry.input
class AvailabilityInput:
    participant_ids: list[strawberry.ID]
    start: datetime = strawberry.field(description="Within two years of today, with an offset.")
    end: datetime = strawberry.field(description="Within two years of today, with an offset.")
    duration_minutes: int
    step_minutes: int = 30
    optional_participant_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    minimum_free: int = 0
    program_id: strawberry.ID | None = None


@strawberry.type
class AvailabilityParticipant:
    user: User
    calendar_status: CalendarStatus
    optional: bool
    last_synced_at: datetime | None


@strawberry.type(description="A busy time: when and what kind, never what the event is.")
class BusyBlock:
    user_id: strawberry.ID
    start: datetime
    end: datetime
    kind: BusyKind


@strawberry.type(
    description=(
        "A time someone's connected calendar could not be read (outside what Tandem has "
        "fetched, and it could not be fetched in time): they are unknown then, not free."
    )
)
class UnknownTime:
    user_id: strawberry.ID
    start: datetime
    end: datetime
    reason: str


@strawberry.type
class AvailabilitySlot:
    start: datetime
    end: datetime
    free_user_ids: list[strawberry.ID]
    busy_user_ids: list[strawberry.ID]
    unknown_user_ids: list[strawberry.ID]
    reason: str


def _compact_slots(root: CompactAvailability) -> JSON:
    return root.build_slots()


def _compact_busy(root: CompactAvailability) -> JSON:
    return root.build_busy()


def _compact_unknown(root: CompactAvailability) -> JSON:
    return root.build_unknown()


@strawberry.type(
    description=(
        "The same answer as `slots`, `busy` and `unknown`, as rows of plain values for "
        "clients that ask about long windows or many people: one JSON value per list "
        "instead of one object per slot. People are positions in `userIds`; times are "
        "ISO 8601 in UTC, as in the other fields."
    )
)
class CompactAvailability:
    user_ids: list[strawberry.ID] = strawberry.field(
        description="Everyone asked about, required then optional, in the order asked."
    )
    slots: JSON = strawberry.field(
        resolver=_compact_slots,
        description=(
            "One array per slot, in the order of `slots`: [start, end, free, busy, unknown, "
            "reason], where free, busy and unknown are arrays of positions in `userIds`."
        ),
    )
    busy: JSON = strawberry.field(
        resolver=_compact_busy,
        description=(
            "One array per busy block, in the order of `busy`: [position, start, end, kind], "
            'kind as in `BusyKind` (e.g. "TENTATIVE").'
        ),
    )
    unknown: JSON = strawberry.field(
        resolver=_compact_unknown,
        description=(
            "One array per unknown time, in the order of `unknown`: [position, start, end, reason]."
        ),
    )
    build_slots: strawberry.Private[Callable[[], JSON]]
    build_busy: strawberry.Private[Callable[[], JSON]]
    build_unknown: strawberry.Private[Callable[[], JSON]]


def _compact(root: Availability) -> CompactAvailability:
    return root.build_compact()


def _busy(root: Availability) -> list[BusyBlock]:
    return root.build_busy()


def _slots(root: Availability) -> list[AvailabilitySlot]:
    return root.build_slots()


def _unknown(root: Availability) -> list[UnknownTime]:
    return root.build_unknown()


@strawberry.type
class Availability:
    """``busy``, ``slots`` and ``unknown`` are built only when the query asks for them: an
    ``emptyReason``-only question does not turn hundreds of blocks into objects."""

    participants: list[AvailabilityParticipant]
    busy: list[BusyBlock] = strawberry.field(resolver=_busy)
    slots: list[AvailabilitySlot] = strawberry.field(resolver=_slots)
    empty_reason: str | None
    notes: list[str] = strawberry.field(
        description="Caveats, e.g. a calendar that could not be refreshed and how old its data is."
    )
    unknown: list[UnknownTime] = strawberry.field(
        resolver=_unknown,
        description="Times in the window each person's calendar could not be read.",
    )
    compact: CompactAvailability = strawberry.field(
        resolver=_compact,
        description="`slots`, `busy` and `unknown` as compact rows (large answers).",
    )
    build_busy: strawberry.Private[Callable[[], list[BusyBlock]]]
    build_slots: strawberry.Private[Callable[[], list[AvailabilitySlot]]]
    build_unknown: strawberry.Private[Callable[[], list[UnknownTime]]]
    build_compact: strawberry.Private[Callable[[], CompactAvailability]]
