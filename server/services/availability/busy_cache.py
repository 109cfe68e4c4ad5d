"""Each person's cached busy blocks kept in this process's memory, as packed arrays.

Reading a pair's blocks from the database and parsing them was a tenth of an
availability question's time, for blocks that change a few times an hour. Here a
person's blocks stay in memory together with the busy version they were read at
(``models.busy_version``); the reader already reads each person's version with their
calendar connection, so a hit costs no query at all. A changed version is a miss, on
whichever node wrote the blocks.

Entries are all of a person's blocks, in ``BusyInterval`` order; callers cut out the
windows they ask about. The least recently used people leave first once more than
``max_blocks`` blocks are held (about 17 bytes each).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict

from server.services.availability.packed import PackedBusy

__all__ = ["MAX_BLOCKS", "BusyCache", "shared"]

MAX_BLOCKS = 400_000


class BusyCache:
    """Least recently used first out, bounded by the number of blocks held."""

    def __init__(self, max_blocks: int = MAX_BLOCKS) -> None:
        self.max_blocks = max_blocks
        self._entries: OrderedDict[uuid.UUID, tuple[int, PackedBusy]] = OrderedDict()
        self._held = 0

    def get(self, user_id: uuid.UUID, version: int) -> PackedBusy | None:
        """The person's blocks if they were read at ``version``."""
        entry = self._entries.get(user_id)
        if entry is None or entry[0] != version:
            return None
        self._entries.move_to_end(user_id)
        return entry[1]

    def put(self, user_id: uuid.UUID, version: int, blocks: PackedBusy) -> None:
        """Keep ``blocks``, read after ``version`` was (never before: a version read
        later than its blocks could vouch for blocks older than it)."""
        self.drop(user_id)
        if len(blocks) > self.max_blocks:
            return
        self._entries[user_id] = (version, blocks)
        self._held += len(blocks)
        while self._held > self.max_blocks:
            _, (_, oldest) = self._entries.popitem(last=False)
            self._held -= len(oldest)

    def drop(self, user_id: uuid.UUID) -> None:
        entry = self._entries.pop(user_id, None)
        if entry is not None:
            self._held -= len(entry[1])

    def clear(self) -> None:
        self._entries.clear()
        self._held = 0

    @property
    def blocks_held(self) -> int:
        return self._held

    def __len__(self) -> int:
        return len(self._entries)


shared = BusyCache()
"""The process's cache: every session of every database in the process shares it, so
entries are keyed by person (ids are random UUIDs) and vouched for by the version."""
