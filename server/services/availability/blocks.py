"""Cached busy blocks straight into integer arrays, one row per person.

For 100 people with 500 blocks each, building 50,000 result rows (and the database
turning 100,000 timestamps into numbers) was most of a GraphQL question's time. Here the
database concatenates each person's blocks into one string of fixed-width records, the
naive UTC text ``YYYY-MM-DD HH:MM:SS.ffffff`` of start and end plus one digit for the
kind, the very text SQLite stores (PostgreSQL's ``to_char`` writes it). numpy parses all
of them at once in C. Both databases give the same text, so one parser serves both, and
the blocks are sorted here (start, end, kind as text, as ``BusyInterval`` orders), so the
answer does not depend on the order a database aggregates in.

Should a stored value not have that shape (the lengths would not add up, or numpy would
refuse the text), the reader falls back to one row per block with the epoch computed by
the database (``epoch_micros``), which reads any stored value.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import String, bindparam, case, func, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import BusyBlock
from server.models.base import UTCDateTime, epoch_micros
from server.services.availability.packed import KIND_CODES
from server.sqlite_driver import LONG_READ

__all__ = ["KIND_ORDER", "read_block_table"]

Table = npt.NDArray[np.int64]
"""One row per block: the person's index in the ids asked about, start and end in epoch
microseconds, the kind's code into ``KIND_CODES``."""

_TEXT_WIDTH = 26  # len("2027-03-14 06:30:00.000000")
_RECORD = np.dtype([("start", f"S{_TEXT_WIDTH}"), ("end", f"S{_TEXT_WIDTH}"), ("kind", "S1")])

KIND_ORDER = np.array([sorted(KIND_CODES).index(kind) for kind in KIND_CODES], dtype=np.int8)
"""Rank of each kind code when kinds compare as text, as ``BusyInterval`` ordering does."""


class utc_text(FunctionElement[str]):
    """A ``UTCDateTime`` column as the naive UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``."""

    type = String()
    inherit_cache = True
    name = "utc_text"


@compiles(utc_text, "sqlite")
def _utc_text_sqlite(element: utc_text, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy stores SQLite datetimes as exactly this text.
    return str(compiler.process(element.clauses, **kw))


@compiles(utc_text, "postgresql")
def _utc_text_postgresql(element: utc_text, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"


class joined_text(FunctionElement[str]):
    """An aggregate: the group's strings concatenated with no separator."""

    type = String()
    inherit_cache = True
    name = "joined_text"


@compiles(joined_text, "sqlite")
def _joined_text_sqlite(element: joined_text, compiler: Any, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, '')"


@compiles(joined_text, "postgresql")
def _joined_text_postgresql(element: joined_text, compiler: Any, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)}, '')"


def _overlapping() -> tuple[Any, ...]:
    return (
        col(BusyBlock.user_id).in_(bindparam("ids", expanding=True)),
        col(BusyBlock.start_at) < bindparam("hi", type_=UTCDateTime()),
        col(BusyBlock.end_at) > bindparam("lo", type_=UTCDateTime()),
    )


@lru_cache(maxsize=1)
def _joined_statement() -> Any:
    """Per person: the number of blocks and their records joined into one string."""
    kind_digit = case(
        {kind: literal_column(f"'{code}'") for code, kind in enumerate(KIND_CODES)},
        value=BusyBlock.kind,
    )
    record = utc_text(BusyBlock.start_at) + utc_text(BusyBlock.end_at) + kind_digit
    return (
        select(BusyBlock.user_id, func.count(), joined_text(record))
        .prefix_with(LONG_READ)
        .where(*_overlapping())
        .group_by(col(BusyBlock.user_id))
    )


@lru_cache(maxsize=64)
def _rows_statement(people: int) -> Any:
    """The fallback: four integers per block, the epoch computed by the database. Built
    once per number of people; the ids and bounds are bound parameters."""
    user_column = BusyBlock.__table__.c.user_id  # type: ignore[attr-defined]
    index = case(
        {bindparam(f"u{i}", type_=user_column.type): i for i in range(people)},
        value=BusyBlock.user_id,
    )
    return (
        select(
            index,
            epoch_micros(BusyBlock.start_at),
            epoch_micros(BusyBlock.end_at),
            case({kind: code for code, kind in enumerate(KIND_CODES)}, value=BusyBlock.kind),
        )
        .prefix_with(LONG_READ)
        .where(*_overlapping())
    )


async def read_block_table(
    db: AsyncSession,
    ids: Sequence[uuid.UUID],
    lo: datetime,
    hi: datetime,
    *,
    joined: bool = True,
) -> Table:
    """The blocks of ``ids`` overlapping ``[lo, hi)``, sorted by person, then as
    ``BusyInterval`` orders (start, end, kind as text). ``joined=False`` reads one row
    per block (the benchmark compares the two)."""
    params: dict[str, Any] = {"ids": list(ids), "lo": lo, "hi": hi}
    table = None
    if joined:
        rows = (await db.exec(_joined_statement(), params=params)).all()
        table = _parse_joined(rows, ids)
    if table is None:
        params.update({f"u{i}": user_id for i, user_id in enumerate(ids)})
        found = (await db.exec(_rows_statement(len(ids)), params=params)).all()
        flat = np.fromiter(chain.from_iterable(found), dtype=np.int64, count=4 * len(found))
        table = flat.reshape(len(found), 4)
    return _sorted(table)


def _sorted(table: Table) -> Table:
    """``table`` by person, start, end and kind as text. Checking costs a fraction of
    sorting, and a database scanning its ``(user_id, start_at)`` index mostly hands the
    blocks over in that order already."""
    person, start, end = table[:, 0], table[:, 1], table[:, 2]
    kind = KIND_ORDER[table[:, 3]]

    def later(key: npt.NDArray[np.int64] | npt.NDArray[np.int8]) -> npt.NDArray[np.bool_]:
        result: npt.NDArray[np.bool_] = key[1:] > key[:-1]
        return result

    def same(key: npt.NDArray[np.int64] | npt.NDArray[np.int8]) -> npt.NDArray[np.bool_]:
        result: npt.NDArray[np.bool_] = key[1:] == key[:-1]
        return result

    in_order = later(person) | (
        same(person)
        & (later(start) | (same(start) & (later(end) | (same(end) & (kind[1:] >= kind[:-1])))))
    )
    if bool(in_order.all()):
        return table
    return table[np.lexsort((kind, end, start, person))]


def _parse_joined(rows: Sequence[Any], ids: Sequence[uuid.UUID]) -> Table | None:
    """The table from the joined strings, or ``None`` if any record is not the text
    this expects (the caller then reads one row per block)."""
    index_of = {user_id: index for index, user_id in enumerate(ids)}
    rows = sorted(rows, key=lambda row: index_of[row[0]])
    counts = np.array([row[1] for row in rows], dtype=np.int64)
    text = "".join(row[2] for row in rows)
    if len(text) != _RECORD.itemsize * int(counts.sum()) or not text.isascii():
        return None
    records = np.frombuffer(text.encode("ascii"), dtype=_RECORD)
    try:
        starts = records["start"].astype("datetime64[us]").view(np.int64)
        ends = records["end"].astype("datetime64[us]").view(np.int64)
    except ValueError:
        return None
    codes = records["kind"].view(np.uint8).astype(np.int64) - ord("0")
    if len(codes) and not (codes.min() >= 0 and codes.max() < len(KIND_CODES)):
        return None
    people = np.repeat(np.array([index_of[row[0]] for row in rows], dtype=np.int64), counts)
    return np.column_stack((people, starts, ends, codes))
