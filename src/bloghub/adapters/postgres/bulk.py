"""Bulk writes as one constant statement over arrays (``unnest``): the statement compiles
once and is cached however many rows a batch carries, and asyncpg sends one parameter per
column instead of one per value (so no batch can reach the 32,767-parameter limit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.sql.type_api import TypeEngine
from sqlalchemy.types import ARRAY


def unnest_source(columns: Mapping[str, TypeEngine[Any]]) -> TableValuedAlias:
    """``unnest(:c1, :c2, …) AS (c1, c2, …)``: bind one array per column, all one length."""
    return (
        func.unnest(*(bindparam(name, type_=ARRAY(type_)) for name, type_ in columns.items()))
        .table_valued(*columns)
        .render_derived()
    )


def column_params(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """The parameters of an ``unnest_source`` statement from rows: one list per column, in
    the order of ``names`` (transposed by ``zip``, in C, not value by value in Python)."""
    columns = zip(*rows, strict=True) if rows else ((),) * len(names)
    return {name: list(column) for name, column in zip(names, columns, strict=True)}
