"""Bulk writes as one constant statement over arrays (``unnest``): the statement compiles
once and is cached however many rows a batch carries, and asyncpg sends one parameter per
column instead of one per value (so no batch can reach the 32,767-parameter limit).

A column whose values are ids or numbers may go as one text instead (``Packed``), and a
time as whole microseconds (``micros`` and ``from_micros``): asyncpg encodes an array
element by element, which is most of what a projector's bulk write costs on its side."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Dialect,
    bindparam,
    cast,
    func,
    literal_column,
    type_coerce,
)
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.sql.type_api import TypeEngine
from sqlalchemy.types import ARRAY, DateTime, Text, TypeDecorator


class Unpackable(ValueError):
    """A value ``Packed`` cannot send as it is. It carries the SQLSTATE PostgreSQL gives a
    value it cannot read (22P02), so it is translated as the store's refusal of the data
    (``StoreRejected``), the same as the cast's own refusal of a malformed id: the event
    that brought it is its own fault, and a projector sets it aside rather than halt."""

    sqlstate = "22P02"


class Packed(TypeDecorator[Sequence[Any]]):
    """An array parameter bound as one text, its values joined by commas, which PostgreSQL
    splits and casts back (``string_to_array(...)::element[]``). Sending 2,000 ids took
    270 ns of the process's CPU per id through asyncpg's uuid[] encoding, 72 packed; 2,000
    integers 150 ns each as a bigint[], 93 packed (``bench``-style loops, the statement's
    own cost spread over them). Only for values whose text holds no comma (ids, numbers):
    a value that does, or an only value that is empty, is refused (``Unpackable``) rather
    than split in two or lost. An id that is not an id fails the cast, as before."""

    impl = Text
    cache_ok = True

    def __init__(self, element: TypeEngine[Any]) -> None:
        super().__init__()
        self.element = element

    def process_bind_param(self, value: Sequence[Any] | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        joined = ",".join(map(str, value))
        if value and (not joined or joined.count(",") != len(value) - 1):
            raise Unpackable(f"a value for a packed {self.element} is empty or holds a comma")
        return joined

    def bind_expression(self, bindvalue: Any) -> ColumnElement[Any]:
        return cast(func.string_to_array(bindvalue, literal_column("','")), ARRAY(self.element))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
MICROS = Packed(BigInteger())


def micros(times: Iterable[datetime]) -> list[int]:
    """Aware times as whole microseconds since the epoch (exact, unlike a float's)."""
    return [(t - _EPOCH) // _MICROSECOND for t in times]


def from_micros(column: ColumnElement[int]) -> ColumnElement[datetime]:
    """The time a ``MICROS`` column's value stands for (exactly: whole microseconds)."""
    return type_coerce(
        literal_column("timestamptz 'epoch'") + column * literal_column("interval '1 microsecond'"),
        DateTime(timezone=True),
    )


def unnest_source(columns: Mapping[str, TypeEngine[Any]]) -> TableValuedAlias:
    """``unnest(:c1, :c2, …) AS (c1, c2, …)``: bind one array per column, all one length
    (a ``Packed`` column as its one text)."""
    return (
        func.unnest(
            *(
                bindparam(name, type_=type_ if isinstance(type_, Packed) else ARRAY(type_))
                for name, type_ in columns.items()
            )
        )
        .table_valued(*columns)
        .render_derived()
    )


def column_params(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """The parameters of an ``unnest_source`` statement from rows: one list per column, in
    the order of ``names`` (transposed by ``zip``, in C, not value by value in Python)."""
    columns = zip(*rows, strict=True) if rows else ((),) * len(names)
    return {name: list(column) for name, column in zip(names, columns, strict=True)}
