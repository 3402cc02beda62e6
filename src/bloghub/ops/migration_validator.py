"""Compare a migration's two stores, both ways: rows of the source missing from the target
or different there, rows of the target the source lacks (extra). Full passes walk every
table in primary-key order; incremental passes walk the rows changed since a time (tables
with an ``updated_at`` column), and ``changed_pass`` adds the other tables whole, as
nothing tells which of their rows changed. All walk by keyset, never by OFFSET, in pages.
What is found is checked once more after a pause (both stores are written live, one batch
apart) and appended to the ``<prefix>.repair`` topic, where the repair consumer fixes the
target.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from sqlalchemy import ColumnElement, Table, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import Text

from bloghub.adapters.postgres.generations import read_model_in, schema_name
from bloghub.adapters.postgres.migrations import Migration
from bloghub.events.topics import REPAIR, topic_for
from bloghub.migration_phases import Phase

PAGE_ROWS = 1000
RECHECK_S = 1.0

Row = Any  # a SQLAlchemy row of one read-model table


@dataclass(frozen=True, slots=True)
class Difference:
    projector: str
    generation: int
    table: str
    key: dict[str, str]
    kind: str  # missing | different | extra

    def encoded(self) -> bytes:
        return orjson.dumps(
            {
                "projector": self.projector,
                "generation": self.generation,
                "table": self.table,
                "key": self.key,
                "kind": self.kind,
            }
        )


class Pair:
    """The generation's tables in the migration's source and target stores."""

    def __init__(self, migration: Migration, source: AsyncEngine, target: AsyncEngine) -> None:
        if migration.phase not in (Phase.SOURCE_FIRST, Phase.TARGET_FIRST):
            raise ValueError(
                f"{migration.projector} is in phase {int(migration.phase)}: stores are "
                "compared in phases 2 and 3, while both are written"
            )
        self.migration = migration
        self.source, self.target = source, target
        schema = schema_name(migration.projector, migration.generation)
        self.tables = list(read_model_in(migration.projector, schema).sorted_tables)
        # Nothing tells which of these tables' rows changed: they are compared whole.
        self.untimed = [t for t in self.tables if "updated_at" not in t.c]

    def difference(self, table: Table, row: Row, kind: str) -> Difference:
        key = {str(c.name): str(getattr(row, c.name)) for c in table.primary_key.columns}
        m = self.migration
        return Difference(m.projector, m.generation, table.name, key, kind)


def _ordered(table: Table) -> list[ColumnElement[Any]]:
    """The primary key in an order Python compares the same way: text in byte order."""
    return [c.collate("C") if isinstance(c.type, Text) else c for c in table.primary_key.columns]


def _after(columns: Sequence[ColumnElement[Any]], values: Sequence[Any]) -> Any:
    """The keyset bound, each value bound with its column's type (a UUID is not text)."""
    return tuple_(*(literal(v, c.type) for c, v in zip(columns, values, strict=True)))


def _key(table: Table, row: Row) -> tuple[Any, ...]:
    return tuple(getattr(row, c.name) for c in table.primary_key.columns)


async def _walk(engine: AsyncEngine, table: Table) -> AsyncIterator[Row]:
    """Every row of ``table`` in key order, a page at a time (keyset)."""
    order = _ordered(table)
    after: tuple[Any, ...] | None = None
    while True:
        stmt = select(table).order_by(*order).limit(PAGE_ROWS)
        if after is not None:
            stmt = stmt.where(tuple_(*order) > _after(order, after))
        async with engine.connect() as conn:
            rows = list(await conn.execute(stmt))
        for row in rows:
            yield row
        if len(rows) < PAGE_ROWS:
            return
        last = rows[-1]
        after = tuple(getattr(last, c.name) for c in table.primary_key.columns)


async def full_pass(pair: Pair) -> list[Difference]:
    """Every table of both stores, merged in key order."""
    return await _confirmed(pair, await _whole(pair, pair.tables))


async def _whole(pair: Pair, tables: Sequence[Table]) -> list[Difference]:
    found: list[Difference] = []
    for table in tables:
        found += await _merge(pair, table, _walk(pair.source, table), _walk(pair.target, table))
    return found


async def _merge(
    pair: Pair, table: Table, source: AsyncIterator[Row], target: AsyncIterator[Row]
) -> list[Difference]:
    found = []
    s, t = await anext(source, None), await anext(target, None)
    while s is not None or t is not None:
        if t is None or (s is not None and _key(table, s) < _key(table, t)):
            found.append(pair.difference(table, s, "missing"))
            s = await anext(source, None)
        elif s is None or _key(table, t) < _key(table, s):
            found.append(pair.difference(table, t, "extra"))
            t = await anext(target, None)
        else:
            if tuple(s) != tuple(t):
                found.append(pair.difference(table, s, "different"))
            s, t = await anext(source, None), await anext(target, None)
    return found


async def incremental_pass(pair: Pair, since: datetime) -> list[Difference]:
    """Rows changed since ``since`` by their ``updated_at``, source→target then
    target→source. Tables without the column are left to full passes."""
    return await _confirmed(pair, await _changed_rows(pair, since))


async def changed_pass(pair: Pair, since: datetime) -> list[Difference]:
    """All a pass since ``since`` can rely on: the rows changed since then where a table
    tells (``updated_at``), and every row of the tables that cannot (``pair.untimed``)."""
    found = await _changed_rows(pair, since) + await _whole(pair, pair.untimed)
    return await _confirmed(pair, found)


async def _changed_rows(pair: Pair, since: datetime) -> list[Difference]:
    found: list[Difference] = []
    for table in pair.tables:
        if "updated_at" not in table.c:
            continue
        found += await _changed(pair, table, since, pair.source, pair.target, "missing")
        found += await _changed(pair, table, since, pair.target, pair.source, "extra")
    return found


async def _changed(
    pair: Pair,
    table: Table,
    since: datetime,
    here: AsyncEngine,
    there: AsyncEngine,
    absent: str,
) -> list[Difference]:
    order = [table.c.updated_at, *_ordered(table)]
    after: tuple[Any, ...] | None = None
    found: list[Difference] = []
    while True:
        stmt = select(table).where(table.c.updated_at >= since).order_by(*order).limit(PAGE_ROWS)
        if after is not None:
            stmt = stmt.where(tuple_(*order) > _after(order, after))
        async with here.connect() as conn:
            rows = list(await conn.execute(stmt))
        others = await _by_keys(there, table, rows)
        for row in rows:
            other = others.get(_key(table, row))
            if other is None:
                found.append(pair.difference(table, row, absent))
            elif tuple(other) != tuple(row):
                found.append(pair.difference(table, row, "different"))
        if len(rows) < PAGE_ROWS:
            return found
        last = rows[-1]
        after = (last.updated_at, *(getattr(last, c.name) for c in table.primary_key.columns))


async def _by_keys(engine: AsyncEngine, table: Table, rows: Sequence[Row]) -> dict[Any, Row]:
    if not rows:
        return {}
    pk = list(table.primary_key.columns)
    keys = [tuple(getattr(r, c.name) for c in pk) for r in rows]
    async with engine.connect() as conn:
        found = await conn.execute(select(table).where(tuple_(*pk).in_(keys)))
        return {_key(table, r): r for r in found}


async def _confirmed(pair: Pair, found: list[Difference]) -> list[Difference]:
    """The differences still there after a pause: a row one store has applied and the
    other is about to (the live projector writes them one after the other) is not one."""
    if not found:
        return found
    await asyncio.sleep(RECHECK_S)
    tables = {t.name: t for t in pair.tables}
    still = []
    for d in found:
        table = tables[d.table]
        where = [table.c[k] == v for k, v in d.key.items()]
        rows = []
        for engine in (pair.source, pair.target):
            async with engine.connect() as conn:
                rows.append((await conn.execute(select(table).where(*where))).first())
        if rows[0] is None and rows[1] is None:
            continue
        if rows[0] is not None and rows[1] is not None and tuple(rows[0]) == tuple(rows[1]):
            continue
        still.append(d)
    return still


async def report(bootstrap: str, prefix: str, found: Sequence[Difference]) -> None:
    """Append ``found`` to the repair topic, keyed by projector and table."""
    if not found:
        return
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        topic = topic_for(prefix, REPAIR)
        for d in found:
            await producer.send(topic, d.encoded(), key=f"{d.projector}.{d.table}".encode())
        await producer.flush()
    finally:
        await producer.stop()
