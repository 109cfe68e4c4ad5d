"""Rows of a Core statement read in the session's transaction, without the ORM.

A statement built from ORM attributes goes through the ORM's execution (compile state,
result adaptation) even when it selects plain columns: about 125 µs a statement on
SQLite here, against about 65 µs for the same statement built from ``Table.c`` columns
and run on the session's connection. The reads every availability question makes use
this; anything that needs ORM objects (identity, updates in place) stays on the session.
The rows themselves are read by ``server.direct_reads``: straight from the driver where
it can (a small statement about 8 µs on SQLite instead of 55 µs), through SQLAlchemy
otherwise.

``detached`` makes an ORM object from such a row as a session would have left it once
closed: about a third of the cost of the ORM loading it (which builds its row
processors again for every statement), and a quarter of the model's constructor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy.orm import attributes, configure_mappers, make_transient_to_detached
from sqlalchemy.sql import Executable
from sqlmodel.ext.asyncio.session import AsyncSession

from server import direct_reads

__all__ = ["detached", "detached_at", "first", "rows", "width", "write"]

M = TypeVar("M")
_CONFIGURED: set[type] = set()


async def rows(
    db: AsyncSession, statement: Executable, params: Mapping[str, Any] | None = None
) -> Sequence[Sequence[Any]]:
    """All rows of ``statement`` (built from table columns, not ORM attributes)."""
    return await direct_reads.rows(await db.connection(), statement, params or {})


async def first(
    db: AsyncSession, statement: Executable, params: Mapping[str, Any] | None = None
) -> Sequence[Any] | None:
    """The first row of ``statement`` (built from table columns), or ``None``."""
    found = await rows(db, statement, params)
    return found[0] if found else None


async def write(db: AsyncSession, statement: Executable, params: Mapping[str, Any]) -> None:
    """Run a Core write in the session's transaction; the caller commits it."""
    connection = await db.connection()
    await connection.execute(statement, dict(params))


def detached(model: type[M], values: Mapping[str, Any]) -> M:
    """An instance of the table model ``model`` holding ``values`` (every column, keyed
    by attribute name, as read from the database), detached: it reads like an object a
    closed session loaded, and ``session.add`` would attach it as that row, not insert
    it. No constructor or validation runs: the values are the database's."""
    if model not in _CONFIGURED:
        # A process's first ORM query configures the mappers; a row read first (the
        # token check of a fresh server's first request) must do it itself.
        configure_mappers()
        _CONFIGURED.add(model)
    instance: M = model._sa_class_manager.new_instance()  # type: ignore[attr-defined]
    attributes.instance_dict(instance).update(values)
    make_transient_to_detached(instance)
    return instance


def width(model: type[Any]) -> int:
    """How many columns ``model``'s table has: where the next model's columns start in a
    row that selects ``*table.c`` of several tables."""
    return len(_keys(model))


def detached_at(model: type[M], row: Sequence[Any], start: int = 0) -> M:
    """``detached`` from the ``width(model)`` values of ``row`` from ``start`` on, which
    a statement selected as ``*model.__table__.c``."""
    keys = _keys(model)
    return detached(model, dict(zip(keys, row[start : start + len(keys)], strict=True)))


def _keys(model: type[Any]) -> tuple[str, ...]:
    keys = _KEYS.get(model)
    if keys is None:
        keys = _KEYS[model] = tuple(column.key for column in model.__table__.c)
    return keys


_KEYS: dict[type[Any], tuple[str, ...]] = {}
