"""Column types and helpers shared by every table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, TypeDecorator
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Field, SQLModel

# Stable constraint names, so migrations can refer to (and drop) them on every database.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every database.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as
    naive UTC and made aware again on the way out. A naive datetime on the way in is a
    bug and is refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def id_field() -> Any:
    return Field(default_factory=new_id, primary_key=True)


def created_field() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def enum_type(enum_cls: type[Any], name: str) -> Any:
    """A portable enum column: a string with a CHECK constraint naming the allowed values."""
    from sqlalchemy import Enum as SAEnum

    return SAEnum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda cls: [member.value for member in cls],
        validate_strings=True,
    )


class epoch_micros(FunctionElement[int]):
    """A ``UTCDateTime`` column as integer microseconds since the Unix epoch, computed by
    the database, so bulk readers (busy blocks) get plain integers instead of building
    a ``datetime`` per value. Exact on both databases: SQLite stores the naive UTC text
    ``YYYY-MM-DD HH:MM:SS.ffffff`` (whole seconds from ``strftime('%s')`` of the text
    before the point, which it would otherwise round, plus the six digits after it); PostgreSQL's ``extract(epoch …)`` is an exact numeric."""

    type = BigInteger()
    inherit_cache = True
    name = "epoch_micros"


@compiles(epoch_micros, "sqlite")
def _epoch_micros_sqlite(element: epoch_micros, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return (
        f"(CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 1000000 "
        f"+ CAST(substr({column}, 21, 6) AS INTEGER))"
    )


@compiles(epoch_micros, "postgresql")
def _epoch_micros_postgresql(element: epoch_micros, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"CAST(EXTRACT(EPOCH FROM {column}) * 1000000 AS BIGINT)"
