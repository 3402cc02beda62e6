"""The repair consumer: reads the differences the validator appended to the
``<prefix>.repair`` topic and makes each target row what the source row is.

A row is copied only at a moment both stores have applied exactly the same events: the
checkpoints of the store the live projector writes first are locked (so no new batch
starts), the other store is given the time to finish the batch it may be applying, then
its checkpoints are locked too and must equal the first's. Copying at any other moment
could put a row one batch ahead or behind into the target, where nothing would ever
correct it again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer
from sqlalchemy import ColumnElement, Table, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bloghub.adapters.postgres.engine import make_engine, translated
from bloghub.adapters.postgres.engines import Engines
from bloghub.adapters.postgres.generations import read_model_in, schema_name
from bloghub.adapters.postgres.migrations import Migration, all_migrations
from bloghub.adapters.postgres.tables import checkpoints
from bloghub.events.topics import REPAIR, topic_for
from bloghub.migration_phases import Phase, Store, writes
from bloghub.projections.backoff import wait_any
from bloghub.settings import Settings

log = structlog.get_logger(__name__)

# How long the second store may take to finish its batch in flight. The live projector
# waits meanwhile (its first store is locked), so this stays short: a repair that finds the
# stores apart (just after a phase move, the second store may be the one ahead) tries later.
SETTLE_S = 2.0


class RepairBusy(Exception):
    """The stores did not come to the same point in time: try the row again later."""


async def _locked(conn: AsyncConnection, migration: Migration) -> dict[tuple[str, int], int]:
    c = checkpoints.c
    rows = await conn.execute(
        select(c.topic, c.partition, c.next_offset)
        .where(c.projector == migration.projector, c.generation == migration.generation)
        .with_for_update()
    )
    return {(r.topic, r.partition): r.next_offset for r in rows}


async def _settled(engine: AsyncEngine, migration: Migration, held: dict[Any, int]) -> None:
    c = checkpoints.c
    deadline = time.monotonic() + SETTLE_S
    while True:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(c.topic, c.partition, c.next_offset).where(
                    c.projector == migration.projector, c.generation == migration.generation
                )
            )
            now = {(r.topic, r.partition): r.next_offset for r in rows}
        if now == held:
            return
        if time.monotonic() > deadline:
            raise RepairBusy(f"{migration.projector}: the stores stand at different offsets")
        await asyncio.sleep(0.05)


async def repair_row(
    migration: Migration,
    engines: dict[Store, AsyncEngine],
    table_name: str,
    key: dict[str, str],
) -> bool:
    """Make the target's row under ``key`` the source's (or remove it if the source has
    none). True if the target changed."""
    if migration.phase not in (Phase.SOURCE_FIRST, Phase.TARGET_FIRST):
        raise ValueError(f"phase {int(migration.phase)} does not write both stores")
    schema = schema_name(migration.projector, migration.generation)
    table = read_model_in(migration.projector, schema).tables.get(f"{schema}.{table_name}")
    if table is None or set(key) != {c.name for c in table.primary_key.columns}:
        raise ValueError(f"{migration.projector} has no table {table_name!r} keyed so")
    where = [table.c[k] == v for k, v in key.items()]
    first, second = writes(migration.phase)
    async with translated(), engines[first].begin() as c1:
        held = await _locked(c1, migration)
        await _settled(engines[second], migration, held)
        async with engines[second].begin() as c2:
            if await _locked(c2, migration) != held:
                raise RepairBusy(f"{migration.projector}: the stores moved apart")
            conns = {first: c1, second: c2}
            return await _copy(conns[Store.SOURCE], conns[Store.TARGET], table, where)


async def _copy(
    source: AsyncConnection, target: AsyncConnection, table: Table, where: list[ColumnElement[bool]]
) -> bool:
    row = (await source.execute(select(table).where(*where))).first()
    now = (await target.execute(select(table).where(*where))).first()
    if (row is None and now is None) or (row is not None and now is not None and row == now):
        return False
    await target.execute(delete(table).where(*where))
    if row is not None:
        await target.execute(insert(table).values(dict(row._mapping)))
    return True


class Repairs:
    """Applies repair messages; the target engines are made on first use."""

    def __init__(self, main: AsyncEngine) -> None:
        self._main = main
        self.engines = Engines(lambda url: make_engine(url, pool_size=2, app="bloghub-repair"))
        self.fixed = 0

    async def handle(self, message: dict[str, Any], stop: asyncio.Event) -> None:
        async with translated(), self._main.connect() as conn:
            migration = (await all_migrations(conn)).get(message["projector"])
        if (
            migration is None
            or migration.generation != message["generation"]
            or migration.phase not in (Phase.SOURCE_FIRST, Phase.TARGET_FIRST)
        ):
            log.info("repair.skipped", message=message, reason="no migration writes both stores")
            return
        engines = {Store.SOURCE: self._main, Store.TARGET: self.engines.get(migration.target_url)}
        while not stop.is_set():
            try:
                if await repair_row(migration, engines, message["table"], message["key"]):
                    self.fixed += 1
                    log.info("repair.fixed", **message)
                return
            except ValueError as exc:
                log.warning("repair.skipped", message=message, reason=str(exc))
                return
            except RepairBusy as exc:
                log.info("repair.busy", error=str(exc))
                await wait_any(0.2, stop)


async def run_repairs(settings: Settings, stop: asyncio.Event) -> None:
    """Consume ``<prefix>.repair`` until ``stop``; offsets are committed once a message is
    fixed (or found fixed), so a restart does a row again at worst, never skips one."""
    main = make_engine(settings.sqlalchemy_url, pool_size=2, app="bloghub-repair")
    repairs = Repairs(main)
    consumer = AIOKafkaConsumer(
        topic_for(settings.prefix, REPAIR),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.prefix}.repair",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if record.value is not None:
                        await repairs.handle(orjson.loads(record.value), stop)
            if batches and not stop.is_set():
                await consumer.commit()
    finally:
        await consumer.stop()
        await repairs.engines.dispose()
        await main.dispose()
