"""The ``availability`` query."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC
from typing import cast

import strawberry
from graphql import GraphQLError

from server.resolvers.availability_compact import KIND_NAMES, compact
from server.schema.availability import (
    Availability,
    AvailabilityInput,
    AvailabilityParticipant,
    AvailabilitySlot,
    BusyBlock,
    BusyKind,
    UnknownTime,
)
from server.schema.common import parse_id
from server.schema.context import Context
from server.schema.fast_lists import Columns
from server.schema.users import CalendarStatus, User
from server.services.availability import query as availability_query
from server.services.availability.grid import iso_utc
from server.services.availability.model import slot_standings, slot_times
from server.services.availability.query import clipped_busy
from server.services.errors import DomainError

MAX_IDS = availability_query.MAX_PARTICIPANTS


BUSY_KINDS = {kind.value: kind for kind in BusyKind}


async def availability(
    info: strawberry.Info[Context, None], input: AvailabilityInput
) -> Availability:
    """Common free time of the named people (only people the caller shares a connection
    with, or administers). Busy blocks are times and kinds only. Invalid input is a
    GraphQL error whose message says what to change (extensions: code, field)."""
    ctx = info.context
    try:
        if len(input.participant_ids) + len(input.optional_participant_ids) > MAX_IDS:
            raise availability_query.ValidationFailed(
                f"Ask about at most {MAX_IDS} people.", field="participantIds"
            )
        request = availability_query.AvailabilityRequest(
            participant_ids=[
                parse_id(i, "participant", "participantIds") for i in input.participant_ids
            ],
            optional_participant_ids=[
                parse_id(i, "participant", "optionalParticipantIds")
                for i in input.optional_participant_ids
            ],
            start=input.start,
            end=input.end,
            duration_minutes=input.duration_minutes,
            step_minutes=input.step_minutes,
            minimum_free=input.minimum_free,
            program_id=parse_id(input.program_id, "program", "programId")
            if input.program_id
            else None,
        )
        answer = await availability_query.find_availability(
            ctx.db, ctx.services.calendar, ctx.user, request
        )
    except DomainError as exc:
        raise GraphQLError(exc.message, extensions={"code": exc.code, "field": exc.field}) from exc

    def busy_blocks() -> list[BusyBlock]:
        return [
            BusyBlock(
                user_id=strawberry.ID(str(b.user_id)),
                start=b.start.astimezone(UTC),
                end=b.end.astimezone(UTC),
                kind=BUSY_KINDS[b.kind.value],
            )
            for b in answer.busy
        ]

    def busy() -> list[BusyBlock]:
        blocks = clipped_busy(answer.busy)
        columns = {
            "userId": blocks.per_block([str(user_id) for user_id in blocks.people]),
            "start": iso_utc(blocks.starts_us),
            "end": iso_utc(blocks.ends_us),
            "kind": [KIND_NAMES[code] for code in blocks.kind_codes.tolist()],
        }
        # A Columns is a Sequence[BusyBlock]; the field's type stays list[BusyBlock].
        return cast(list[BusyBlock], Columns(sum(blocks.counts), columns, busy_blocks))

    def slots() -> list[AvailabilitySlot]:
        found = answer.result.slots
        starts_us, ends_us = slot_times(found)
        named = _namer()
        standings = slot_standings(found)
        columns: dict[str, Sequence[object]] = {
            "start": iso_utc(starts_us),
            "end": iso_utc(ends_us),
            "freeUserIds": [named(free) for free, _, _, _ in standings],
            "busyUserIds": [named(busy) for _, busy, _, _ in standings],
            "unknownUserIds": [named(unknown) for _, _, unknown, _ in standings],
            "reason": [reason for _, _, _, reason in standings],
        }
        # A Columns is a Sequence[AvailabilitySlot]; the field's type stays the list.
        return cast(list[AvailabilitySlot], Columns(len(found), columns, slot_objects))

    def slot_objects() -> list[AvailabilitySlot]:
        named = _namer()
        return [
            AvailabilitySlot(
                start=s.start.astimezone(UTC),
                end=s.end.astimezone(UTC),
                free_user_ids=named(s.free),
                busy_user_ids=named(s.busy),
                unknown_user_ids=named(s.unknown),
                reason=s.reason,
            )
            for s in answer.result.slots
        ]

    def unknown() -> list[UnknownTime]:
        return [
            UnknownTime(
                user_id=strawberry.ID(str(u.user_id)),
                start=u.start.astimezone(UTC),
                end=u.end.astimezone(UTC),
                reason=u.why,
            )
            for u in answer.unknown
        ]

    return Availability(
        participants=[
            AvailabilityParticipant(
                user=User.from_row(p.user),
                calendar_status=CalendarStatus(p.calendar_status),
                optional=p.optional,
                last_synced_at=p.last_synced_at,
            )
            for p in answer.participants
        ],
        build_busy=busy,
        build_slots=slots,
        build_unknown=unknown,
        build_compact=lambda: compact(answer),
        empty_reason=answer.result.empty_reason,
        notes=answer.notes,
    )


def _namer() -> Callable[[tuple[object, ...]], list[strawberry.ID]]:
    """Names tuples of people as lists of ids, each tuple once: slots in the same
    standing share one tuple (the engine reuses it), which the slots keep alive while
    they are named, so an ``id()`` stays theirs."""
    ids: dict[object, strawberry.ID] = {}
    lists: dict[int, list[strawberry.ID]] = {}

    # By object first: the engine hands out the same few UUID objects throughout,
    # and an id() lookup skips hashing a UUID (a Python-level __hash__).
    by_object: dict[int, strawberry.ID] = {}

    def text_of(value: object) -> strawberry.ID:
        found = ids.get(value)
        if found is None:
            found = ids[value] = strawberry.ID(str(value))
        by_object[id(value)] = found
        return found

    def named(values: tuple[object, ...]) -> list[strawberry.ID]:
        found = lists.get(id(values))
        if found is None:
            found = [by_object.get(id(v)) or text_of(v) for v in values]
            lists[id(values)] = found
        return found

    return named
