"""SQLite for the async engine: reads run on the event loop's thread, writes on aiosqlite's.

aiosqlite runs every call (make a cursor, execute, fetch, close, the pool's rollback) on a
thread of its own and wakes the event loop for each answer: about 100 µs and a GIL hand-off
per call, four or five calls per query, while the query itself takes a few microseconds on
a local file. Reading on the loop's own thread is safe because in WAL mode a reader never
waits for a lock (https://www.sqlite.org/wal.html, "readers do not block writers and a
writer does not block readers"), so the loop is never parked by another connection's
transaction. Anything that may take the write lock (INSERT, UPDATE, DELETE, BEGIN, DDL, a
COMMIT of a real transaction) still goes through aiosqlite's thread, where waiting out
``busy_timeout`` parks only that connection, not every request of the process.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

import aiosqlite

# Statements that only read: a plain SELECT never makes Python's sqlite3 module open a
# transaction (it begins one implicitly before INSERT, UPDATE, DELETE and REPLACE only).
_READ_PREFIX = "SELECT"

LONG_READ = "/* long read */"
"""Written right after SELECT (``select(...).prefix_with(LONG_READ)``) by a read that may
take milliseconds, such as every block of a hundred people: it runs on aiosqlite's thread,
where SQLite works without the GIL while the loop serves other requests."""


class InlineReads(aiosqlite.Connection):
    """An aiosqlite connection whose read calls run where they are awaited."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Cursors of a LONG_READ: SQLite does most of an aggregate's work while the rows
        # are fetched, so their fetches go to the thread too.
        self._long_reads: weakref.WeakSet[sqlite3.Cursor] = weakref.WeakSet()

    def _inline(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        name = getattr(fn, "__name__", "")
        owner = getattr(fn, "__self__", None)
        if name == "cursor":
            return True
        if name in ("fetchone", "fetchmany", "fetchall"):
            return owner not in self._long_reads
        if name == "execute":
            sql = args[0] if args else ""
            if not isinstance(sql, str):
                return False
            head = sql.lstrip()[:40]
            if LONG_READ in head and isinstance(owner, sqlite3.Cursor):
                self._long_reads.add(owner)
            return head[:6].upper() == _READ_PREFIX and LONG_READ not in head
        if name in ("commit", "rollback"):
            # Without an open transaction both are no-ops in the sqlite3 module.
            return not self._conn.in_transaction
        return name == "close" and isinstance(owner, sqlite3.Cursor)

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._connection is not None and self._running and self._inline(fn, args):
            return fn(*args, **kwargs)
        return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    async def read_inline(self, sql: str, values: tuple[Any, ...]) -> list[Any]:
        """All rows of a plain SELECT, run here on the loop's thread (``direct_reads``)."""
        cursor = self._conn.execute(sql, values)
        try:
            return cursor.fetchall()
        finally:
            cursor.close()


def connect(database: str, **kwargs: Any) -> aiosqlite.Connection:
    """The ``async_creator`` for SQLAlchemy's aiosqlite dialect."""
    # The connection is made on aiosqlite's thread and also used on the loop's thread, one
    # call at a time (SQLAlchemy awaits each call before the next), which SQLite allows.
    kwargs["check_same_thread"] = False
    connection = InlineReads(partial(sqlite3.connect, database, **kwargs), iter_chunk_size=64)
    connection._thread.daemon = True
    return connection


def attach(url: str, kwargs: dict[str, Any]) -> None:
    """Make ``create_async_engine`` open SQLite files through :func:`connect`."""
    path = url.split("///", 1)[-1]
    connect_args = dict(kwargs.pop("connect_args", {}))

    async def creator() -> aiosqlite.Connection:
        return await connect(path, **connect_args)

    kwargs["async_creator"] = creator
