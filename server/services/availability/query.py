"""The availability question as users and integrators ask it: who, when, how long.

Checks who may be asked about, reads busy times through ``availability.busy`` (which
refreshes stale caches and fetches windows not read yet within a time budget), turns
calendar states into free/busy/unknown, applies the program's rules and runs the engine.
When a provider is slow or down the answer comes from the cache and says how old it is;
times no cache covers are unknown, with a note, never free.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from operator import attrgetter
from typing import NamedTuple, TypeVar, overload
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import User
from server.models.base import utcnow
from server.models.enums import BusyKind
from server.services.availability import (
    AvailabilityResult,
    Mode,
    PackedBusy,
    Participant,
    Rules,
    find_slots,
)
from server.services.availability.busy import REFRESH_BUDGET_SECONDS, read_busy
from server.services.availability.grid import from_us, to_us
from server.services.availability.packed import CODE_OF, KIND_CODES
from server.services.calendars.deps import CalendarDeps
from server.services.errors import NotFound, ValidationFailed
from server.services.people import access, programs
from server.services.validation import check_moment

__all__ = ["AvailabilityRequest", "NotFound", "ValidationFailed", "find_availability"]

MAX_WINDOW = timedelta(days=90)
MIN_STEP_MINUTES = 5
MAX_PARTICIPANTS = 50
MAX_DURATION_MINUTES = 8 * 60


@dataclass(frozen=True, slots=True)
class AvailabilityRequest:
    participant_ids: Sequence[uuid.UUID]
    start: datetime
    end: datetime
    duration_minutes: int
    step_minutes: int = 30
    optional_participant_ids: Sequence[uuid.UUID] = ()
    minimum_free: int = 0
    program_id: uuid.UUID | None = None
    mode: Mode | None = None  # default: PAIR for two required people, else GROUP
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class ParticipantState:
    user: User
    optional: bool
    calendar_status: str  # not_connected | connected | needs_reauth | error
    last_synced_at: datetime | None


@dataclass(frozen=True, slots=True)
class UserBusy:
    user_id: uuid.UUID
    start: datetime
    end: datetime
    kind: BusyKind


_Micros = npt.NDArray[np.int64]
_Codes = npt.NDArray[np.int8]
T = TypeVar("T")


class ClippedBusy(NamedTuple):
    """Busy blocks clipped to a window as columns: whose (each person once per run of
    their blocks, with how many blocks the run has), start and end in epoch
    microseconds, and the kind as an index into ``packed.KIND_CODES``."""

    people: list[uuid.UUID]
    counts: list[int]  # how many of the blocks, in order, are each person's
    starts_us: _Micros
    ends_us: _Micros
    kind_codes: _Codes

    def per_block(self, values: Sequence[T]) -> list[T]:
        """One value per person (say, their id as text) repeated for each of their
        blocks: no UUID is hashed per block."""
        return [value for value, n in zip(values, self.counts, strict=True) for _ in range(n)]

    def by_user(self) -> dict[uuid.UUID, tuple[_Micros, _Micros]]:
        """Each person's (starts, ends), in block order, for callers that only compare
        times (the week grid)."""
        found: dict[uuid.UUID, tuple[_Micros, _Micros]] = {}
        at = 0
        for user_id, n in zip(self.people, self.counts, strict=True):
            starts, ends = self.starts_us[at : at + n], self.ends_us[at : at + n]
            at += n
            if user_id in found:
                starts = np.concatenate((found[user_id][0], starts))
                ends = np.concatenate((found[user_id][1], ends))
            found[user_id] = (starts, ends)
        return found


def clipped_busy(busy: Sequence[UserBusy]) -> ClippedBusy:
    """An answer's busy blocks as columns: a ``BusyInWindow`` without building one
    datetime, any other sequence of ``UserBusy`` (hand-made answers) item by item."""
    if isinstance(busy, BusyInWindow):
        return busy.arrays()
    people: list[uuid.UUID] = []
    counts: list[int] = []
    for user_id, run in groupby(busy, key=attrgetter("user_id")):
        people.append(user_id)
        counts.append(sum(1 for _ in run))
    return ClippedBusy(
        people,
        counts,
        np.array([to_us(b.start) for b in busy], dtype=np.int64),
        np.array([to_us(b.end) for b in busy], dtype=np.int64),
        np.array([CODE_OF[b.kind] for b in busy], dtype=np.int8),
    )


class BusyInWindow(Sequence[UserBusy]):
    """Everyone's busy blocks clipped to the window, as ``UserBusy`` built on first use:
    an answer that never shows its busy blocks (``emptyReason`` only, booking re-checks)
    never turns the packed integers back into datetimes."""

    __slots__ = ("_end", "_items", "_parts", "_start")

    def __init__(self, start: datetime, end: datetime) -> None:
        self._start, self._end = start, end
        self._parts: list[tuple[uuid.UUID, PackedBusy]] = []
        self._items: list[UserBusy] | None = None

    def add(self, user_id: uuid.UUID, busy: PackedBusy) -> None:
        self._parts.append((user_id, busy))
        self._items = None

    def _clipped(self) -> Iterator[tuple[uuid.UUID, _Micros, _Micros, _Codes]]:
        lo, hi = to_us(self._start), to_us(self._end)
        for user_id, busy in self._parts:
            inside = (busy.ends_us > lo) & (busy.starts_us < hi)
            starts = np.maximum(busy.starts_us[inside], lo)
            ends = np.minimum(busy.ends_us[inside], hi)
            yield user_id, starts, ends, busy.kind_codes[inside]

    def _built(self) -> list[UserBusy]:
        if self._items is None:
            items: list[UserBusy] = []
            for user_id, starts, ends, codes in self._clipped():
                items.extend(
                    UserBusy(user_id, from_us(s), from_us(e), KIND_CODES[c])
                    for s, e, c in zip(starts.tolist(), ends.tolist(), codes.tolist(), strict=True)
                )
            self._items = items
        return self._items

    def arrays(self) -> ClippedBusy:
        """The same blocks as parallel columns, in the same order, for answers that write
        many of them (times stay integers; ``grid.iso_utc`` writes them as text)."""
        parts = list(self._clipped())
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return ClippedBusy([], [], empty, empty, np.zeros(0, dtype=np.int8))
        return ClippedBusy(
            [p[0] for p in parts],
            [p[1].size for p in parts],
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
            np.concatenate([p[3] for p in parts]),
        )

    def __len__(self) -> int:
        return len(self._built())

    @overload
    def __getitem__(self, index: int) -> UserBusy: ...

    @overload
    def __getitem__(self, index: slice) -> list[UserBusy]: ...

    def __getitem__(self, index: int | slice) -> UserBusy | list[UserBusy]:
        return self._built()[index]

    def __iter__(self) -> Iterator[UserBusy]:
        return iter(self._built())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BusyInWindow | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class UserUnknown:
    """A time someone's connected calendar could not be read, and why: unknown, not free."""

    user_id: uuid.UUID
    start: datetime
    end: datetime
    why: str


@dataclass(frozen=True, slots=True)
class AvailabilityAnswer:
    participants: list[ParticipantState]
    busy: Sequence[UserBusy]
    result: AvailabilityResult
    rules: Rules
    notes: list[str] = field(default_factory=list)
    unknown: list[UserUnknown] = field(default_factory=list)


def _validate(request: AvailabilityRequest, now: datetime | None) -> None:
    for name, value in (("start", request.start), ("end", request.end)):
        check_moment(value, field=name, what=f"The {name} of the window", now=now)
    if request.end <= request.start:
        raise ValidationFailed("The end of the window must be after its start.", field="end")
    if request.end - request.start > MAX_WINDOW:
        raise ValidationFailed("Ask for at most 90 days at a time.", field="end")
    if not 5 <= request.duration_minutes <= MAX_DURATION_MINUTES:
        raise ValidationFailed(
            "Meetings last between 5 minutes and 8 hours.", field="durationMinutes"
        )
    if not MIN_STEP_MINUTES <= request.step_minutes <= 24 * 60:
        raise ValidationFailed(
            f"The step must be between {MIN_STEP_MINUTES} minutes and a day.", field="stepMinutes"
        )
    everyone = [*request.participant_ids, *request.optional_participant_ids]
    if not request.participant_ids:
        raise ValidationFailed("Name at least one participant.", field="participantIds")
    if len(everyone) > MAX_PARTICIPANTS:
        raise ValidationFailed(
            f"Ask about at most {MAX_PARTICIPANTS} people.", field="participantIds"
        )
    if len(set(everyone)) != len(everyone):
        raise ValidationFailed("Each person may appear only once.", field="participantIds")
    if request.minimum_free < 0 or request.minimum_free > len(everyone):
        raise ValidationFailed(
            "minimumFree must be between 0 and the number of participants.", field="minimumFree"
        )


def align_start(start: datetime, step_minutes: int, zone: str) -> datetime:
    """Round up to the next step boundary on the viewer's wall clock (10:07 → 10:15)."""
    local = start.astimezone(ZoneInfo(zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (local - midnight).total_seconds()
    step = step_minutes * 60
    steps = -(-elapsed // step)
    return (midnight + timedelta(seconds=steps * step)).astimezone(start.tzinfo)


async def find_availability(
    db: AsyncSession,
    deps: CalendarDeps,
    viewer: User,
    request: AvailabilityRequest,
    *,
    now: datetime | None = None,
    refresh_budget: float = REFRESH_BUDGET_SECONDS,
    refresh: bool = True,
    ignore_meeting_id: uuid.UUID | None = None,
    known_visible: Collection[uuid.UUID] = (),
) -> AvailabilityAnswer:
    """``refresh=False`` answers from the cache only (booking re-checks must not call
    providers or commit); ``ignore_meeting_id`` leaves out a Tandem meeting being moved;
    ``known_visible`` are people the caller has already found the viewer may see (the
    members of a connection it found visible to them), who are not asked about again.
    What it fetches or records it commits itself: a plain read leaves nothing to write."""
    _validate(request, now)
    now = now or utcnow()
    ids = [*request.participant_ids, *request.optional_participant_ids]
    unchecked = set(ids) - set(known_visible) - {viewer.id}
    if request.program_id is None:
        # The viewer's rules and "are these all my partners?" come in one query; anyone
        # else (a program administrator's people) is asked about on its own.
        settings, all_partners = await programs.settings_for_user_seeing(db, viewer, unchecked)
        if not all_partners and unchecked - await access.visible_user_ids(db, viewer, unchecked):
            raise NotFound("participant", field="participantIds")
    else:
        if unchecked and unchecked - await access.visible_user_ids(db, viewer, unchecked):
            raise NotFound("participant", field="participantIds")
        visible_settings = await programs.settings_if_visible(db, viewer, request.program_id)
        if visible_settings is None:
            raise NotFound("program", field="programId")
        settings = visible_settings
    rules = Rules(
        allow_weekends=settings.allow_weekends,
        earliest_hour=settings.earliest_hour,
        latest_hour=settings.latest_hour,
        minimum_notice_minutes=settings.minimum_notice_hours * 60,
        buffer_minutes=settings.buffer_minutes,
    )
    margin = timedelta(minutes=rules.buffer_minutes)
    picture = await read_busy(
        db,
        deps,
        ids,
        [(request.start, request.end)],
        now=now,
        fetch=refresh,
        budget_seconds=refresh_budget,
        margin=margin,
        ignore_meeting_id=ignore_meeting_id,
    )
    users = picture.users
    optional = set(request.optional_participant_ids)
    states: list[ParticipantState] = []
    participants: list[Participant] = []
    busy_out = BusyInWindow(request.start, request.end)
    unknown_out: list[UserUnknown] = []
    for user_id in ids:
        user = users[user_id]
        person = picture.people[user_id]
        intervals = person.intervals if person.known else None
        states.append(
            ParticipantState(
                user, user_id in optional, person.calendar_status, person.last_synced_at
            )
        )
        participants.append(
            Participant(
                user_id=user_id,
                name=user.name,
                time_zone=user.time_zone,
                busy=intervals,
                optional=user_id in optional,
                unknown=[(gap.start, gap.end) for gap in person.unknown],
            )
        )
        if intervals is not None:
            busy_out.add(user_id, intervals)
        unknown_out.extend(
            UserUnknown(user_id, max(g.start, request.start), min(g.end, request.end), g.why)
            for g in person.unknown
            if g.end > request.start and g.start < request.end
        )
    mode = request.mode or (
        Mode.PAIR if len(request.participant_ids) == 2 and not optional else Mode.GROUP
    )
    result = find_slots(
        participants,
        rules,
        start=align_start(request.start, request.step_minutes, viewer.time_zone),
        end=request.end,
        duration=timedelta(minutes=request.duration_minutes),
        step=timedelta(minutes=request.step_minutes),
        now=now,
        mode=mode,
        minimum_free=request.minimum_free,
        limit=request.limit,
    )
    return AvailabilityAnswer(states, busy_out, result, rules, picture.notes, unknown_out)
