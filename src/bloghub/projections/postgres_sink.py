"""Base for projectors whose read model lives in Postgres.

A batch, and the per-partition checkpoint it reaches, are written in one transaction.
The checkpoint rows are locked first, so a second instance that still believes it owns a
partition (after a rebalance) waits, then sees the moved checkpoint and skips what was
already applied.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import Select, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bloghub.adapters.postgres.engine import translated
from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.tables import checkpoints
from bloghub.events.base import Recorded
from bloghub.events.topics import Family
from bloghub.projections.port import TP


class PostgresProjector(abc.ABC):
    name: str
    families: tuple[Family, ...]

    def __init__(self, engine: AsyncEngine, *, generation: int = 1) -> None:
        self.engine = engine
        self.generation = generation
        self.schema = schema_name(self.name, generation)
        self._replaying = False

    @abc.abstractmethod
    async def handle(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        """Write ``records`` (already de-duplicated, in log order) to the read model."""

    async def after_commit(self, records: Sequence[Recorded]) -> None:
        return None

    async def load_checkpoints(self, partitions: Sequence[TP]) -> dict[TP, int]:
        if not partitions:
            return {}
        async with translated(), self.engine.connect() as conn:
            rows = await conn.execute(self._checkpoint_query(partitions))
            return {(r.topic, r.partition): r.next_offset for r in rows}

    async def apply(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        partitions = list(next_offsets)
        async with translated(), self.engine.begin() as raw:
            conn = await raw.execution_options(schema_translate_map={None: self.schema})
            await conn.execute(
                insert(checkpoints)
                .values([self._checkpoint_row(tp, 0) for tp in partitions])
                .on_conflict_do_nothing()
            )
            rows = await conn.execute(self._checkpoint_query(partitions).with_for_update())
            stored = {(r.topic, r.partition): r.next_offset for r in rows}
            fresh = [r for r in records if r.offset >= stored.get((r.topic, r.partition), 0)]
            if fresh:
                await self.handle(conn, fresh)
            moved = {tp: o for tp, o in next_offsets.items() if o > stored.get(tp, 0)}
            if moved:
                stmt = insert(checkpoints).values(
                    [self._checkpoint_row(tp, o) for tp, o in moved.items()]
                )
                await conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["projector", "generation", "topic", "partition"],
                        set_={
                            "next_offset": stmt.excluded.next_offset,
                            "updated_at": stmt.excluded.updated_at,
                        },
                    )
                )
        return fresh

    def _checkpoint_row(self, tp: TP, offset: int) -> dict[str, object]:
        return {
            "projector": self.name,
            "generation": self.generation,
            "topic": tp[0],
            "partition": tp[1],
            "next_offset": offset,
            "updated_at": datetime.now(UTC),
        }

    def _checkpoint_query(self, partitions: Sequence[TP]) -> Select[tuple[str, int, int]]:
        c = checkpoints.c
        return select(c.topic, c.partition, c.next_offset).where(
            c.projector == self.name,
            c.generation == self.generation,
            tuple_(c.topic, c.partition).in_(list(partitions)),
        )
