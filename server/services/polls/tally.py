"""A poll as people see it: status as of now, invitees, per-slot tallies, busy marks and
the best slot. Pure reading; the caller has checked who may see the poll.

Busy marks come from cached busy blocks (times only, never what the event is), read
through ``availability.busy`` for every poll asked about at once, so lists of polls
cost a fixed number of queries. Slot times no cache covers (and that could not be
fetched) mark the invitee *unknown* for that slot, never free.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import (
    CalendarConnection,
    Poll,
    PollAnswer,
    PollInvitee,
    PollSlot,
    User,
)
from server.models.base import utcnow
from server.models.enums import CalendarStatus, PollAnswerValue, PollStatus
from server.services.availability.busy import read_busy
from server.services.calendars.deps import CalendarDeps

__all__ = [
    "Invitee",
    "PollDetails",
    "SlotTally",
    "best_slot_id",
    "connected_ids",
    "load_details",
    "status_at",
]


def status_at(poll: Poll, now: datetime) -> PollStatus:
    """The poll's status as users see it: an open poll past its deadline is closed."""
    if poll.status == PollStatus.OPEN and poll.deadline is not None and poll.deadline <= now:
        return PollStatus.CLOSED
    return poll.status


@dataclass(frozen=True, slots=True)
class Invitee:
    user: User
    optional: bool


@dataclass(frozen=True, slots=True)
class SlotTally:
    """One slot with its answers and which invitees' calendars show them busy."""

    id: uuid.UUID
    start: datetime
    end: datetime
    unavailable: tuple[uuid.UUID, ...]
    answers: tuple[tuple[uuid.UUID, PollAnswerValue], ...]
    yes: int
    if_need_be: int
    no: int
    required_yes: int
    required_if_need_be: int
    # Invitees with a connected calendar Tandem could not read for this slot.
    unknown: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True, slots=True)
class PollDetails:
    """A poll as pages and the API show it: status as of now, invitees, tallies, best slot."""

    poll: Poll
    status: PollStatus
    invitees: list[Invitee]
    connected_ids: frozenset[uuid.UUID]
    slots: list[SlotTally]
    best_slot_id: uuid.UUID | None
    answered_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)
    notes: tuple[str, ...] = ()

    @property
    def invitee_count(self) -> int:
        return len(self.invitees)

    @property
    def connected_count(self) -> int:
        return len(self.connected_ids)

    def answers_of(self, user_id: uuid.UUID) -> dict[uuid.UUID, PollAnswerValue]:
        return {
            slot.id: value for slot in self.slots for uid, value in slot.answers if uid == user_id
        }

    def is_invitee(self, user_id: uuid.UUID) -> bool:
        return any(i.user.id == user_id for i in self.invitees)


def best_slot_id(slots: Sequence[SlotTally]) -> uuid.UUID | None:
    """The slot that suits the most *required* invitees (yes or if-need-be, then yes
    alone); optional invitees only break ties, then the earlier slot wins. ``None``
    until someone can make at least one slot."""
    best: tuple[tuple[int, int, int, int], SlotTally] | None = None
    for slot in sorted(slots, key=lambda s: s.start):
        key = (
            slot.required_yes + slot.required_if_need_be,
            slot.required_yes,
            slot.yes + slot.if_need_be,
            slot.yes,
        )
        if best is None or key > best[0]:
            best = (key, slot)
    if best is None or best[0][2] == 0:
        return None
    return best[1].id


async def load_details(
    db: AsyncSession,
    polls: Sequence[Poll],
    *,
    now: datetime | None = None,
    calendar: CalendarDeps | None = None,
) -> list[PollDetails]:
    """Details of many polls in a fixed number of queries (no N+1).

    With ``calendar`` the slots' times no cache covers are fetched first (within the
    request budget); without it the cache alone answers and the rest is unknown.
    """
    now = now or utcnow()
    if not polls:
        return []
    poll_ids = [p.id for p in polls]
    invitee_rows = (
        await db.exec(
            select(PollInvitee, User)
            .join(User, col(User.id) == col(PollInvitee.user_id))
            .where(col(PollInvitee.poll_id).in_(poll_ids))
            .order_by(col(User.name), col(User.id))
        )
    ).all()
    invitees: dict[uuid.UUID, list[Invitee]] = defaultdict(list)
    for row, user in invitee_rows:
        invitees[row.poll_id].append(Invitee(user, row.optional))
    slot_rows = (
        await db.exec(
            select(PollSlot)
            .where(col(PollSlot.poll_id).in_(poll_ids))
            .order_by(col(PollSlot.start_at))
        )
    ).all()
    answers: dict[uuid.UUID, list[PollAnswer]] = defaultdict(list)
    for answer in (
        await db.exec(select(PollAnswer).where(col(PollAnswer.poll_id).in_(poll_ids)))
    ).all():
        answers[answer.slot_id].append(answer)
    user_ids = {i.user.id for group in invitees.values() for i in group}
    connected = await connected_ids(db, user_ids)
    busy, unread, notes = await _busy(db, calendar, connected, slot_rows, now)

    slots_by_poll: dict[uuid.UUID, list[PollSlot]] = defaultdict(list)
    for slot in slot_rows:
        slots_by_poll[slot.poll_id].append(slot)
    details = []
    for poll in polls:
        people = invitees[poll.id]
        optional = {i.user.id for i in people if i.optional}
        order = {i.user.id: n for n, i in enumerate(people)}
        tallies = [
            _tally(slot, answers[slot.id], optional, order, busy, unread)
            for slot in slots_by_poll[poll.id]
        ]
        answered = frozenset(uid for t in tallies for uid, _ in t.answers)
        details.append(
            PollDetails(
                poll=poll,
                status=status_at(poll, now),
                invitees=people,
                connected_ids=frozenset(order) & connected,
                slots=tallies,
                best_slot_id=best_slot_id(tallies),
                answered_ids=answered,
                notes=tuple(notes.get(uid, "") for uid in order if uid in notes),
            )
        )
    return details


def _tally(
    slot: PollSlot,
    rows: list[PollAnswer],
    optional: set[uuid.UUID],
    order: dict[uuid.UUID, int],
    busy: dict[uuid.UUID, list[tuple[datetime, datetime]]],
    unread: dict[uuid.UUID, list[tuple[datetime, datetime]]],
) -> SlotTally:
    counts: dict[PollAnswerValue, int] = defaultdict(int)
    required: dict[PollAnswerValue, int] = defaultdict(int)
    pairs = []
    for row in sorted(rows, key=lambda r: order.get(r.user_id, len(order))):
        if row.user_id not in order:  # an answer left by someone no longer invited
            continue
        counts[row.answer] += 1
        if row.user_id not in optional:
            required[row.answer] += 1
        pairs.append((row.user_id, row.answer))

    def overlaps(spans: Iterable[tuple[datetime, datetime]]) -> bool:
        return any(s < slot.end_at and e > slot.start_at for s, e in spans)

    people = sorted(order, key=order.__getitem__)
    unavailable = tuple(uid for uid in people if overlaps(busy.get(uid, ())))
    unknown = tuple(
        uid for uid in people if uid not in unavailable and overlaps(unread.get(uid, ()))
    )
    return SlotTally(
        id=slot.id,
        start=slot.start_at,
        end=slot.end_at,
        unavailable=unavailable,
        answers=tuple(pairs),
        yes=counts[PollAnswerValue.YES],
        if_need_be=counts[PollAnswerValue.IF_NEED_BE],
        no=counts[PollAnswerValue.NO],
        required_yes=required[PollAnswerValue.YES],
        required_if_need_be=required[PollAnswerValue.IF_NEED_BE],
        unknown=unknown,
    )


async def connected_ids(db: AsyncSession, user_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``user_ids`` whose calendar is connected (status only)."""
    wanted = set(user_ids)
    if not wanted:
        return set()
    result = await db.exec(
        select(CalendarConnection.user_id).where(
            col(CalendarConnection.user_id).in_(wanted),
            CalendarConnection.status == CalendarStatus.CONNECTED,
        )
    )
    return set(result.all())


async def _busy(
    db: AsyncSession,
    calendar: CalendarDeps | None,
    user_ids: set[uuid.UUID],
    slots: Sequence[PollSlot],
    now: datetime,
) -> tuple[
    dict[uuid.UUID, list[tuple[datetime, datetime]]],
    dict[uuid.UUID, list[tuple[datetime, datetime]]],
    dict[uuid.UUID, str],
]:
    """Calendar busy times (times only, never what the event is) and unread times per
    invitee over the slots, with a note per invitee whose calendar was not read.

    Tandem's own meetings are left out: a finalized slot must not mark its own
    attendees busy."""
    if not user_ids or not slots:
        return {}, {}, {}
    picture = await read_busy(
        db,
        calendar,
        sorted(user_ids),
        [(s.start_at, s.end_at) for s in slots],
        now=now,
        fetch=calendar is not None,
        include_meetings=False,
    )
    busy: dict[uuid.UUID, list[tuple[datetime, datetime]]] = {}
    unread: dict[uuid.UUID, list[tuple[datetime, datetime]]] = {}
    notes: dict[uuid.UUID, str] = {}
    for user_id, person in picture.people.items():
        if not person.known:
            continue
        busy[user_id] = [(i.start, i.end) for i in person.intervals]
        unread[user_id] = [(g.start, g.end) for g in person.unknown]
        if person.note:
            notes[user_id] = person.note
    return busy, unread, notes
