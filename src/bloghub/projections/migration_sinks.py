"""A projector whose read model is being moved to another database (``bloghub migrate``):
built for the phase the migrations registry names, it applies each batch to every store
the phase writes, each store with its own checkpoint in its own transaction, so each
store sees every event exactly once whatever the other does."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.migrations import Migration
from bloghub.events.base import Event, Recorded
from bloghub.events.topics import Family
from bloghub.migration_phases import PINNED_TO_MAIN, MigrationRefused, Store, reads_from, writes
from bloghub.projections.catalog import POSTGRES_PROJECTORS
from bloghub.projections.port import TP, Projector
from bloghub.projections.postgres_sink import PostgresProjector
from bloghub.projections.stores import Stores


class TwoStores:
    """One projector generation written to two stores, in the phase's order; the last one
    is the store reads come from, whose records and hooks the runner sees."""

    def __init__(self, sinks: Sequence[Projector]) -> None:
        self.sinks = list(sinks)
        read = self.sinks[-1]
        self.name: str = read.name
        self.families: tuple[Family, ...] = read.families
        self.generation: int = read.generation

    async def load_checkpoints(self, partitions: Sequence[TP]) -> dict[TP, int]:
        """The lower checkpoint of the two per partition: a store that is behind (a target
        just filled, a source written again after phase 4) catches up, and the one ahead
        skips what it already has. No checkpoint in either: from the log's start."""
        found = [await sink.load_checkpoints(partitions) for sink in self.sinks]
        return {tp: min(f[tp] for f in found) for tp in partitions if all(tp in f for f in found)}

    def passes_over(self, model: type[Event]) -> bool:
        return all(sink.passes_over(model) for sink in self.sinks)

    async def apply(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        fresh: Sequence[Recorded] = ()
        for sink in self.sinks:
            fresh = await sink.apply(records, next_offsets)
        return fresh

    async def after_commit(self, records: Sequence[Recorded]) -> None:
        await self.sinks[-1].after_commit(records)


def projector_in(
    stores: Stores, name: str, generation: int, engine: AsyncEngine, *, serving: bool
) -> PostgresProjector:
    """``name``'s projector writing through ``engine``. Only the store reads come from owns
    cache entries and side effects; the other is written quietly."""
    cls = POSTGRES_PROJECTORS.get(name)
    if cls is None:
        movable = [n for n in POSTGRES_PROJECTORS if n not in PINNED_TO_MAIN]
        raise MigrationRefused(
            f"{name!r} has no PostgreSQL read model to migrate; those that do: "
            + ", ".join(movable)
        )
    placed = dataclasses.replace(
        stores,
        engine=engine,
        cache=stores.cache if serving else None,
        live=stores.live and serving,
    )
    return cls.from_stores(placed, generation=generation)


def placed_projector(stores: Stores, migration: Migration, target: AsyncEngine) -> Projector:
    """The live projector for the migration's phase."""
    engines = {Store.SOURCE: stores.engine, Store.TARGET: target}
    read = reads_from(migration.phase)
    sinks = [
        projector_in(
            stores, migration.projector, migration.generation, engines[s], serving=s is read
        )
        for s in writes(migration.phase)
    ]
    return sinks[0] if len(sinks) == 1 else TwoStores(sinks)
