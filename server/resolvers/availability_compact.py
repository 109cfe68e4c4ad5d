"""Rows of plain values for ``Availability.compact``: the same answer as ``slots``,
``busy`` and ``unknown``, built without one GraphQL object per item (graphql-core
completes each field of each object separately, which dominated large answers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import strawberry
from strawberry.scalars import JSON

from server.schema.availability import CompactAvailability
from server.services.availability.grid import iso_utc
from server.services.availability.model import slot_standings, slot_times
from server.services.availability.packed import KIND_CODES
from server.services.availability.query import AvailabilityAnswer, clipped_busy

KIND_NAMES = [kind.name for kind in KIND_CODES]
"""The name of each kind code (``packed.KIND_CODES``): the GraphQL ``BusyKind`` names."""
_KIND_NAMES = np.array(KIND_NAMES, dtype=object)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def compact(answer: AvailabilityAnswer) -> CompactAvailability:
    """Positions follow ``answer.participants`` (required then optional, as asked)."""
    people = [p.user.id for p in answer.participants]
    position: dict[uuid.UUID, int] = {user_id: i for i, user_id in enumerate(people)}

    def slots() -> JSON:
        found = answer.result.slots
        starts_us, ends_us = slot_times(found)
        # Slots in the same standing share their tuples of people (the engine reuses
        # them): each tuple's positions are listed once.
        listed: dict[int, list[int]] = {}

        def positions(people: tuple[uuid.UUID, ...]) -> list[int]:
            known = listed.get(id(people))
            if known is None:
                known = listed[id(people)] = [position[u] for u in people]
            return known

        rows = [
            [start, end, positions(free), positions(busy), positions(unknown), reason]
            for (free, busy, unknown, reason), start, end in zip(
                slot_standings(found), iso_utc(starts_us), iso_utc(ends_us), strict=True
            )
        ]
        return JSON(rows)

    def busy() -> JSON:
        # Rows as tuples straight from zip (JSON arrays all the same): a list per block
        # was a tenth of a 300-block answer.
        blocks = clipped_busy(answer.busy)
        rows = list(
            zip(
                blocks.per_block([position[user_id] for user_id in blocks.people]),
                iso_utc(blocks.starts_us),
                iso_utc(blocks.ends_us),
                _KIND_NAMES[blocks.kind_codes].tolist(),
                strict=True,
            )
        )
        return JSON(rows)

    def unknown() -> JSON:
        rows = [[position[u.user_id], _iso(u.start), _iso(u.end), u.why] for u in answer.unknown]
        return JSON(rows)

    return CompactAvailability(
        user_ids=[strawberry.ID(str(user_id)) for user_id in people],
        build_slots=slots,
        build_busy=busy,
        build_unknown=unknown,
    )
