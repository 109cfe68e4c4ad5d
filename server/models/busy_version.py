"""Each person's busy version, raised by the transaction that changes their busy blocks.

Readers may keep a person's blocks in memory while the stored version stays what it was
when they read them (``services.availability.busy_cache``). So every transaction that
inserts, deletes or updates ``busy_block`` rows raises the version of those rows'
people, in the same transaction: a node that reads the new version then also sees the
new blocks. The events live here, imported with the tables, so that whoever writes busy
blocks, in any process, raises it.

Blocks added or deleted as ORM objects are noticed at flush; bulk statements (the sync's
``delete(BusyBlock)``, the org sync's ``insert(BusyBlock)``) name their people with
``note_changed``. At commit, one statement raises every noted person's version, in id
order, so two transactions lock the rows in the same order. The session also remembers
whom it changed (``changed_in``), because a reader that read versions before its own
session wrote blocks must not trust what it read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models.calendar import BusyBlock, BusyVersion

__all__ = ["changed_in", "note_changed"]

_PENDING = "tandem.busy_pending"
"""People whose blocks this transaction changed: their versions go up at commit."""
_CHANGED = "tandem.busy_changed"
"""People whose blocks this session changed at any time, committed or not."""


def note_changed(db: AsyncSession | Session, user_ids: Iterable[uuid.UUID]) -> None:
    """Say that this transaction changes the busy blocks of ``user_ids``."""
    ids = set(user_ids)
    if ids:
        db.info.setdefault(_PENDING, set()).update(ids)
        db.info.setdefault(_CHANGED, set()).update(ids)


def changed_in(db: AsyncSession | Session) -> frozenset[uuid.UUID]:
    """Everyone whose busy blocks this session has changed (their versions as read
    before the change are no guide to what the database now holds)."""
    return frozenset(db.info.get(_CHANGED, ()))


@event.listens_for(Session, "before_flush")
def _note_flushed_blocks(session: Session, _context: Any, _instances: Any) -> None:
    touched = [
        obj.user_id
        for obj in (*session.new, *session.dirty, *session.deleted)
        if isinstance(obj, BusyBlock)
    ]
    if touched:
        note_changed(session, touched)


@event.listens_for(Session, "before_commit")
def _raise_versions(session: Session) -> None:
    session.flush()  # blocks still pending are noted by the flush
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    dialect = session.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [{"user_id": user_id, "version": 1} for user_id in sorted(pending)]
    table = BusyVersion.__table__  # type: ignore[attr-defined]
    statement = make(table).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.user_id], set_={"version": table.c.version + 1}
    )
    session.execute(statement)


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
