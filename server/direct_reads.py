"""Hot SELECTs run on the driver's own connection, compiled and typed by SQLAlchemy once.

The reads every question makes (the token or session, the program's rules with who the
asker may see, the people with their calendars and booked meetings) cost about 55-115 µs
of CPU each on SQLite through SQLAlchemy's execution, and more on PostgreSQL (an
execution context, a greenlet switch per driver call, a result object with its
metadata), against a few µs for the driver itself to run the same text. Here a
statement is compiled once per dialect with SQLAlchemy, its bind and result processors
are taken from that compilation, and each call hands the text and the processed
parameters straight to the driver of the connection SQLAlchemy checked out:

- SQLite through ``server.sqlite_driver``: on the event loop's thread, as that driver
  already runs every plain read (WAL: readers never wait);
- PostgreSQL through asyncpg: ``Connection.fetch`` with asyncpg's own statement cache. A
  read before anything was written in the session runs on its own, outside a
  transaction, which at READ COMMITTED sees what a statement in one would (each
  statement takes its own snapshot), so a read-only request makes no BEGIN and
  ROLLBACK round trips. After a write it runs inside the session's transaction, since
  the driver's connection is the one that transaction is on.

The rows are the same values SQLAlchemy's path gives (tests compare both on every
statement that comes here, on SQLite and PostgreSQL), as plain tuples. Anything else
goes through SQLAlchemy unchanged: another driver, a statement that is not a SELECT or
that locks, a ``LONG_READ``, and any engine somebody is watching (its logger at INFO,
as ``echo`` sets it, or cursor-execute listeners, which tests use to count statements),
so what is logged or counted is what runs.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from server import sqlite_driver

__all__ = ["DirectRead", "direct_read", "rows"]

_log = logging.getLogger(__name__)

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Text:
    """The SQL of a plan for one set of IN-list lengths, and where each of its positional
    parameters comes from: a parameter's name, the item of that list (or None for the
    value itself) and the bind processor."""

    sql: str
    sources: tuple[tuple[str, int | None, Processor], ...]


@dataclass(slots=True)
class _Plan:
    """One statement compiled for one dialect, with everything a call needs."""

    compiled: SQLCompiler
    defaults: Mapping[str, Any]  # values the statement carries (its literals)
    lists: tuple[str, ...]  # the expanding (IN list) parameters: the text depends on lengths
    texts: dict[tuple[int, ...], _Text]
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]  # result columns to convert

    def bound(self, params: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
        values = {**self.defaults, **params}
        lengths = tuple(len(values[name]) for name in self.lists)
        text = self.texts.get(lengths)
        if text is None:
            text = _text(self.compiled, values)
            if len(self.texts) < _MAX_TEXTS:
                self.texts[lengths] = text
        return text.sql, tuple(
            _processed(values[name] if item is None else values[name][item], convert)
            for name, item, convert in text.sources
        )


def _processed(value: Any, convert: Processor) -> Any:
    return value if convert is None else convert(value)


@dataclass(frozen=True, slots=True)
class DirectRead:
    """A statement ready to run on one checked-out connection's driver."""

    plan: _Plan
    run: Callable[[str, tuple[Any, ...]], Any]  # awaitable of raw rows

    async def rows(self, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The rows, converted as SQLAlchemy would; raises what the driver raised."""
        sql, values = self.plan.bound(params)
        raw = await self.run(sql, values)
        converters = self.plan.converters
        if not converters:
            return [tuple(row) for row in raw]
        found = []
        for row in raw:
            columns = list(row)
            for at, convert in converters:
                columns[at] = convert(columns[at])
            found.append(tuple(columns))
        return found


async def rows(
    connection: AsyncConnection, statement: Executable, params: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    """All rows of the SELECT ``statement`` on ``connection``, directly where it can be.

    A driver error runs the statement again through SQLAlchemy, which raises it as its
    own exception and notices a lost connection (a SELECT has nothing to undo). A read
    interrupted while the driver was waiting (a cancelled request) leaves the driver's
    connection in an unknown state: it is invalidated, as SQLAlchemy does, so the pool
    never lends it again."""
    sync = connection.sync_connection
    direct = direct_read(sync, statement) if sync is not None else None
    if direct is not None:
        try:
            return await direct.rows(params)
        except Exception as error:  # raised again below by SQLAlchemy, as its own error
            _log.debug("direct read failed (%s); running it through SQLAlchemy", type(error))
        except BaseException:
            sync.invalidate()  # type: ignore[union-attr]
            raise
    return (await connection.execute(statement, dict(params))).all()


_PLANS: weakref.WeakKeyDictionary[Dialect, dict[Executable, _Plan | None]] = (
    weakref.WeakKeyDictionary()
)
_MAX_PLANS = 512  # per dialect; statements come from module constants, so a few dozen
_MAX_TEXTS = 64  # per plan: one per set of IN-list lengths asked


def direct_read(connection: Connection, statement: Executable) -> DirectRead | None:
    """The direct way to run ``statement`` on ``connection`` (SQLAlchemy's sync
    connection of a session), or None when it must go through SQLAlchemy.

    Only for reads that take no lock: outside a transaction on PostgreSQL a lock would
    be released as soon as it was taken, so ``FOR UPDATE`` goes through SQLAlchemy (and
    an advisory lock must never be taken through here)."""
    if _watched(connection):
        return None
    if getattr(statement, "_for_update_arg", None) is not None:
        return None
    driver = connection.connection.driver_connection
    run = _runner(driver)
    if run is None:
        return None
    plan = _plan(connection.dialect, statement)
    if plan is None:
        return None
    if isinstance(driver, sqlite_driver.InlineReads) and _long(plan):
        return None
    return DirectRead(plan, run)


def _long(plan: _Plan) -> bool:
    return sqlite_driver.LONG_READ in plan.compiled.string[:60]


def _watched(connection: Connection) -> bool:
    """Is anyone logging this engine's statements (``echo``, or its logger at INFO by
    logging's own configuration) or listening for them?"""
    if connection.engine.logger.isEnabledFor(logging.INFO):  # as SQLAlchemy decides
        return True
    dispatch = connection.dispatch
    return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)


def _runner(driver: Any) -> Callable[[str, tuple[Any, ...]], Any] | None:
    if isinstance(driver, sqlite_driver.InlineReads):
        return driver.read_inline
    if isinstance(driver, asyncpg.Connection):

        async def fetch(sql: str, values: tuple[Any, ...]) -> Any:
            return await driver.fetch(sql, *values)

        return fetch
    return None


def _plan(dialect: Dialect, statement: Executable) -> _Plan | None:
    plans = _PLANS.setdefault(dialect, {})
    if statement in plans:
        return plans[statement]
    if len(plans) >= _MAX_PLANS:
        return None
    plan = plans[statement] = _compile(dialect, statement)
    return plan


def _compile(dialect: Dialect, statement: Executable) -> _Plan | None:
    """SQLAlchemy's compilation of ``statement``, or None when it is not a positional
    SELECT (the only kind the two drivers here are handed)."""
    compiled = cast(ClauseElement, statement).compile(dialect=dialect)
    if not isinstance(compiled, SQLCompiler) or not compiled.positional:
        return None
    if compiled.isinsert or compiled.isupdate or compiled.isdelete:
        return None
    results = [
        entry[3]._cached_result_processor(dialect, None) for entry in compiled._result_columns
    ]
    lists = tuple(bind.key for bind in compiled.post_compile_params)
    if any(not compiled.binds[key].expanding for key in lists):
        return None  # literal_execute values are written into the text: not cached here
    return _Plan(
        compiled=compiled,
        defaults=compiled.construct_params(_check=False, escape_names=False),
        lists=lists,
        texts={},
        converters=tuple((at, convert) for at, convert in enumerate(results) if convert),
    )


def _text(compiled: SQLCompiler, values: Mapping[str, Any]) -> _Text:
    """The SQL for these values' list lengths, as SQLAlchemy writes it at execution."""
    processors: dict[str, Processor] = dict(compiled._bind_processors)  # type: ignore[arg-type]
    if not compiled.post_compile_params:
        names = compiled.positiontup or ()
        return _Text(compiled.string, tuple((n, None, processors.get(n)) for n in names))
    state = compiled._process_parameters_for_postcompile(dict(values))
    processors.update(state.processors)
    items: dict[str, tuple[str, int]] = {}
    for name, expanded in state.parameter_expansion.items():
        if any(isinstance(item, tuple) for item in values[name]):
            raise TypeError("tuple IN lists are not read directly")
        items.update((key, (name, at)) for at, key in enumerate(expanded))
    sources = []
    for key in state.positiontup or ():
        name, at = items.get(key, (key, None))
        sources.append((name, at, processors.get(key)))
    return _Text(state.statement, tuple(sources))
